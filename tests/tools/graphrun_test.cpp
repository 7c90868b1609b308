// End-to-end: the real graphrun binary on a tiny data set the test writes (300 train / 100 test
// images): training leaves its run folder, every verb works, bad model files fail with exit 2
// naming the key and line, and the listings match the registries.
#include <graphrun/graph/op.hpp>
#include <graphrun/ops/ops.hpp>

#include <nlohmann/json.hpp>

#include <map>
#include <set>

#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#include <stb/stb_image.h>

#include "tools/cli_harness.hpp"

namespace graphrun::testing {
namespace {

std::vector<std::string> small(const std::vector<std::string>& extra) {
  std::vector<std::string> args = extra;
  for (const char* a : {"--batch", "32", "--model.hidden", "32"}) args.emplace_back(a);
  args.insert(args.end(), {"--data", tiny_dataset().string()});
  return args;
}

// Decodes a PNG and returns {width, height}; {0, 0} when it does not decode.
std::pair<int, int> png_size(const fs::path& path) {
  int w = 0, h = 0, comp = 0;
  unsigned char* pixels = stbi_load(path.c_str(), &w, &h, &comp, 3);
  if (!pixels) return {0, 0};
  stbi_image_free(pixels);
  return {w, h};
}

// Width of image_grid's output: n tiles of 28 px at `scale` with `pad` around each.
int grid_side(int tiles, int scale = 2, int pad = 2) { return tiles * (28 * scale + pad) + pad; }

std::string describe(const CliResult& r) {
  return "exit " + std::to_string(r.code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

}  // namespace

TEST_CASE("graphrun trains a VAE and leaves its run folder", "[e2e]") {
  TempDir tmp;
  auto r = run_cli_process(small({"model.vae", "--epochs", "2", "--model.latent", "2", "--out", "run"}),
                           tmp.path());
  INFO(describe(r));
  REQUIRE(r.code == 0);
  const fs::path run = tmp / "run";
  for (const char* f : {"checkpoint.safetensors", "config.ini", "metrics.jsonl", "metrics.csv"})
    CHECK(fs::is_regular_file(run / f));
  CHECK(r.out.find(run.filename().string()) != std::string::npos);  // says where the files are

  auto rows = lines_of(read_text(run / "metrics.jsonl"));
  REQUIRE(rows.size() == 2);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    auto j = nlohmann::json::parse(rows[i]);
    CHECK(j.at("epoch").get<int>() == static_cast<int>(i) + 1);
    CHECK(j.at("step").get<int>() == 10 * (static_cast<int>(i) + 1));  // 300 images / 32
    for (const char* key : {"train_loss", "train_recon", "train_kl", "test_loss", "test_recon",
                            "test_kl", "seconds", "samples_per_second"})
      CHECK(j.at(key).is_number());
  }
  auto csv = lines_of(read_text(run / "metrics.csv"));
  REQUIRE(csv.size() == 3);
  CHECK(csv[0].rfind("epoch,step,train_loss", 0) == 0);

  CHECK(png_size(run / "reconstructions.png") == std::pair{grid_side(16), grid_side(2)});
  CHECK(png_size(run / "samples.png") == std::pair{grid_side(8), grid_side(8)});
  CHECK(png_size(run / "manifold.png") == std::pair{15 * 28, 15 * 28});
  CHECK(png_size(run / "latent.png").first > 0);
  CHECK(png_size(run / "loss.png").first > 0);
  CHECK_FALSE(fs::exists(run / "latent_pca.png"));

  // config.ini is a model file that runs the same settings again.
  std::string ini = read_text(run / "config.ini");
  CHECK(ini.find("builder = vae") != std::string::npos);
  CHECK(ini.find("latent = 2") != std::string::npos);
  auto again = run_cli_process({(run / "config.ini").string(), "--epochs", "1", "--out", "again"}, tmp.path());
  INFO(describe(again));
  CHECK(again.code == 0);
  CHECK(lines_of(read_text(tmp / "again" / "metrics.jsonl")).size() == 1);
}

TEST_CASE("every verb works on a trained model", "[e2e]") {
  TempDir tmp;
  auto trained = run_cli_process(small({"model.vae", "--epochs", "1", "--out", "run"}), tmp.path());
  REQUIRE(trained.code == 0);
  CHECK(png_size(tmp / "run" / "latent_pca.png").first > 0);  // a 20-D code
  auto verb = [&](const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{name, "model.vae", "--out", "run"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run_cli_process(small(args), tmp.path());
    INFO(name << ": " << describe(r));
    CHECK(r.code == 0);
    return r;
  };
  CHECK(verb("eval").out.find("100 test images: loss") != std::string::npos);
  verb("sample", {"--count", "16"});
  CHECK(png_size(tmp / "run" / "samples.png") == std::pair{grid_side(4), grid_side(4)});
  verb("reconstruct", {"--count", "8"});
  CHECK(png_size(tmp / "run" / "reconstructions.png") == std::pair{grid_side(8), grid_side(2)});
  verb("encode");
  auto codes = lines_of(read_text(tmp / "run" / "codes.csv"));
  REQUIRE(codes.size() == 101);
  CHECK(codes[0].rfind("index,label,z1,z2,", 0) == 0);
  verb("interpolate", {"--count", "5"});
  CHECK(png_size(tmp / "run" / "interpolation.png") == std::pair{grid_side(7), grid_side(8)});
  verb("anomaly", {"--count", "8"});
  CHECK(lines_of(read_text(tmp / "run" / "anomaly.csv")).size() == 101);
  CHECK(png_size(tmp / "run" / "anomalies.png") == std::pair{grid_side(8), grid_side(1)});
  verb("graph");
  for (const char* f : {"graph_forward.dot", "graph_backward.dot"}) {
    std::string dot = read_text(tmp / "run" / f);
    CHECK(dot.rfind("digraph", 0) == 0);
  }
  if (fs::exists("/usr/bin/dot")) {
    CHECK(read_text(tmp / "run" / "graph_backward.svg").find("<svg") != std::string::npos);
    CHECK(png_size(tmp / "run" / "graph_forward.png").first > 0);
  }
  auto info = verb("info");
  for (const char* word : {"forward", "backward", "enc1.w", "total", "arena", "kernels"})
    CHECK(info.out.find(word) != std::string::npos);
}

TEST_CASE("graph without Graphviz still writes DOT and says why there is no picture", "[e2e]") {
  TempDir tmp;
  auto r = run_cli_process(small({"graph", "model.ae", "--out", "run"}), tmp.path(), {"PATH=/nonexistent"});
  INFO(describe(r));
  CHECK(r.code == 0);
  CHECK(fs::is_regular_file(tmp / "run" / "graph_backward.dot"));
  CHECK_FALSE(fs::exists(tmp / "run" / "graph_backward.svg"));
  CHECK(r.err.find("Graphviz") != std::string::npos);
}

TEST_CASE("sample refuses a model without a prior, with exit code 2", "[e2e]") {
  TempDir tmp;
  REQUIRE(run_cli_process(small({"model.ae", "--epochs", "1", "--out", "run"}), tmp.path()).code == 0);
  auto r = run_cli_process(small({"sample", "model.ae", "--out", "run"}), tmp.path());
  CHECK(r.code == 2);
  CHECK(r.err.find("only a VAE") != std::string::npos);
}

TEST_CASE("a word that is not a verb before the model is named as such", "[e2e]") {
  TempDir tmp;
  auto r = run_cli_process({"evla", "model.vae"}, tmp.path());
  CHECK(r.code == 2);
  CHECK(r.err.find("'evla' is not a verb: did you mean 'eval'?") != std::string::npos);
  r = run_cli_process({"manifold", "runs/model.vae"}, tmp.path());
  CHECK(r.code == 2);
  CHECK(r.err.find("'manifold' is not a verb (train, eval, sample,") != std::string::npos);
}

TEST_CASE("profile prints where a training step's time goes and saves nothing", "[e2e]") {
  TempDir tmp;
  auto r = run_cli_process(small({"profile", "model.dae", "-n", "4", "--out", "run"}), tmp.path());
  INFO(describe(r));
  CHECK(r.code == 0);
  CHECK(r.out.find("4 training steps of 32 images") != std::string::npos);
  CHECK(r.out.find("step ") != std::string::npos);
  CHECK(r.out.find("optimizer") != std::string::npos);
  CHECK(r.out.find("bernoulli_mask_like") != std::string::npos);  // the DAE's noise kernel
  CHECK(r.out.find("matmul [32, 784] [784, 32]") != std::string::npos);  // the encoder's first product
  CHECK_FALSE(fs::exists(tmp / "run"));
}

TEST_CASE("profile --trace writes a Chrome trace of the last steps", "[e2e]") {
  TempDir tmp;
  auto r = run_cli_process(small({"profile", "model.vae", "-n", "12", "--threads", "2", "--trace",
                                  "out/trace.json"}),
                           tmp.path());
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(r.out.find("timeline of the last 10 steps written to out/trace.json") != std::string::npos);
  auto json = nlohmann::json::parse(read_text(tmp / "out" / "trace.json"));
  std::map<std::string, int> bars, blocks;
  std::set<std::int64_t> steps;
  std::set<int> threads;
  double last_end = 0;
  for (const auto& e : json.at("traceEvents")) {
    if (e.at("ph") != "X") continue;
    ++(e.at("cat") == "block" ? blocks : bars)[e.at("name").get<std::string>()];
    steps.insert(e.at("args").at("step").get<std::int64_t>());
    threads.insert(e.at("tid").get<int>());
    CHECK(e.at("ts").get<double>() >= 0);
    CHECK(e.at("dur").get<double>() >= 0);
    last_end = std::max(last_end, e.at("ts").get<double>() + e.at("dur").get<double>());
  }
  CHECK(bars["batch"] == 10);
  CHECK(bars["adam"] == 10);
  CHECK(bars["matmul"] == 10 * 14);  // a VAE step's 14 products
  CHECK(blocks["batch"] >= 10 * 2);  // its 32 rows are converted in blocks
  CHECK(blocks["adam"] >= 10 * 2);   // and the update of its 53k parameters
  CHECK(steps == std::set<std::int64_t>{2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  CHECK(*threads.begin() == 0);
  CHECK(*threads.rbegin() <= 1);
  CHECK(last_end > 0);

  auto wrong = run_cli_process(small({"model.vae", "--trace", "t.json"}), tmp.path());
  CHECK(wrong.code == 2);
  CHECK(wrong.err.find("--trace only applies to 'profile'") != std::string::npos);
}

TEST_CASE("gradcheck passes on the model files' graphs", "[e2e]") {
  TempDir tmp;
  for (const char* model : {"model.vae", "model.sae"}) {
    auto r = run_cli_process(small({"gradcheck", model, "--model.hidden", "8"}), tmp.path());
    INFO(describe(r));
    CHECK(r.code == 0);
    CHECK(r.out.find("enc1.w") != std::string::npos);
  }
}

TEST_CASE("bad model files fail with exit code 2, naming file, line and key", "[e2e]") {
  TempDir tmp;
  write_file_atomic(tmp / "typo.vae", "# a comment\n[model]\nhidden = 32\nlatnet = 2\n");
  auto r = run_cli_process(small({"typo.vae", "--epochs", "1"}), tmp.path());
  CHECK(r.code == 2);
  CHECK(r.err.find("typo.vae:4") != std::string::npos);
  CHECK(r.err.find("'latnet'") != std::string::npos);
  CHECK(r.err.find("latent, activation") != std::string::npos);  // the valid keys

  write_file_atomic(tmp / "value.vae", "[train]\nepochs = ten\n");
  r = run_cli_process(small({"value.vae"}), tmp.path());
  CHECK(r.code == 2);
  CHECK(r.err.find("value.vae:2") != std::string::npos);
  CHECK(r.err.find("epochs") != std::string::npos);

  write_file_atomic(tmp / "latent.vae", "[model]\n\nlatent = 0\n");
  r = run_cli_process(small({"latent.vae"}), tmp.path());
  CHECK(r.code == 2);  // the builder's own check, pointed at the line by the runner
  CHECK(r.err.find("latent.vae:3: model.latent = '0'") != std::string::npos);

  r = run_cli_process(small({"model.vae", "--model.laten", "3"}), tmp.path());
  CHECK(r.code == 2);
  CHECK(r.err.find("did you mean 'latent'") != std::string::npos);

  r = run_cli_process({"missing.vae"}, tmp.path());
  CHECK(r.code == 2);
  CHECK(r.err.find("missing.vae") != std::string::npos);
}

TEST_CASE("train.sgemm chooses the library of float32 products", "[e2e]") {
  TempDir tmp;
  auto r = run_cli_process(small({"model.vae", "--train.sgemm", "mkl"}), tmp.path());
  CHECK(r.code == 2);
  CHECK(r.err.find("train.sgemm = 'mkl' is not openblas or onednn") != std::string::npos);
  if (!sgemm_library_available(SgemmLibrary::onednn)) {
    r = run_cli_process(small({"model.vae", "--train.sgemm", "onednn"}), tmp.path());
    CHECK(r.code == 2);
    CHECK(r.err.find("oneDNN could not be loaded") != std::string::npos);
    return;
  }
  // Returns the trained decoder's output weights.
  auto train_with = [&](const std::string& library) {
    auto run = run_cli_process(small({"model.vae", "--epochs", "1", "--train.sgemm", library, "--out", library}),
                               tmp.path());
    INFO(describe(run));
    REQUIRE(run.code == 0);
    CHECK(read_text(tmp / library / "config.ini").find("sgemm = " + library) != std::string::npos);
    return load_safetensors(tmp / library / "checkpoint.safetensors").tensors.at("dec2.w");
  };
  Tensor openblas = train_with("openblas"), onednn = train_with("onednn");
  // The same training, rounded differently: the choice reached the products.
  CHECK(std::memcmp(openblas.raw(), onednn.raw(), openblas.bytes()) != 0);
  auto a = openblas.values<float>(), b = onednn.values<float>();
  for (std::size_t i = 0; i < a.size(); ++i) REQUIRE(b[i] == Approx(a[i]).margin(1e-4));
  r = run_cli_process(small({"profile", "model.vae", "-n", "2", "--train.sgemm", "onednn"}), tmp.path());
  CHECK(r.code == 0);
  CHECK(r.out.find("sgemm from onednn") != std::string::npos);
}

TEST_CASE("the listings come from the registries", "[e2e]") {
  TempDir tmp;
  auto r = run_cli_process({"--list-ops"}, tmp.path());
  REQUIRE(r.code == 0);
  std::vector<std::string> expected;
  for (const OpDef* op : op_registry().all()) expected.push_back(op->name);
  CHECK(lines_of(r.out) == expected);

  r = run_cli_process({"--list-ops", "--markdown"}, tmp.path());
  CHECK(lines_of(r.out).size() == expected.size() + 2);
  CHECK(r.out.rfind("| call (as in graph files) | summary |", 0) == 0);
  CHECK(r.out.find("| `sum(x, axes=[], keepdims=0)` |") != std::string::npos);

  r = run_cli_process({"--list-keys", "vae"}, tmp.path());
  CHECK(r.code == 0);
  for (const char* key : {"[model]", "latent = 20", "[train]", "epochs = 10", "[data]"})
    CHECK(r.out.find(key) != std::string::npos);

  r = run_cli_process({"--list"}, tmp.path());
  for (const char* name : {"ae", "dae", "sae", "vae", "matmul", "vae.graph"})
    CHECK(r.out.find(name) != std::string::npos);

  r = run_cli_process({"--help"}, tmp.path());
  CHECK(r.code == 0);
  for (const char* verb : {"train", "eval", "sample", "reconstruct", "encode", "interpolate",
                           "anomaly", "graph", "info", "gradcheck", "--resume", "--model."})
    CHECK(r.out.find(verb) != std::string::npos);
  CHECK(run_cli_process({"--version"}, tmp.path()).out.rfind("graphrun ", 0) == 0);
  CHECK(run_cli_process({"--bogus"}, tmp.path()).code == 2);
}

}  // namespace graphrun::testing
