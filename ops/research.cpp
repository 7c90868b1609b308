// The research ops that compute on values: a stable logsumexp, gradient stops, one-hot argmax,
// maximum / minimum, leaky_relu, and the special functions lgamma and polygamma. Row movement,
// tiling and the extra random ops live in research_rows.cpp.
#include <graphrun/ops/kernel_util.hpp>
#include <graphrun/ops/ops.hpp>
#include <graphrun/ops/special_math.hpp>

#include <algorithm>
#include <cmath>
#include <limits>

namespace graphrun {
namespace ops {
namespace {

using R = std::vector<Value>;

// Where the elements one output of a reduction over a mask of axes reads lie: base(o) + offset(r)
// for r in [0, reduced). Kernels build it on every run, so it allocates nothing. Reducing the
// trailing axes (log-weights [B, K] over K) or the leading ones ([K, B] over K) takes no division.
struct ReduceLayout {
  std::array<std::int64_t, kMaxRank> dims{}, stride{};
  std::array<bool, kMaxRank> mask{};
  std::int64_t kept = 1, reduced = 1;
  enum class Kind { trailing, leading, general } kind = Kind::general;

  ReduceLayout(const Shape& s, const std::vector<std::int64_t>& axes) {
    dims = padded_dims(s);
    auto rank = static_cast<std::int64_t>(s.size());
    std::size_t off = kMaxRank - s.size();
    for (std::size_t i = 0; i < s.size(); ++i) mask[off + i] = axes.empty();
    for (auto a : axes) mask[off + static_cast<std::size_t>(normalize_axis(a, rank))] = true;
    std::int64_t st = 1;
    int last_reduced = -1, first_kept = kMaxRank, last_kept = -1, first_reduced = kMaxRank;
    for (int i = kMaxRank - 1; i >= 0; --i) {
      stride[i] = st;
      st *= dims[i];
      (mask[i] ? reduced : kept) *= dims[i];
    }
    for (int i = 0; i < kMaxRank; ++i) {
      if (dims[i] == 1) continue;
      if (mask[i]) {
        last_reduced = i;
        first_reduced = std::min(first_reduced, i);
      } else {
        last_kept = i;
        first_kept = std::min(first_kept, i);
      }
    }
    if (last_kept < first_reduced) kind = Kind::trailing;
    else if (last_reduced < first_kept) kind = Kind::leading;
  }
  std::int64_t walk(std::int64_t i, bool reduced_axes) const {
    std::int64_t off = 0;
    for (int d = kMaxRank - 1; d >= 0; --d)
      if (mask[d] == reduced_axes) {
        off += (i % dims[d]) * stride[d];
        i /= dims[d];
      }
    return off;
  }
  std::int64_t base(std::int64_t o) const {
    return kind == Kind::trailing ? o * reduced : kind == Kind::leading ? o : walk(o, false);
  }
  std::int64_t offset(std::int64_t r) const {
    return kind == Kind::trailing ? r : kind == Kind::leading ? r * kept : walk(r, true);
  }
};

// A NaN wins, so it reaches the output instead of being skipped by a comparison.
template <class T>
bool beats(T v, T best) {
  return v > best || (v != v && best == best);
}

// y = m + ln sum e^(x - m) with m the largest x: no term exceeds 1, so nothing overflows, and
// the largest term is exactly 1, so the sum never underflows to 0. An infinite or NaN m is the
// answer itself (all -inf gives -inf, not the NaN of -inf - -inf).
template <class T>
void logsumexp_kernel(const KernelArgs<T>& a) {
  const T* x = a.in[0];
  ReduceLayout L(a.in_shapes[0], a.attrs->ints("axes"));
  auto one = [&](std::int64_t o) {
    std::int64_t base = L.base(o);
    T m = -std::numeric_limits<T>::infinity();
    for (std::int64_t r = 0; r < L.reduced; ++r)
      if (T v = x[base + L.offset(r)]; beats(v, m)) m = v;
    if (!std::isfinite(m)) return m;
    double s = 0;
    for (std::int64_t r = 0; r < L.reduced; ++r)
      s += std::exp(static_cast<double>(x[base + L.offset(r)] - m));
    return static_cast<T>(m + std::log(s));
  };
  if (L.kept == 1 && L.reduced > kGrain) {
    // One output over many elements: the exponentials go in parallel over a fixed partition.
    T m = -std::numeric_limits<T>::infinity();
    for (std::int64_t r = 0; r < L.reduced; ++r)
      if (beats(x[r], m)) m = x[r];
    if (!std::isfinite(m)) {
      a.out[0] = m;
      return;
    }
    double s = deterministic_sum(L.reduced, [&](std::int64_t b, std::int64_t e) {
      return lane_sum(x, b, e, [m](double v) { return std::exp(v - m); });
    });
    a.out[0] = static_cast<T>(m + std::log(s));
    return;
  }
  parallel_for(L.kept, std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(L.reduced, 1)),
               [&](std::int64_t b, std::int64_t e) {
                 for (std::int64_t o = b; o < e; ++o) a.out[o] = one(o);
               });
}

// 1 at the first largest element of each line along `axis`, 0 elsewhere (a NaN counts as the
// largest, as in numpy's argmax).
template <class T>
void one_hot_argmax_kernel(const KernelArgs<T>& a) {
  const Shape& s = a.in_shapes[0];
  auto axis = static_cast<std::size_t>(
      normalize_axis(a.attrs->i("axis"), static_cast<std::int64_t>(s.size())));
  std::int64_t outer = 1, len = s[axis], inner = 1;
  for (std::size_t i = 0; i < axis; ++i) outer *= s[i];
  for (std::size_t i = axis + 1; i < s.size(); ++i) inner *= s[i];
  const T* x = a.in[0];
  T* y = a.out;
  parallel_for(outer, std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(len * inner, 1)),
               [&](std::int64_t b, std::int64_t e) {
                 for (std::int64_t o = b; o < e; ++o)
                   for (std::int64_t i = 0; i < inner; ++i) {
                     const T* line = x + o * len * inner + i;
                     T* out = y + o * len * inner + i;
                     std::int64_t best = 0;
                     for (std::int64_t j = 1; j < len; ++j)
                       if (beats(line[j * inner], line[best * inner])) best = j;
                     for (std::int64_t j = 0; j < len; ++j)
                       out[j * inner] = j == best ? T(1) : T(0);
                   }
               });
}

struct Identity { template <class T> T operator()(T x) const { return x; } };
// Ties go to a; a NaN in either operand comes out.
struct Maximum {
  template <class T> T operator()(T a, T b) const { return a >= b || a != a ? a : b; }
};
struct Minimum {
  template <class T> T operator()(T a, T b) const { return a <= b || a != a ? a : b; }
};
struct LeakyRelu { template <class T> T operator()(T x, T s) const { return x > 0 ? x : s * x; } };
// The special functions run in double for both types: float32 gets a correctly rounded double.
struct Lgamma {
  template <class T> T operator()(T x) const {
    return static_cast<T>(lgamma_positive(static_cast<double>(x)));
  }
};

template <class T, class F>
void unary_kernel(const KernelArgs<T>& a) {
  unary_map(a, F{});
}
template <class T, class F>
void binary_kernel(const KernelArgs<T>& a) {
  binary_map(a, F{});
}

template <class T>
void polygamma_kernel(const KernelArgs<T>& a) {
  const int order = static_cast<int>(a.attrs->i("order"));
  unary_map(a, [order](T x) {
    return static_cast<T>(polygamma_positive(order, static_cast<double>(x)));
  });
}

template <class F>
OpDef fused_unary(std::string name, std::string summary, GradRule grad,
                  std::vector<std::pair<double, double>> ranges) {
  OpDef d = make_op(std::move(name), std::move(summary), 1, same_shape, unary_kernel<float, F>,
                    unary_kernel<double, F>, std::move(grad),
                    {{{{3, 5}}, {}, ranges}, {{{2, 3, 4}}, {}, ranges}});
  d.elementwise = true;
  d.f32_run = unary_run<float, F>;
  d.f64_run = unary_run<double, F>;
  return d;
}

template <class F>
OpDef fused_binary(std::string name, std::string summary, ShapeRule shape, GradRule grad,
                   std::vector<GradSample> samples) {
  OpDef d =
      make_op(std::move(name), std::move(summary), 2, std::move(shape), binary_kernel<float, F>,
              binary_kernel<double, F>, std::move(grad), std::move(samples));
  d.elementwise = true;
  d.f32_run = binary_run<float, F>;
  d.f64_run = binary_run<double, F>;
  return d;
}

std::vector<GradSample> broadcast_samples(std::vector<std::pair<double, double>> ranges) {
  return {{{{3, 4}, {3, 4}}, {}, ranges},
          {{{3, 4}, {4}}, {}, ranges},
          {{{2, 1, 4}, {3, 1}}, {}, ranges},
          {{{}, {2, 3}}, {}, ranges}};
}

Shape broadcast_rule(std::span<const Shape> in, const Attrs&) {
  return broadcast_shapes(in[0], in[1]);
}

// The gradient of a pick between a and b: `other_wins` is positive exactly where b was picked.
// Always summed back to each operand's shape: comparing the shapes seen now would bake in sizes
// that compile may change.
R pick_grad(const GradContext& c, Value other_wins) {
  Value gb = relu_backward(c.grad, other_wins, c.where);
  Value ga = sub(c.grad, gb, c.where);
  return R{sum_to_like(ga, c.inputs[0], c.where), sum_to_like(gb, c.inputs[1], c.where)};
}

Attrs lse_attrs(Axes axes, bool keepdims) {
  return {{"axes", std::move(axes)}, {"keepdims", std::int64_t{keepdims}}};
}

OpDef logsumexp_op() {
  std::vector<std::pair<double, double>> wide{{-3.0, 3.0}};
  return make_op(
      "logsumexp",
      "y = ln sum e^x over `axes` (all when empty), keepdims optional; computed as m + ln sum "
      "e^(x - m), m the max, so finite for any finite x",
      1,
      [](std::span<const Shape> in, const Attrs& attrs) {
        return reduced_shape(in[0], attrs.ints("axes"), attrs.i("keepdims") != 0);
      },
      logsumexp_kernel<float>, logsumexp_kernel<double>,
      [](const GradContext& c) {
        // dy/dx = softmax = e^(x - y), with g and y spread back over the reduced axes.
        Axes axes = c.attrs.ints("axes");
        bool keep = c.attrs.i("keepdims") != 0;
        Value x = c.inputs[0];
        Value g = spread_like(c.grad, x, axes, keep, false, c.where);
        Value y = spread_like(c.output, x, axes, keep, false, c.where);
        return R{mul(g, exp(sub(x, y, c.where), c.where), c.where)};
      },
      {{{{3, 4}}, lse_attrs({}, false), wide},
       {{{3, 4}}, lse_attrs({1}, false), wide},
       {{{3, 4}}, lse_attrs({0}, true), wide},
       {{{2, 3, 4}}, lse_attrs({0, 2}, false), wide},
       {{{2, 3, 4}}, lse_attrs({-1}, true), wide},
       {{{2, 3, 2, 2}}, lse_attrs({1, 3}, false), wide}});
}

// a in a training step, b outside (evaluation, inference): batch statistics while training,
// their running averages after.
template <class T>
void if_training_kernel(const KernelArgs<T>& a) {
  const T* src = a.in[a.training ? 0 : 1];
  const std::int64_t n = a.out_numel();
  T* y = a.out;
  parallel_for(n, 1 << 14, [&](std::int64_t b, std::int64_t e) { std::copy(src + b, src + e, y + b); });
}

// Blocks every gradient: the rule says so for its one input.
OpDef no_gradient(OpDef d) {
  d.differentiable = {false};
  d.grad = [](const GradContext&) { return R{Value()}; };
  return d;
}

const OpRegistration registrations[] = {
    OpRegistration(with_attributes(logsumexp_op(), {{"axes", Axes{}}, {"keepdims", std::int64_t{0}}})),
    OpRegistration([] {
      auto d = no_gradient(fused_unary<Identity>(
          "stop_gradient",
          "y = x; no gradient flows back to x (also when x is a parameter); any shape", nullptr,
          {{-2.0, 2.0}}));
      d.stops_gradient = true;  // the identity has a derivative; check_gradients holds the output
      return d;
    }()),
    OpRegistration(make_op(
        "if_training",
        "y = a in a training step, b otherwise (evaluation, inference); a and b of one shape; the "
        "gradient goes to the one picked",
        2,
        [](std::span<const Shape> in, const Attrs&) {
          if (in[0] != in[1])
            throw ShapeError(fmt::format("a {} and b {} must have one shape", to_string(in[0]), to_string(in[1])));
          return in[0];
        },
        if_training_kernel<float>, if_training_kernel<double>,
        [](const GradContext& c) {
          Value zero = mul(c.grad, c.grad.graph().scalar(0.0, c.where), c.where);
          return R{if_training(c.grad, zero, c.where), if_training(zero, c.grad, c.where)};
        },
        {{{{3, 4}, {3, 4}}}, {{{2, 3, 1, 1}, {2, 3, 1, 1}}}})),
    OpRegistration(with_attributes(no_gradient(make_op(
        "one_hot_argmax",
        "y = 1 at the first largest x along `axis`, 0 elsewhere; not differentiable; same shape "
        "(argmin: one_hot_argmax(-x))",
        1,
        [](std::span<const Shape> in, const Attrs& attrs) {
          normalize_axis(attrs.i("axis"), static_cast<std::int64_t>(in[0].size()));
          return in[0];
        },
        one_hot_argmax_kernel<float>, one_hot_argmax_kernel<double>, nullptr,
        {{{{3, 4}}, {{"axis", std::int64_t{1}}}},
         {{{2, 3, 4}}, {{"axis", std::int64_t{0}}}},
         {{{2, 3, 4}}, {{"axis", std::int64_t{-2}}}}})), {{"axis", std::int64_t{-1}}})),
    OpRegistration(fused_binary<Maximum>(
        "maximum",
        "y = max(a, b); broadcasting; the gradient goes to a where a >= b (ties: a), else to b",
        broadcast_rule,
        [](const GradContext& c) { return pick_grad(c, sub(c.inputs[1], c.inputs[0], c.where)); },
        broadcast_samples({{-1.0, 1.0}}))),
    OpRegistration(fused_binary<Minimum>(
        "minimum",
        "y = min(a, b); broadcasting; the gradient goes to a where a <= b (ties: a), else to b",
        broadcast_rule,
        [](const GradContext& c) { return pick_grad(c, sub(c.inputs[0], c.inputs[1], c.where)); },
        broadcast_samples({{-1.0, 1.0}}))),
    OpRegistration(fused_binary<LeakyRelu>(
        "leaky_relu",
        "y = x for x > 0, else s * x; the slope s broadcasts to x (a scalar, or one per channel "
        "for a learnt PReLU); y: x's shape",
        [](std::span<const Shape> in, const Attrs&) {
          if (!broadcasts_to(in[1], in[0]))
            throw ShapeError(fmt::format("the slope {} does not broadcast to x {}",
                                         to_string(in[1]), to_string(in[0])));
          return in[0];
        },
        [](const GradContext& c) {
          // dy/dx = 1 for x > 0, else s: r + s (g - r) with r = g (x > 0), exact either way.
          // dy/ds = min(x, 0) = x - relu(x).
          Value x = c.inputs[0], s = c.inputs[1];
          Value r = relu_backward(c.grad, x, c.where);
          Value gx = add(r, mul(s, sub(c.grad, r, c.where), c.where), c.where);
          Value gs = mul(c.grad, sub(x, relu(x, c.where), c.where), c.where);
          return R{gx, sum_to_like(gs, s, c.where)};
        },
        {{{{3, 4}, {}}, {}, {{-2.0, 2.0}, {0.05, 0.5}}},
         {{{3, 4}, {4}}, {}, {{-2.0, 2.0}, {0.05, 0.5}}},
         {{{2, 3, 4}, {3, 1}}, {}, {{-2.0, 2.0}, {0.05, 0.5}}}})),
    OpRegistration(
        fused_unary<Lgamma>("lgamma", "y = ln Gamma(x) for x > 0 (NaN for x <= 0); any shape",
                            [](const GradContext& c) {
                              return R{mul(c.grad, polygamma(c.inputs[0], 0, c.where), c.where)};
                            },
                            {{0.5, 5.0}})),
    OpRegistration(with_attributes([] {
      // Not fusable: a run kernel sees no attributes, so it could not know the order. At some
      // twenty divisions an element, memory traffic is not what it costs anyway.
      std::vector<std::pair<double, double>> range{{0.5, 5.0}};
      OpDef d = make_op(
          "polygamma",
          "y = d^(n+1)/dx^(n+1) ln Gamma(x), n = `order` >= 0 (0: digamma, 1: trigamma), x > 0 "
          "(NaN for x <= 0); any shape",
          1,
          [](std::span<const Shape> in, const Attrs& attrs) {
            if (attrs.i("order") < 0)
              throw ShapeError(fmt::format("order must be >= 0, got {}", attrs.i("order")));
            return in[0];
          },
          polygamma_kernel<float>, polygamma_kernel<double>,
          [](const GradContext& c) {
            return R{mul(c.grad, polygamma(c.inputs[0], c.attrs.i("order") + 1, c.where), c.where)};
          },
          {{{{3, 4}}, {{"order", std::int64_t{0}}}, range},
           {{{2, 3, 2}}, {{"order", std::int64_t{1}}}, range},
           {{{3, 4}}, {{"order", std::int64_t{2}}}, range}});
      d.elementwise = true;
      return d;
    }(), {{"order", std::nullopt}})),
};

}  // namespace
}  // namespace ops

Value logsumexp(Value x, Axes axes, bool keepdims, Loc at) {
  return x.graph().apply(ops::op("logsumexp"), {x}, ops::lse_attrs(std::move(axes), keepdims), at);
}
Value stop_gradient(Value x, Loc at) {
  return x.graph().apply(ops::op("stop_gradient"), {x}, {}, at);
}
Value if_training(Value a, Value b, Loc at) {
  return a.graph().apply(ops::op("if_training"), {a, b}, {}, at);
}
Value one_hot_argmax(Value x, std::int64_t axis, Loc at) {
  return x.graph().apply(ops::op("one_hot_argmax"), {x}, {{"axis", axis}}, at);
}
Value maximum(Value a, Value b, Loc at) {
  return a.graph().apply(ops::op("maximum"), {a, b}, {}, at);
}
Value minimum(Value a, Value b, Loc at) {
  return a.graph().apply(ops::op("minimum"), {a, b}, {}, at);
}
Value leaky_relu(Value x, Value slope, Loc at) {
  return x.graph().apply(ops::op("leaky_relu"), {x, slope}, {}, at);
}
Value leaky_relu(Value x, double slope, Loc at) {
  return leaky_relu(x, x.graph().scalar(slope, at), at);
}
Value lgamma(Value x, Loc at) { return x.graph().apply(ops::op("lgamma"), {x}, {}, at); }
Value polygamma(Value x, std::int64_t order, Loc at) {
  return x.graph().apply(ops::op("polygamma"), {x}, {{"order", order}}, at);
}

}  // namespace graphrun
