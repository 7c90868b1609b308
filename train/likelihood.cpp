#include <graphrun/graph/parallel.hpp>
#include <graphrun/train/likelihood.hpp>
#include <graphrun/train/trainer.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace graphrun {
namespace {

// log sum_k e^(w_k), one image's draws so far, kept as a shift m (the largest w) and the sum
// s = sum e^(w_k - m), so no e^w overflows or underflows whatever the scale of the weights.
struct LogSumExp {
  double m = -std::numeric_limits<double>::infinity();
  double s = 0;
  void add(double w) {
    if (w <= m) {
      s += std::exp(w - m);
    } else {
      s = s * std::exp(m - w) + 1;  // exp(-inf) = 0 for the first draw
      m = w;
    }
  }
  double value() const { return m + std::log(s); }
};

void check(const Model& model, const IwOptions& o) {
  if (!model.log_weight.valid())
    throw std::invalid_argument(fmt::format(
        "model '{}' declares no log_weight (log p(x, z) - log q(z | x) of its draw of z), which "
        "the importance-sampled likelihood needs",
        model.name));
  if (o.samples < 1 || o.batch < 1 || o.tile < 1)
    throw std::invalid_argument(fmt::format("importance sampling needs at least 1 sample, batch and "
                                            "tile, got {}, {} and {}", o.samples, o.batch, o.tile));
}

// The mean of the per-image estimates and its standard error.
void summarise(IwEstimate& r) {
  const auto n = static_cast<std::int64_t>(r.per_image.size());
  r.images = n;
  if (n == 0) return;
  r.nll = std::accumulate(r.per_image.begin(), r.per_image.end(), 0.0) / static_cast<double>(n);
  double squares = 0;
  for (double v : r.per_image) squares += (v - r.nll) * (v - r.nll);
  r.std_error = n > 1 ? std::sqrt(squares / static_cast<double>(n - 1) / static_cast<double>(n)) : 0;
}

}  // namespace

IwEstimate importance_sampled_nll(Model& model, ParameterStore& params, const Split& data,
                                  const IwOptions& o) {
  check(model, o);
  require_labels(model, data, "the images scored");
  const double start = clock_seconds();
  const std::int64_t n = o.limit < 0 ? data.count : std::min(o.limit, data.count);
  const std::int64_t tile = std::min(o.tile, o.samples);
  const std::int64_t runs = (o.samples + tile - 1) / tile;
  ProgramCache cache(*model.graph, {model.log_weight});
  // Scheduled scalars (a warmed-up KL weight) at their final value, as Inference binds them.
  std::map<std::string, Tensor> scalars;
  for (const auto& s : model.schedules) {
    Tensor t(DType::f32, {});
    t.data<float>()[0] = static_cast<float>(s.value(std::numeric_limits<std::int64_t>::max() / 2));
    scalars.emplace(s.input, t);
  }
  IwEstimate r;
  r.per_image.resize(static_cast<std::size_t>(n));
  std::vector<LogSumExp> sums;
  std::vector<std::int64_t> idx;
  const std::string& x_name = model.x.node().name;
  for (std::int64_t first = 0, block = 0; first < n; first += o.batch, ++block) {
    const std::int64_t rows = std::min(o.batch, n - first);
    idx.resize(static_cast<std::size_t>(rows * tile));
    for (std::int64_t t = 0; t < tile; ++t)
      std::iota(idx.begin() + t * rows, idx.begin() + (t + 1) * rows, first);
    Tensor x(DType::f32, {rows * tile, data.features()});
    data.fill_batch<float>(idx, x.data<float>());
    ShapeMap shapes{{x_name, x.shape()}};
    Tensor y;
    if (model.y.valid()) {
      y = Tensor(DType::f32, label_shape(model.y, rows * tile));
      fill_labels(data, idx, model.y.shape(), y.data<float>());
      shapes.emplace(model.y.node().name, y.shape());
    }
    Program& p = cache.get(shapes);
    p.bind_parameters(params);
    p.bind(x_name, x);
    if (model.y.valid()) p.bind(model.y.node().name, y);
    for (const auto& [name, t] : scalars)
      if (p.bindings().count(name)) p.bind(name, t);
    sums.assign(static_cast<std::size_t>(rows), LogSumExp{});
    for (std::int64_t run = 0; run < runs; ++run) {
      p.run({false, o.seed, static_cast<std::uint64_t>(block * runs + run)});
      const float* w = p.output(0).data<float>();
      const std::int64_t draws = std::min(tile, o.samples - run * tile);
      for (std::int64_t t = 0; t < draws; ++t)
        for (std::int64_t i = 0; i < rows; ++i) sums[static_cast<std::size_t>(i)].add(w[t * rows + i]);
    }
    for (std::int64_t i = 0; i < rows; ++i)
      r.per_image[static_cast<std::size_t>(first + i)] =
          std::log(static_cast<double>(o.samples)) - sums[static_cast<std::size_t>(i)].value();
    if (o.progress) o.progress(first + rows, n);
  }
  r.samples = o.samples;
  summarise(r);
  r.seconds = clock_seconds() - start;
  return r;
}

}  // namespace graphrun
