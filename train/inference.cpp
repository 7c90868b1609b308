#include <graphrun/graph/random.hpp>
#include <graphrun/train/inference.hpp>
#include <graphrun/train/trainer.hpp>

#include <fmt/format.h>

#include <cstring>
#include <limits>
#include <numeric>

namespace graphrun {

Inference::Inference(Model& model, ParameterStore& params, std::int64_t batch, std::uint64_t seed)
    : model_(model), params_(params), batch_(batch), seed_(seed) {
  const Graph& g = *model_.graph;
  encode_ = std::make_unique<ProgramCache>(g, std::vector<Value>{model_.code});
  decode_ = std::make_unique<ProgramCache>(g, std::vector<Value>{model_.decoded});
  reconstruct_ = std::make_unique<ProgramCache>(g, std::vector<Value>{model_.reconstruction});
  score_ = std::make_unique<ProgramCache>(g, std::vector<Value>{model_.per_sample_loss});
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

Tensor Inference::map_rows(ProgramCache& cache, Value input, const Tensor& in, std::int64_t out_cols) {
  if (in.rank() != 2 || in.shape()[1] != input.shape()[1])
    throw ShapeError(fmt::format("'{}' takes rows of {} values, got {}", input.node().name,
                                 input.shape()[1], to_string(in.shape())));
  Tensor src = in.dtype() == DType::f32 ? in : in.to(DType::f32);
  std::int64_t n = src.shape()[0], cols = src.shape()[1];
  Tensor out(DType::f32, {n, out_cols});
  for (std::int64_t first = 0, k = 0; first < n; first += batch_, ++k) {
    std::int64_t rows = std::min(batch_, n - first);
    Tensor chunk = Tensor::view(DType::f32, {rows, cols}, src.data<float>() + first * cols);
    Program& p = cache.get({{input.node().name, chunk.shape()}});
    p.bind_parameters(params_);
    p.bind(input.node().name, chunk);
    for (const auto& [name, t] : scalars_)
      if (p.bindings().count(name)) p.bind(name, t);
    p.run({false, seed_, static_cast<std::uint64_t>(k)});
    std::memcpy(out.data<float>() + first * out_cols, p.output(0).raw(),
                static_cast<std::size_t>(rows * out_cols) * sizeof(float));
  }
  return out;
}

Tensor Inference::encode(const Tensor& x) { return map_rows(*encode_, model_.x, x, code_size()); }

Tensor Inference::encode(const Split& data, std::int64_t limit) {
  std::int64_t n = limit < 0 ? data.count : std::min(limit, data.count);
  std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  return encode(images(data, idx));
}

Tensor Inference::decode(const Tensor& z) { return map_rows(*decode_, model_.z, z, features()); }

Tensor Inference::reconstruct(const Tensor& x) {
  return map_rows(*reconstruct_, model_.x, x, features());
}

Tensor Inference::sample(std::int64_t n, std::uint64_t seed) {
  if (!model_.has_prior)
    throw std::logic_error(fmt::format("model '{}' has no prior to sample from (only a VAE has)", model_.name));
  Tensor z(DType::f32, {n, code_size()});
  auto v = z.values<float>();
  RandomKey key{seed, 0, 0x5a3e1eu};
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(random_normal(key, i));
  return decode(z);
}

Tensor Inference::interpolate(const Tensor& a, const Tensor& b, std::int64_t steps) {
  if (steps < 2) throw std::invalid_argument("interpolate needs at least 2 steps");
  Tensor ends(DType::f32, {2, features()});
  if (a.numel() != features() || b.numel() != features())
    throw ShapeError(fmt::format("interpolate takes two images of {} values", features()));
  Tensor fa = a.to(DType::f32), fb = b.to(DType::f32);
  std::memcpy(ends.data<float>(), fa.raw(), fa.bytes());
  std::memcpy(ends.data<float>() + features(), fb.raw(), fb.bytes());
  Tensor codes = encode(ends);
  std::int64_t k = code_size();
  Tensor z(DType::f32, {steps, k});
  const float* ca = codes.data<float>();
  const float* cb = ca + k;
  for (std::int64_t s = 0; s < steps; ++s) {
    float t = static_cast<float>(s) / static_cast<float>(steps - 1);
    for (std::int64_t j = 0; j < k; ++j) z.data<float>()[s * k + j] = (1 - t) * ca[j] + t * cb[j];
  }
  return decode(z);
}

std::vector<double> Inference::anomaly_scores(const Split& data, std::int64_t limit) {
  std::vector<double> scores;
  for_each_batch(*score_, model_.x, data, batch_, params_, {false, seed_, 0},
                 [&](Program& p, std::int64_t, std::int64_t rows) {
                   Tensor s = p.output(0);
                   for (std::int64_t i = 0; i < rows; ++i) scores.push_back(s.item(i));
                 },
                 limit, scalars_);
  return scores;
}

}  // namespace graphrun
