// conv2d and its transpose, which are each other's gradient in the input, and the weight gradient
// they share. Sizes the gradients need come from `like` inputs, never from build-time attributes,
// so a graph compiled for another batch or image size stays right. Kernels: ops/conv_kernels.cpp.
#include <graphrun/ops/conv.hpp>
#include <graphrun/ops/conv_kernels.hpp>
#include <graphrun/ops/kernel_util.hpp>
#include <graphrun/ops/ops.hpp>

namespace graphrun {
namespace ops {
namespace {

using R = std::vector<Value>;

void check_images(const Shape& s, const char* what) {
  if (s.size() != 4)
    throw ShapeError(fmt::format("{} must be 4-D [N, C, H, W], got {}", what, to_string(s)));
}

void check_filters(const Shape& w) {
  if (w.size() != 4 || w[2] < 1 || w[3] < 1)
    throw ShapeError(fmt::format("w must be 4-D with a kernel of at least 1x1, got {}", to_string(w)));
}

void check_window(const Attrs& attrs) {
  Size2 s = size2_attr(attrs, "stride", {1, 1});
  Size2 p = size2_attr(attrs, "padding", {0, 0});
  Size2 d = size2_attr(attrs, "dilation", {1, 1});
  for (int i = 0; i < 2; ++i)
    if (s[i] < 1 || d[i] < 1 || p[i] < 0)
      throw ShapeError("stride and dilation must be at least 1 and padding at least 0");
}

Shape conv2d_out(const Shape& x, const Shape& w, const Attrs& attrs) {
  check_images(x, "x");
  check_filters(w);
  check_window(attrs);
  if (w[1] != x[1])
    throw ShapeError(fmt::format("x has {} channels but w {} expects {}", x[1], to_string(w), w[1]));
  ConvGeometry g = conv_geometry(x, w, attrs);
  if (g.oh < 1 || g.ow < 1)
    throw ShapeError(fmt::format("a {}x{} kernel does not fit in the padded {}x{} image", g.kh,
                                 g.kw, g.h, g.w));
  return {g.n, g.f, g.oh, g.ow};
}

Shape conv2d_shape(std::span<const Shape> in, const Attrs& attrs) {
  return conv2d_out(in[0], in[1], attrs);
}

Shape conv_transpose2d_shape(std::span<const Shape> in, const Attrs& attrs) {
  const Shape& x = in[0];
  const Shape& w = in[1];
  check_images(x, "x");
  check_filters(w);
  check_window(attrs);
  if (w[0] != x[1])
    throw ShapeError(fmt::format("x has {} channels but w {} expects {}", x[1], to_string(w), w[0]));
  Size2 s = size2_attr(attrs, "stride", {1, 1});
  Size2 p = size2_attr(attrs, "padding", {0, 0});
  Size2 d = size2_attr(attrs, "dilation", {1, 1});
  Size2 op = size2_attr(attrs, "output_padding", {0, 0});
  Shape out{x[0], w[1], 0, 0};
  for (std::size_t i = 0; i < 2; ++i) {
    // Below the stride, conv2d of the output gives x's size back: the gradient relies on it.
    if (op[i] < 0 || op[i] >= s[i])
      throw ShapeError(fmt::format("output_padding must be in [0, stride), got {} with stride {}",
                                   op[i], s[i]));
    out[i + 2] = (x[i + 2] - 1) * s[i] - 2 * p[i] + d[i] * (w[i + 2] - 1) + op[i] + 1;
    if (x[i + 2] < 1 || out[i + 2] < 1)
      throw ShapeError(fmt::format("the output would be {}x{}", out[2], out[3]));
  }
  return out;
}

// conv_transpose2d_like(x, w, like) and conv2d_weight_grad(x, dy, like): the output is `like`,
// and the forward convolution it undoes must match the other operand.
Shape conv_transpose2d_like_shape(std::span<const Shape> in, const Attrs& attrs) {
  Shape y = conv2d_out(in[2], in[1], attrs);
  if (y != in[0])
    throw ShapeError(fmt::format("conv2d of like {} by w {} is {}, not x's {}", to_string(in[2]),
                                 to_string(in[1]), to_string(y), to_string(in[0])));
  return in[2];
}

Shape conv2d_weight_grad_shape(std::span<const Shape> in, const Attrs& attrs) {
  Shape y = conv2d_out(in[0], in[2], attrs);
  if (y != in[1])
    throw ShapeError(fmt::format("conv2d of x {} by like {} is {}, not dy's {}", to_string(in[0]),
                                 to_string(in[2]), to_string(y), to_string(in[1])));
  return in[2];
}

template <class T>
void conv2d_kernel(const KernelArgs<T>& a) {
  conv2d_forward(conv_geometry(a.in_shapes[0], a.in_shapes[1], *a.attrs), a.in[0], a.in[1], a.out,
                 a.ready);
}

// Both transposed convolutions: the output is the image side.
template <class T>
void conv_transpose2d_kernel(const KernelArgs<T>& a) {
  conv2d_backward_data(conv_geometry(*a.out_shape, a.in_shapes[1], *a.attrs), a.in[0], a.in[1],
                       a.out, a.ready);
}

template <class T>
void conv2d_weight_grad_kernel(const KernelArgs<T>& a) {
  conv2d_backward_weight(conv_geometry(a.in_shapes[0], *a.out_shape, *a.attrs), a.in[0], a.in[1],
                         a.out);
}

Conv2dOptions conv_options(const Attrs& a) {
  return {size2_attr(a, "stride", {1, 1}), size2_attr(a, "padding", {0, 0}),
          size2_attr(a, "dilation", {1, 1})};
}

Axes axes(Size2 v) { return {v[0], v[1]}; }

Attrs conv_attrs(const Conv2dOptions& o) {
  return {{"stride", axes(o.stride)}, {"padding", axes(o.padding)}, {"dilation", axes(o.dilation)}};
}

Attrs window(Size2 s, Size2 p, Size2 d = {1, 1}) { return conv_attrs({s, p, d}); }

Attrs transpose_window(Size2 s, Size2 p, Size2 op, Size2 d = {1, 1}) {
  Attrs a = window(s, p, d);
  a.set("output_padding", axes(op));
  return a;
}

// y = conv_transpose(x, w) is linear in each: dx = conv2d(g, w), and <g, y> = <conv2d(g, w), x>
// is conv2d's bilinear form with g as the image, so dw = conv2d_weight_grad(g, x).
GradRule transpose_grad = [](const GradContext& c) {
  Conv2dOptions o = conv_options(c.attrs);
  Value x = c.inputs[0], w = c.inputs[1];
  R grads{conv2d(c.grad, w, o, c.where), conv2d_weight_grad(c.grad, x, w, o, c.where)};
  if (c.inputs.size() == 3) grads.push_back(Value());
  return grads;
};

OpDef with_like(OpDef op) {
  op.shape_only = {false, false, true};
  return op;
}

// The kernels report each block of images as it is finished, so a bias and an activation after
// them run on it while it is in cache (OpDef::reports_ready).
OpDef reporting_ready(OpDef op) {
  op.reports_ready = true;
  return op;
}

const OpRegistration registrations[] = {
    OpRegistration(reporting_ready(with_attributes(make_op(
        "conv2d",
        "y[n,f,i,j] = sum_{c,a,b} w[f,c,a,b] x[n,c, i s - p + a d, j s - p + b d] (zeros outside); "
        "x [N,C,H,W], w [F,C,kh,kw] -> [N,F,(H+2p-d(kh-1)-1)/s+1, ...]; stride, padding, "
        "dilation [h, w]",
        2, conv2d_shape, conv2d_kernel<float>, conv2d_kernel<double>,
        [](const GradContext& c) {
          Conv2dOptions o = conv_options(c.attrs);
          Value x = c.inputs[0], w = c.inputs[1];
          return R{conv_transpose2d_like(c.grad, w, x, o, c.where),
                   conv2d_weight_grad(x, c.grad, w, o, c.where)};
        },
        {{{{2, 3, 5, 5}, {4, 3, 3, 3}}, window({1, 1}, {0, 0})},
         {{{2, 2, 7, 6}, {3, 2, 3, 2}}, window({2, 2}, {1, 1})},
         {{{2, 2, 6, 7}, {3, 2, 2, 3}}, window({1, 2}, {0, 1}, {2, 1})},
         {{{2, 3, 5, 4}, {3, 3, 1, 1}}, window({2, 3}, {0, 0})},
         {{{2, 1, 6, 6}, {3, 1, 3, 3}}, window({1, 1}, {2, 2}, {2, 2})}}), {{"stride", Axes{1, 1}}, {"padding", Axes{0, 0}}, {"dilation", Axes{1, 1}}}))),
    OpRegistration(reporting_ready(with_attributes(make_op(
        "conv_transpose2d",
        "the adjoint of conv2d in x (PyTorch's ConvTranspose2d): x [N,F,H,W], w [F,C,kh,kw] -> "
        "[N,C,(H-1)s-2p+d(kh-1)+output_padding+1, ...]; output_padding below the stride",
        2, conv_transpose2d_shape, conv_transpose2d_kernel<float>, conv_transpose2d_kernel<double>,
        transpose_grad,
        {{{{2, 3, 3, 3}, {3, 2, 3, 3}}, transpose_window({2, 2}, {1, 1}, {1, 1})},
         {{{2, 3, 4, 3}, {3, 2, 2, 3}}, transpose_window({2, 1}, {0, 1}, {1, 0})},
         {{{2, 4, 3, 3}, {4, 1, 3, 3}}, transpose_window({1, 1}, {1, 1}, {0, 0}, {2, 2})},
         {{{2, 3, 2, 3}, {3, 2, 3, 3}}, transpose_window({3, 3}, {1, 1}, {2, 1})}}), {{"stride", Axes{1, 1}}, {"padding", Axes{0, 0}}, {"output_padding", Axes{0, 0}}, {"dilation", Axes{1, 1}}}))),
    OpRegistration(reporting_ready(with_attributes(with_like(make_op(
        "conv_transpose2d_like",
        "conv_transpose2d(x, w) shaped like `like` [N,C,H,W] (values not read): the gradient of "
        "conv2d in x; conv2d(like, w) must have x's shape",
        3, conv_transpose2d_like_shape, conv_transpose2d_kernel<float>,
        conv_transpose2d_kernel<double>, transpose_grad,
        {{{{2, 3, 4, 4}, {3, 2, 3, 2}, {2, 2, 7, 6}}, window({2, 2}, {1, 1})},
         {{{2, 4, 3, 3}, {4, 3, 3, 3}, {2, 3, 5, 5}}, window({1, 1}, {0, 0})},
         {{{2, 3, 4, 4}, {3, 2, 2, 3}, {2, 2, 6, 7}}, window({1, 2}, {0, 1}, {2, 1})}},
        {true, true, false})), {{"stride", Axes{1, 1}}, {"padding", Axes{0, 0}}, {"dilation", Axes{1, 1}}}))),
    OpRegistration(with_attributes(with_like(make_op(
        "conv2d_weight_grad",
        "dw[f,c,a,b] = sum_{n,i,j} dy[n,f,i,j] x[n,c, i s - p + a d, j s - p + b d]: the gradient "
        "of sum(dy * conv2d(x, w)) in w; x [N,C,H,W], dy [N,F,oh,ow], like (w) [F,C,kh,kw] -> like",
        3, conv2d_weight_grad_shape, conv2d_weight_grad_kernel<float>,
        conv2d_weight_grad_kernel<double>,
        [](const GradContext& c) {
          // dw is bilinear in (x, dy): <G, dw> = <dy, conv2d(x, G)> = <x, conv_transpose(dy, G)>.
          Conv2dOptions o = conv_options(c.attrs);
          Value x = c.inputs[0], dy = c.inputs[1];
          return R{conv_transpose2d_like(dy, c.grad, x, o, c.where), conv2d(x, c.grad, o, c.where),
                   Value()};
        },
        {{{{2, 2, 7, 6}, {2, 3, 4, 4}, {3, 2, 3, 2}}, window({2, 2}, {1, 1})},
         {{{2, 3, 5, 5}, {2, 4, 3, 3}, {4, 3, 3, 3}}, window({1, 1}, {0, 0})},
         {{{2, 2, 6, 7}, {2, 3, 4, 4}, {3, 2, 2, 3}}, window({1, 2}, {0, 1}, {2, 1})}},
        {true, true, false})), {{"stride", Axes{1, 1}}, {"padding", Axes{0, 0}}, {"dilation", Axes{1, 1}}})),
};

}  // namespace
}  // namespace ops

Value conv2d(Value x, Value w, Conv2dOptions o, Loc at) {
  return x.graph().apply(ops::op("conv2d"), {x, w}, ops::conv_attrs(o), at);
}

Value conv_transpose2d(Value x, Value w, ConvTranspose2dOptions o, Loc at) {
  return x.graph().apply(ops::op("conv_transpose2d"), {x, w},
                         ops::transpose_window(o.stride, o.padding, o.output_padding, o.dilation),
                         at);
}

Value conv_transpose2d_like(Value x, Value w, Value like, Conv2dOptions o, Loc at) {
  return x.graph().apply(ops::op("conv_transpose2d_like"), {x, w, like}, ops::conv_attrs(o), at);
}

Value conv2d_weight_grad(Value x, Value dy, Value like, Conv2dOptions o, Loc at) {
  return x.graph().apply(ops::op("conv2d_weight_grad"), {x, dy, like}, ops::conv_attrs(o), at);
}

}  // namespace graphrun
