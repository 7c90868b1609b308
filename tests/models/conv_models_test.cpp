// The shipped convolutional graph files (models/conv_ae.graph, conv_dae.graph, conv_vae.graph):
// each builds for 28x28 images, has the parameter count its header states, passes a float64
// gradient check, and its loss falls in a few steps on a small synthetic slice.
//
// The gradient check: with tens of thousands of ReLU units an image, a central difference of any
// weight before the last ReLU crosses some unit's kink, too slightly for the check to see it as a
// kink and enough to miss a 1e-5 tolerance. So the file is checked as it is on the output layer
// (after every ReLU), and with softplus in place of ReLU (the same wiring, smooth) on weights
// throughout: convolutions, transposed convolutions, pooled and upsampled paths, dense layers.
#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/gradcheck.hpp>
#include <graphrun/graph/parallel.hpp>
#include <graphrun/graph/parameters.hpp>
#include <graphrun/graph/random.hpp>
#include <graphrun/models/graph_model.hpp>
#include <graphrun/train/inference.hpp>
#include <graphrun/train/report.hpp>
#include <graphrun/train/trainer.hpp>

#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace graphrun {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kFeatures = 28 * 28;
const SampleShape kImage{1, 28, 28};  // Fashion-MNIST's images, as the data sets give them

fs::path shipped(const std::string& name) { return fs::path(GRAPHRUN_SOURCE_DIR) / "models" / name; }

struct Case {
  std::string file;
  std::int64_t parameters;
  std::vector<std::string> checked;  // the parameters the smooth variant's check covers
};

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      // 16 + 8 + 8 channels down, 8 + 8 + 16 + 1 up, 3x3 kernels with biases:
      // 160 + 1,160 + 584 + 584 + 584 + 1,168 + 145.
      {"conv_ae.graph", 4385, {"enc1.w", "enc3.b", "dec1.w", "dec3.w"}},
      {"conv_dae.graph", 4385, {"enc2.w", "dec2.w"}},
      // 320 + 18,496 (convs) + 803,072 (3136 -> 256) + 2 x 5,140 (heads) + 65,856 (20 -> 3136)
      // + 36,928 + 18,464 + 289 (transposed convs).
      {"conv_vae.graph", 953705, {"enc1.w", "enc2.b", "enc3.w", "mu.w", "dec1.w", "dec2.w", "dec3.b"}},
  };
  return c;
}

std::int64_t parameter_count(const Model& m) {
  std::int64_t n = 0;
  for (const Value& p : m.graph->parameters()) n += numel(p.shape());
  return n;
}

// Two blurred prototypes (a bright top half or a bright left half) with noise: quick to learn.
Split synthetic_images(std::int64_t count) {
  Split s;
  s.count = count;
  s.shape = {1, 28, 28};
  s.bytes.resize(static_cast<std::size_t>(count * kFeatures));
  for (std::int64_t i = 0; i < count; ++i)
    for (std::int64_t r = 0; r < 28; ++r)
      for (std::int64_t c = 0; c < 28; ++c) {
        std::int64_t j = r * 28 + c;
        bool on = i % 2 == 0 ? r < 14 : c < 14;
        double noise = random_uniform({11, 0, 0}, static_cast<std::uint64_t>(i * kFeatures + j)) * 40;
        s.bytes[static_cast<std::size_t>(i * kFeatures + j)] = static_cast<std::uint8_t>(on ? 215 + noise : noise);
      }
  return s;
}

TEST_CASE("the conv graph files build with their stated parameter counts", "[models][conv]") {
  for (const auto& c : cases()) {
    DYNAMIC_SECTION(c.file) {
      Model m = load_graph_model(shipped(c.file), {}, 8, kImage);
      CHECK(parameter_count(m) == c.parameters);
      CHECK(m.reconstruction.shape() == Shape{8, kFeatures});
      CHECK(m.decoded.shape() == Shape{8, kFeatures});
      CHECK(m.has_prior == (c.file == "conv_vae.graph"));
      CHECK(m.corrupted.valid() == (c.file == "conv_dae.graph"));
    }
  }
  // A 2-D code, as the latent scatter and the manifold want.
  Model two = load_graph_model(shipped("conv_vae.graph"), {{"latent", "2"}}, 8, kImage);
  CHECK(two.code.shape() == Shape{8, 2});
  CHECK(two.z.shape() == Shape{8, 2});
}

// The file's text with every relu( turned into softplus(.
std::string smooth_text(const std::string& file) {
  std::ifstream in(shipped(file));
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  std::size_t at = 0;
  while ((at = s.find("relu(", at)) != std::string::npos) {
    s.replace(at, 5, "softplus(");
    at += 9;
  }
  return s;
}

GradCheckReport check(Model& m, const std::vector<std::string>& wrt) {
  ParameterStore values = init_parameters(*m.graph, 5, DType::f64);
  Tensor x(DType::f64, {2, kFeatures});
  auto v = x.values<double>();
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = random_uniform({5, 0, 1}, i);
  values.emplace("x", x);
  for (const auto& s : m.schedules) {
    Tensor t(DType::f64, {});
    t.data<double>()[0] = 1;
    values.emplace(s.input, t);
  }
  GradCheckOptions opts;
  opts.eps = 1e-5;  // the losses are sums of 784 terms per image: see autoencoders_test.cpp
  // The decoder's first layer of the VAE has gradients down to 1e-4 and misses 1e-5 by rounding
  // alone (its worst absolute error is 1e-8); a wrong rule errs by far more.
  opts.tolerance = 1e-4;
  opts.max_elements = 12;
  return check_gradients(*m.graph, m.loss, wrt, values, opts);
}

TEST_CASE("the conv graph files pass a float64 gradient check", "[models][conv][gradcheck]") {
  for (const auto& c : cases()) {
    DYNAMIC_SECTION(c.file << " as shipped, on the output layer") {
      Model m = load_graph_model(shipped(c.file), {}, 2, kImage);
      auto report = check(m, {"dec4.w", "dec4.b"});
      INFO(report.to_string());
      CHECK(report.ok());
      CHECK(report.tensors.size() == 2);
    }
    DYNAMIC_SECTION(c.file << " with softplus for relu") {
      Model m = build_graph_model(parse_graph_text(smooth_text(c.file), c.file), {}, 2, kImage);
      CHECK(parameter_count(m) == c.parameters);
      auto report = check(m, c.checked);
      INFO(report.to_string());
      CHECK(report.ok());
      CHECK(report.tensors.size() == c.checked.size());
    }
  }
}

TEST_CASE("the conv graph files' losses fall in a few steps", "[models][conv][train]") {
  Split data = synthetic_images(32);
  for (const auto& c : cases()) {
    DYNAMIC_SECTION(c.file) {
      Model m = load_graph_model(shipped(c.file), {}, 16, kImage);
      TrainConfig cfg;
      cfg.batch = 16;
      cfg.optimizer.lr = 1e-2;
      Trainer t(m, cfg);
      double before = t.evaluate(data).loss;
      for (int e = 0; e < 10; ++e) t.train_epoch(data, nullptr);
      double after = t.evaluate(data).loss;
      INFO("loss before " << before << ", after " << after);
      CHECK(after < 0.8 * before);
    }
  }
}

TEST_CASE("a denoising model's corruption is its training noise, drawn the same each time",
          "[models][conv][denoise]") {
  for (const std::string file : {"conv_dae.graph", "dae.graph"}) {
    DYNAMIC_SECTION(file) {
      ModelOptions options;
      if (file == "dae.graph") options = {{"hidden", "12"}, {"code", "3"}};
      Model m = load_graph_model(shipped(file), options, 16, kImage);
      ParameterStore params = init_parameters(*m.graph, 1);
      Inference inference(m, params, 16, 7);
      REQUIRE(inference.denoising());
      Tensor x = Inference::images(synthetic_images(4), {0, 1, 2, 3});
      Tensor a = inference.corrupt(x), b = inference.corrupt(x);
      REQUIRE(a.shape() == x.shape());
      std::int64_t changed = 0, differ = 0, outside = 0;
      for (std::int64_t i = 0; i < x.numel(); ++i) {
        float u = a.data<float>()[i];
        differ += u != b.data<float>()[i];
        outside += u < 0.0f || u > 1.0f;
        changed += u != x.data<float>()[i];
      }
      CHECK(differ == 0);
      CHECK(outside == 0);
      // Masking drops a quarter of the pixels; Gaussian noise changes nearly all.
      CHECK(changed > x.numel() / 10);
      // reconstruct's figure: clean, noisy and denoised rows, one row (28 px at scale 2 and a
      // 2 px gap) taller than the clean and reconstructed rows of a plain autoencoder.
      Split four = synthetic_images(4);
      Image three = reconstruction_figure(inference, four, 4);
      Model plain = load_graph_model(shipped("conv_ae.graph"), {}, 16, kImage);
      ParameterStore plain_params = init_parameters(*plain.graph, 1);
      Inference plain_inference(plain, plain_params, 16, 7);
      REQUIRE_FALSE(plain_inference.denoising());
      Image two = reconstruction_figure(plain_inference, four, 4);
      CHECK(three.width() == two.width());
      CHECK(three.height() == two.height() + 2 * 28 + 2);
    }
  }
}

// Batch norm keeps four [128, 32, 28, 28] tensors (12.25 MiB each) of its last layer alive at
// once, and more of the others: 106.5 MiB at the fullest step of the training program, which a
// plan for one thread reaches. The arena planner that handed out freed blocks step by step
// needed 187.8 MiB for it; placing the buffers by size, 119.1 with steps free to run side by side.
TEST_CASE("the batch-norm conv VAE's training step plans under 125 MiB", "[models][conv][memory]") {
  Model m = load_graph_model(shipped("zoo/conv_vae_bn.graph"), {}, 128, kImage);
  std::vector<Value> outputs{m.loss};
  for (Value g : grad(m.loss, m.graph->parameters())) outputs.push_back(g);
  for (const auto& u : m.updates) outputs.push_back(u.value);
  auto planned_mib = [&](bool concurrent) {
    CompileOptions options{.concurrent_plan = concurrent};
    Program p = compile_program(*m.graph, outputs, {{m.x.node().name, m.x.shape()}}, options);
    return static_cast<double>(p.memory_plan().arena_bytes) / (1 << 20);
  };
  const double both = planned_mib(true), one = planned_mib(false);
  INFO(both << " MiB, " << one << " MiB for one thread");
  CHECK(both < 125);
  CHECK(one < 107);
  CHECK(one > 106);
}

// Batch norm reduces over the batch and positions in blocks fixed by the shape, and its running
// averages are written after each step: training stays the same bits at any thread count.
TEST_CASE("the batch-norm conv VAE trains to the same bits at 1 and 2 threads, buffers included",
          "[models][conv][buffer]") {
  struct Restore {
    ~Restore() { set_num_threads(0); }
  } restore;
  const Split data = synthetic_images(40);  // 16 + 16 + a last batch of 8
  std::vector<ParameterStore> runs;
  std::vector<double> test_losses;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Model m = load_graph_model(shipped("zoo/conv_vae_bn.graph"), {{"channels", "4"}, {"latent", "2"}}, 16, kImage);
    REQUIRE(m.updates.size() == 8);
    TrainConfig cfg;
    cfg.batch = 16;
    Trainer t(m, cfg);
    t.train_epoch(data, nullptr);
    t.train_epoch(data, nullptr);
    test_losses.push_back(t.evaluate(data).loss);
    ParameterStore copy;
    for (const auto& [name, tensor] : t.parameters()) copy.emplace(name, tensor.clone());
    runs.push_back(std::move(copy));
  }
  CHECK(test_losses[0] == test_losses[1]);
  REQUIRE(runs[0].size() == runs[1].size());
  const Tensor& var = runs[0].at("bn4.var");
  CHECK(var.data<float>()[0] != 1.0f);  // the averages moved
  for (const auto& [name, a] : runs[0]) {
    INFO(name);
    const Tensor& b = runs[1].at(name);
    CHECK(std::memcmp(a.raw(), b.raw(), a.bytes()) == 0);
  }
}

}  // namespace
}  // namespace graphrun
