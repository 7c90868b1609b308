// Max and average pooling, nearest upsampling, and the ops their gradients are written with. Each
// plane [n, c] is one task's, and its outputs are visited in row-major order: the same bits at any
// thread count.
#include <graphrun/ops/conv.hpp>
#include <graphrun/ops/conv_kernels.hpp>
#include <graphrun/ops/kernel_util.hpp>
#include <graphrun/ops/ops.hpp>

#include <algorithm>

namespace graphrun {
namespace ops {
namespace {

using R = std::vector<Value>;

struct PoolGeometry {
  std::int64_t planes = 0, h = 0, w = 0, oh = 0, ow = 0;
  Size2 kernel{2, 2}, stride{2, 2}, padding{0, 0};
  std::int64_t in_plane() const { return h * w; }
  std::int64_t out_plane() const { return oh * ow; }
};

// Geometry of a pooling over `x` [N, C, H, W]; a missing or zero stride is the kernel size.
PoolGeometry pool_geometry(const Shape& x, const Attrs& attrs) {
  PoolGeometry g;
  g.planes = x[0] * x[1], g.h = x[2], g.w = x[3];
  g.kernel = size2_attr(attrs, "kernel", {2, 2});
  g.stride = size2_attr(attrs, "stride", g.kernel);
  g.padding = size2_attr(attrs, "padding", {0, 0});
  for (int i = 0; i < 2; ++i)
    if (g.stride[i] == 0) g.stride[i] = g.kernel[i];
  g.oh = window_count(g.h, g.kernel[0], g.stride[0], g.padding[0], 1);
  g.ow = window_count(g.w, g.kernel[1], g.stride[1], g.padding[1], 1);
  return g;
}

Shape pool_shape(const Shape& x, const Attrs& attrs) {
  if (x.size() != 4) throw ShapeError(fmt::format("x must be 4-D [N, C, H, W], got {}", to_string(x)));
  PoolGeometry g = pool_geometry(x, attrs);
  for (int i = 0; i < 2; ++i) {
    // Half the kernel at most, so every window holds a real element (as PyTorch requires).
    if (g.kernel[i] < 1 || g.stride[i] < 1 || g.padding[i] < 0 || 2 * g.padding[i] > g.kernel[i])
      throw ShapeError("kernel and stride must be at least 1, padding in [0, kernel / 2]");
  }
  if (g.oh < 1 || g.ow < 1)
    throw ShapeError(fmt::format("a {}x{} window does not fit in the padded {}x{} image",
                                 g.kernel[0], g.kernel[1], g.h, g.w));
  return {x[0], x[1], g.oh, g.ow};
}

// body(plane) for every plane, a few planes per task.
template <class F>
void for_planes(const PoolGeometry& g, F body) {
  std::int64_t per_plane = std::max<std::int64_t>(1, g.in_plane() + g.out_plane());
  parallel_for(g.planes, std::max<std::int64_t>(1, kGrain / per_plane), [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t p = b; p < e; ++p) body(p);
  });
}

// The rows and columns of window (i, j) that lie inside the image.
struct Window {
  std::int64_t h0, h1, w0, w1;
};
Window window_at(const PoolGeometry& g, std::int64_t i, std::int64_t j) {
  std::int64_t h0 = i * g.stride[0] - g.padding[0], w0 = j * g.stride[1] - g.padding[1];
  return {std::max<std::int64_t>(h0, 0), std::min(h0 + g.kernel[0], g.h),
          std::max<std::int64_t>(w0, 0), std::min(w0 + g.kernel[1], g.w)};
}

// Index in the plane of window (i, j)'s first maximum, row-major.
template <class T>
std::int64_t argmax(const PoolGeometry& g, const T* x, std::int64_t i, std::int64_t j) {
  Window v = window_at(g, i, j);
  std::int64_t best = v.h0 * g.w + v.w0;
  for (std::int64_t a = v.h0; a < v.h1; ++a)
    for (std::int64_t b = v.w0; b < v.w1; ++b)
      if (x[a * g.w + b] > x[best]) best = a * g.w + b;
  return best;
}

// out[o] = values[argmax of x's window o]: max_pool2d (values = x) and max_pool2d_select.
template <class T>
void gather_max(const PoolGeometry& g, const T* values, const T* x, T* out) {
  for_planes(g, [&](std::int64_t p) {
    const T* xp = x + p * g.in_plane();
    const T* vp = values + p * g.in_plane();
    T* op = out + p * g.out_plane();
    for (std::int64_t i = 0; i < g.oh; ++i)
      for (std::int64_t j = 0; j < g.ow; ++j) op[i * g.ow + j] = vp[argmax(g, xp, i, j)];
  });
}

template <class T>
void max_pool_kernel(const KernelArgs<T>& a) {
  gather_max(pool_geometry(a.in_shapes[0], *a.attrs), a.in[0], a.in[0], a.out);
}

template <class T>
void max_select_kernel(const KernelArgs<T>& a) {
  gather_max(pool_geometry(a.in_shapes[1], *a.attrs), a.in[0], a.in[1], a.out);
}

template <class T>
void max_backward_kernel(const KernelArgs<T>& a) {
  PoolGeometry g = pool_geometry(a.in_shapes[1], *a.attrs);
  for_planes(g, [&](std::int64_t p) {
    const T* gp = a.in[0] + p * g.out_plane();
    const T* xp = a.in[1] + p * g.in_plane();
    T* dx = a.out + p * g.in_plane();
    std::fill(dx, dx + g.in_plane(), T(0));
    for (std::int64_t i = 0; i < g.oh; ++i)
      for (std::int64_t j = 0; j < g.ow; ++j) dx[argmax(g, xp, i, j)] += gp[i * g.ow + j];
  });
}

template <class T>
void avg_pool_kernel(const KernelArgs<T>& a) {
  PoolGeometry g = pool_geometry(a.in_shapes[0], *a.attrs);
  T count = static_cast<T>(g.kernel[0] * g.kernel[1]);
  for_planes(g, [&](std::int64_t p) {
    const T* xp = a.in[0] + p * g.in_plane();
    T* op = a.out + p * g.out_plane();
    for (std::int64_t i = 0; i < g.oh; ++i)
      for (std::int64_t j = 0; j < g.ow; ++j) {
        Window v = window_at(g, i, j);
        T acc = 0;
        for (std::int64_t r = v.h0; r < v.h1; ++r)
          for (std::int64_t c = v.w0; c < v.w1; ++c) acc += xp[r * g.w + c];
        op[i * g.ow + j] = acc / count;
      }
  });
}

template <class T>
void avg_backward_kernel(const KernelArgs<T>& a) {
  PoolGeometry g = pool_geometry(a.in_shapes[1], *a.attrs);
  T count = static_cast<T>(g.kernel[0] * g.kernel[1]);
  for_planes(g, [&](std::int64_t p) {
    const T* gp = a.in[0] + p * g.out_plane();
    T* dx = a.out + p * g.in_plane();
    std::fill(dx, dx + g.in_plane(), T(0));
    for (std::int64_t i = 0; i < g.oh; ++i)
      for (std::int64_t j = 0; j < g.ow; ++j) {
        Window v = window_at(g, i, j);
        T share = gp[i * g.ow + j] / count;
        for (std::int64_t r = v.h0; r < v.h1; ++r)
          for (std::int64_t c = v.w0; c < v.w1; ++c) dx[r * g.w + c] += share;
      }
  });
}

template <class T>
void upsample_kernel(const KernelArgs<T>& a) {
  const Shape& s = a.in_shapes[0];
  Size2 scale = size2_attr(*a.attrs, "scale", {2, 2});
  std::int64_t h = s[2], w = s[3], oh = h * scale[0], ow = w * scale[1];
  PoolGeometry g;
  g.planes = s[0] * s[1], g.h = h, g.w = w, g.oh = oh, g.ow = ow;
  for_planes(g, [&](std::int64_t p) {
    const T* xp = a.in[0] + p * h * w;
    T* yp = a.out + p * oh * ow;
    for (std::int64_t i = 0; i < oh; ++i) {
      const T* row = xp + (i / scale[0]) * w;
      for (std::int64_t j = 0; j < ow; ++j) yp[i * ow + j] = row[j / scale[1]];
    }
  });
}

Shape upsample_shape(std::span<const Shape> in, const Attrs& attrs) {
  const Shape& x = in[0];
  if (x.size() != 4) throw ShapeError(fmt::format("x must be 4-D [N, C, H, W], got {}", to_string(x)));
  Size2 s = size2_attr(attrs, "scale", {2, 2});
  if (s[0] < 1 || s[1] < 1) throw ShapeError("scale must be at least 1");
  return {x[0], x[1], x[2] * s[0], x[3] * s[1]};
}

// g must be the pooled shape of x (input `of`); the result has x's shape.
Shape pool_backward_shape(std::span<const Shape> in, const Attrs& attrs) {
  Shape pooled = pool_shape(in[1], attrs);
  if (in[0] != pooled)
    throw ShapeError(fmt::format("g {} is not the pooled shape {} of {}", to_string(in[0]),
                                 to_string(pooled), to_string(in[1])));
  return in[1];
}

Shape max_select_shape(std::span<const Shape> in, const Attrs& attrs) {
  if (in[0] != in[1])
    throw ShapeError(fmt::format("g {} and x {} must have the same shape", to_string(in[0]),
                                 to_string(in[1])));
  return pool_shape(in[1], attrs);
}

Pool2dOptions pool_options(const Attrs& a) {
  Size2 k = size2_attr(a, "kernel", {2, 2});
  return {k, size2_attr(a, "stride", k), size2_attr(a, "padding", {0, 0})};
}

Attrs pool_attrs(const Pool2dOptions& o) {
  Size2 s{o.stride[0] ? o.stride[0] : o.kernel[0], o.stride[1] ? o.stride[1] : o.kernel[1]};
  return {{"kernel", Axes{o.kernel[0], o.kernel[1]}}, {"stride", Axes{s[0], s[1]}},
          {"padding", Axes{o.padding[0], o.padding[1]}}};
}

// The same three windows for every pooling op: square, padded and overlapping, non-square.
// `shapes(x)` gives an op's input shapes for an image of shape x.
template <class F>
std::vector<GradSample> pool_samples(F shapes) {
  Pool2dOptions square{{2, 2}, {2, 2}, {0, 0}}, padded{{3, 3}, {2, 2}, {1, 1}},
      wide{{2, 3}, {1, 2}, {1, 1}};
  return {{shapes(Shape{2, 3, 5, 5}, square), pool_attrs(square)},
          {shapes(Shape{2, 2, 5, 6}, padded), pool_attrs(padded)},
          {shapes(Shape{2, 2, 4, 5}, wide), pool_attrs(wide)}};
}

std::vector<Shape> image(const Shape& x, const Pool2dOptions&) { return {x}; }
std::vector<Shape> pooled_and_image(const Shape& x, const Pool2dOptions& o) {
  return {pool_shape(x, pool_attrs(o)), x};
}
std::vector<Shape> image_twice(const Shape& x, const Pool2dOptions&) { return {x, x}; }

Attrs scale_attrs(Size2 s) { return {{"scale", Axes{s[0], s[1]}}}; }

const OpRegistration registrations[] = {
    OpRegistration(with_attributes(make_op(
        "max_pool2d",
        "y[n,c,i,j] = max of x over the window at (i s - p, j s - p) of size kernel; x [N,C,H,W] "
        "-> [N,C,(H+2p-kh)/s+1, ...]; kernel, stride (default kernel), padding [h, w]",
        1, [](std::span<const Shape> in, const Attrs& a) { return pool_shape(in[0], a); },
        max_pool_kernel<float>, max_pool_kernel<double>,
        [](const GradContext& c) {
          return R{max_pool2d_backward(c.grad, c.inputs[0], pool_options(c.attrs), c.where)};
        },
        pool_samples(image)), {{"kernel", Axes{2, 2}}, {"stride", Axes{}}, {"padding", Axes{0, 0}}})),
    OpRegistration(with_attributes(make_op(
        "max_pool2d_backward",
        "zeros shaped like x with g[n,c,i,j] added at the first maximum of x's window (i, j): the "
        "gradient of max_pool2d; g [N,C,oh,ow], x [N,C,H,W] -> x's shape",
        2, pool_backward_shape, max_backward_kernel<float>, max_backward_kernel<double>,
        [](const GradContext& c) {
          return R{max_pool2d_select(c.grad, c.inputs[1], pool_options(c.attrs), c.where), Value()};
        },
        pool_samples(pooled_and_image), {true, false}), {{"kernel", Axes{2, 2}}, {"stride", Axes{}}, {"padding", Axes{0, 0}}})),  // x picks positions: a step function
    OpRegistration(with_attributes(make_op(
        "max_pool2d_select",
        "y[n,c,i,j] = g at the first maximum of x's window (i, j): the gradient of "
        "max_pool2d_backward in g; g, x [N,C,H,W] -> [N,C,oh,ow]",
        2, max_select_shape, max_select_kernel<float>, max_select_kernel<double>,
        [](const GradContext& c) {
          return R{max_pool2d_backward(c.grad, c.inputs[1], pool_options(c.attrs), c.where), Value()};
        },
        pool_samples(image_twice), {true, false}), {{"kernel", Axes{2, 2}}, {"stride", Axes{}}, {"padding", Axes{0, 0}}})),
    OpRegistration(with_attributes(make_op(
        "avg_pool2d",
        "y[n,c,i,j] = sum of x over the window at (i s - p, j s - p) / (kh kw), padding counted as "
        "zeros; x [N,C,H,W] -> [N,C,(H+2p-kh)/s+1, ...]",
        1, [](std::span<const Shape> in, const Attrs& a) { return pool_shape(in[0], a); },
        avg_pool_kernel<float>, avg_pool_kernel<double>,
        [](const GradContext& c) {
          return R{avg_pool2d_backward(c.grad, c.inputs[0], pool_options(c.attrs), c.where)};
        },
        pool_samples(image)), {{"kernel", Axes{2, 2}}, {"stride", Axes{}}, {"padding", Axes{0, 0}}})),
    OpRegistration(with_attributes([] {
      OpDef d = make_op(
          "avg_pool2d_backward",
          "zeros shaped like `like` (values not read) with g[n,c,i,j] / (kh kw) added over window "
          "(i, j): the gradient of avg_pool2d; g [N,C,oh,ow], like [N,C,H,W] -> like's shape",
          2, pool_backward_shape, avg_backward_kernel<float>, avg_backward_kernel<double>,
          [](const GradContext& c) {
            return R{avg_pool2d(c.grad, pool_options(c.attrs), c.where), Value()};
          },
          pool_samples(pooled_and_image), {true, false});
      d.shape_only = {false, true};
      return d;
    }(), {{"kernel", Axes{2, 2}}, {"stride", Axes{}}, {"padding", Axes{0, 0}}})),
    OpRegistration(with_attributes(make_op(
        "upsample_nearest2d",
        "y[n,c,i,j] = x[n,c,i / s_h, j / s_w]; x [N,C,H,W] -> [N,C,H s_h,W s_w]; scale [h, w]", 1,
        upsample_shape, upsample_kernel<float>, upsample_kernel<double>,
        [](const GradContext& c) {
          // Each input's gradient sums its s_h x s_w block of g.
          Size2 s = size2_attr(c.attrs, "scale", {2, 2});
          Value mean = avg_pool2d(c.grad, {s, s, {0, 0}}, c.where);
          return R{mul(mean, c.grad.graph().scalar(static_cast<double>(s[0] * s[1]), c.where),
                       c.where)};
        },
        {{{{2, 3, 3, 4}}, scale_attrs({2, 2})},
         {{{2, 2, 2, 3}}, scale_attrs({3, 2})},
         {{{2, 1, 3, 2}}, scale_attrs({1, 2})}}), {{"scale", Axes{2, 2}}})),
};

}  // namespace
}  // namespace ops

Value max_pool2d(Value x, Pool2dOptions o, Loc at) {
  return x.graph().apply(ops::op("max_pool2d"), {x}, ops::pool_attrs(o), at);
}
Value max_pool2d_backward(Value g, Value x, Pool2dOptions o, Loc at) {
  return g.graph().apply(ops::op("max_pool2d_backward"), {g, x}, ops::pool_attrs(o), at);
}
Value max_pool2d_select(Value g, Value x, Pool2dOptions o, Loc at) {
  return g.graph().apply(ops::op("max_pool2d_select"), {g, x}, ops::pool_attrs(o), at);
}
Value avg_pool2d(Value x, Pool2dOptions o, Loc at) {
  return x.graph().apply(ops::op("avg_pool2d"), {x}, ops::pool_attrs(o), at);
}
Value avg_pool2d_backward(Value g, Value like, Pool2dOptions o, Loc at) {
  return g.graph().apply(ops::op("avg_pool2d_backward"), {g, like}, ops::pool_attrs(o), at);
}
Value upsample_nearest2d(Value x, Size2 scale, Loc at) {
  return x.graph().apply(ops::op("upsample_nearest2d"), {x}, ops::scale_attrs(scale), at);
}

}  // namespace graphrun
