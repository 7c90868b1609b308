// End-to-end: graph files through the real binary, as a researcher uses them: every verb, resume,
// a run's config.ini, a changed graph refused, and errors that point into the file.
#include "tools/cli_harness.hpp"

#include <fstream>

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

void write(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
}

// The README's walk-through: a beta-VAE with a Gaussian decoder in a file of its own, as a
// researcher writes one from the README alone.
std::string readme_variant() {
  std::string text = read_text(fs::path(GRAPHRUN_SOURCE_DIR) / "README.md");
  const std::string open = "<!-- graph-walkthrough -->\n```\n", close = "```\n<!-- /graph-walkthrough -->";
  auto begin = text.find(open), end = text.find(close);
  REQUIRE(begin != std::string::npos);
  REQUIRE(end != std::string::npos);
  begin += open.size();
  return text.substr(begin, end - begin);
}

}  // namespace

TEST_CASE("graphrun runs a graph file with every verb", "[e2e][graphfile]") {
  TempDir tmp;
  write(tmp / "beta.graph", readme_variant());
  auto train = run_cli_process(small({"beta.graph", "--epochs", "1", "--model.latent", "2"}), tmp.path());
  INFO(describe(train));
  REQUIRE(train.code == 0);
  CHECK(train.out.find("training beta.graph") != std::string::npos);
  for (const char* file : {"checkpoint.safetensors", "config.ini", "samples.png", "manifold.png", "latent.png"})
    CHECK(fs::exists(tmp / "runs" / "beta.graph" / file));
  for (const std::vector<std::string>& verb :
       {std::vector<std::string>{"eval"}, {"sample"}, {"reconstruct"}, {"encode"}, {"interpolate"},
        {"anomaly"}, {"graph"}, {"info"}, {"gradcheck"}, {"profile", "-n", "3"}}) {
    auto args = verb;
    args.insert(args.end(), {"beta.graph", "--model.latent", "2"});
    auto r = run_cli_process(small(args), tmp.path());
    INFO(verb[0] << "\n" << describe(r));
    CHECK(r.code == 0);
  }
  // The run's config.ini holds the graph: it trains the same model again, and resumes.
  auto again = run_cli_process(small({"runs/beta.graph/config.ini", "--epochs", "2", "--out",
                                      "runs/beta.graph", "--resume"}),
                               tmp.path());
  INFO(describe(again));
  CHECK(again.code == 0);
  CHECK(again.out.find("resuming after epoch 1") != std::string::npos);
}

// A bare name is model.NAME, then NAME.graph, each in the current folder before graphrun's
// models/ folders, then NAME.graph in a folder of those (zoo/); graphrun conv_vae said "cannot
// find the model file" before.
TEST_CASE("a bare model name finds model.NAME or NAME.graph, the current folder first, then the zoo", "[e2e][graphfile]") {
  TempDir tmp;
  auto info = [&](const std::string& name) {
    auto r = run_cli_process({"info", name, "--data", tiny_dataset().string()}, tmp.path());
    INFO(describe(r));
    CHECK(r.code == 0);
    return r.out.substr(0, r.out.find('\n'));
  };
  const fs::path models = fs::path(GRAPHRUN_SOURCE_DIR) / "models";
  CHECK_THAT(info("conv_vae"), Catch::EndsWith("from " + (models / "conv_vae.graph").string()));
  CHECK_THAT(info("zoo/vq_vae"), Catch::EndsWith("from " + (models / "zoo" / "vq_vae.graph").string()));
  CHECK_THAT(info("vae"), Catch::EndsWith("from " + (models / "model.vae").string()));
  CHECK_THAT(info("vae_gan"), Catch::EndsWith("from " + (models / "zoo" / "vae_gan.graph").string()));
  write(tmp / "beta.graph", readme_variant());
  CHECK_THAT(info("beta"), Catch::EndsWith("from beta.graph"));
  write(tmp / "model.vae", "[model]\nlatent = 3\n");
  CHECK_THAT(info("vae"), Catch::Contains("latent=3") && Catch::EndsWith("from model.vae"));
  auto missing = run_cli_process({"info", "no_such_model"}, tmp.path());
  CHECK(missing.code == 2);
  CHECK_THAT(missing.err, Catch::Contains("cannot find the model file 'no_such_model'"));
}

TEST_CASE("graphrun refuses a graph file changed since its checkpoint", "[e2e][graphfile]") {
  TempDir tmp;
  write(tmp / "beta.graph", readme_variant());
  REQUIRE(run_cli_process(small({"beta.graph", "--epochs", "1"}), tmp.path()).code == 0);
  std::string changed = readme_variant();
  changed.replace(changed.find("role loss = recon + beta * kl"), 29, "role loss = recon + 2 * beta * kl");
  write(tmp / "beta.graph", changed);
  for (const char* verb : {"train", "eval"}) {
    std::vector<std::string> args = {verb, "beta.graph", "--epochs", "2"};
    if (std::string(verb) == "train") args.push_back("--resume");
    auto r = run_cli_process(small(args), tmp.path());
    INFO(describe(r));
    CHECK(r.code == 2);
    CHECK(r.err.find("is not the one the checkpoint") != std::string::npos);
    CHECK(r.err.find("role loss = recon + 2 * beta * kl") != std::string::npos);
  }
}

// A comment, a blank line or spacing changed after training is not a change of the model.
TEST_CASE("a graph file whose comments and spacing changed still fits its checkpoint", "[e2e][graphfile]") {
  TempDir tmp;
  write(tmp / "beta.graph", readme_variant());
  REQUIRE(run_cli_process(small({"beta.graph", "--epochs", "1"}), tmp.path()).code == 0);
  std::string edited = readme_variant();
  edited.replace(edited.find("role loss = recon + beta * kl"), 29,
                 "# the weighted sum, now with a comment\n\nrole loss  =  recon + beta * kl   # \"#\" here");
  write(tmp / "beta.graph", edited);
  auto eval = run_cli_process(small({"eval", "beta.graph"}), tmp.path());
  INFO(describe(eval));
  CHECK(eval.code == 0);
  auto resumed = run_cli_process(small({"beta.graph", "--epochs", "2", "--resume"}), tmp.path());
  INFO(describe(resumed));
  CHECK(resumed.code == 0);
  CHECK(resumed.out.find("resuming after epoch 1") != std::string::npos);
  // Inside a string a '#' is code: another parameter name is another model.
  std::string renamed = readme_variant();
  renamed.replace(renamed.find("\"enc1\""), 6, "\"enc#1\"");
  write(tmp / "beta.graph", renamed);
  auto refused = run_cli_process(small({"eval", "beta.graph"}), tmp.path());
  INFO(describe(refused));
  CHECK(refused.code == 2);
  CHECK(refused.err.find("is not the one the checkpoint") != std::string::npos);
}

TEST_CASE("a faulty graph file is an error at its line", "[e2e][graphfile]") {
  TempDir tmp;
  std::string bad = readme_variant();
  bad.replace(bad.find("kl_normal"), 9, "kl_nromal");
  write(tmp / "bad.graph", bad);
  auto r = run_cli_process(small({"bad.graph", "--epochs", "1"}), tmp.path());
  INFO(describe(r));
  CHECK(r.code == 2);
  CHECK(r.err.find("bad.graph:16:10: unknown function or op 'kl_nromal' (did you mean 'kl_normal'?)") !=
        std::string::npos);
  write(tmp / "beta.graph", readme_variant());
  auto opt = run_cli_process(small({"beta.graph", "--model.bta", "2"}), tmp.path());
  CHECK(opt.code == 2);
  CHECK(opt.err.find("unknown key 'bta' in [model] (did you mean 'beta'?)") != std::string::npos);
}

}  // namespace graphrun::testing
