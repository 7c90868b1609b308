// Window geometry and the convolution kernels behind ops/conv.cpp and ops/pool.cpp. Internal to
// ops/, installed like kernel_util.hpp.
#pragma once

#include <graphrun/graph/attrs.hpp>
#include <graphrun/graph/op.hpp>
#include <graphrun/graph/tensor.hpp>
#include <graphrun/ops/conv.hpp>

#include <cstdint>
#include <string_view>

namespace graphrun::ops {

// A window attribute: [h, w], or one value for both; `fallback` when absent. Throws ShapeError
// for another length. Allocates nothing, so kernels read it on every run.
Size2 size2_attr(const Attrs& attrs, std::string_view key, Size2 fallback);

// Output length of a window of size k, stride s, padding p, dilation d over length n; 0 when it
// does not fit.
inline std::int64_t window_count(std::int64_t n, std::int64_t k, std::int64_t s, std::int64_t p,
                                 std::int64_t d) {
  std::int64_t span = n + 2 * p - d * (k - 1) - 1;
  return span < 0 ? 0 : span / s + 1;
}

// One convolution seen from its image side: conv2d reads the image and writes the output, a
// transposed convolution reads the output side and writes the image.
struct ConvGeometry {
  std::int64_t n = 0, c = 0, h = 0, w = 0;  // images [n, c, h, w]
  std::int64_t f = 0, kh = 0, kw = 0;       // filters [f, c, kh, kw]
  std::int64_t oh = 0, ow = 0;              // output side [n, f, oh, ow]
  Size2 stride{1, 1}, padding{0, 0}, dilation{1, 1};

  std::int64_t k() const { return c * kh * kw; }  // rows of the column matrix
  std::int64_t p() const { return oh * ow; }      // output positions per image
  std::int64_t image() const { return c * h * w; }
};

// The geometry of conv2d over `image` [N, C, H, W] with `weight` [F, C, kh, kw] and the stride,
// padding and dilation attributes; shapes are not checked here (the shape rules do).
ConvGeometry conv_geometry(const Shape& image, const Shape& weight, const Attrs& attrs);

// Rows of channels [c0, c1) of the column matrix of `count` images starting at x:
// col[(c - c0, a, b), m p + i ow + j] = x[m, c, i s - p + a d, j s - p + b d], 0 outside.
template <class T>
void im2col(const ConvGeometry& g, const T* x, std::int64_t count, std::int64_t c0,
            std::int64_t c1, T* col);
// Its adjoint over all channels: the column matrix scatter-added into `count` images, which it
// overwrites.
template <class T>
void col2im(const ConvGeometry& g, const T* col, std::int64_t count, T* x);

// Whether conv2d_backward_data goes by phases (below) rather than a product and col2im.
bool transpose_by_phases(const ConvGeometry& g);
// conv2d_backward_data without col2im, for any geometry: along an axis of stride s the image
// splits into s phases of rows, each reached by its own subset of the kernel's taps, so each
// phase is a stride-1 convolution of dy whose product sums every pixel's taps at once.
template <class T>
void conv2d_backward_data_by_phases(const ConvGeometry& g, const T* dy, const T* w, T* dx,
                                    const ReadyCallback& ready = {});

// Whether float32 convolutions run on tap products (ops/tap_product.hpp; the default in builds
// with AVX-512) rather than im2col and the sgemm library; process-wide, for benchmarks and tests
// to compare the two.
void set_conv_tap_products(bool on);
bool conv_tap_products();

// y = conv2d(x, w): x [n, c, h, w], w [f, k], y [n, f, p]. Both report each block of images of
// their output to `ready` as soon as it is final (OpDef::reports_ready).
template <class T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, T* y, const ReadyCallback& ready = {});
// dx = the transposed convolution of dy: dy [n, f, p], w [f, k], dx [n, c, h, w].
template <class T>
void conv2d_backward_data(const ConvGeometry& g, const T* dy, const T* w, T* dx,
                          const ReadyCallback& ready = {});
// dw = sum over images of dy_n col(x_n)^T: x [n, c, h, w], dy [n, f, p], dw [f, k].
template <class T>
void conv2d_backward_weight(const ConvGeometry& g, const T* x, const T* dy, T* dw);

}  // namespace graphrun::ops
