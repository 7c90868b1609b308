#include <graphrun/graph/random.hpp>
#include <graphrun/train/inference.hpp>
#include <graphrun/train/trainer.hpp>

#include <fmt/format.h>

#include <cstring>
#include <limits>
#include <numeric>

namespace graphrun {

Inference::Inference(Model& model, ParameterStore& params, std::int64_t batch, std::uint64_t seed,
                     std::shared_ptr<SharedArena> arena)
    : model_(model), params_(params), batch_(batch), seed_(seed) {
  const Graph& g = *model_.graph;
  // map_rows copies each batch's output before the next program runs, so one arena serves all.
  CompileOptions options;
  options.arena = arena ? std::move(arena) : std::make_shared<SharedArena>();
  encode_ = std::make_unique<ProgramCache>(g, std::vector<Value>{model_.code}, options);
  decode_ = std::make_unique<ProgramCache>(g, std::vector<Value>{model_.decoded}, options);
  reconstruct_ = std::make_unique<ProgramCache>(g, std::vector<Value>{model_.reconstruction}, options);
  score_ = std::make_unique<ProgramCache>(g, std::vector<Value>{model_.per_sample_loss}, options);
  if (denoising()) corrupt_ = std::make_unique<ProgramCache>(g, std::vector<Value>{model_.corrupted}, options);
  // Scheduled scalars (e.g. a warmed-up KL weight) take their final value for scoring.
  for (const auto& s : model_.schedules) {
    Tensor t(DType::f32, {});
    t.data<float>()[0] = static_cast<float>(s.value(std::numeric_limits<std::int64_t>::max() / 2));
    scalars_.emplace(s.input, t);
  }
}

std::int64_t Inference::features() const { return model_.x.shape()[1]; }
std::int64_t Inference::code_size() const { return model_.code.shape()[1]; }

Tensor Inference::images(const Split& data, const std::vector<std::int64_t>& indices) {
  Tensor t(DType::f32, {static_cast<std::int64_t>(indices.size()), data.features()});
  data.fill_batch<float>(indices, t.data<float>());
  return t;
}

Tensor Inference::labels(const Split& data, const std::vector<std::int64_t>& indices) const {
  if (!conditional()) return {};
  Tensor y(DType::f32, label_shape(model_.y, static_cast<std::int64_t>(indices.size())));
  fill_labels(data, indices, model_.y.shape(), y.data<float>());
  return y;
}

Tensor Inference::classes(const std::vector<std::int64_t>& classes) const {
  if (!conditional()) return {};
  Tensor y(DType::f32, label_shape(model_.y, static_cast<std::int64_t>(classes.size())));
  fill_classes(classes, model_.y.shape(), y.data<float>());
  return y;
}

Tensor Inference::map_rows(ProgramCache& cache, Value input, const Tensor& in, std::int64_t out_cols,
                           const Tensor& y, bool training) {
  if (in.rank() != 2 || in.shape()[1] != input.shape()[1])
    throw ShapeError(fmt::format("'{}' takes rows of {} values, got {}", input.node().name,
                                 input.shape()[1], to_string(in.shape())));
  Tensor src = in.dtype() == DType::f32 ? in : in.to(DType::f32);
  std::int64_t n = src.shape()[0], cols = src.shape()[1];
  if (conditional() && (y.empty() || y.shape() != label_shape(model_.y, n)))
    throw LabelError(fmt::format("model '{}' takes labels y {} with each of its {} rows of '{}', got {}",
                                 model_.name, to_string(model_.y.shape()), n, input.node().name,
                                 y.empty() ? std::string("none") : to_string(y.shape())));
  const std::int64_t y_width = conditional() ? y.numel() / std::max<std::int64_t>(n, 1) : 0;
  Tensor out(DType::f32, {n, out_cols});
  for (std::int64_t first = 0, k = 0; first < n; first += batch_, ++k) {
    std::int64_t rows = std::min(batch_, n - first);
    Tensor chunk = Tensor::view(DType::f32, {rows, cols}, src.data<float>() + first * cols);
    ShapeMap shapes{{input.node().name, chunk.shape()}};
    Tensor y_chunk;
    if (conditional()) {
      y_chunk = Tensor::view(DType::f32, label_shape(model_.y, rows),
                             const_cast<float*>(y.data<float>()) + first * y_width);
      shapes.emplace(model_.y.node().name, y_chunk.shape());
    }
    Program& p = cache.get(shapes);
    p.bind_parameters(params_);
    p.bind(input.node().name, chunk);
    if (conditional()) p.bind(model_.y.node().name, y_chunk);
    for (const auto& [name, t] : scalars_)
      if (p.bindings().count(name)) p.bind(name, t);
    p.run({training, seed_, static_cast<std::uint64_t>(k)});
    std::memcpy(out.data<float>() + first * out_cols, p.output(0).raw(),
                static_cast<std::size_t>(rows * out_cols) * sizeof(float));
  }
  return out;
}

Tensor Inference::encode(const Tensor& x, const Tensor& y) {
  return map_rows(*encode_, model_.x, x, code_size(), y);
}

Tensor Inference::encode(const Split& data, std::int64_t limit) {
  std::int64_t n = limit < 0 ? data.count : std::min(limit, data.count);
  std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  return encode(images(data, idx), labels(data, idx));
}

Tensor Inference::decode(const Tensor& z, const Tensor& y) {
  return map_rows(*decode_, model_.z, z, features(), y);
}

Tensor Inference::reconstruct(const Tensor& x, const Tensor& y) {
  return map_rows(*reconstruct_, model_.x, x, features(), y);
}

// The one run in training mode: train_only noise is what this shows.
Tensor Inference::corrupt(const Tensor& x, const Tensor& y) {
  if (!denoising())
    throw std::logic_error(fmt::format("model '{}' declares no corrupted input", model_.name));
  return map_rows(*corrupt_, model_.x, x, features(), y, true);
}

Tensor Inference::sample(std::int64_t n, std::uint64_t seed, std::optional<std::int64_t> cls) {
  if (!model_.has_prior)
    throw std::logic_error(fmt::format("model '{}' has no prior to sample from (only a VAE has)", model_.name));
  Tensor z(DType::f32, {n, code_size()});
  auto v = z.values<float>();
  RandomKey key{seed, 0, 0x5a3e1eu};
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(random_normal(key, i));
  std::vector<std::int64_t> which(static_cast<std::size_t>(n), cls.value_or(0));
  const Shape& ys = conditional() ? model_.y.shape() : Shape{};
  if (!cls && ys.size() == 2)
    for (std::int64_t i = 0; i < n; ++i) which[static_cast<std::size_t>(i)] = i * ys[1] / n;
  return decode(z, classes(which));
}

Tensor Inference::interpolate(const Tensor& a, const Tensor& b, std::int64_t steps,
                              const Tensor& ends_y, const Tensor& line_y) {
  if (steps < 2) throw std::invalid_argument("interpolate needs at least 2 steps");
  Tensor ends(DType::f32, {2, features()});
  if (a.numel() != features() || b.numel() != features())
    throw ShapeError(fmt::format("interpolate takes two images of {} values", features()));
  Tensor fa = a.to(DType::f32), fb = b.to(DType::f32);
  std::memcpy(ends.data<float>(), fa.raw(), fa.bytes());
  std::memcpy(ends.data<float>() + features(), fb.raw(), fb.bytes());
  Tensor codes = encode(ends, ends_y);
  std::int64_t k = code_size();
  Tensor z(DType::f32, {steps, k});
  const float* ca = codes.data<float>();
  const float* cb = ca + k;
  for (std::int64_t s = 0; s < steps; ++s) {
    float t = static_cast<float>(s) / static_cast<float>(steps - 1);
    for (std::int64_t j = 0; j < k; ++j) z.data<float>()[s * k + j] = (1 - t) * ca[j] + t * cb[j];
  }
  Tensor y;
  if (conditional()) {
    if (line_y.empty()) throw LabelError(fmt::format("model '{}' decodes with labels y: give the class of the line", model_.name));
    y = Tensor(DType::f32, label_shape(model_.y, steps));
    const std::size_t width = static_cast<std::size_t>(line_y.numel());
    for (std::int64_t s = 0; s < steps; ++s)
      std::memcpy(y.data<float>() + static_cast<std::size_t>(s) * width, line_y.raw(), width * sizeof(float));
  }
  return decode(z, y);
}

std::vector<double> Inference::anomaly_scores(const Split& data, std::int64_t limit) {
  require_labels(model_, data, "the images scored");
  std::vector<double> scores;
  for_each_batch(*score_, model_.x, data, batch_, params_, {false, seed_, 0},
                 [&](Program& p, std::int64_t, std::int64_t rows) {
                   Tensor s = p.output(0);
                   for (std::int64_t i = 0; i < rows; ++i) scores.push_back(s.item(i));
                 },
                 limit, scalars_, model_.y);
  return scores;
}

}  // namespace graphrun
