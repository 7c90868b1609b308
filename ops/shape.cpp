// Ops that move data without arithmetic: reshape, transpose, concat, slice and their inverses.
#include <graphrun/ops/kernel_util.hpp>
#include <graphrun/ops/ops.hpp>

#include <array>
#include <cstring>

namespace graphrun {
namespace ops {
namespace {

using R = std::vector<Value>;

template <class T>
void copy_kernel(const KernelArgs<T>& a) {
  std::memcpy(a.out, a.in[0], static_cast<std::size_t>(a.out_numel()) * sizeof(T));
}

Shape reshape_shape(std::span<const Shape> in, const Attrs& attrs) {
  const auto& want = attrs.ints("shape");
  Shape out(want.begin(), want.end());
  std::int64_t known = 1;
  int infer = -1;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      if (infer >= 0) throw ShapeError("reshape: at most one dimension may be -1");
      infer = static_cast<int>(i);
    } else if (out[i] < 0) {
      throw ShapeError("reshape: negative dimension");
    } else {
      known *= out[i];
    }
  }
  std::int64_t n = numel(in[0]);
  if (infer >= 0) {
    if (known == 0 || n % known != 0)
      throw ShapeError(fmt::format("reshape: cannot infer the -1 dimension of {} elements", n));
    out[static_cast<std::size_t>(infer)] = n / known;
  }
  if (numel(out) != n)
    throw ShapeError(fmt::format("reshape: {} elements cannot take shape {}", n, to_string(out)));
  return out;
}

Shape reshape_like_shape(std::span<const Shape> in, const Attrs&) {
  if (numel(in[0]) != numel(in[1]))
    throw ShapeError(fmt::format("{} and {} hold different numbers of elements", to_string(in[0]),
                                 to_string(in[1])));
  return in[1];
}

template <class T>
void transpose_kernel(const KernelArgs<T>& a) {
  std::int64_t m = a.in_shapes[0][0], n = a.in_shapes[0][1];
  const T* x = a.in[0];
  T* y = a.out;
  constexpr std::int64_t kTile = 32;
  parallel_for((m + kTile - 1) / kTile, 1, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t ti = b * kTile; ti < std::min(m, e * kTile); ti += kTile)
      for (std::int64_t tj = 0; tj < n; tj += kTile)
        for (std::int64_t i = ti; i < std::min(m, ti + kTile); ++i)
          for (std::int64_t j = tj; j < std::min(n, tj + kTile); ++j) y[j * m + i] = x[i * n + j];
  });
}

// permute's `axes` as a permutation of x's axes (negative ones counted from the end), in place:
// kernels read it on every run, so it allocates nothing.
using Permutation = std::array<std::int64_t, kMaxRank>;
Permutation permutation(const Shape& s, const Attrs& attrs) {
  const auto& axes = attrs.ints("axes");
  const auto rank = static_cast<std::int64_t>(s.size());
  if (static_cast<std::int64_t>(axes.size()) != rank || rank > kMaxRank)
    throw ShapeError(fmt::format("permute: axes [{}] name {} axes of a rank-{} input {}", fmt::join(axes, ", "),
                                 axes.size(), rank, to_string(s)));
  Permutation perm{};
  std::array<bool, kMaxRank> seen{};
  for (std::size_t j = 0; j < axes.size(); ++j) {
    const auto axis = normalize_axis(axes[j], rank);
    if (seen[static_cast<std::size_t>(axis)])
      throw ShapeError(fmt::format("permute: axis {} appears twice in axes [{}]", axes[j], fmt::join(axes, ", ")));
    seen[static_cast<std::size_t>(axis)] = true;
    perm[j] = axis;
  }
  return perm;
}

Shape permute_shape(std::span<const Shape> in, const Attrs& attrs) {
  const Permutation perm = permutation(in[0], attrs);
  Shape out;
  for (std::size_t j = 0; j < in[0].size(); ++j) out.push_back(in[0][static_cast<std::size_t>(perm[j])]);
  return out;
}

// y's element (i0, .., ik) is x's at i_j along axis perm[j]: y is walked in order, a row of y's
// last axis at a time, reading x with that axis's stride.
template <class T>
void permute_kernel(const KernelArgs<T>& a) {
  const Shape& xs = a.in_shapes[0];
  const Permutation perm = permutation(xs, *a.attrs);
  const auto rank = static_cast<int>(xs.size());
  if (rank == 0 || a.out_numel() == 0) {
    if (a.out_numel() == 1) a.out[0] = a.in[0][0];
    return;
  }
  std::int64_t x_stride[kMaxRank], stride[kMaxRank], dims[kMaxRank];
  std::int64_t st = 1;
  for (int i = rank - 1; i >= 0; --i) {
    x_stride[i] = st;
    st *= xs[static_cast<std::size_t>(i)];
  }
  for (int j = 0; j < rank; ++j) {
    dims[j] = xs[static_cast<std::size_t>(perm[static_cast<std::size_t>(j)])];
    stride[j] = x_stride[perm[static_cast<std::size_t>(j)]];
  }
  const std::int64_t row = dims[rank - 1], rows = a.out_numel() / row;
  const T* x = a.in[0];
  parallel_for(rows, std::max<std::int64_t>(1, 4096 / row), [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t r = lo; r < hi; ++r) {
      std::int64_t at = 0;
      for (std::int64_t j = rank - 2, rest = r; j >= 0; --j) {
        at += rest % dims[j] * stride[j];
        rest /= dims[j];
      }
      T* y = a.out + r * row;
      const std::int64_t step = stride[rank - 1];
      for (std::int64_t i = 0; i < row; ++i) y[i] = x[at + i * step];
    }
  });
}

// A tensor seen as [outer, axis, inner] around `axis`.
struct Split3 {
  std::int64_t outer = 1, axis = 1, inner = 1;
};
Split3 split_at(const Shape& s, std::int64_t axis) {
  Split3 r;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(s.size()); ++i) {
    auto d = s[static_cast<std::size_t>(i)];
    if (i < axis) r.outer *= d;
    else if (i == axis) r.axis = d;
    else r.inner *= d;
  }
  return r;
}

std::int64_t axis_of(const Shape& s, const Attrs& attrs) {
  return normalize_axis(attrs.i("axis"), static_cast<std::int64_t>(s.size()));
}

Shape concat_shape(std::span<const Shape> in, const Attrs& attrs) {
  if (in[0].empty()) throw ShapeError("concat needs inputs of rank >= 1");
  auto axis = static_cast<std::size_t>(axis_of(in[0], attrs));
  Shape out = in[0];
  for (std::size_t k = 1; k < in.size(); ++k) {
    bool ok = in[k].size() == out.size();
    for (std::size_t i = 0; ok && i < out.size(); ++i) ok = i == axis || in[k][i] == out[i];
    if (!ok) throw ShapeError(fmt::format("input {} {} does not match {} outside axis {}", k,
                                          to_string(in[k]), to_string(in[0]), axis));
    out[axis] += in[k][axis];
  }
  return out;
}

template <class T>
void concat_kernel(const KernelArgs<T>& a) {
  std::int64_t axis = axis_of(a.in_shapes[0], *a.attrs);
  auto o = split_at(*a.out_shape, axis);
  std::int64_t offset = 0;
  for (std::size_t k = 0; k < a.in.size(); ++k) {
    auto p = split_at(a.in_shapes[k], axis);
    const T* x = a.in[k];
    std::int64_t row = p.axis * p.inner;
    for (std::int64_t r = 0; r < p.outer; ++r)
      std::memcpy(a.out + r * o.axis * o.inner + offset * o.inner, x + r * row,
                  static_cast<std::size_t>(row) * sizeof(T));
    offset += p.axis;
  }
}

// concat_part(g, xs..., axis, index): the part of g that concat took from xs[index]. Offsets come
// from the xs' shapes when compiled, never from the sizes the graph was built with.
Shape concat_part_shape(std::span<const Shape> in, const Attrs& attrs) {
  auto parts = in.subspan(1);
  auto index = attrs.i("index");
  if (index < 0 || index >= static_cast<std::int64_t>(parts.size()))
    throw ShapeError(fmt::format("index {} is outside the {} parts", index, parts.size()));
  if (concat_shape(parts, attrs) != in[0])
    throw ShapeError(fmt::format("g {} is not the concat of the parts", to_string(in[0])));
  return parts[static_cast<std::size_t>(index)];
}

template <class T>
void concat_part_kernel(const KernelArgs<T>& a) {
  std::int64_t axis = axis_of(a.in_shapes[0], *a.attrs);
  std::int64_t index = a.attrs->i("index"), begin = 0;
  for (std::int64_t k = 0; k < index; ++k)
    begin += a.in_shapes[static_cast<std::size_t>(k + 1)][static_cast<std::size_t>(axis)];
  auto p = split_at(a.in_shapes[0], axis);
  auto o = split_at(*a.out_shape, axis);
  for (std::int64_t r = 0; r < p.outer; ++r)
    std::memcpy(a.out + r * o.axis * o.inner, a.in[0] + (r * p.axis + begin) * p.inner,
                static_cast<std::size_t>(o.axis * o.inner) * sizeof(T));
}

Shape slice_shape(std::span<const Shape> in, const Attrs& attrs) {
  if (in[0].empty()) throw ShapeError("slice needs an input of rank >= 1");
  auto axis = static_cast<std::size_t>(axis_of(in[0], attrs));
  auto b = attrs.i("begin"), e = attrs.i("end");
  if (b < 0 || e < b || e > in[0][axis])
    throw ShapeError(fmt::format("slice [{}, {}) is outside dimension {} of size {}", b, e, axis,
                                 in[0][axis]));
  Shape out = in[0];
  out[axis] = e - b;
  return out;
}

template <class T>
void slice_kernel(const KernelArgs<T>& a) {
  std::int64_t axis = axis_of(a.in_shapes[0], *a.attrs);
  auto p = split_at(a.in_shapes[0], axis);
  auto o = split_at(*a.out_shape, axis);
  std::int64_t begin = a.attrs->i("begin");
  for (std::int64_t r = 0; r < p.outer; ++r)
    std::memcpy(a.out + r * o.axis * o.inner, a.in[0] + (r * p.axis + begin) * p.inner,
                static_cast<std::size_t>(o.axis * o.inner) * sizeof(T));
}

Shape unslice_shape(std::span<const Shape> in, const Attrs& attrs) {
  Shape expect = in[1];
  if (expect.empty() || in[0].size() != expect.size()) throw ShapeError("ranks differ");
  auto axis = static_cast<std::size_t>(axis_of(in[1], attrs));
  auto b = attrs.i("begin");
  expect[axis] = in[0][axis];
  if (in[0] != expect || b < 0 || b + in[0][axis] > in[1][axis])
    throw ShapeError(fmt::format("g {} does not fit in {} at offset {} of axis {}",
                                 to_string(in[0]), to_string(in[1]), b, axis));
  return in[1];
}

template <class T>
void unslice_kernel(const KernelArgs<T>& a) {
  std::int64_t axis = axis_of(a.in_shapes[1], *a.attrs);
  auto p = split_at(a.in_shapes[0], axis);
  auto o = split_at(*a.out_shape, axis);
  std::int64_t begin = a.attrs->i("begin");
  std::fill(a.out, a.out + a.out_numel(), T(0));
  for (std::int64_t r = 0; r < p.outer; ++r)
    std::memcpy(a.out + (r * o.axis + begin) * o.inner, a.in[0] + r * p.axis * p.inner,
                static_cast<std::size_t>(p.axis * p.inner) * sizeof(T));
}

// The op with input 1 (`like`) read only for its shape.
OpDef with_like(OpDef op) {
  op.shape_only = {false, true};
  return op;
}

Attrs slice_attrs(std::int64_t axis, std::int64_t b, std::int64_t e) {
  return {{"axis", axis}, {"begin", b}, {"end", e}};
}

const OpRegistration registrations[] = {
    OpRegistration(with_attributes(identity_when_same_shape(make_op("reshape", "y = x with shape `shape` (one -1 inferred); same elements", 1,
                        reshape_shape, copy_kernel<float>, copy_kernel<double>,
                        [](const GradContext& c) { return R{reshape_like(c.grad, c.inputs[0], c.where)}; },
                        {{{{3, 4}}, {{"shape", Axes{2, -1}}}}, {{{2, 3, 2}}, {{"shape", Axes{12}}}}})), {{"shape", std::nullopt, true}})),
    // Conv features to rows for a dense layer, whatever the batch: reshape would need the
    // product of the other sizes spelled out, since B is already its one inferred size.
    OpRegistration(identity_when_same_shape(make_op("flatten", "y = x as rows: [N, d1, d2, ...] -> [N, d1 d2 ...]; same elements", 1,
                        [](std::span<const Shape> in, const Attrs&) {
                          if (in[0].empty()) throw ShapeError("flatten needs at least one dimension");
                          std::int64_t rest = 1;
                          for (std::size_t i = 1; i < in[0].size(); ++i) rest *= in[0][i];
                          return Shape{in[0][0], rest};
                        },
                        copy_kernel<float>, copy_kernel<double>,
                        [](const GradContext& c) { return R{reshape_like(c.grad, c.inputs[0], c.where)}; },
                        {{{{2, 3, 4}}}, {{{3, 1, 2, 2}}}, {{{4}}}}))),
    OpRegistration(identity_when_same_shape(with_like(make_op("reshape_like",
                        "y = x with the shape of `like`; same number of elements", 2,
                        reshape_like_shape, copy_kernel<float>, copy_kernel<double>,
                        [](const GradContext& c) {
                          return R{reshape_like(c.grad, c.inputs[0], c.where), Value()};
                        },
                        {{{{3, 4}, {2, 6}}}, {{{6}, {2, 3}}}}, {true, false})))),
    OpRegistration(make_op("transpose", "y[j, i] = x[i, j]; [M, N] -> [N, M]", 1,
                        [](std::span<const Shape> in, const Attrs&) {
                          if (in[0].size() != 2) throw ShapeError("transpose needs a 2-D input");
                          return Shape{in[0][1], in[0][0]};
                        },
                        transpose_kernel<float>, transpose_kernel<double>,
                        [](const GradContext& c) { return R{transpose(c.grad, c.where)}; },
                        {{{{3, 5}}}, {{{40, 33}}}})),
    OpRegistration(with_attributes(make_op("permute",
                        "y = x with its axes reordered: y's axis i is x's axis axes[i] (NumPy's transpose, PyTorch's permute); "
                        "[N, C, H, W] with axes [0, 2, 3, 1] -> [N, H, W, C]", 1,
                        permute_shape, permute_kernel<float>, permute_kernel<double>,
                        [](const GradContext& c) {
                          const auto rank = c.inputs[0].shape().size();
                          const Permutation perm = permutation(c.inputs[0].shape(), c.attrs);
                          Axes inverse(rank);
                          for (std::size_t j = 0; j < rank; ++j) inverse[static_cast<std::size_t>(perm[j])] = static_cast<std::int64_t>(j);
                          return R{permute(c.grad, inverse, c.where)};
                        },
                        {{{{2, 3, 4, 5}}, {{"axes", Axes{0, 2, 3, 1}}}}, {{{3, 4, 5}}, {{"axes", Axes{2, 0, 1}}}},
                         {{{3, 5}}, {{"axes", Axes{-1, 0}}}}, {{{2, 1, 3, 2}}, {{"axes", Axes{3, 1, 0, 2}}}}}),
        {{"axes", std::nullopt}})),
    OpRegistration(with_attributes(make_op("concat", "y = inputs joined along `axis`; other dimensions equal", -1,
                        concat_shape, concat_kernel<float>, concat_kernel<double>,
                        [](const GradContext& c) {
                          R grads;
                          for (std::size_t k = 0; k < c.inputs.size(); ++k)
                            grads.push_back(concat_part(c.grad, c.inputs, c.attrs.i("axis"),
                                                        static_cast<std::int64_t>(k), c.where));
                          return grads;
                        },
                        {{{{2, 3}, {2, 4}}, {{"axis", std::int64_t{1}}}},
                         {{{2, 3}, {1, 3}, {3, 3}}, {{"axis", std::int64_t{0}}}},
                         {{{2, 2, 3}, {2, 1, 3}}, {{"axis", std::int64_t{-2}}}}}), {{"axis", std::int64_t{0}}})),
    OpRegistration(with_attributes(with_like(make_op(
        "concat_part",
        "y = the part of g that concat(parts, axis) took from parts[index]: the gradient of concat",
        -1, concat_part_shape, concat_part_kernel<float>, concat_part_kernel<double>,
        [](const GradContext& c) {
          // Zeros for the other parts, the incoming gradient for this one, joined as concat did.
          std::vector<Value> parts;
          Value zero = c.grad.graph().scalar(0.0, c.where);
          auto index = static_cast<std::size_t>(c.attrs.i("index"));
          for (std::size_t k = 1; k < c.inputs.size(); ++k)
            parts.push_back(k - 1 == index ? c.grad : expand_like(zero, c.inputs[k], c.where));
          R grads(c.inputs.size());
          grads[0] = concat(parts, c.attrs.i("axis"), c.where);
          return grads;
        },
        {{{{2, 7}, {2, 3}, {2, 4}}, {{"axis", std::int64_t{1}}, {"index", std::int64_t{1}}}},
         {{{6, 3}, {2, 3}, {1, 3}, {3, 3}}, {{"axis", std::int64_t{0}}, {"index", std::int64_t{2}}}}},
        {true, false})), {{"axis", std::int64_t{0}}, {"index", std::nullopt}})),
    OpRegistration(with_attributes(make_op("slice", "y = x[begin:end] along `axis`", 1, slice_shape,
                        slice_kernel<float>, slice_kernel<double>,
                        [](const GradContext& c) {
                          return R{unslice_like(c.grad, c.inputs[0], c.attrs.i("axis"),
                                                c.attrs.i("begin"), c.where)};
                        },
                        {{{{4, 5}}, slice_attrs(1, 1, 4)}, {{{4, 5}}, slice_attrs(0, 2, 4)},
                         {{{2, 4, 3}}, slice_attrs(1, 0, 2)}}),
        {{"axis", std::int64_t{0}}, {"begin", std::nullopt}, {"end", std::nullopt}})),
    OpRegistration(with_attributes(with_like(make_op("unslice_like",
                        "y = zeros shaped like `like` with g at [begin, begin + len) along `axis`: "
                        "the gradient of slice",
                        2, unslice_shape, unslice_kernel<float>, unslice_kernel<double>,
                        [](const GradContext& c) {
                          auto axis = axis_of(c.inputs[1].shape(), c.attrs);
                          auto b = c.attrs.i("begin");
                          auto len = c.inputs[0].shape()[static_cast<std::size_t>(axis)];
                          return R{slice(c.grad, axis, b, b + len, c.where), Value()};
                        },
                        {{{{4, 2}, {4, 5}}, {{"axis", std::int64_t{1}}, {"begin", std::int64_t{2}}}}},
                        {true, false})), {{"axis", std::int64_t{0}}, {"begin", std::nullopt}})),
};

}  // namespace
}  // namespace ops

Value reshape(Value x, Shape shape, Loc at) {
  return x.graph().apply(ops::op("reshape"), {x}, {{"shape", Axes(shape.begin(), shape.end())}}, at);
}
Value flatten(Value x, Loc at) { return x.graph().apply(ops::op("flatten"), {x}, {}, at); }
Value reshape_like(Value x, Value like, Loc at) {
  return x.graph().apply(ops::op("reshape_like"), {x, like}, {}, at);
}
Value transpose(Value x, Loc at) { return x.graph().apply(ops::op("transpose"), {x}, {}, at); }
Value permute(Value x, Axes axes, Loc at) {
  return x.graph().apply(ops::op("permute"), {x}, {{"axes", std::move(axes)}}, at);
}
Value concat(const std::vector<Value>& xs, std::int64_t axis, Loc at) {
  if (xs.empty()) throw ShapeError("concat needs at least one input");
  return xs[0].graph().apply(ops::op("concat"), xs, {{"axis", axis}}, at);
}
Value concat_part(Value g, std::span<const Value> parts, std::int64_t axis, std::int64_t index,
                  Loc at) {
  std::vector<Value> inputs{g};
  inputs.insert(inputs.end(), parts.begin(), parts.end());
  return g.graph().apply(ops::op("concat_part"), inputs, {{"axis", axis}, {"index", index}}, at);
}
Value slice(Value x, std::int64_t axis, std::int64_t begin, std::int64_t end, Loc at) {
  return x.graph().apply(ops::op("slice"), {x}, ops::slice_attrs(axis, begin, end), at);
}
Value unslice_like(Value g, Value like, std::int64_t axis, std::int64_t begin, Loc at) {
  return g.graph().apply(ops::op("unslice_like"), {g, like}, {{"axis", axis}, {"begin", begin}}, at);
}

}  // namespace graphrun
