#include <graphrun/ops/composites.hpp>

#include <fmt/format.h>

#include <cmath>

namespace graphrun {

namespace {

constexpr double kLog2Pi = 1.8378770664093454836;  // ln 2 pi

void need_positive(double scale, const char* what) {
  if (!(scale > 0)) throw ShapeError(fmt::format("{}: scale must be > 0, got {}", what, scale));
}

}  // namespace

Value softmax(Value x, std::int64_t axis, Loc at) {
  return exp(sub(x, logsumexp(x, {axis}, true, at), at), at);
}

Value log_softmax(Value x, std::int64_t axis, Loc at) {
  return sub(x, logsumexp(x, {axis}, true, at), at);
}

Value gaussian_log_density(Value x, Value mu, Value logvar, Loc at) {
  Graph& g = x.graph();
  Value z2 = mul(square(sub(x, mu, at), at), exp(neg(logvar, at), at), at);
  return mul(g.scalar(-0.5, at), add(add(logvar, z2, at), g.scalar(kLog2Pi, at), at), at);
}

Value std_normal_log_density(Value x, Loc at) {
  Graph& g = x.graph();
  return mul(g.scalar(-0.5, at), add(square(x, at), g.scalar(kLog2Pi, at), at), at);
}

Value bernoulli_log_likelihood(Value logits, Value x, Loc at) {
  return neg(bce_with_logits(logits, x, at), at);
}

Value pairwise_sq_distances(Value a, Value b, Loc at) {
  if (a.shape().size() != 2 || b.shape().size() != 2 || a.shape()[1] != b.shape()[1])
    throw ShapeError(fmt::format("pairwise_sq_distances needs a [N, D] and b [M, D], got {} and {}",
                                 to_string(a.shape()), to_string(b.shape())));
  Graph& g = a.graph();
  Value aa = sum(square(a, at), {1}, true, at);   // [N, 1]
  Value bb = sum(square(b, at), {1}, false, at);  // [M], broadcast along the rows
  Value ab = matmul(a, b, false, true, at);       // [N, M]
  Value d = sub(add(aa, bb, at), mul(g.scalar(2.0, at), ab, at), at);
  return relu(d, at);
}

Value rbf_kernel(Value a, Value b, double scale, Loc at) {
  need_positive(scale, "rbf_kernel");
  return exp(mul(pairwise_sq_distances(a, b, at), a.graph().scalar(-1.0 / scale, at), at), at);
}

Value imq_kernel(Value a, Value b, double scale, Loc at) {
  need_positive(scale, "imq_kernel");
  Value c = a.graph().scalar(scale, at);
  return div(c, add(c, pairwise_sq_distances(a, b, at), at), at);
}

Value clamp(Value x, double lo, double hi, Loc at) {
  if (!(lo <= hi)) throw ShapeError(fmt::format("clamp: lo {} is above hi {}", lo, hi));
  Graph& g = x.graph();
  return minimum(maximum(x, g.scalar(lo, at), at), g.scalar(hi, at), at);
}

Value gumbel_softmax(Value logits, Value temperature, std::int64_t axis, bool train_only, Loc at) {
  Value u = random_uniform_like(logits, train_only, at);
  Value gumbel = neg(log(neg(log(u, at), at), at), at);
  return softmax(div(add(logits, gumbel, at), temperature, at), axis, at);
}

Value gumbel_softmax(Value logits, double temperature, std::int64_t axis, bool train_only, Loc at) {
  need_positive(temperature, "gumbel_softmax temperature");
  return gumbel_softmax(logits, logits.graph().scalar(temperature, at), axis, train_only, at);
}

Value permute_dims(Value z, Loc at) {
  if (z.shape().size() != 2)
    throw ShapeError(fmt::format("permute_dims needs codes [B, D], got {}", to_string(z.shape())));
  std::vector<Value> columns;
  for (std::int64_t j = 0; j < z.shape()[1]; ++j)
    columns.push_back(gather_rows(slice(z, 1, j, j + 1, at), random_permutation_like(z, at), at));
  return concat(columns, 1, at);
}

}  // namespace graphrun
