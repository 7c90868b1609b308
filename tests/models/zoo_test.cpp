// The zoo (models/zoo/, issue 19): every graph file there builds, its gradients match central
// differences in float64, and its training loss falls over 30 steps on a small synthetic set.
// The files are found by listing the folder, so a new one is covered as soon as it is added.
#include <graphrun/graph/gradcheck.hpp>
#include <graphrun/graph/parameters.hpp>
#include <graphrun/graph/program.hpp>
#include <graphrun/graph/random.hpp>
#include <graphrun/models/graph_model.hpp>
#include <graphrun/train/trainer.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>
#include <string>

namespace graphrun {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> zoo_files() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(fs::path(GRAPHRUN_SOURCE_DIR) / "models" / "zoo"))
    if (entry.path().extension() == ".graph") files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

// Small sizes for whichever of these keys a file has, so the whole zoo runs in seconds.
ModelOptions small_options(const fs::path& file) {
  const ModelOptions small = {{"hidden", "16"}, {"hidden2", "12"}, {"disc_hidden", "16"},
                              {"pseudo", "6"},  {"codebook", "12"}, {"latents", "4"},
                              {"code_dim", "3"}, {"variables", "5"}, {"categories", "4"},
                              {"channels", "8"}};
  ModelOptions options;
  for (const auto& key : graph_model_keys(*read_graph_file(file)))
    if (auto it = small.find(key.name); it != small.end()) options.insert(*it);
  return options;
}

constexpr std::int64_t kSide = 8, kPrototypes = 4;

// Images with structure to learn: each is one of four random binary prototypes with 10% of its
// pixels flipped and the rest softened, labelled with its prototype.
Split prototypes(std::int64_t count, std::uint32_t stream) {
  Split s;
  s.count = count;
  s.shape = {1, kSide, kSide};
  s.bytes.resize(static_cast<std::size_t>(count * kSide * kSide));
  s.labels.resize(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) {
    auto label = static_cast<std::uint64_t>(random_uniform({5, 0, stream}, static_cast<std::uint64_t>(i)) * kPrototypes);
    s.labels[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(label);
    for (std::int64_t j = 0; j < kSide * kSide; ++j) {
      bool on = random_uniform({7, label, 0}, static_cast<std::uint64_t>(j)) < 0.4;
      auto k = static_cast<std::uint64_t>(i * kSide * kSide + j);
      if (random_uniform({11, 0, stream}, k) < 0.1) on = !on;
      s.bytes[static_cast<std::size_t>(k)] = on ? 230 : 20;
    }
  }
  return s;
}

TEST_CASE("every zoo file builds, passes a float64 gradient check and learns", "[models][zoo]") {
  const Split train_split = prototypes(480, 1);  // 30 steps of 16
  const std::int64_t features = kSide * kSide;
  auto files = zoo_files();
  REQUIRE(files.size() >= 16);
  for (const auto& file : files) {
    DYNAMIC_SECTION(file.filename().string()) {
      const ModelOptions options = small_options(file);
      Model m = load_graph_model(file, options, 16, SampleShape{1, kSide, kSide});
      INFO(file.filename().string() << ": " << m.terms.size() << " terms");
      // Gradients, as `graphrun gradcheck` checks them: 4 images, eps 1e-4, tolerance 1e-4,
      // every parameter at up to 8 of its elements, schedules at their final values.
      Model checked = load_graph_model(file, options, 4, SampleShape{1, kSide, kSide});
      Graph& g = *checked.graph;
      ParameterStore values = init_parameters(g, 1, DType::f64);
      std::vector<std::int64_t> idx(4);
      std::iota(idx.begin(), idx.end(), 0);
      Tensor x(DType::f64, {4, features});
      train_split.fill_batch<double>(idx, x.data<double>());
      values.emplace(checked.x.node().name, x);
      if (checked.y.valid()) {  // a conditional model: its labels, one-hot [4, classes]
        const std::int64_t classes = checked.y.shape()[1];
        Tensor y(DType::f64, {4, classes});
        for (std::int64_t r = 0; r < 4; ++r)
          y.data<double>()[r * classes + train_split.labels[static_cast<std::size_t>(r)]] = 1;
        values.emplace(checked.y.node().name, y);
      }
      for (const auto& schedule : checked.schedules) {
        Tensor t(DType::f64, {});
        t.data<double>()[0] = schedule.value(std::numeric_limits<std::int64_t>::max() / 2);
        values.emplace(schedule.input, t);
      }
      std::vector<std::string> wrt;
      for (auto& p : g.parameters()) wrt.push_back(p.node().name);
      GradCheckOptions gc;
      gc.eps = 1e-4;
      gc.tolerance = 1e-4;
      gc.max_elements = 8;
      gc.run.seed = 1;
      // check_gradients holds every stop_gradient output at its value (a straight-through
      // estimator, a frozen discriminator): report.held counts them.
      GradCheckReport report = check_gradients(g, checked.loss, wrt, values, gc);
      INFO(report.to_string());
      CHECK(report.ok());

      // The training loss, measured on the training images before and after 30 Adam steps.
      TrainConfig config;
      config.batch = 16;
      config.seed = 2;
      config.optimizer.lr = 3e-3;
      Trainer trainer(m, config);
      const double before = trainer.evaluate(train_split).loss;
      trainer.train_epoch(train_split, nullptr);
      const double after = trainer.evaluate(train_split).loss;
      INFO("loss before " << before << ", after 30 steps " << after);
      CHECK(std::isfinite(after));
      // By a nat an image at least: beta-TCVAE's loss carries its estimator's large constant
      // (ln(N B) a dimension), so a fall relative to the loss would say little.
      CHECK(after < before - 1.0);
    }
  }
}

}  // namespace
}  // namespace graphrun
