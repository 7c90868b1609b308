// Reductions and their inverses. Sums accumulate in double over a fixed order per output, so
// results do not depend on the thread count.
#include <graphrun/ops/kernel_util.hpp>
#include <graphrun/ops/ops.hpp>

#include <cmath>

namespace graphrun {
namespace ops {
namespace {

using R = std::vector<Value>;
using Mask = std::array<bool, kMaxRank>;

// How reduce_masked walks x: all of it into one value; each output a contiguous run (the reduced
// dimensions trailing); rows streamed into a block of outputs (the reduced dimensions leading, a
// bias gradient [B, N] -> [N]); x as [outer, kept, run] with the kept dimensions one block between
// reduced ones (a conv bias gradient [N, F, H, W] -> [F]); or index arithmetic per element.
struct ReducePath {
  enum class Kind { all, trailing, leading, sandwich, general, empty } kind = Kind::general;
  std::int64_t total = 1, kept = 1, reduced = 1, inner = 1, outer = 1, run = 1;
};

ReducePath reduce_path(const Shape& xs, const Mask& mask) {
  auto d = padded_dims(xs);
  ReducePath p;
  for (int i = 0; i < kMaxRank; ++i) {
    p.total *= d[i];
    p.kept *= mask[i] ? 1 : d[i];
  }
  int first_reduced = kMaxRank;
  while (first_reduced > 0 && mask[first_reduced - 1]) --first_reduced;
  bool trailing = true;
  for (int i = 0; i < first_reduced; ++i) trailing = trailing && !mask[i];
  for (int i = first_reduced; i < kMaxRank; ++i) p.inner *= d[i];
  using K = ReducePath::Kind;
  if (p.kept == 1) return p.kind = K::all, p;
  if (trailing) return p.kind = K::trailing, p;
  if (p.kept == 0) return p.kind = K::empty, p;  // no outputs (a kept dimension of size 0)
  p.reduced = p.total / p.kept;
  int last_reduced = -1, first_kept = kMaxRank;
  for (int i = 0; i < kMaxRank; ++i) {
    if (d[i] == 1) continue;
    if (mask[i]) last_reduced = i;
    else first_kept = std::min(first_kept, i);
  }
  if (last_reduced < first_kept) return p.kind = K::leading, p;
  int first = kMaxRank, last = -1;
  for (int i = 0; i < kMaxRank; ++i)
    if (d[i] != 1 && !mask[i]) {
      first = std::min(first, i);
      last = i;
    }
  bool sandwich = last >= 0;
  for (int i = first; i <= last; ++i) sandwich = sandwich && (!mask[i] || d[i] == 1);
  if (!sandwich) return p.kind = K::general, p;
  for (int i = 0; i < first; ++i) p.outer *= d[i];
  for (int i = last + 1; i < kMaxRank; ++i) p.run *= d[i];
  return p.kind = K::sandwich, p;
}

// One run of the sandwich case, summed in lanes (kernel_util.hpp's lane_sum): an order fixed by
// the run's length, without the general case's index arithmetic per element (that was 30% of a
// conv VAE step) and without one chain of dependent adds.
template <class T>
double run_sum(const T* p, std::int64_t run) {
  return lane_sum(p, 0, run, [](double v) { return v; });
}

// Sums x (padded to 4 dims) over the dimensions in `mask`, times `scale`. The output is laid out
// as x with the masked dimensions removed.
template <class T>
void reduce_masked(const T* x, const Shape& xs, const Mask& mask, T* out, double scale) {
  auto d = padded_dims(xs);
  std::array<std::int64_t, kMaxRank> stride{};
  std::int64_t s = 1;
  for (int i = kMaxRank - 1; i >= 0; --i) {
    stride[i] = s;
    s *= d[i];
  }
  const ReducePath path = reduce_path(xs, mask);
  const std::int64_t total = path.total, kept = path.kept, inner = path.inner, reduced = path.reduced;
  using K = ReducePath::Kind;
  switch (path.kind) {
    case K::empty:
      return;
    case K::all:
      out[0] = static_cast<T>(scale * deterministic_sum(total, [&](std::int64_t b, std::int64_t e) {
        return lane_sum(x, b, e, [](double v) { return v; });
      }));
      return;
    case K::trailing:
      parallel_for(kept, std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(inner, 1)),
                   [&](std::int64_t b, std::int64_t e) {
                     for (std::int64_t o = b; o < e; ++o)
                       out[o] = static_cast<T>(scale * lane_sum(x + o * inner, 0, inner,
                                                                [](double v) { return v; }));
                   });
      return;
    case K::leading: {
      // Output j sums x[r * kept + j] over r. Rows are streamed in order into a block of
      // accumulators: the same order per output as the general case, so the same bits.
      constexpr std::int64_t kBlock = 256;
      parallel_for((kept + kBlock - 1) / kBlock, 1, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t blk = b; blk < e; ++blk) {
          std::int64_t j0 = blk * kBlock, width = std::min(kBlock, kept - j0);
          double acc[kBlock] = {};
          for (std::int64_t r = 0; r < reduced; ++r) {
            const T* row = x + r * kept + j0;
            for (std::int64_t j = 0; j < width; ++j) acc[j] += row[j];
          }
          for (std::int64_t j = 0; j < width; ++j) out[j0 + j] = static_cast<T>(acc[j] * scale);
        }
      });
      return;
    }
    case K::sandwich: {
      // Output k adds its runs' sums, one per outer index, in order: what sum_to_like's
      // blockwise partials and finish compute (below), so the same bits.
      const std::int64_t outer = path.outer, run = path.run;
      parallel_for(kept, std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(reduced, 1)),
                   [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t k = b; k < e; ++k) {
          double acc = 0;
          for (std::int64_t o = 0; o < outer; ++o) acc += run_sum(x + (o * kept + k) * run, run);
          out[k] = static_cast<T>(acc * scale);
        }
      });
      return;
    }
    case K::general:
      break;
  }
  // General case: each output walks its reduced sub-block in a fixed order.
  parallel_for(kept, std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(reduced, 1)),
               [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t o = b; o < e; ++o) {
      std::int64_t base = 0, rest = o;
      for (int i = kMaxRank - 1; i >= 0; --i)
        if (!mask[i]) {
          base += (rest % d[i]) * stride[i];
          rest /= d[i];
        }
      double acc = 0;
      for (std::int64_t r = 0; r < reduced; ++r) {
        std::int64_t off = base, left = r;
        for (int i = kMaxRank - 1; i >= 0; --i)
          if (mask[i]) {
            off += (left % d[i]) * stride[i];
            left /= d[i];
          }
        acc += x[off];
      }
      out[o] = static_cast<T>(acc * scale);
    }
  });
}

// The reduced dimensions of `s` padded to kMaxRank (all when `axes` is empty). Kernels call it on
// every run, so it allocates nothing.
Mask axes_mask(const Shape& s, const std::vector<std::int64_t>& axes) {
  Mask m{false, false, false, false};
  auto rank = static_cast<std::int64_t>(s.size());
  std::size_t off = kMaxRank - s.size();
  if (axes.empty())
    for (std::size_t i = 0; i < s.size(); ++i) m[off + i] = true;
  for (auto a : axes) m[off + static_cast<std::size_t>(normalize_axis(a, rank))] = true;
  return m;
}

// How many elements of `s` each output of a reduction over `axes` sums.
double count_over(const Shape& s, const std::vector<std::int64_t>& axes) {
  auto mask = axes_mask(s, axes);
  auto dims = padded_dims(s);
  double n = 1;
  for (int i = 0; i < kMaxRank; ++i)
    if (mask[static_cast<std::size_t>(i)]) n *= static_cast<double>(dims[static_cast<std::size_t>(i)]);
  return n;
}

template <class T, bool Mean>
void reduce_kernel(const KernelArgs<T>& a) {
  const auto& axes = a.attrs->ints("axes");
  double scale = Mean ? 1.0 / count_over(a.in_shapes[0], axes) : 1.0;
  reduce_masked(a.in[0], a.in_shapes[0], axes_mask(a.in_shapes[0], axes), a.out, scale);
}

Shape reduce_shape(std::span<const Shape> in, const Attrs& attrs) {
  return reduced_shape(in[0], attrs.ints("axes"), attrs.i("keepdims") != 0);
}

// sum_to_like: reduce g over the dimensions `like` broadcasts along.
Mask sum_to_like_mask(std::span<const Shape> in) {
  auto dg = padded_dims(in[0]);
  auto dl = padded_dims(in[1]);
  Mask m{};
  for (int i = 0; i < kMaxRank; ++i) m[i] = dl[i] == 1 && dg[i] != 1;
  return m;
}

template <class T>
void sum_to_like_kernel(const KernelArgs<T>& a) {
  reduce_masked(a.in[0], a.in_shapes[0], sum_to_like_mask(a.in_shapes), a.out, 1.0);
}

// sum_to_like blockwise, in its sandwich case when ranges of whole leading-axis slices are whole
// outer indices (a conv bias gradient [N, F, H, W] -> [1, F, 1, 1]): one partial a run, the sum of
// outer index o's run of output k at o * kept + k; finish adds them over o in order, as the kernel.
std::int64_t sum_to_like_partials(std::span<const Shape> in, const Attrs&) {
  if (in[0].empty() || in[0][0] <= 0) return 0;
  const ReducePath p = reduce_path(in[0], sum_to_like_mask(in));
  const std::int64_t slice = p.total / in[0][0];
  if (p.kind != ReducePath::Kind::sandwich || slice % (p.kept * p.run) != 0) return 0;
  return p.outer * p.kept;
}

template <class T>
void sum_to_like_partial(const KernelArgs<T>& a, double* partials, std::int64_t first, std::int64_t count) {
  const ReducePath p = reduce_path(a.in_shapes[0], sum_to_like_mask(a.in_shapes));
  const std::int64_t per_outer = p.kept * p.run;
  for (std::int64_t o = first / per_outer; o < (first + count) / per_outer; ++o)
    for (std::int64_t k = 0; k < p.kept; ++k)
      partials[o * p.kept + k] = run_sum(a.in[0] + (o * p.kept + k) * p.run, p.run);
}

template <class T>
void sum_to_like_finish(const KernelArgs<T>& a, const double* partials) {
  const ReducePath p = reduce_path(a.in_shapes[0], sum_to_like_mask(a.in_shapes));
  for (std::int64_t k = 0; k < p.kept; ++k) {
    double acc = 0;
    for (std::int64_t o = 0; o < p.outer; ++o) acc += partials[o * p.kept + k];
    a.out[k] = static_cast<T>(acc);
  }
}

OpDef blockwise_sum_to_like(OpDef def) {
  def.blockwise = {sum_to_like_partials, sum_to_like_partial<float>, sum_to_like_partial<double>,
                   sum_to_like_finish<float>, sum_to_like_finish<double>};
  return def;
}

Shape sum_to_like_shape(std::span<const Shape> in, const Attrs&) {
  if (!broadcasts_to(in[1], in[0]))
    throw ShapeError(fmt::format("{} does not broadcast to {}", to_string(in[1]), to_string(in[0])));
  return in[1];
}

// Strides of x, laid out as `to` with the dimensions in `mask` removed, when broadcast back over
// `to`: 0 along the masked dimensions.
std::array<std::int64_t, kMaxRank> strides_without(const Shape& to, const Mask& mask) {
  auto dims = padded_dims(to);
  std::array<std::int64_t, kMaxRank> strides{};
  std::int64_t s = 1;
  for (int d = kMaxRank - 1; d >= 0; --d) {
    auto i = static_cast<std::size_t>(d);
    strides[i] = mask[i] ? 0 : s;
    if (!mask[i]) s *= dims[i];
  }
  return strides;
}

// out[i] = x[index of i under `strides`] * scale over the shape `to`, one innermost row at a
// time: the row either runs along x (stride 1) or repeats one value (stride 0).
template <class T>
void spread(const T* x, const std::array<std::int64_t, kMaxRank>& strides, const Shape& to,
            T* out, T scale) {
  auto dims = padded_dims(to);
  std::int64_t inner = dims[kMaxRank - 1], n = numel(to);
  if (n == 0) return;
  bool runs = strides[kMaxRank - 1] != 0;
  parallel_for(n / inner, std::max<std::int64_t>(1, kGrain / inner), [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t r = b; r < e; ++r) {
      std::int64_t rest = r, ix = 0;
      for (int d = kMaxRank - 2; d >= 0; --d) {
        ix += (rest % dims[d]) * strides[d];
        rest /= dims[d];
      }
      T* row = out + r * inner;
      if (runs) {
        for (std::int64_t j = 0; j < inner; ++j) row[j] = x[ix + j] * scale;
      } else {
        T v = x[ix] * scale;
        for (std::int64_t j = 0; j < inner; ++j) row[j] = v;
      }
    }
  });
}

template <class T>
void expand_like_kernel(const KernelArgs<T>& a) {
  spread(a.in[0], broadcast_strides(a.in_shapes[0], a.in_shapes[1]), a.in_shapes[1], a.out, T(1));
}

Shape expand_like_shape(std::span<const Shape> in, const Attrs&) {
  if (!broadcasts_to(in[0], in[1]))
    throw ShapeError(fmt::format("{} does not broadcast to {}", to_string(in[0]), to_string(in[1])));
  return in[1];
}

template <class T>
void spread_like_kernel(const KernelArgs<T>& a) {
  const auto& axes = a.attrs->ints("axes");
  const Shape& like = a.in_shapes[1];
  T scale = a.attrs->i("mean") ? T(1.0 / count_over(like, axes)) : T(1);
  spread(a.in[0], strides_without(like, axes_mask(like, axes)), like, a.out, scale);
}

// A sum's gradient repeats g over the summed axes: down the rows when they lead, along them
// (one value per block of elements) when they trail. Axes of length 1 go either way. A mean's
// gradient also scales, which a fused repeat does not.
Broadcast spread_like_broadcast(std::span<const Shape> in, const Attrs& attrs) {
  const Shape& like = in[1];
  const auto& axes = attrs.ints("axes");
  if (attrs.i("mean") && count_over(like, axes) != 1) return Broadcast::none;
  if (numel(in[0]) == 1) return Broadcast::scalar;
  Mask mask = axes_mask(like, axes);
  auto dims = padded_dims(like);
  bool leading = true, trailing = true, seen_kept = false, seen_reduced = false;
  for (std::size_t i = 0; i < kMaxRank; ++i) {
    if (dims[i] == 1) continue;
    if (mask[i]) {
      if (seen_kept) leading = false;  // a reduced axis after a kept one
      seen_reduced = true;
    } else {
      if (seen_reduced) trailing = false;  // a kept axis after a reduced one
      seen_kept = true;
    }
  }
  return trailing ? Broadcast::column : leading ? Broadcast::row : Broadcast::none;
}

template <class T>
void repeat_run(const T* const* in, const bool* scalar, T* out, std::int64_t n) {
  if (scalar[0]) std::fill(out, out + n, in[0][0]);
  else std::copy(in[0], in[0] + n, out);
}

Shape spread_like_shape(std::span<const Shape> in, const Attrs& attrs) {
  Shape want = reduced_shape(in[1], attrs.ints("axes"), attrs.i("keepdims") != 0);
  if (in[0] != want)
    throw ShapeError(fmt::format("g should have shape {} (like {} reduced over the axes)",
                                 to_string(want), to_string(in[1])));
  return in[1];
}

// KL sparsity: p_j = mean_b h_bj; sum_j rho ln(rho/p_j) + (1-rho) ln((1-rho)/(1-p_j)).
template <class T>
void kl_sparsity_kernel(const KernelArgs<T>& a) {
  const Shape& s = a.in_shapes[0];
  std::int64_t b = s[0], k = numel(s) / std::max<std::int64_t>(b, 1);
  double rho = a.attrs->f("rho");
  double total = 0;
  for (std::int64_t j = 0; j < k; ++j) {
    double p = 0;
    for (std::int64_t i = 0; i < b; ++i) p += a.in[0][i * k + j];
    p /= static_cast<double>(b);
    total += rho * std::log(rho / p) + (1 - rho) * std::log((1 - rho) / (1 - p));
  }
  a.out[0] = static_cast<T>(total);
}

// Euclidean norm over all elements, summed in double and rooted before it is stored, so a float32
// result overflows only where the norm itself does. The trainer's gradient norms: each runs as
// soon as its gradient exists, while that gradient is still in cache.
template <class T>
void norm2_kernel(const KernelArgs<T>& a) {
  a.out[0] = static_cast<T>(std::sqrt(sum_of_squares(a.in[0], numel(a.in_shapes[0]))));
}

// The op with input 1 (`like`) read only for its shape.
OpDef with_like(OpDef op) {
  op.shape_only = {false, true};
  return op;
}

// spread_like as a repeat that fusion can run inside an elementwise chain.
OpDef fusable_repeat(OpDef op) {
  op.broadcast = spread_like_broadcast;
  op.f32_run = repeat_run<float>;
  op.f64_run = repeat_run<double>;
  return op;
}

Attrs reduce_attrs(Axes axes, bool keepdims) {
  return {{"axes", std::move(axes)}, {"keepdims", std::int64_t{keepdims}}};
}

std::vector<GradSample> reduce_samples() {
  return {{{{3, 4}}, reduce_attrs({}, false)},   {{{3, 4}}, reduce_attrs({0}, false)},
          {{{3, 4}}, reduce_attrs({1}, true)},   {{{2, 3, 4}}, reduce_attrs({0, 2}, false)},
          {{{2, 3, 4}}, reduce_attrs({-1}, false)}, {{{2, 3, 2, 2}}, reduce_attrs({1, 3}, true)}};
}

std::vector<AttrSpec> reduce_attributes() {
  return {{"axes", Axes{}}, {"keepdims", std::int64_t{0}}};
}

GradRule reduce_grad(bool is_mean) {
  return [is_mean](const GradContext& c) {
    return R{spread_like(c.grad, c.inputs[0], c.attrs.ints("axes"), c.attrs.i("keepdims") != 0,
                         is_mean, c.where)};
  };
}

const OpRegistration registrations[] = {
    OpRegistration(with_attributes(make_op("sum", "y = sum of x over `axes` (all when empty), keepdims optional",
                        1, reduce_shape, reduce_kernel<float, false>, reduce_kernel<double, false>,
                        reduce_grad(false), reduce_samples()), reduce_attributes())),
    OpRegistration(with_attributes(make_op("mean", "y = mean of x over `axes` (all when empty), keepdims optional",
                        1, reduce_shape, reduce_kernel<float, true>, reduce_kernel<double, true>,
                        reduce_grad(true), reduce_samples()), reduce_attributes())),
    OpRegistration(blockwise_sum_to_like(identity_when_same_shape(with_like(make_op(
        "sum_to_like", "y = g summed down to the shape of `like` (undoes broadcasting); y: like's shape",
        2, sum_to_like_shape, sum_to_like_kernel<float>, sum_to_like_kernel<double>,
        [](const GradContext& c) { return R{expand_like(c.grad, c.inputs[0], c.where), Value()}; },
        {{{{3, 4}, {4}}}, {{{2, 3, 4}, {3, 1}}}, {{{3, 4}, {}}}}, {true, false}))))),
    OpRegistration(identity_when_same_shape(with_like(make_op(
        "expand_like", "y = x broadcast to the shape of `like`; y: like's shape", 2,
        expand_like_shape, expand_like_kernel<float>, expand_like_kernel<double>,
        [](const GradContext& c) { return R{sum_to_like(c.grad, c.inputs[0], c.where), Value()}; },
        {{{{4}, {3, 4}}}, {{{3, 1}, {2, 3, 4}}}, {{{}, {3, 4}}}}, {true, false})))),
    OpRegistration(with_attributes(fusable_repeat(with_like(make_op(
        "spread_like",
        "y = g spread over the shape of `like` along `axes` (divided by their size when mean=1): "
        "the gradient of sum and mean",
        2, spread_like_shape, spread_like_kernel<float>, spread_like_kernel<double>,
        [](const GradContext& c) {
          Axes axes = c.attrs.ints("axes");
          bool keep = c.attrs.i("keepdims") != 0;
          Value g = c.attrs.i("mean") ? mean(c.grad, axes, keep, c.where) : sum(c.grad, axes, keep, c.where);
          return R{g, Value()};
        },
        {{{{4}, {3, 4}}, {{"axes", Axes{0}}, {"keepdims", std::int64_t{0}}, {"mean", std::int64_t{1}}}},
         {{{3, 1}, {3, 4}}, {{"axes", Axes{1}}, {"keepdims", std::int64_t{1}}, {"mean", std::int64_t{0}}}},
         {{{}, {2, 3}}, {{"axes", Axes{}}, {"keepdims", std::int64_t{0}}, {"mean", std::int64_t{1}}}},
         {{{2, 3}, {2, 3, 4}}, {{"axes", Axes{2}}, {"keepdims", std::int64_t{0}}, {"mean", std::int64_t{0}}}},
         {{{4}, {2, 3, 4}}, {{"axes", Axes{0, 1}}, {"keepdims", std::int64_t{0}}, {"mean", std::int64_t{0}}}}},
        {true, false}))), {{"axes", std::nullopt}, {"keepdims", std::int64_t{0}}, {"mean", std::int64_t{0}}})),
    OpRegistration(with_attributes(make_op(
        "kl_sparsity",
        "y = sum_j rho ln(rho/p_j) + (1-rho) ln((1-rho)/(1-p_j)), p_j = mean over the batch of "
        "h[:, j]; h [B, K] in (0, 1) -> scalar",
        1,
        [](std::span<const Shape> in, const Attrs& attrs) {
          if (in[0].size() != 2) throw ShapeError("kl_sparsity needs codes of shape [B, K]");
          double rho = attrs.f("rho");
          if (!(rho > 0 && rho < 1)) throw ShapeError(fmt::format("rho must be in (0, 1), got {}", rho));
          return Shape{};
        },
        kl_sparsity_kernel<float>, kl_sparsity_kernel<double>,
        [](const GradContext& c) {
          // d/dh_bj = (1/B) ((1 - rho)/(1 - p_j) - rho/p_j) g
          double rho = c.attrs.f("rho");
          Value h = c.inputs[0];
          Value p = mean(h, {0}, false, c.where);
          Value d = (1.0 - rho) / (1.0 - p) - rho / p;
          return R{spread_like(mul(d, c.grad, c.where), h, {0}, false, true, c.where)};
        },
        {{{{5, 3}}, {{"rho", 0.1}}, {{0.05, 0.6}}}}), {{"rho", std::nullopt}})),
    OpRegistration(make_op(
        "norm2", "y = sqrt(sum of x^2) over all elements; any shape -> scalar", 1,
        [](std::span<const Shape>, const Attrs&) { return Shape{}; }, norm2_kernel<float>,
        norm2_kernel<double>,
        [](const GradContext& c) {
          // d|x|/dx = x / |x|
          return R{mul(c.inputs[0], expand_like(div(c.grad, c.output, c.where), c.inputs[0], c.where), c.where)};
        },
        {{{{3, 4}}, {}, {{0.2, 2.0}}}, {{{2, 3, 2}}, {}, {{-2.0, -0.2}}}})),
};

}  // namespace
}  // namespace ops

namespace {
Value reduce_node(const char* name, Value x, Axes axes, bool keepdims, Loc at) {
  return x.graph().apply(ops::op(name), {x}, ops::reduce_attrs(std::move(axes), keepdims), at);
}
}  // namespace

Value sum(Value x, Axes axes, bool keepdims, Loc at) { return reduce_node("sum", x, std::move(axes), keepdims, at); }
Value norm2(Value x, Loc at) { return x.graph().apply(ops::op("norm2"), {x}, {}, at); }
Value mean(Value x, Axes axes, bool keepdims, Loc at) { return reduce_node("mean", x, std::move(axes), keepdims, at); }
Value sum_to_like(Value g, Value like, Loc at) { return g.graph().apply(ops::op("sum_to_like"), {g, like}, {}, at); }
Value expand_like(Value x, Value like, Loc at) { return x.graph().apply(ops::op("expand_like"), {x, like}, {}, at); }
Value spread_like(Value g, Value like, Axes axes, bool keepdims, bool is_mean, Loc at) {
  return g.graph().apply(ops::op("spread_like"), {g, like},
                         {{"axes", std::move(axes)}, {"keepdims", std::int64_t{keepdims}},
                          {"mean", std::int64_t{is_mean}}},
                         at);
}
Value kl_sparsity(Value h, double rho, Loc at) { return h.graph().apply(ops::op("kl_sparsity"), {h}, {{"rho", rho}}, at); }

Value l1_activity(Value h, Loc at) {
  if (h.shape().empty()) throw ShapeError("l1_activity needs codes with a batch dimension");
  Axes rest;
  for (std::int64_t i = 1; i < static_cast<std::int64_t>(h.shape().size()); ++i) rest.push_back(i);
  Value a = abs(h, at);
  // Codes of rank 1 are one number per sample: no per-sample sum (empty axes would mean all).
  return mean(rest.empty() ? a : sum(a, rest, false, at), {0}, false, at);
}

}  // namespace graphrun
