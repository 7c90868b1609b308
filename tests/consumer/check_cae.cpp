// Checks the contractive autoencoder of cae.cpp the way graphrun checks its own models:
//   1. the penalty equals ||dh/dx||_F^2 measured by central differences (the formula is right),
//   2. autodiff's gradients match central differences in float64 (check_gradients),
//   3. a few epochs of Trainer on tiny synthetic images lower the test loss.
// Exits non-zero when any of them fails. `check_cae DIR` also writes the images as an IDX data
// set in DIR, so `graphrun-plus model.cae --data DIR` can train on them.
#include "cae.hpp"

#include <graphrun/graph/gradcheck.hpp>
#include <graphrun/graph/parameters.hpp>
#include <graphrun/graph/program.hpp>
#include <graphrun/train/idx.hpp>
#include <graphrun/train/trainer.hpp>

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <random>

using namespace graphrun;

namespace {

// rows x cols images of one or two bright bars, horizontal or vertical, over faint noise.
Split bars(std::int64_t count, std::int64_t side, std::uint32_t seed) {
  Split s;
  s.count = count;
  s.shape = {1, side, side};
  s.bytes.resize(static_cast<std::size_t>(count * side * side));
  s.labels.resize(static_cast<std::size_t>(count));
  std::mt19937 rng(seed);
  for (std::int64_t n = 0; n < count; ++n) {
    bool vertical = rng() % 2;
    std::int64_t a = rng() % side, b = rng() % side;
    s.labels[n] = vertical;
    for (std::int64_t r = 0; r < side; ++r)
      for (std::int64_t c = 0; c < side; ++c) {
        std::int64_t line = vertical ? c : r;
        s.bytes[(n * side + r) * side + c] = line == a || line == b ? 255 : rng() % 32;
      }
  }
  return s;
}

Tensor batch_of(const Split& s, std::int64_t rows) {
  Tensor t(DType::f64, {rows, s.features()});
  std::vector<std::int64_t> index(rows);
  for (std::int64_t i = 0; i < rows; ++i) index[i] = i;
  s.fill_batch<double>(index, t.data<double>());
  return t;
}

// 1. mean_b ||dh/dx||_F^2 from the graph against central differences of the code.
bool check_penalty(const Split& data) {
  const std::int64_t batch = 3, features = data.features();
  Model m = cae::build({5, 1.0}, batch, features);
  ParameterStore params = init_parameters(*m.graph, 7, DType::f64);
  Tensor x = batch_of(data, batch);
  Program p = compile_program(*m.graph, {m.code, m.terms.at("contractive")}, {}, {DType::f64});
  p.bind_parameters(params);
  p.bind("x", x);
  auto code_at = [&](std::int64_t i, double delta, std::vector<double>& h) {
    double keep = x.data<double>()[i];
    x.data<double>()[i] = keep + delta;
    p.run();
    auto out = p.output(0).values<double>();
    h.assign(out.begin(), out.end());
    x.data<double>()[i] = keep;
  };
  const double eps = 1e-5;
  double numeric = 0;
  std::vector<double> up, down;
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    code_at(i, eps, up);
    code_at(i, -eps, down);
    std::int64_t row = i / features, k = static_cast<std::int64_t>(up.size()) / batch;
    for (std::int64_t j = row * k; j < (row + 1) * k; ++j)
      numeric += std::pow((up[j] - down[j]) / (2 * eps), 2);
  }
  numeric /= batch;
  p.run();
  double graph = p.output(1).item();
  double rel = std::abs(graph - numeric) / std::abs(numeric);
  fmt::print("penalty: graph {:.9f}, central differences {:.9f}, relative error {:.1e}\n", graph,
             numeric, rel);
  return rel < 1e-6;
}

// 2. Every parameter and the input, float64, against central differences.
bool check_grads(const Split& data) {
  Model m = cae::build({5, 0.5}, 4, data.features());
  ParameterStore values = init_parameters(*m.graph, 3, DType::f64);
  values.emplace("x", batch_of(data, 4));
  std::vector<std::string> wrt{"x"};
  for (Value p : m.graph->parameters()) wrt.push_back(p.node().name);
  // A loss of ~40 nats loses ~1e-16 * 40 / eps to rounding in each difference: with the default
  // eps of 1e-6 that is ~1e-8, as large as the smallest gradients of enc.w (rows of dark pixels).
  GradCheckOptions opts;
  opts.eps = 3e-5;
  GradCheckReport report = check_gradients(*m.graph, m.loss, wrt, values, opts);
  fmt::print("{}", report.to_string());
  return report.ok();
}

// 3. Trainer, as the runner would drive it, from our own loop.
bool check_training(const Split& train, const Split& test) {
  Model m = cae::build({16, 0.1}, 32, train.features());
  TrainConfig config;
  config.batch = 32;
  config.optimizer.lr = 0.03;
  Trainer trainer(m, config);
  double before = trainer.evaluate(test).loss;
  fmt::print("epoch 0: test loss {:.3f}\n", before);
  double after = before;
  for (int e = 0; e < 5; ++e) {
    EpochReport r = trainer.train_epoch(train, &test);
    after = r.test.loss;
    fmt::print("epoch {}: train loss {:.3f} (recon {:.3f}, contractive {:.3f}), test loss {:.3f}\n",
               r.epoch, r.train.loss, r.train.terms.at("recon"), r.train.terms.at("contractive"),
               after);
  }
  return after < 0.8 * before;
}

void write_split(const std::filesystem::path& dir, const std::string& prefix, const Split& s) {
  std::vector<std::int64_t> image_dims{s.count, s.shape[1], s.shape[2]}, label_dims{s.count};
  write_idx(dir / (prefix + "-images-idx3-ubyte"), image_dims, s.bytes, false);
  std::vector<std::uint8_t> label_bytes(s.labels.begin(), s.labels.end());
  write_idx(dir / (prefix + "-labels-idx1-ubyte"), label_dims, label_bytes, false);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Split train = bars(256, 8, 1), test = bars(64, 8, 2);
    if (argc > 1) {
      std::filesystem::create_directories(argv[1]);
      write_split(argv[1], "train", train);
      write_split(argv[1], "t10k", test);
      fmt::print("wrote {} train and {} test images to {}\n", train.count, test.count, argv[1]);
    }
    bool penalty = check_penalty(train);
    bool grads = check_grads(train);
    bool trains = check_training(train, test);
    fmt::print("penalty formula: {}, gradients: {}, loss falls: {}\n", penalty ? "ok" : "FAIL",
               grads ? "ok" : "FAIL", trains ? "ok" : "FAIL");
    return penalty && grads && trains ? 0 : 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "check_cae: {}\n", e.what());
    return 1;
  }
}
