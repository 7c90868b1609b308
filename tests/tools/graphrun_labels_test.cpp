// End-to-end: a conditional VAE (labels as input y) through the real binary: trained with the data
// set's labels, sampled and interpolated with --class, refused on data without labels.
#include "tools/cli_harness.hpp"

#include <fstream>

namespace graphrun::testing {
namespace {

std::vector<std::string> small(const std::vector<std::string>& extra) {
  std::vector<std::string> args = extra;
  args.insert(args.end(), {"--batch", "32", "--data", tiny_dataset().string()});
  return args;
}

std::string describe(const CliResult& r) {
  return "exit " + std::to_string(r.code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

// Kingma et al. 2014's M2 without the classifier (Sohn et al. 2015's CVAE): encoder and decoder
// both see the one-hot class.
const char* kConditional = R"([model]
hidden = 16
latent = 2
classes = 10
[graph]
input x [B, D]
input y [B, classes]
input z [B, latent]
def dense(v, n, name) = v @ param(name + ".w", [dim(v, 1), n], xavier_uniform) + param(name + ".b", [n], zeros)
def decode(v) = dense(relu(dense(concat(v, y, axis=1), hidden, "dec1")), D, "dec2")
h = relu(dense(concat(x, y, axis=1), hidden, "enc1"))
mu = dense(h, latent, "mu")
logvar = dense(h, latent, "logvar")
eps = random_normal_like(mu)
z_q = mu + exp(logvar * 0.5) * eps
recon = sum(bce_with_logits(decode(z_q), x), axes=[1])
kl = sum(kl_normal(mu, logvar), axes=[1])
role loss = recon + kl
term recon = recon
term kl = kl
role code = mu
role reconstruction = sigmoid(decode(mu))
role decoded = sigmoid(decode(z))
role log_weight = sum(logvar + square(eps) - square(z_q), axes=[1]) * 0.5 - recon
prior normal
)";

}  // namespace

TEST_CASE("a conditional model trains on the labels and decodes a chosen class", "[e2e][labels]") {
  TempDir tmp;
  std::ofstream(tmp / "cvae.graph") << kConditional;
  auto train = run_cli_process(small({"cvae.graph", "--epochs", "2"}), tmp.path());
  INFO(describe(train));
  REQUIRE(train.code == 0);
  for (const char* file : {"samples.png", "manifold.png", "latent.png", "reconstructions.png"})
    CHECK(fs::exists(tmp / "runs" / "cvae.graph" / file));
  for (const std::vector<std::string>& verb :
       {std::vector<std::string>{"sample", "--class", "3"}, {"interpolate", "--class", "7"},
        {"interpolate"}, {"eval", "--iw", "4"}, {"encode"}, {"anomaly"}, {"reconstruct"},
        {"gradcheck"}, {"profile", "-n", "3"}, {"info"}}) {
    auto args = verb;
    args.push_back("cvae.graph");
    auto r = run_cli_process(small(args), tmp.path());
    INFO(verb[0] << "\n" << describe(r));
    CHECK(r.code == 0);
  }
  auto sample = run_cli_process(small({"sample", "cvae.graph", "--class", "3"}), tmp.path());
  CHECK(sample.out.find("class 3") != std::string::npos);

  auto outside = run_cli_process(small({"sample", "cvae.graph", "--class", "10"}), tmp.path());
  INFO(describe(outside));
  CHECK(outside.code == 2);
  CHECK(outside.err.find("class 10 is outside the model's 10 classes") != std::string::npos);
}

TEST_CASE("labels the model needs and the data lacks are a usage error", "[e2e][labels]") {
  TempDir tmp;
  std::ofstream(tmp / "cvae.graph") << kConditional;
  fs::create_directories(tmp / "unlabelled");
  for (const char* f : {"train-images-idx3-ubyte", "t10k-images-idx3-ubyte"})
    fs::copy_file(tiny_dataset() / f, tmp / "unlabelled" / f);
  auto r = run_cli_process({"cvae.graph", "--epochs", "1", "--data", (tmp / "unlabelled").string()}, tmp.path());
  INFO(describe(r));
  CHECK(r.code == 2);
  CHECK(r.err.find("takes labels") != std::string::npos);
  CHECK_FALSE(fs::exists(tmp / "runs" / "cvae.graph" / "checkpoint.safetensors"));
}

TEST_CASE("graphrun refuses --class on a model without labels and on verbs that decode no class", "[e2e][labels]") {
  TempDir tmp;
  auto train = run_cli_process(small({"model.vae", "--epochs", "1", "--model.hidden", "16"}), tmp.path());
  REQUIRE(train.code == 0);
  auto r = run_cli_process(small({"sample", "model.vae", "--class", "1", "--model.hidden", "16"}), tmp.path());
  INFO(describe(r));
  CHECK(r.code == 2);
  CHECK(r.err.find("takes no labels") != std::string::npos);
  auto eval = run_cli_process(small({"eval", "model.vae", "--class", "1"}), tmp.path());
  CHECK(eval.code == 2);
  CHECK(eval.err.find("--class only applies") != std::string::npos);
}

}  // namespace graphrun::testing
