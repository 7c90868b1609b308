// The importance-sampled -log p(x): K = 1 is the mean log-weight, more draws tighten the bound,
// the figure repeats, and the VAE's log-weight has its constants right.
#include <graphrun/graph/parameters.hpp>
#include <graphrun/graph/random.hpp>
#include <graphrun/models/graph_model.hpp>
#include <graphrun/ops/ops.hpp>
#include <graphrun/train/likelihood.hpp>
#include <graphrun/train/trainer.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>

namespace graphrun {
namespace {

Split noise(std::int64_t count, std::uint32_t stream) {
  Split s;
  s.count = count;
  s.shape = {1, 4, 4};
  s.bytes.resize(static_cast<std::size_t>(count * 16));
  for (std::size_t i = 0; i < s.bytes.size(); ++i)
    s.bytes[i] = static_cast<std::uint8_t>(255 * random_uniform({21, 0, stream}, i));
  return s;
}

ModelOptions small_vae() { return {{"hidden", "8"}, {"latent", "3"}}; }

struct TrainedVae {
  Model model;
  std::unique_ptr<Trainer> trainer;
};

TrainedVae trained_vae(Model m, const Split& data) {
  TrainedVae t{std::move(m), nullptr};
  TrainConfig cfg;
  cfg.batch = 16;
  cfg.seed = 5;
  t.trainer = std::make_unique<Trainer>(t.model, cfg);
  for (int e = 0; e < 3; ++e) t.trainer->train_epoch(data, nullptr);
  return t;
}

}  // namespace

TEST_CASE("with one draw, -log p(x) is minus the mean log-weight of that draw", "[train][iw]") {
  Split data = noise(40, 1);
  TrainedVae t = trained_vae(build_model("vae", small_vae(), 16, 16), data);
  IwOptions o;
  o.samples = 1;
  o.batch = 64;  // one block, one run: step 0
  o.seed = 77;
  IwEstimate e = importance_sampled_nll(t.model, t.trainer->parameters(), data, o);
  ProgramCache cache(*t.model.graph, {t.model.log_weight});
  Tensor x(DType::f32, {40, 16});
  std::vector<std::int64_t> all(40);
  std::iota(all.begin(), all.end(), 0);
  data.fill_batch<float>(all, x.data<float>());
  Program& p = cache.get({{"x", x.shape()}});
  p.bind_parameters(t.trainer->parameters());
  p.bind("x", x);
  p.run({false, 77, 0});
  double sum = 0;
  for (std::int64_t i = 0; i < 40; ++i) sum += p.output(0).item(i);
  CHECK(e.nll == -sum / 40);
  CHECK(e.images == 40);
  CHECK(e.samples == 1);
}

TEST_CASE("the estimate repeats, is finite, and falls with more draws", "[train][iw]") {
  Split data = noise(60, 2);
  TrainedVae t = trained_vae(build_model("vae", small_vae(), 16, 16), data);
  IwOptions o;
  o.samples = 50;
  o.batch = 16;  // 60 / 16: a last block of 12 images
  o.tile = 8;    // 50 / 8: a last run with 2 of its 8 draws used
  IwEstimate a = importance_sampled_nll(t.model, t.trainer->parameters(), data, o);
  std::vector<std::pair<std::int64_t, std::int64_t>> reported;  // progress: after each block
  o.progress = [&](std::int64_t done, std::int64_t total) { reported.emplace_back(done, total); };
  IwEstimate b = importance_sampled_nll(t.model, t.trainer->parameters(), data, o);
  CHECK(reported == std::vector<std::pair<std::int64_t, std::int64_t>>{{16, 60}, {32, 60}, {48, 60}, {60, 60}});
  o.progress = nullptr;
  CHECK(a.nll == b.nll);
  CHECK(a.per_image == b.per_image);
  CHECK(std::isfinite(a.nll));
  CHECK(a.std_error > 0);
  CHECK(std::isfinite(a.std_error));
  // log (1/K) sum_k w_k is a lower bound on log p(x) that rises with K (Burda et al., theorem 1):
  // the negative ELBO, one draw with the analytic KL, is above it on average.
  LossReport elbo = t.trainer->evaluate(data);
  CHECK(a.nll < elbo.loss);
  o.samples = 1;
  IwEstimate one = importance_sampled_nll(t.model, t.trainer->parameters(), data, o);
  CHECK(a.nll < one.nll);
}

TEST_CASE("the VAE's mean log-weight is its negative ELBO: the constants cancel", "[train][iw]") {
  // E_q[-log_weight] = E_q[recon] + KL(q || p) exactly; the loss takes the KL in closed form and
  // the log-weight from the draw, so over 400 images the two one-draw estimates agree to a
  // fraction of a nat, while a lost 0.5 ln 2 pi per dimension would be 2.8 nats off.
  Split data = noise(400, 3);
  TrainedVae t = trained_vae(build_model("vae", small_vae(), 16, 16), data);
  IwOptions o;
  o.samples = 1;
  IwEstimate e = importance_sampled_nll(t.model, t.trainer->parameters(), data, o);
  LossReport elbo = t.trainer->evaluate(data);
  CHECK(e.nll == Approx(elbo.loss).margin(0.5));
}

TEST_CASE("vae.graph declares the C++ vae's log-weight, bit for bit", "[train][iw][graphfile]") {
  Split data = noise(40, 4);
  auto file = std::filesystem::path(GRAPHRUN_SOURCE_DIR) / "models" / "vae.graph";
  TrainedVae cpp = trained_vae(build_model("vae", small_vae(), 16, 16), data);
  TrainedVae text = trained_vae(load_graph_model(file, small_vae(), 16, 16), data);
  IwOptions o;
  o.samples = 5;
  IwEstimate a = importance_sampled_nll(cpp.model, cpp.trainer->parameters(), data, o);
  IwEstimate b = importance_sampled_nll(text.model, text.trainer->parameters(), data, o);
  CHECK(a.per_image == b.per_image);
}

TEST_CASE("a model without a log-weight cannot be importance-sampled", "[train][iw]") {
  Model m = build_model("ae", {{"hidden", "8"}, {"code", "2"}}, 16, 16);
  ParameterStore params = init_parameters(*m.graph, 1);
  CHECK_THROWS_WITH(importance_sampled_nll(m, params, noise(4, 5), {}), Catch::Contains("log_weight"));
}

}  // namespace graphrun
