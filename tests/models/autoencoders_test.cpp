// Every model builder: gradients checked in float64 against central differences (random draws
// replayed), the loss falls in a few steps, and each model's particular promise holds.
#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/gradcheck.hpp>
#include <graphrun/graph/parameters.hpp>
#include <graphrun/graph/random.hpp>
#include <graphrun/models/autoencoders.hpp>
#include <graphrun/ops/ops.hpp>
#include <graphrun/train/trainer.hpp>

#include <catch2/catch.hpp>

#include <cmath>

#include "graph/run_helpers.hpp"

namespace graphrun {
namespace {

constexpr std::int64_t kBatch = 4, kFeatures = 12;

Tensor pixels(std::int64_t rows, std::int64_t cols, std::uint32_t stream) {
  Tensor t(DType::f64, {rows, cols});
  auto v = t.values<double>();
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = random_uniform({5, 0, stream}, i);
  return t;
}

// Small options for every builder: 12 features, one hidden layer of 6, a code of 3.
Tensor make_scalar(double v) {
  Tensor t(DType::f32, {});
  t.data<float>()[0] = static_cast<float>(v);
  return t;
}

ModelOptions tiny(const std::string& name) {
  // emplace, not operator= from a literal: GCC 12 warns falsely (-Wrestrict) on the latter.
  ModelOptions o{{"hidden", "6"}};
  o.emplace(name == "vae" ? "latent" : "code", "3");
  return o;
}

GradCheckReport check_model(const std::string& name, const ModelOptions& options) {
  Model m = build_model(name, options, kBatch, kFeatures);
  ParameterStore values = init_parameters(*m.graph, 3, DType::f64);
  values.emplace("x", pixels(kBatch, kFeatures, 1));
  for (const auto& s : m.schedules) {
    Tensor t(DType::f64, {});
    t.data<double>()[0] = 0.5;
    values.emplace(s.input, t);
  }
  std::vector<std::string> wrt;
  for (auto& p : m.graph->parameters()) wrt.push_back(p.node().name);
  GradCheckOptions opts;
  opts.tolerance = 1e-5;
  // A model's loss is a sum over the batch of order 10: at the default step of 1e-6 its rounding
  // (about 1e-15) becomes 1e-9 in a difference quotient, the size of the smallest gradients here.
  // At 1e-5 rounding and truncation errors are both near 1e-10.
  opts.eps = 1e-5;
  return check_gradients(*m.graph, m.loss, wrt, values, opts);
}

TEST_CASE("every model's loss passes a float64 gradient check for every parameter", "[models][gradcheck]") {
  for (const ModelBuilder* b : all_models()) {
    DYNAMIC_SECTION("model " << b->name) {
      auto report = check_model(b->name, tiny(b->name));
      INFO(report.to_string());
      CHECK(report.ok());
      CHECK(report.tensors.size() == build_model(b->name, tiny(b->name), 2, kFeatures).graph->parameters().size());
    }
  }
}

TEST_CASE("variants pass the gradient check too", "[models][gradcheck]") {
  struct Case {
    std::string name;
    ModelOptions extra;
  };
  std::vector<Case> cases = {
      {"ae", {{"activation", "tanh"}, {"likelihood", "gaussian"}, {"hidden", "6,5"}}},
      {"dae", {{"noise", "gaussian"}, {"noise_level", "0.3"}}},
      {"sae", {{"sparsity", "l1"}, {"sparsity_weight", "0.1"}}},
      {"vae", {{"activation", "sigmoid"}, {"beta", "4"}, {"kl_warmup", "10"}, {"hidden", "6,5"}}},
  };
  for (const auto& c : cases) {
    ModelOptions o = tiny(c.name);
    for (const auto& [k, v] : c.extra) o[k] = v;
    auto report = check_model(c.name, o);
    INFO(c.name << "\n" << report.to_string());
    CHECK(report.ok());
  }
}

Split synthetic_split(std::int64_t count) {
  Split s;
  s.count = count;
  s.shape = {1, 3, 4};
  s.bytes.resize(static_cast<std::size_t>(count * 12));
  // Two prototypes with noise: easy to learn, so the loss must fall quickly.
  for (std::int64_t i = 0; i < count; ++i)
    for (std::int64_t j = 0; j < 12; ++j) {
      bool on = (i % 2 == 0) ? j < 6 : j >= 6;
      double noise = random_uniform({9, 0, 0}, static_cast<std::uint64_t>(i * 12 + j)) * 40;
      s.bytes[static_cast<std::size_t>(i * 12 + j)] = static_cast<std::uint8_t>(on ? 215 + noise : noise);
    }
  return s;
}

TEST_CASE("each model's loss falls on a small slice in a few epochs", "[models][train]") {
  Split data = synthetic_split(64);
  for (const ModelBuilder* b : all_models()) {
    DYNAMIC_SECTION("model " << b->name) {
      ModelOptions o = tiny(b->name);
      // On 12 pixels a full-weight penalty outweighs the reconstruction it regularises.
      if (b->name == "sae") o.emplace("sparsity_weight", "0.1");
      Model m = build_model(b->name, o, 16, 12);
      TrainConfig cfg;
      cfg.batch = 16;
      cfg.optimizer.lr = 1e-2;
      Trainer t(m, cfg);
      double before = t.evaluate(data).loss;
      for (int e = 0; e < 40; ++e) t.train_epoch(data, nullptr);
      double after = t.evaluate(data).loss;
      INFO("loss before " << before << ", after " << after);
      CHECK(after < 0.8 * before);
    }
  }
}

TEST_CASE("every model's training step gives the same bits with and without fusion", "[models][fuse]") {
  for (const ModelBuilder* b : all_models()) {
    DYNAMIC_SECTION("model " << b->name) {
      // Default sizes, so the fused chains span several chunks and rows.
      Model m = build_model(b->name, {}, 32, 784);
      ParameterStore params = init_parameters(*m.graph, 2);
      Tensor x = pixels(32, 784, 3).to(DType::f32);
      std::vector<Value> outs{m.loss};
      for (Value g : grad(m.loss, m.graph->parameters())) outs.push_back(g);
      std::map<std::string, Tensor> scalars;
      for (const auto& s : m.schedules) scalars.emplace(s.input, make_scalar(0.5));
      auto run = [&](bool fuse, int& steps) {
        Program p = compile_program(*m.graph, outs, {}, {.fuse = fuse});
        p.bind_parameters(params);
        p.bind("x", x);
        for (const auto& [name, t] : scalars) p.bind(name, t);
        p.run({true, 7, 3});
        steps = p.num_steps();
        return testing::output_bytes(p);
      };
      int fused_steps = 0, plain_steps = 0;
      auto fused = run(true, fused_steps);
      CHECK(fused == run(false, plain_steps));
      CHECK(fused_steps < plain_steps);
    }
  }
}

// Runs `out` once in the given mode and returns its first value.
double run_once(Model& m, ParameterStore& params, Value out, const Tensor& x, bool training,
                std::uint64_t step) {
  Program p = compile_program(*m.graph, {out});
  p.bind_parameters(params);
  p.bind("x", x);
  p.run({training, 1, step});
  return p.output(0).item();
}

TEST_CASE("dae corruption is active in training and off in evaluation", "[models]") {
  Model m = build_model("dae", tiny("dae"), kBatch, kFeatures);
  ParameterStore params = init_parameters(*m.graph, 1);
  Tensor x = pixels(kBatch, kFeatures, 2).to(DType::f32);
  double eval_a = run_once(m, params, m.loss, x, false, 1);
  double eval_b = run_once(m, params, m.loss, x, false, 2);
  double train_a = run_once(m, params, m.loss, x, true, 1);
  double train_b = run_once(m, params, m.loss, x, true, 2);
  CHECK(eval_a == eval_b);    // no noise: the step (and so the draws) do not matter
  CHECK(train_a != train_b);  // different masks at different steps
  // In evaluation the dae is exactly the autoencoder on the clean input.
  Model clean = build_model("ae", tiny("ae"), kBatch, kFeatures);
  CHECK(run_once(clean, params, clean.loss, x, false, 1) == Approx(eval_a).epsilon(1e-6));
}

TEST_CASE("sae: the KL sparsity penalty is zero when codes sit at the target rate", "[models]") {
  Graph g;
  Value h = g.input("h", {4, 3});
  Value penalty = kl_sparsity(h, 0.05);
  Program p = compile_program(g, {penalty});
  Tensor at_target(DType::f32, {4, 3});
  for (auto& v : at_target.values<float>()) v = 0.05f;
  p.bind("h", at_target);
  p.run();
  CHECK(p.output(0).item() == Approx(0.0).margin(1e-6));
  Tensor busy(DType::f32, {4, 3});
  for (auto& v : busy.values<float>()) v = 0.5f;
  p.bind("h", busy);
  p.run();
  // 3 units * [0.05 ln(0.05/0.5) + 0.95 ln(0.95/0.5)] = 3 * 0.4946 = 1.4837
  CHECK(p.output(0).item() == Approx(1.4837).epsilon(1e-3));
}

TEST_CASE("vae: the KL term is non-negative and equals the closed form", "[models]") {
  Model m = build_model("vae", tiny("vae"), kBatch, kFeatures);
  ParameterStore params = init_parameters(*m.graph, 4);
  // Make log-variances non-trivial so the closed form is exercised beyond logvar = 0.
  for (auto& v : params.at("logvar.b").values<float>()) v = 0.7f;
  Graph& g = *m.graph;
  // The heads: mu is the code; logvar is the value feeding kl_normal's second input.
  Value kl_node;
  for (int id = 0; id < g.size(); ++id)
    if (g.node(id).kind == NodeKind::op && g.node(id).op->name == "kl_normal") kl_node = g.value(id);
  REQUIRE(kl_node.valid());
  Value mu = g.value(kl_node.node().inputs[0]);
  Value lv = g.value(kl_node.node().inputs[1]);
  Program p = compile_program(g, {m.terms.at("kl"), mu, lv});
  p.bind_parameters(params);
  Tensor x = pixels(kBatch, kFeatures, 3).to(DType::f32);
  p.bind("x", x);
  p.run({false, 1, 0});
  Tensor mus = p.output(1), lvs = p.output(2);
  // KL(N(mu, s^2) || N(0, 1)) = 0.5 (mu^2 + s^2 - 1 - ln s^2), summed over latents, mean over batch.
  double expected = 0;
  for (std::int64_t i = 0; i < mus.numel(); ++i) {
    double u = mus.item(i), l = lvs.item(i);
    expected += 0.5 * (u * u + std::exp(l) - 1 - l);
  }
  expected /= kBatch;
  double kl = p.output(0).item();
  CHECK(kl >= 0);
  CHECK(kl == Approx(expected).epsilon(1e-5));
}

TEST_CASE("build_model rejects unknown keys and bad values by name", "[models]") {
  auto message = [](const ModelOptions& o) {
    try {
      build_model("vae", o, 2, 12);
    } catch (const ModelOptionError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(message({{"latnet", "2"}}), Catch::Contains("latnet") && Catch::Contains("latent"));
  CHECK_THAT(message({{"latent", "two"}}), Catch::Contains("latent") && Catch::Contains("two"));
  CHECK_THAT(message({{"activation", "gelu"}}), Catch::Contains("relu, tanh, sigmoid"));
  CHECK_THAT(message({{"hidden", "400,,20"}}), Catch::Contains("hidden"));
  CHECK_THROWS_AS(build_model("transformer", {}, 2, 12), std::out_of_range);
}

TEST_CASE("a decoder written as a function shares its weights between its inputs", "[models]") {
  Graph g;
  Value code = g.input("code", {4, 3}), z = g.input("z", {4, 3});
  auto decode = [](Value v) { return dense(relu(dense(v, 8, "dec1", true)), 5, "dec2", false); };
  Value a = decode(code), b = decode(z);
  CHECK(g.parameters().size() == 4);  // dec1.w, dec1.b, dec2.w, dec2.b: once
  CHECK(a.shape() == b.shape());
  // K copies of each code for K importance samples, one line: tile.
  CHECK(tile(code, 5).shape() == Shape{20, 3});
}

}  // namespace
}  // namespace graphrun
