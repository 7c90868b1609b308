// End-to-end: eval --iw estimates -log p(x) repeatably and records it in the run folder, and
// compare tables runs side by side with their curves.
#include "tools/cli_harness.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>

namespace graphrun::testing {
namespace {

std::vector<std::string> small(const std::vector<std::string>& extra) {
  std::vector<std::string> args = extra;
  args.insert(args.end(), {"--batch", "32", "--model.hidden", "32", "--data", tiny_dataset().string()});
  return args;
}

std::string describe(const CliResult& r) {
  return "exit " + std::to_string(r.code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

nlohmann::json read_json(const fs::path& file) {
  std::ifstream in(file);
  return nlohmann::json::parse(in);
}

double last_test_loss(const fs::path& run) {
  std::ifstream in(run / "metrics.jsonl");
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return nlohmann::json::parse(last).at("test_loss").get<double>();
}

}  // namespace

TEST_CASE("eval --iw estimates -log p(x) below the negative ELBO, the same every time", "[e2e][iw]") {
  TempDir tmp;
  auto train = run_cli_process(small({"model.vae", "--epochs", "3"}), tmp.path());
  INFO(describe(train));
  REQUIRE(train.code == 0);
  auto a = run_cli_process(small({"eval", "model.vae", "--iw", "40"}), tmp.path());
  INFO(describe(a));
  REQUIRE(a.code == 0);
  auto first = read_json(tmp / "runs" / "model.vae" / "iw.json");
  auto b = run_cli_process(small({"eval", "model.vae", "--iw", "40"}), tmp.path());
  REQUIRE(b.code == 0);
  auto second = read_json(tmp / "runs" / "model.vae" / "iw.json");
  CHECK(first.at("nll") == second.at("nll"));
  CHECK(first.at("samples") == 40);
  CHECK(first.at("images") == 100);
  const double nll = first.at("nll").get<double>();
  CHECK(std::isfinite(nll));
  CHECK(std::isfinite(first.at("std_error").get<double>()));
  CHECK(nll < last_test_loss(tmp / "runs" / "model.vae"));
  CHECK(a.out.find("-log p(x) <= ") != std::string::npos);

  auto ae = run_cli_process(small({"model.ae", "--epochs", "1"}), tmp.path());
  REQUIRE(ae.code == 0);
  auto refused = run_cli_process(small({"eval", "model.ae", "--iw", "5"}), tmp.path());
  INFO(describe(refused));
  CHECK(refused.code == 2);
  CHECK(refused.err.find("log_weight") != std::string::npos);
  CHECK(refused.out.find("test images: loss") == std::string::npos);  // refused before evaluating
}

TEST_CASE("compare tables runs and draws their test-loss curves", "[e2e][compare]") {
  TempDir tmp;
  REQUIRE(run_cli_process(small({"model.vae", "--epochs", "2", "--out", "runs/a"}), tmp.path()).code == 0);
  REQUIRE(run_cli_process(small({"model.vae", "--epochs", "2", "--model.latent", "3", "--out", "runs/b"}),
                          tmp.path()).code == 0);
  REQUIRE(run_cli_process(small({"eval", "model.vae", "--iw", "5", "--out", "runs/a"}), tmp.path()).code == 0);
  auto r = run_cli_process({"compare", "runs/a", "runs/b/", "--out", "figures"}, tmp.path());
  INFO(describe(r));
  REQUIRE(r.code == 0);
  auto lines = lines_of(r.out);
  REQUIRE(lines.size() >= 4);
  CHECK(lines[0] == "| run | model | model.latent | epochs | train loss | test loss | -log p(x) | time |");
  CHECK(lines[2].rfind("| runs/a | vae | 20 | 2 | ", 0) == 0);
  CHECK(lines[2].find("(K=5)") != std::string::npos);
  CHECK(lines[3].rfind("| runs/b | vae | 3 | 2 | ", 0) == 0);
  CHECK(lines[3].find(" | – | ") != std::string::npos);  // no estimate for b
  CHECK(fs::exists(tmp / "figures" / "compare.png"));

  // A graph file's run is named by its file, not as "graph" (what its checkpoint's model is).
  REQUIRE(run_cli_process(small({"vae.graph", "--epochs", "1", "--out", "runs/g"}), tmp.path()).code == 0);
  auto graphs = run_cli_process({"compare", "runs/a", "runs/g", "--out", "figures"}, tmp.path());
  INFO(describe(graphs));
  REQUIRE(graphs.code == 0);
  auto rows = lines_of(graphs.out);
  REQUIRE(rows.size() >= 4);
  CHECK(rows[2].rfind("| runs/a | vae | ", 0) == 0);
  CHECK(rows[3].rfind("| runs/g | vae.graph | ", 0) == 0);

  auto missing = run_cli_process({"compare", "runs/a", "runs/none"}, tmp.path());
  CHECK(missing.code == 2);
  CHECK(missing.err.find("runs/none") != std::string::npos);
}

}  // namespace graphrun::testing
