// End-to-end: checkpoints and resuming. A run resumed after its first epoch, or after SIGINT in
// the middle of one, ends with the same bits as a run that was never stopped.
#include <nlohmann/json.hpp>

#include "tools/cli_harness.hpp"

namespace graphrun::testing {
namespace {

std::vector<std::string> small(const std::vector<std::string>& extra) {
  std::vector<std::string> args = extra;
  for (const char* a : {"--batch", "32", "--model.hidden", "16"}) args.emplace_back(a);
  args.insert(args.end(), {"--data", tiny_dataset().string()});
  return args;
}

std::string describe(const CliResult& r) {
  return "exit " + std::to_string(r.code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// Starts a long run, sends `sig` once the first epoch line is out, and returns the result.
CliResult interrupt_after_first_epoch(const fs::path& cwd, int sig, const std::string& out) {
  CliProcess p(small({"model.dae", "--epochs", "1000", "--out", out}), cwd, {}, out);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (p.out().find("epoch 1/1000") == std::string::npos) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  REQUIRE(::kill(p.pid(), sig) == 0);
  return p.wait();
}

}  // namespace

TEST_CASE("graphrun --resume continues a run to the same bits as an uninterrupted one", "[e2e]") {
  TempDir tmp;
  auto first = run_cli_process(small({"model.vae", "--epochs", "1", "--out", "a"}), tmp.path());
  REQUIRE(first.code == 0);
  auto resumed = run_cli_process(small({"model.vae", "--epochs", "2", "--out", "a", "--resume"}), tmp.path());
  INFO(describe(resumed));
  REQUIRE(resumed.code == 0);
  CHECK(resumed.out.find("resuming after epoch 1") != std::string::npos);
  auto rows = lines_of(read_text(tmp / "a" / "metrics.jsonl"));
  REQUIRE(rows.size() == 2);
  CHECK(nlohmann::json::parse(rows[1]).at("epoch") == 2);

  auto straight = run_cli_process(small({"model.vae", "--epochs", "2", "--out", "b"}), tmp.path());
  REQUIRE(straight.code == 0);
  require_same_tensors(tmp / "a" / "checkpoint.safetensors", tmp / "b" / "checkpoint.safetensors");

  // Nothing left to do is not an error.
  auto done = run_cli_process(small({"model.vae", "--epochs", "2", "--out", "a", "--resume"}), tmp.path());
  CHECK(done.code == 0);
  CHECK(done.out.find("nothing to do") != std::string::npos);
}

// Found writing a variant from the README: `graphrun eval runs/x` was refused (a folder), and
// `graphrun runs/x/config.ini` used runs/config.ini/ as its run folder.
TEST_CASE("a run folder, or its config.ini, is the model of the verbs that use that run", "[e2e]") {
  TempDir tmp;
  REQUIRE(run_cli_process(small({"vae.graph", "--epochs", "1", "--out", "runs/a"}), tmp.path()).code == 0);
  auto eval = run_cli_process(small({"eval", "runs/a"}), tmp.path());
  INFO(describe(eval));
  CHECK(eval.code == 0);
  CHECK(eval.out.find("a after epoch 1") != std::string::npos);  // named for its folder, not config.ini
  auto resumed = run_cli_process(small({"runs/a/config.ini", "--epochs", "2", "--resume"}), tmp.path());
  INFO(describe(resumed));
  REQUIRE(resumed.code == 0);
  CHECK(resumed.out.find("resuming after epoch 1") != std::string::npos);
  CHECK(lines_of(read_text(tmp / "runs" / "a" / "metrics.jsonl")).size() == 2);
  CHECK_FALSE(fs::exists(tmp / "runs" / "config.ini"));
  // Any other config.ini is a model file like another, with its run in runs/config.ini.
  fs::create_directories(tmp / "mine");
  fs::copy_file(tmp / "runs" / "a" / "config.ini", tmp / "mine" / "config.ini");
  REQUIRE(run_cli_process(small({"mine/config.ini", "--epochs", "1"}), tmp.path()).code == 0);
  CHECK(fs::exists(tmp / "runs" / "config.ini" / "checkpoint.safetensors"));
  CHECK_FALSE(fs::exists(tmp / "mine" / "checkpoint.safetensors"));
  fs::create_directories(tmp / "empty");
  auto empty = run_cli_process(small({"eval", "empty"}), tmp.path());
  CHECK(empty.code == 2);
  CHECK(empty.err.find("'empty' is a folder, not a model file (nor a run folder: it has no config.ini)") !=
        std::string::npos);
}

TEST_CASE("graphrun --resume refuses a checkpoint made with other settings", "[e2e]") {
  TempDir tmp;
  REQUIRE(run_cli_process(small({"model.vae", "--epochs", "1", "--out", "a"}), tmp.path()).code == 0);
  auto r = run_cli_process(small({"model.vae", "--epochs", "2", "--out", "a", "--resume", "--model.latent", "3"}),
                           tmp.path());
  CHECK(r.code == 2);
  CHECK(r.err.find("model.latent: checkpoint 20, now 3") != std::string::npos);
  r = run_cli_process(small({"model.vae", "--epochs", "2", "--out", "nothing", "--resume"}), tmp.path());
  CHECK(r.code == 2);
  CHECK(r.err.find("no checkpoint") != std::string::npos);
}

TEST_CASE("SIGINT saves a checkpoint mid-run and --resume finishes the same run", "[e2e]") {
  TempDir tmp;
  CliResult r = interrupt_after_first_epoch(tmp.path(), SIGINT, "stopped");
  INFO(describe(r));
  REQUIRE(r.code == 130);
  CHECK(r.err.find("stopped by SIGINT") != std::string::npos);
  CHECK(r.err.find("--resume") != std::string::npos);

  SafetensorsFile checkpoint = load_safetensors(tmp / "stopped" / "checkpoint.safetensors");
  const std::int64_t epoch = std::stoll(checkpoint.metadata.at("epoch"));
  REQUIRE(epoch >= 1);
  REQUIRE(epoch < 1000);
  const std::string total = std::to_string(epoch + 1);

  auto resumed = run_cli_process(small({"model.dae", "--epochs", total, "--out", "stopped", "--resume"}), tmp.path());
  INFO(describe(resumed));
  REQUIRE(resumed.code == 0);
  CHECK(lines_of(read_text(tmp / "stopped" / "metrics.jsonl")).size() == static_cast<std::size_t>(epoch + 1));

  auto straight = run_cli_process(small({"model.dae", "--epochs", total, "--out", "straight"}), tmp.path());
  REQUIRE(straight.code == 0);
  require_same_tensors(tmp / "stopped" / "checkpoint.safetensors", tmp / "straight" / "checkpoint.safetensors");
}

TEST_CASE("SIGTERM stops cleanly with exit code 143", "[e2e]") {
  TempDir tmp;
  CliResult r = interrupt_after_first_epoch(tmp.path(), SIGTERM, "run");
  INFO(describe(r));
  CHECK(r.code == 143);
  CHECK(r.err.find("stopped by SIGTERM") != std::string::npos);
  CHECK_NOTHROW(load_safetensors(tmp / "run" / "checkpoint.safetensors"));
}

}  // namespace graphrun::testing
