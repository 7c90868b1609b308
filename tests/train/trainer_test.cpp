#include <graphrun/graph/random.hpp>
#include <graphrun/models/model.hpp>
#include <graphrun/ops/ops.hpp>
#include <graphrun/train/idx.hpp>
#include <graphrun/train/safetensors.hpp>
#include <graphrun/train/trainer.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>
#include <unistd.h>

#include "graph/alloc_counter.hpp"
#include "graph/run_helpers.hpp"

namespace graphrun {
namespace {

namespace fs = std::filesystem;

Split noisy_split(std::int64_t count, std::uint32_t stream) {
  Split s;
  s.count = count;
  s.shape = {1, 4, 4};
  s.bytes.resize(static_cast<std::size_t>(count * 16));
  for (std::size_t i = 0; i < s.bytes.size(); ++i)
    s.bytes[i] = static_cast<std::uint8_t>(255 * random_uniform({3, 0, stream}, i));
  return s;
}

fs::path temp_path(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("graphrun_trainer_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir / name;
}

bool same_bits(const ParameterStore& a, const ParameterStore& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, t] : a) {
    const auto& u = b.at(name);
    if (t.shape() != u.shape() || std::memcmp(t.raw(), u.raw(), t.bytes()) != 0) return false;
  }
  return true;
}

// Heap allocations while an epoch over `data` (at least 7 batches) trains batches 2 to 6.
long allocations_in_batches_2_to_6(Trainer& trainer, const Split& data) {
  long counted = -1;
  trainer.train_epoch(data, nullptr, [&](const Progress& p) {
    if (p.batch == 2) {
      testing::allocations = 0;
      testing::counting = true;
    } else if (p.batch == 7) {
      testing::counting = false;
      counted = testing::allocations.load();
    }
  });
  return counted;
}

ModelOptions small_vae() { return {{"hidden", "8"}, {"latent", "2"}}; }

TEST_CASE("resuming from a checkpoint gives the same parameters bit for bit", "[train][resume]") {
  Split train = noisy_split(70, 1);  // 70 / 16: the last batch has 6 rows
  TrainConfig cfg;
  cfg.batch = 16;
  cfg.seed = 11;
  Model straight_model = build_model("vae", small_vae(), 16, 16);
  Trainer straight(straight_model, cfg);
  for (int e = 0; e < 4; ++e) straight.train_epoch(train, nullptr);

  SECTION("at an epoch boundary") {
    Model m1 = build_model("vae", small_vae(), 16, 16);
    Trainer first(m1, cfg);
    for (int e = 0; e < 2; ++e) first.train_epoch(train, nullptr);
    auto path = temp_path("boundary.safetensors");
    first.save(path, {{"model", "vae"}});
    Model m2 = build_model("vae", small_vae(), 16, 16);
    Trainer resumed(m2, cfg);
    resumed.load(path);
    CHECK(resumed.epoch() == 2);
    for (int e = 0; e < 2; ++e) resumed.train_epoch(train, nullptr);
    CHECK(resumed.step() == straight.step());
    CHECK(same_bits(resumed.parameters(), straight.parameters()));
  }
  SECTION("in the middle of an epoch, stopped by the flag") {
    Model m1 = build_model("vae", small_vae(), 16, 16);
    Trainer first(m1, cfg);
    first.train_epoch(train, nullptr);
    std::atomic<bool> stop{false};
    auto report = first.train_epoch(train, nullptr, [&](const Progress& p) { stop = p.batch == 2; }, &stop);
    CHECK(report.interrupted);
    CHECK(first.batch_in_epoch() == 2);
    auto path = temp_path("middle.safetensors");
    first.save(path, {});
    Model m2 = build_model("vae", small_vae(), 16, 16);
    Trainer resumed(m2, cfg);
    resumed.load(path);
    auto rest = resumed.train_epoch(train, nullptr);
    CHECK_FALSE(rest.interrupted);
    CHECK(rest.train.samples == 70);  // the epoch's metrics cover the part before the stop too
    for (int e = 0; e < 2; ++e) resumed.train_epoch(train, nullptr);
    CHECK(same_bits(resumed.parameters(), straight.parameters()));
  }
}

TEST_CASE("profile times every kernel of real training steps and leaves the counters alone",
          "[train][profile]") {
  Split train = noisy_split(80, 1);  // 2 whole batches of 32: the profile cycles through them
  TrainConfig cfg;
  cfg.batch = 32;
  Model m = build_model("vae", small_vae(), 32, 16);
  Trainer t(m, cfg);
  auto before = t.parameters();
  for (auto& [name, v] : before) v = v.clone();
  StepProfile p = t.profile(train, 7, 2);
  CHECK(p.steps == 7);
  REQUIRE_FALSE(p.kernels.empty());
  REQUIRE(p.kernel_seconds.size() == p.kernels.size());
  CHECK(p.program_seconds > 0);
  CHECK(p.optimizer_seconds > 0);
  double kernels = 0;
  bool has_matmul = false;
  for (std::size_t k = 0; k < p.kernels.size(); ++k) {
    CHECK(p.kernel_seconds[k] >= 0);
    kernels += p.kernel_seconds[k];
    has_matmul = has_matmul || p.kernels[k].rfind("matmul [32, 16]", 0) == 0;
  }
  CHECK(has_matmul);  // the encoder's first product, named with its shapes
  CHECK(kernels > 0);

  // The timeline: the last steps (all 7 here), each as batch, every kernel, optimizer, in the
  // order they ran, with the kernels inside the step and the per-kernel sums made of them.
  const std::size_t per_step = p.kernels.size() + 2;
  REQUIRE(p.timeline.size() == 7 * per_step);
  std::vector<double> from_timeline(p.kernels.size());
  for (std::int64_t s = 0; s < 7; ++s) {
    INFO("step " << s);
    const auto* step = &p.timeline[static_cast<std::size_t>(s) * per_step];
    const auto& batch = step[0].span;
    const auto& optimizer = step[per_step - 1].span;
    CHECK(step[0].kernel == StepProfile::kBatch);
    CHECK(step[per_step - 1].kernel == StepProfile::kOptimizer);
    CHECK(batch.start <= batch.end);
    CHECK(optimizer.start <= optimizer.end);
    if (s > 0) CHECK(p.timeline[static_cast<std::size_t>(s) * per_step - 1].span.end <= batch.start);
    for (std::size_t k = 1; k + 1 < per_step; ++k) {
      const auto& e = step[k];
      CHECK(e.step == s);
      CHECK(e.kernel == static_cast<int>(k - 1));
      CHECK(batch.end <= e.span.start);
      CHECK(e.span.start <= e.span.end);
      CHECK(e.span.end <= optimizer.start);
      CHECK(e.span.thread >= 0);
      CHECK(e.span.thread < num_threads());
      from_timeline[k - 1] += e.span.end - e.span.start;
    }
  }
  for (std::size_t k = 0; k < p.kernels.size(); ++k)
    CHECK(from_timeline[k] == Approx(p.kernel_seconds[k]).epsilon(1e-9).margin(1e-12));
  // Each block of split work lies inside the span of what it belongs to, in its own step.
  CHECK(p.blocks_dropped == 0);
  REQUIRE_FALSE(p.blocks.empty());
  bool batch_blocks = false;
  for (const auto& b : p.blocks) {
    REQUIRE(b.kernel >= StepProfile::kOptimizer);
    REQUIRE(b.kernel < static_cast<int>(p.kernels.size()));
    const auto* step = &p.timeline[static_cast<std::size_t>(b.step) * per_step];
    const auto& owner = b.kernel == StepProfile::kBatch       ? step[0].span
                        : b.kernel == StepProfile::kOptimizer ? step[per_step - 1].span
                                                              : step[b.kernel + 1].span;
    CHECK(owner.start <= b.span.start);
    CHECK(b.span.end <= owner.end);
    batch_blocks = batch_blocks || b.kernel == StepProfile::kBatch;
  }
  CHECK(batch_blocks);  // the batch's 32 rows are split, in blocks of 16 rows
  CHECK(t.profile(train, 12, 0).timeline.size() == StepProfile::kTimelineSteps * per_step);
  CHECK(t.step() == 0);  // no epoch or step was counted
  CHECK(t.epoch() == 0);
  CHECK_FALSE(same_bits(t.parameters(), before));  // but the steps did train
  CHECK_THROWS_WITH(t.profile(train, 0), Catch::Contains("at least 1 step"));
}

TEST_CASE("a whole training step allocates nothing after the first", "[train][alloc]") {
  // Batch assembly, program lookup, binding, the run, the optimizer and the bookkeeping: counted
  // from the progress callback of step 2 to that of step 7.
  for (const ModelBuilder* b : all_models()) {
    DYNAMIC_SECTION("model " << b->name) {
      ModelOptions o{{"hidden", "8"}};
      o.emplace(b->name == "vae" ? "latent" : "code", "3");
      if (b->name == "vae") o.emplace("kl_warmup", "100");  // a scheduled input, bound every step
      Model m = build_model(b->name, o, 16, 16);
      TrainConfig cfg;
      cfg.batch = 16;
      cfg.optimizer.clip_norm = 1.0;
      Trainer t(m, cfg);
      CHECK(allocations_in_batches_2_to_6(t, noisy_split(16 * 8, 1)) == 0);
    }
  }
}

TEST_CASE("a checkpoint that disagrees with the model is refused, naming the tensor", "[train][checkpoint]") {
  TrainConfig cfg;
  cfg.batch = 8;
  Model m = build_model("vae", small_vae(), 8, 16);
  Trainer t(m, cfg);
  t.train_epoch(noisy_split(16, 2), nullptr);
  auto path = temp_path("ok.safetensors");
  t.save(path, {});
  auto file = load_safetensors(path);
  auto refuse = [&](SafetensorsFile f) {
    auto bad = temp_path("bad.safetensors");
    save_safetensors(bad, f);
    Model m2 = build_model("vae", small_vae(), 8, 16);
    Trainer t2(m2, cfg);
    try {
      t2.load(bad);
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  auto missing = file;
  missing.tensors.erase("dec1.w");
  CHECK_THAT(refuse(missing), Catch::Contains("dec1.w") && Catch::Contains("no tensor"));
  auto reshaped = file;
  reshaped.tensors["mu.b"] = Tensor(DType::f32, {3});
  CHECK_THAT(refuse(reshaped), Catch::Contains("mu.b") && Catch::Contains("[3]"));
  auto wrong_type = file;
  wrong_type.tensors["mu.b"] = Tensor(DType::f64, {2});
  CHECK_THAT(refuse(wrong_type), Catch::Contains("mu.b") && Catch::Contains("float64"));
  auto extra = file;
  extra.tensors["stowaway"] = Tensor(DType::f32, {1});
  CHECK_THAT(refuse(extra), Catch::Contains("stowaway"));
  Model bigger = build_model("vae", {{"hidden", "9"}, {"latent", "2"}}, 8, 16);
  Trainer t3(bigger, cfg);
  CHECK_THROWS_WITH(t3.load(path), Catch::Contains("has shape") && Catch::Contains("the model needs [9]"));
}

TEST_CASE("a NaN loss stops training before the update and keeps the parameters", "[train][numerics]") {
  TrainConfig cfg;
  cfg.batch = 8;
  Model m = build_model("ae", {{"hidden", "4"}, {"code", "2"}}, 8, 16);
  Trainer t(m, cfg);
  t.parameters().at("dec2.b").data<float>()[0] = std::nanf("");  // feeds the loss directly
  ParameterStore before;
  for (const auto& [k, v] : t.parameters()) before.emplace(k, v.clone());
  CHECK_THROWS_WITH(t.train_epoch(noisy_split(16, 3), nullptr),
                    Catch::Contains("loss became nan") && Catch::Contains("step 0"));
  CHECK(t.step() == 0);
  for (const auto& [k, v] : t.parameters()) {
    INFO(k);
    CHECK(std::memcmp(v.raw(), before.at(k).raw(), v.bytes()) == 0);  // bits: NaN != NaN
  }
}

TEST_CASE("an optimizer step with a NaN gradient changes nothing", "[train][optimizer]") {
  ParameterStore params;
  params.emplace("w", Tensor(DType::f32, {2}));
  float g[2] = {std::nanf(""), 1.0f};
  Optimizer opt({"adam", 0.1});
  CHECK(std::isnan(opt.step(params, {{"w", g}})));
  CHECK(params.at("w").data<float>()[1] == 0.0f);
  // The same when the norm comes from the caller (the trainer computes it in the program).
  float finite[2] = {0.5f, 1.0f};
  CHECK(std::isinf(opt.step(params, {{"w", finite}}, std::numeric_limits<double>::infinity())));
  CHECK(params.at("w").data<float>()[0] == 0.0f);
  CHECK(opt.steps() == 0);
}

TEST_CASE("a norm given to the optimizer acts as the one it computes", "[train][optimizer]") {
  float g[2] = {3.0f, -4.0f};  // norm 5
  OptimizerConfig c;
  c.kind = "sgd";
  c.lr = 0.1;
  c.momentum = 0;
  c.clip_norm = 1;
  for (bool given : {false, true}) {
    ParameterStore params;
    params.emplace("w", Tensor(DType::f32, {2}));
    Optimizer opt(c);
    double norm = given ? opt.step(params, {{"w", g}}, 5.0) : opt.step(params, {{"w", g}});
    CHECK(norm == Approx(5.0));
    // Clipped to norm 1: w = -0.1 * g / 5
    CHECK(params.at("w").data<float>()[0] == Approx(-0.06f));
    CHECK(params.at("w").data<float>()[1] == Approx(0.08f));
  }
}

TEST_CASE("ranks sharing an update by ranges, then gathering, match one whole update", "[train][optimizer]") {
  // Two parameters of 3 and 5 elements laid end to end; "ranks" own [0, 2), [2, 6), [6, 8):
  // ranges that cut both parameters. Each updates its range, then takes the others' parameters
  // and state, as data-parallel ranks on one host do.
  for (const char* kind : {"adam", "sgd"}) {
    INFO(kind);
    OptimizerConfig c;
    c.kind = kind;
    c.lr = 0.05;
    c.weight_decay = 0.01;
    c.clip_norm = 1.0;  // the given norm scales the step
    auto fresh = [] {
      ParameterStore p;
      p.emplace("a", Tensor(DType::f32, {3}));
      p.emplace("b", Tensor(DType::f32, {5}));
      for (int i = 0; i < 3; ++i) p.at("a").data<float>()[i] = 0.1f * static_cast<float>(i + 1);
      for (int i = 0; i < 5; ++i) p.at("b").data<float>()[i] = -0.2f * static_cast<float>(i);
      return p;
    };
    const float ga[3] = {0.5f, -1.5f, 2.0f}, gb[5] = {1.0f, 0.25f, -0.75f, 3.0f, -2.0f};
    const std::vector<GradRef> grads{{"a", ga}, {"b", gb}};
    ParameterStore whole = fresh();
    Optimizer one(c);
    const std::int64_t cuts[] = {0, 2, 6, 8};
    std::vector<ParameterStore> params;
    std::vector<Optimizer> ranks;
    for (int r = 0; r < 3; ++r) {
      params.push_back(fresh());
      ranks.emplace_back(c);
    }
    for (int step = 0; step < 3; ++step) {
      const double norm = one.step(whole, grads);
      for (int r = 0; r < 3; ++r)
        CHECK(ranks[static_cast<std::size_t>(r)].step(params[static_cast<std::size_t>(r)], grads, norm, cuts[r], cuts[r + 1]) == norm);
      // Gather: every rank takes each range's owner's parameters.
      for (int r = 0; r < 3; ++r)
        for (int owner = 0; owner < 3; ++owner)
          for (std::int64_t i = cuts[owner]; i < cuts[owner + 1]; ++i) {
            const char* name = i < 3 ? "a" : "b";
            const std::int64_t k = i < 3 ? i : i - 3;
            params[static_cast<std::size_t>(r)].at(name).data<float>()[k] =
                params[static_cast<std::size_t>(owner)].at(name).data<float>()[k];
          }
    }
    // The state, gathered the same way through state_out / state_in.
    for (std::size_t kindex = 0; kindex < ranks[0].state_kinds(); ++kindex) {
      std::vector<float> flat(8), mine(8);
      for (int owner = 0; owner < 3; ++owner) {
        ranks[static_cast<std::size_t>(owner)].state_out(kindex, mine);
        std::copy(mine.begin() + cuts[owner], mine.begin() + cuts[owner + 1], flat.begin() + cuts[owner]);
      }
      ranks[1].state_in(kindex, flat);
    }
    CHECK_THROWS_AS(ranks[1].step(params[1], grads, 1.0, 6, 9), std::invalid_argument);
    for (const char* name : {"a", "b"}) {
      const Tensor& w = whole.at(name);
      for (int r = 0; r < 3; ++r)
        CHECK(std::memcmp(w.raw(), params[static_cast<std::size_t>(r)].at(name).raw(), w.bytes()) == 0);
    }
    for (const auto& [name, t] : one.state())
      CHECK(std::memcmp(t.raw(), ranks[1].state().at(name).raw(), t.bytes()) == 0);
  }
}

TEST_CASE("an adam moment decaying into denormals is flushed to zero", "[train][optimizer][numerics]") {
  // A dead unit's gradient is zero: its first moment decays by beta1 each step, and spends some
  // 150 steps as a denormal, each operation on which costs a microcode assist, unless flushed.
  ParameterStore params;
  params.emplace("w", Tensor(DType::f32, {2}));
  Optimizer opt({"adam", 0.1});
  ParameterStore state;
  state.emplace("adam.m/w", Tensor(DType::f32, {2}));
  state.emplace("adam.v/w", Tensor(DType::f32, {2}));
  state.at("adam.m/w").data<float>()[0] = 1e-38f;  // 0.9 of it is a denormal
  state.at("adam.m/w").data<float>()[1] = 1.0f;
  state.at("adam.v/w").data<float>()[1] = 1.0f;
  opt.load_state(state, 10);
  float zero[2] = {0, 0};
  opt.step(params, {{"w", zero}});
  auto after = opt.state();
  CHECK(after.at("adam.m/w").data<float>()[0] == 0.0f);
  CHECK(after.at("adam.m/w").data<float>()[1] == 0.9f);
  volatile float a = 1e-38f;
  CHECK(a * 0.9f != 0.0f);  // the caller's arithmetic keeps its denormals
}

TEST_CASE("adam and sgd updates match hand computation", "[train][optimizer]") {
  ParameterStore params;
  params.emplace("w", Tensor(DType::f32, {2}));
  params.at("w").data<float>()[0] = 1.0f;
  params.at("w").data<float>()[1] = -2.0f;
  float g[2] = {0.5f, -0.25f};
  SECTION("adam, first step") {
    Optimizer opt({"adam", 0.1});
    double norm = opt.step(params, {{"w", g}});
    CHECK(norm == Approx(std::sqrt(0.25 + 0.0625)));
    // Step 1: m = 0.1 g, v = 0.001 g^2, bias-corrected m/(sqrt v + eps) = sign(g): w -= 0.1 sign(g).
    CHECK(params.at("w").data<float>()[0] == Approx(0.9).epsilon(1e-6));
    CHECK(params.at("w").data<float>()[1] == Approx(-1.9).epsilon(1e-6));
    CHECK(opt.state().count("adam.v/w") == 1);
  }
  SECTION("sgd with momentum and clipping") {
    OptimizerConfig c;
    c.kind = "sgd";
    c.lr = 0.1;
    c.momentum = 0.5;
    c.clip_norm = 0.25;  // |g| = 0.559: scaled by 0.4472
    Optimizer opt(c);
    opt.step(params, {{"w", g}});
    opt.step(params, {{"w", g}});
    // velocity: v1 = s g, v2 = 0.5 v1 + s g = 1.5 s g; w = w0 - 0.1 (1 + 1.5) s g
    double s = 0.25 / std::sqrt(0.3125);
    CHECK(params.at("w").data<float>()[0] == Approx(1.0 - 0.25 * s * 0.5).epsilon(1e-5));
    CHECK(params.at("w").data<float>()[1] == Approx(-2.0 + 0.25 * s * 0.25).epsilon(1e-5));
  }
  SECTION("AdamW's decay is decoupled from the gradient") {
    OptimizerConfig c;
    c.lr = 0.1;
    c.weight_decay = 0.5;
    Optimizer opt(c);
    float zero[2] = {0, 0};
    opt.step(params, {{"w", zero}});
    // No gradient: only the decay moves w, by lr * wd * w.
    CHECK(params.at("w").data<float>()[0] == Approx(1.0 - 0.05).epsilon(1e-6));
  }
  CHECK_THROWS_WITH(Optimizer({"rmsprop", 0.1}), Catch::Contains("rmsprop"));
}

}  // namespace
}  // namespace graphrun

namespace graphrun {
namespace {

// 3 images labelled 2, 0, 1.
Split labelled_split() {
  Split s = noisy_split(3, 7);
  s.labels = {2, 0, 1};
  return s;
}

// A linear classifier over 16 pixels and 3 classes with two terms that read y alone: the mean
// number of ones in y (1 when one-hot), and the mean class (y . [0, 1, 2]).
Model classifier(std::int64_t batch) {
  Model m;
  m.name = "classifier";
  m.graph = std::make_unique<Graph>();
  Graph& g = *m.graph;
  m.x = g.input("x", {batch, 16});
  m.y = g.input("y", {batch, 3});
  Value w = g.parameter("w", {16, 3}, Init::xavier_uniform());
  Value logits = matmul(m.x, w);
  Value logp = logits - logsumexp(logits, {1}, true);
  m.per_sample_loss = neg(sum(m.y * logp, {1}));
  m.loss = mean(m.per_sample_loss);
  m.terms["ones"] = mean(sum(m.y, {1}));
  m.terms["class"] = mean(sum(m.y * g.constant({3}, {0, 1, 2}), {1}));
  return m;
}

// h = x w, and a loss that pulls every row of h to the batch's mean of h in training and to
// that mean's moving average (a buffer) in evaluation: batch norm's pattern, small enough to
// check by hand.
Model centring(std::int64_t batch, double momentum) {
  Model m;
  m.name = "centring";
  m.graph = std::make_unique<Graph>();
  Graph& g = *m.graph;
  m.x = g.input("x", {batch, 16});
  Value h = matmul(m.x, g.parameter("w", {16, 2}, Init::xavier_uniform()));
  Value batch_mean = mean(h, {0}, true);
  Value centre = if_training(batch_mean, moving_average(m.updates, "avg", batch_mean, momentum));
  m.per_sample_loss = sum(square(h - centre), {1});
  m.loss = mean(m.per_sample_loss);
  return m;
}

// The mean over `rows` of x w, in double, as [2].
std::vector<double> mean_of_xw(const Split& s, std::int64_t rows, const Tensor& w) {
  std::vector<std::int64_t> idx(static_cast<std::size_t>(rows));
  std::iota(idx.begin(), idx.end(), 0);
  std::vector<double> x(static_cast<std::size_t>(rows * 16));
  s.fill_batch<double>(idx, x.data());
  std::vector<double> out(2, 0.0);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < 2; ++j)
      for (std::int64_t k = 0; k < 16; ++k)
        out[static_cast<std::size_t>(j)] += x[static_cast<std::size_t>(r * 16 + k)] * w.item(k * 2 + j) / static_cast<double>(rows);
  return out;
}

}  // namespace

TEST_CASE("a model's buffers follow their updates after each step and serve evaluation",
          "[train][buffer]") {
  const Split one_batch = noisy_split(16, 7);
  TrainConfig cfg;
  cfg.batch = 16;
  cfg.epochs = 1;
  SECTION("one step: the average moves by momentum towards the step's batch mean") {
    Model m = centring(16, 0.25);
    Trainer trainer(m, cfg);
    REQUIRE(trainer.parameters().count("avg") == 1);
    CHECK(testing::to_vector(trainer.parameters().at("avg")) == std::vector<double>{0, 0});
    const Tensor w0 = trainer.parameters().at("w").clone();
    const auto batch_mean = mean_of_xw(one_batch, 16, w0);
    trainer.train_epoch(one_batch, nullptr);
    const auto avg = testing::to_vector(trainer.parameters().at("avg"));
    CHECK(avg[0] == Approx(0.25 * batch_mean[0]).epsilon(1e-5));
    CHECK(avg[1] == Approx(0.25 * batch_mean[1]).epsilon(1e-5));
    CHECK(trainer.parameters().at("w").data<float>()[0] != w0.data<float>()[0]);  // w trains
    // Evaluation centres on the average, not on the batch: the loss is the mean distance of each
    // row of x w to it.
    const Tensor& w = trainer.parameters().at("w");
    const auto now = mean_of_xw(one_batch, 16, w);
    std::vector<std::int64_t> idx(16);
    std::iota(idx.begin(), idx.end(), 0);
    std::vector<double> x(16 * 16);
    one_batch.fill_batch<double>(idx, x.data());
    double expected = 0;
    for (std::int64_t r = 0; r < 16; ++r)
      for (std::int64_t j = 0; j < 2; ++j) {
        double h = 0;
        for (std::int64_t k = 0; k < 16; ++k) h += x[static_cast<std::size_t>(r * 16 + k)] * w.item(k * 2 + j);
        expected += (h - avg[static_cast<std::size_t>(j)]) * (h - avg[static_cast<std::size_t>(j)]) / 16;
      }
    CHECK(trainer.evaluate(one_batch).loss == Approx(expected).epsilon(1e-5));
    CHECK(std::abs(now[0] - avg[0]) > 1e-3);  // so the batch mean would have given another loss
  }
  SECTION("parameters are what the optimizer sees: the buffer has no gradient and no moments") {
    Model m = centring(16, 0.5);
    Trainer trainer(m, cfg);
    trainer.train_epoch(one_batch, nullptr);
    const auto path = temp_path("centring.safetensors");
    trainer.save(path, {});
    SafetensorsFile f = load_safetensors(path);
    CHECK(f.tensors.count("avg") == 1);
    CHECK(f.tensors.count("adam.m/w") == 1);
    CHECK(f.tensors.count("adam.m/avg") == 0);
    // Resumed, the buffer comes back and the next steps give the same bits as without a break.
    Model m2 = centring(16, 0.5);
    Trainer resumed(m2, cfg);
    resumed.load(path);
    CHECK(same_bits(resumed.parameters(), trainer.parameters()));
    for (int e = 0; e < 3; ++e) {
      trainer.train_epoch(one_batch, nullptr);
      resumed.train_epoch(one_batch, nullptr);
    }
    CHECK(same_bits(resumed.parameters(), trainer.parameters()));
  }
  SECTION("shards: the average follows the row-weighted mean of the shards' batch means") {
    Model a = centring(16, 0.25), b = centring(16, 0.25);
    Trainer whole(a, cfg);
    TrainConfig sharded = cfg;
    sharded.shards = 2;
    Trainer parts(b, sharded);
    whole.train_epoch(one_batch, nullptr);
    parts.train_epoch(one_batch, nullptr);
    const auto x = testing::to_vector(whole.parameters().at("avg"));
    const auto y = testing::to_vector(parts.parameters().at("avg"));
    CHECK(y[0] == Approx(x[0]).epsilon(1e-5));
    CHECK(y[1] == Approx(x[1]).epsilon(1e-5));
  }
  SECTION("a step with updates allocates nothing after its first") {
    Model m = centring(16, 0.1);
    Trainer trainer(m, cfg);
    Split many = noisy_split(16 * 8, 2);
    CHECK(allocations_in_batches_2_to_6(trainer, many) == 0);
  }
  SECTION("an update must write a buffer of its own shape") {
    Model m = centring(16, 0.1);
    m.updates.push_back({m.graph->find("w"), m.graph->find("w")});
    CHECK_THROWS_WITH(Trainer(m, cfg), Catch::Contains("not a buffer"));
    m.updates.back() = {m.graph->find("avg"), m.graph->find("w")};
    CHECK_THROWS_WITH(Trainer(m, cfg), Catch::Contains("the update of buffer 'avg' [1, 2] computes [16, 2]"));
    CHECK_THROWS_WITH(moving_average(m.updates, "bad", m.graph->find("w"), 0), Catch::Contains("momentum in (0, 1]"));
  }
}

TEST_CASE("labels are bound one-hot or as class indices", "[train][labels]") {
  Split s = labelled_split();
  std::vector<std::int64_t> rows{0, 2};
  SECTION("one-hot rows for y [B, C]") {
    std::vector<float> out(6, -1);
    fill_labels(s, rows, {2, 3}, out.data());
    CHECK(out == std::vector<float>{0, 0, 1, 0, 1, 0});  // labels 2 and 1
  }
  SECTION("class numbers for y [B]") {
    std::vector<float> out(2, -1);
    fill_labels(s, rows, {2}, out.data());
    CHECK(out == std::vector<float>{2, 1});
  }
  SECTION("a label past the classes, or no labels at all, is a LabelError") {
    std::vector<float> out(4);
    CHECK_THROWS_AS(fill_labels(s, rows, {2, 2}, out.data()), LabelError);
    s.labels.clear();
    CHECK_THROWS_AS(fill_labels(s, rows, {2, 3}, out.data()), LabelError);
  }
  SECTION("chosen classes") {
    std::vector<float> out(6, -1);
    fill_classes(std::vector<std::int64_t>{1, 0}, {2, 3}, out.data());
    CHECK(out == std::vector<float>{0, 1, 0, 1, 0, 0});
    CHECK_THROWS_AS(fill_classes(std::vector<std::int64_t>{3}, {1, 3}, out.data()), LabelError);
  }
}

TEST_CASE("the trainer binds the data set's labels to y in training and evaluation", "[train][labels]") {
  Split train = noisy_split(40, 5);
  for (std::int64_t i = 0; i < train.count; ++i) train.labels.push_back(static_cast<std::uint8_t>(i % 3));
  Model m = classifier(16);
  TrainConfig cfg;
  cfg.batch = 16;  // 40 / 16: a last batch of 8 rows binds labels of its own size
  Trainer trainer(m, cfg);
  LossReport before = trainer.evaluate(train);
  CHECK(before.terms.at("ones") == 1.0);
  // The mean of i % 3 over i = 0..39: 13 ones and 13 twos over 40 = 39 / 40.
  CHECK(before.terms.at("class") == Approx(39.0 / 40.0));
  EpochReport e;
  for (int epoch = 0; epoch < 5; ++epoch) e = trainer.train_epoch(train, &train);
  CHECK(e.train.terms.at("ones") == 1.0);
  CHECK(e.test.loss < before.loss);  // it learns something from the labels it is given
  // Labels go into a buffer kept per batch size: a step still allocates nothing after its first.
  Split many = noisy_split(16 * 8, 1);
  many.labels.assign(static_cast<std::size_t>(many.count), 1);
  CHECK(allocations_in_batches_2_to_6(trainer, many) == 0);
  Split unlabelled = noisy_split(8, 6);
  CHECK_THROWS_AS(trainer.train_epoch(unlabelled, nullptr), LabelError);
  CHECK_THROWS_AS(trainer.evaluate(unlabelled), LabelError);
}

}  // namespace graphrun
