// Convolution, pooling and upsampling over images laid out NCHW: [batch, channels, height, width].
// Every window attribute is a pair [h, w], one value per spatial axis. Through the registry (graph
// files) the attributes are int lists named as the fields below; one value stands for both axes
// and a missing one takes the default shown.
//
//   Value h = relu(conv2d(x, w1, {.stride = {2, 2}, .padding = {1, 1}}) + b1);  // b1 [32, 1, 1]
//   Value y = conv_transpose2d(h, w2, {.stride = {2, 2}, .padding = {1, 1},
//                                      .output_padding = {1, 1}});
//
// A window of size k, stride s, padding p and dilation d over a length L gives
//   out(L) = floor((L + 2p - d (k - 1) - 1) / s) + 1        (conv2d, pooling with d = 1)
// and the transposed convolution turns L back into
//   in(L) = (L - 1) s - 2p + d (k - 1) + output_padding + 1.
#pragma once

#include <graphrun/graph/graph.hpp>

#include <array>
#include <cstdint>
#include <source_location>

namespace graphrun {

using Loc = std::source_location;
using Size2 = std::array<std::int64_t, 2>;  // [h, w]

struct Conv2dOptions {
  Size2 stride{1, 1};
  Size2 padding{0, 0};  // zeros added on both sides
  Size2 dilation{1, 1};
};

struct ConvTranspose2dOptions {
  Size2 stride{1, 1};
  Size2 padding{0, 0};
  Size2 output_padding{0, 0};  // added to one side of the output; each below its stride
  Size2 dilation{1, 1};
};

struct Pool2dOptions {
  Size2 kernel{2, 2};
  Size2 stride{0, 0};   // 0: the kernel size
  Size2 padding{0, 0};  // at most half the kernel
};

// ---- convolution (im2col + gemm over blocks of images; bias is a broadcast add) -----------------
// y[n, f, i, j] = sum_{c, a, b} w[f, c, a, b] x[n, c, i s_h - p_h + a d_h, j s_w - p_w + b d_w],
// x outside the image read as 0. x [N, C, H, W], w [F, C, kh, kw] -> [N, F, out(H), out(W)].
// It is a cross-correlation, as in PyTorch: w is not flipped.
Value conv2d(Value x, Value w, Conv2dOptions o = {}, Loc at = Loc::current());

// The adjoint of conv2d in x, PyTorch's ConvTranspose2d: each x[n, f, i, j] adds
// x w[f, c, :, :] to y[n, c, :, :] at rows i s_h - p_h + a d_h, columns j s_w - p_w + b d_w.
// x [N, F, H, W], w [F, C, kh, kw] (the weight layout of PyTorch: [in, out, kh, kw])
// -> [N, C, in(H), in(W)]. Its gradients are conv2d of dy and conv2d_weight_grad.
Value conv_transpose2d(Value x, Value w, ConvTranspose2dOptions o = {}, Loc at = Loc::current());

// conv_transpose2d with the output shaped like `like` [N, C, H, W], whose values are not read:
// the gradient of conv2d in x. Needs conv2d(like, w, o) to have x's shape. Taking the size from
// `like` keeps it right when a graph is compiled for another batch or image size.
Value conv_transpose2d_like(Value x, Value w, Value like, Conv2dOptions o = {},
                            Loc at = Loc::current());

// The gradient of sum(dy * conv2d(x, w, o)) in w, shaped like `like` (w; its values are not
// read): dw[f, c, a, b] = sum_{n, i, j} dy[n, f, i, j] x[n, c, i s_h - p_h + a d_h, j s_w - p_w + b d_w].
// x [N, C, H, W], dy [N, F, out(H), out(W)], like [F, C, kh, kw] -> like's shape.
Value conv2d_weight_grad(Value x, Value dy, Value like, Conv2dOptions o = {},
                         Loc at = Loc::current());

// ---- pooling and upsampling ---------------------------------------------------------------------
// y[n, c, i, j] = max over the window at (i s_h - p_h, j s_w - p_w) of size kernel; padding never
// wins. [N, C, H, W] -> [N, C, out(H), out(W)]. The gradient goes to the first maximum of each
// window in row-major order.
Value max_pool2d(Value x, Pool2dOptions o = {}, Loc at = Loc::current());
// The gradient of max_pool2d: zeros shaped like x, with g[n, c, i, j] added at the position of
// window (i, j)'s maximum in x. g [N, C, out(H), out(W)], x [N, C, H, W] -> x's shape.
Value max_pool2d_backward(Value g, Value x, Pool2dOptions o = {}, Loc at = Loc::current());
// g read at the position of each window's maximum in x: y[n, c, i, j] = g[n, c, argmax]. The
// gradient of max_pool2d_backward in g. g and x [N, C, H, W] -> [N, C, out(H), out(W)].
Value max_pool2d_select(Value g, Value x, Pool2dOptions o = {}, Loc at = Loc::current());

// y = the mean over each window, padding counted as zeros (divisor kh kw, PyTorch's
// count_include_pad). [N, C, H, W] -> [N, C, out(H), out(W)].
Value avg_pool2d(Value x, Pool2dOptions o = {}, Loc at = Loc::current());
// The gradient of avg_pool2d: g[n, c, i, j] / (kh kw) added over window (i, j) of a tensor shaped
// like `like` (values not read). g [N, C, out(H), out(W)], like [N, C, H, W] -> like's shape.
Value avg_pool2d_backward(Value g, Value like, Pool2dOptions o = {}, Loc at = Loc::current());

// y[n, c, i, j] = x[n, c, i / s_h, j / s_w]: [N, C, H, W] -> [N, C, H s_h, W s_w].
Value upsample_nearest2d(Value x, Size2 scale = {2, 2}, Loc at = Loc::current());

}  // namespace graphrun
