// conv2d, its transpose and weight gradient, pooling and upsampling: values by hand, against
// direct loops on random data at many window settings, the adjoint identities the gradient rules
// rest on, and the same bits at 1 and 2 threads.
#include "graph/alloc_counter.hpp"
#include "graph/run_helpers.hpp"
#include "ops/sgemm_libraries.hpp"

#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/parallel.hpp>
#include <graphrun/ops/conv.hpp>
#include <graphrun/ops/conv_kernels.hpp>
#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>

#include <map>

#include <cmath>

namespace graphrun {
namespace {

using testing::make_tensor;
using testing::SgemmGuard;
using testing::run_values;

struct ThreadGuard {
  ~ThreadGuard() { set_num_threads(0); }
};

// Restores the build's choice of conv kernels when a test ends.
struct TapGuard {
  bool taps = ops::conv_tap_products();
  ~TapGuard() { ops::set_conv_tap_products(taps); }
};

Tensor random(const Shape& s, std::uint32_t stream) {
  return testing::random_tensor(s, {-1.0, 1.0}, stream, 21);
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

TEST_CASE("conv2d by hand: plain, strided and padded, dilated", "[ops][conv]") {
  // x = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], w = [[1, 2], [3, 4]]
  Graph g;
  Value x = g.input("x", {1, 1, 3, 3});
  Value w = g.input("w", {1, 1, 2, 2});
  ParameterStore v{{"x", make_tensor({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9})},
                   {"w", make_tensor({1, 1, 2, 2}, {1, 2, 3, 4})}};
  // y[0,0] = 1*1 + 2*2 + 4*3 + 5*4 = 37, then 2+6+15+24 = 47, 4+10+21+32 = 67, 5+12+24+36 = 77
  CHECK(run_values(g, conv2d(x, w), v) == std::vector<double>{37, 47, 67, 77});
  // Padding 1, stride 2: windows at rows/columns -1 and 1. (0,0) sees x[0,0] under w[1,1]: 4;
  // (0,1): 2*3 + 3*4 = 18; (1,0): 4*2 + 7*4 = 36; (1,1): 5*1 + 6*2 + 8*3 + 9*4 = 77
  CHECK(run_values(g, conv2d(x, w, {.stride = {2, 2}, .padding = {1, 1}}), v) ==
        std::vector<double>{4, 18, 36, 77});
  // Dilation 2: the corners, 1*1 + 3*2 + 7*3 + 9*4 = 64
  CHECK(run_values(g, conv2d(x, w, {.dilation = {2, 2}}), v) == std::vector<double>{64});
  CHECK(conv2d(x, w, {.stride = {2, 2}, .padding = {1, 1}}).shape() == Shape{1, 1, 2, 2});
}

TEST_CASE("conv_transpose2d by hand", "[ops][conv]") {
  // x = [[1, 2], [3, 4]], w = ones(2, 2)
  Graph g;
  Value x = g.input("x", {1, 1, 2, 2});
  Value w = g.input("w", {1, 1, 2, 2});
  ParameterStore v{{"x", make_tensor({1, 1, 2, 2}, {1, 2, 3, 4})},
                   {"w", make_tensor({1, 1, 2, 2}, {1, 1, 1, 1})}};
  // Stride 2: each x fills its own 2x2 block.
  CHECK(run_values(g, conv_transpose2d(x, w, {.stride = {2, 2}}), v) ==
        std::vector<double>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
  // Stride 1: overlapping blocks, the centre 1 + 2 + 3 + 4 = 10.
  CHECK(run_values(g, conv_transpose2d(x, w), v) == std::vector<double>{1, 3, 2, 4, 10, 6, 3, 7, 4});
  // Padding 1 crops one row and column on each side of the stride-1 result; output padding adds
  // them back on one side: [(2-1)*2 - 2 + 1 + 1 + 1] = 3 rows.
  CHECK(run_values(g, conv_transpose2d(x, w, {.stride = {2, 2}, .padding = {1, 1},
                                              .output_padding = {1, 1}}), v) ==
        std::vector<double>{1, 2, 2, 3, 4, 4, 3, 4, 4});
}

struct Config {
  Shape x, w;
  Size2 stride, padding, dilation;
};

// Direct loops in double: y[n,f,i,j] = sum w[f,c,a,b] x[n,c,i s - p + a d, j s - p + b d].
struct Direct {
  Config k;
  std::int64_t oh, ow;
  explicit Direct(const Config& c) : k(c) {
    oh = (c.x[2] + 2 * c.padding[0] - c.dilation[0] * (c.w[2] - 1) - 1) / c.stride[0] + 1;
    ow = (c.x[3] + 2 * c.padding[1] - c.dilation[1] * (c.w[3] - 1) - 1) / c.stride[1] + 1;
  }
  Shape y() const { return {k.x[0], k.w[0], oh, ow}; }
  // Calls f(x index, w index, y index) for every product the convolution sums.
  template <class F>
  void each(F f) const {
    auto [n, c, h, w] = std::array{k.x[0], k.x[1], k.x[2], k.x[3]};
    auto [fs, kh, kw] = std::array{k.w[0], k.w[2], k.w[3]};
    for (std::int64_t m = 0; m < n; ++m)
      for (std::int64_t o = 0; o < fs; ++o)
        for (std::int64_t i = 0; i < oh; ++i)
          for (std::int64_t j = 0; j < ow; ++j)
            for (std::int64_t ch = 0; ch < c; ++ch)
              for (std::int64_t a = 0; a < kh; ++a)
                for (std::int64_t b = 0; b < kw; ++b) {
                  std::int64_t r = i * k.stride[0] - k.padding[0] + a * k.dilation[0];
                  std::int64_t q = j * k.stride[1] - k.padding[1] + b * k.dilation[1];
                  if (r < 0 || r >= h || q < 0 || q >= w) continue;
                  f(((m * c + ch) * h + r) * w + q, ((o * c + ch) * kh + a) * kw + b,
                    ((m * fs + o) * oh + i) * ow + j);
                }
  }
};

std::vector<Config> configs() {
  return {
      {{5, 3, 7, 7}, {4, 3, 3, 3}, {1, 1}, {0, 0}, {1, 1}},
      {{20, 2, 9, 8}, {5, 2, 3, 3}, {2, 2}, {1, 1}, {1, 1}},    // blocks of 3 images
      {{11, 3, 10, 9}, {4, 3, 2, 3}, {1, 2}, {0, 1}, {2, 1}},   // non-square, dilated
      {{3, 1, 28, 28}, {32, 1, 3, 3}, {2, 2}, {1, 1}, {1, 1}},  // the conv VAE's first layer
      {{4, 1, 28, 28}, {9, 1, 3, 3}, {1, 1}, {1, 1}, {1, 1}},   // one channel at stride 1
      {{3, 1, 7, 19}, {5, 1, 2, 4}, {1, 1}, {2, 3}, {3, 1}},    // the same, padded past the kernel
      {{17, 4, 6, 5}, {3, 4, 1, 1}, {2, 3}, {0, 0}, {1, 1}},    // 1x1 kernel, uneven strides
      {{9, 2, 8, 8}, {3, 2, 3, 3}, {1, 1}, {2, 2}, {2, 2}},
      {{4, 2, 7, 12}, {2, 2, 5, 3}, {3, 2}, {2, 1}, {1, 3}},
      {{6, 2, 11, 10}, {3, 2, 3, 3}, {2, 2}, {1, 2}, {2, 3}},  // strided and dilated on both axes
      // Wide enough for every float32 tap product (ops/tap_product.hpp), with rows and columns
      // past their tiles' ends.
      {{5, 8, 9, 10}, {17, 8, 3, 3}, {2, 2}, {1, 1}, {1, 1}},
      {{3, 9, 7, 6}, {10, 9, 3, 2}, {1, 2}, {0, 1}, {2, 1}},
      // Many channels to few filters at stride 1 swap roles with the transposed convolution:
      // one filter, three dilated ones, a 5x5 kernel (its swapped forward on tap products), and a
      // padding past d (k - 1) on one axis, which does not swap.
      {{4, 32, 9, 8}, {1, 32, 3, 3}, {1, 1}, {1, 1}, {1, 1}},
      {{3, 12, 7, 9}, {3, 12, 3, 2}, {1, 1}, {2, 1}, {2, 1}},
      {{2, 16, 10, 9}, {3, 16, 5, 5}, {1, 1}, {2, 0}, {1, 1}},
      {{2, 6, 8, 8}, {2, 6, 3, 3}, {1, 1}, {3, 0}, {1, 1}},
  };
}

Attrs attrs_of(const Config& c) {
  return {{"stride", Axes{c.stride[0], c.stride[1]}}, {"padding", Axes{c.padding[0], c.padding[1]}},
          {"dilation", Axes{c.dilation[0], c.dilation[1]}}};
}

TEST_CASE("conv2d, its input and weight gradients match direct loops", "[ops][conv]") {
  for (const Config& c : configs()) {
    DYNAMIC_SECTION("x " << to_string(c.x) << " w " << to_string(c.w) << " " << attrs_of(c).to_string()) {
      Direct d(c);
      Tensor xv = random(c.x, 1), wv = random(c.w, 2), gv = random(d.y(), 3);
      const double* x = xv.data<double>();
      const double* w = wv.data<double>();
      const double* gy = gv.data<double>();
      std::vector<double> y(static_cast<std::size_t>(numel(d.y()))), dx(static_cast<std::size_t>(numel(c.x))),
          dw(static_cast<std::size_t>(numel(c.w)));
      d.each([&](std::int64_t ix, std::int64_t iw, std::int64_t iy) {
        y[static_cast<std::size_t>(iy)] += x[ix] * w[iw];
        dx[static_cast<std::size_t>(ix)] += gy[iy] * w[iw];
        dw[static_cast<std::size_t>(iw)] += gy[iy] * x[ix];
      });
      Graph g;
      Value xs = g.input("x", c.x), ws = g.input("w", c.w), gs = g.input("g", d.y());
      Conv2dOptions o{c.stride, c.padding, c.dilation};
      std::vector<Value> outs{conv2d(xs, ws, o), conv_transpose2d_like(gs, ws, xs, o),
                              conv2d_weight_grad(xs, gs, ws, o)};
      ParameterStore v{{"x", xv}, {"w", wv}, {"g", gv}};
      auto check = [&](DType t, double tol) {
        auto got = testing::run_graph(g, outs, v, t);
        testing::check_close(testing::to_vector(got[0]), y, tol);
        testing::check_close(testing::to_vector(got[1]), dx, tol);
        testing::check_close(testing::to_vector(got[2]), dw, tol);
      };
      check(DType::f64, 1e-12);
      SgemmGuard guard;
      TapGuard taps;
      for (bool tap_products : {false, true})
        for (SgemmLibrary library : testing::available_sgemm_libraries()) {
          INFO("float32 on " << (tap_products ? "tap products" : "im2col, products from ")
                             << (tap_products ? "" : sgemm_library_name(library)));
          ops::set_conv_tap_products(tap_products);
          set_sgemm_library(library);
          check(DType::f32, 1e-4);
        }
    }
  }
}

// <conv(x, w), y> = <x, conv_transpose(y, w)>, and the same pairing in w for the weight gradient:
// the identities the gradient rules are built on, at output paddings the gradient check's small
// samples do not reach.
TEST_CASE("conv_transpose2d is the adjoint of conv2d", "[ops][conv]") {
  struct Case {
    Shape x, w;
    ConvTranspose2dOptions o;
  };
  for (const Case& c : {Case{{6, 4, 7, 7}, {4, 3, 3, 3}, {{2, 2}, {1, 1}, {1, 1}, {1, 1}}},
                        Case{{3, 2, 5, 6}, {2, 5, 4, 3}, {{3, 2}, {1, 0}, {2, 1}, {1, 2}}},
                        Case{{9, 3, 4, 4}, {3, 1, 3, 3}, {{1, 1}, {1, 1}, {0, 0}, {1, 1}}}}) {
    DYNAMIC_SECTION("y " << to_string(c.x) << " w " << to_string(c.w)) {
      Graph g;
      Value y = g.input("y", c.x), w = g.input("w", c.w);
      Value t = conv_transpose2d(y, w, c.o);
      Conv2dOptions co{c.o.stride, c.o.padding, c.o.dilation};
      Value x = g.input("x", t.shape());
      Value v = g.input("v", c.w);
      REQUIRE(conv2d(x, w, co).shape() == c.x);
      ParameterStore vals{{"y", random(c.x, 4)}, {"w", random(c.w, 5)}, {"x", random(t.shape(), 6)},
                          {"v", random(c.w, 7)}};
      auto out = testing::run_graph(g, {t, conv2d(x, w, co), conv2d_weight_grad(x, y, w, co), conv2d(x, v, co)},
                                    vals, DType::f64);
      auto yv = testing::to_vector(vals.at("y")), xv = testing::to_vector(vals.at("x"));
      auto vv = testing::to_vector(vals.at("v"));
      double lhs = dot(testing::to_vector(out[1]), yv), rhs = dot(xv, testing::to_vector(out[0]));
      CHECK(lhs == Approx(rhs).epsilon(1e-12));
      // <conv2d_weight_grad(x, y), v> = <y, conv2d(x, v)>
      CHECK(dot(testing::to_vector(out[2]), vv) == Approx(dot(yv, testing::to_vector(out[3]))).epsilon(1e-12));
    }
  }
}

TEST_CASE("pooling and upsampling by hand", "[ops][pool]") {
  // x = 1..16 as 4x4: rows [1 2 3 4], [5 6 7 8], [9 10 11 12], [13 14 15 16]
  Graph g;
  Value x = g.input("x", {1, 1, 4, 4});
  std::vector<double> seq(16);
  for (int i = 0; i < 16; ++i) seq[static_cast<std::size_t>(i)] = i + 1;
  ParameterStore v{{"x", make_tensor({1, 1, 4, 4}, seq)}};
  // 2x2 windows: maxima 6, 8, 14, 16; means (1+2+5+6)/4 = 3.5, 5.5, 11.5, 13.5
  CHECK(run_values(g, max_pool2d(x), v) == std::vector<double>{6, 8, 14, 16});
  CHECK(run_values(g, avg_pool2d(x), v) == std::vector<double>{3.5, 5.5, 11.5, 13.5});
  // 3x3 windows, stride 2, padding 1: rows/columns [-1, 1] and [1, 3]. Maxima 6, 8, 14, 16;
  // the first mean (1+2+5+6)/9 counts the padding as zeros.
  Pool2dOptions padded{{3, 3}, {2, 2}, {1, 1}};
  CHECK(run_values(g, max_pool2d(x, padded), v) == std::vector<double>{6, 8, 14, 16});
  CHECK(run_values(g, avg_pool2d(x, padded), v)[0] == Approx(14.0 / 9));
  // The backward of max_pool2d sends each g to its window's maximum.
  Value gp = g.input("g", {1, 1, 2, 2});
  v.emplace("g", make_tensor({1, 1, 2, 2}, {10, 20, 30, 40}));
  CHECK(run_values(g, max_pool2d_backward(gp, x), v) ==
        std::vector<double>{0, 0, 0, 0, 0, 10, 0, 20, 0, 0, 0, 0, 0, 30, 0, 40});
  // avg's spreads g / 4 over each window.
  CHECK(run_values(g, avg_pool2d_backward(gp, x), v) ==
        std::vector<double>{2.5, 2.5, 5, 5, 2.5, 2.5, 5, 5, 7.5, 7.5, 10, 10, 7.5, 7.5, 10, 10});
  // select reads x's argmax positions out of another tensor: here x itself reversed, 17 - x.
  Value r = g.input("r", {1, 1, 4, 4});
  std::vector<double> rev(16);
  for (int i = 0; i < 16; ++i) rev[static_cast<std::size_t>(i)] = 16 - i;
  v.emplace("r", make_tensor({1, 1, 4, 4}, rev));
  CHECK(run_values(g, max_pool2d_select(r, x), v) == std::vector<double>{11, 9, 3, 1});
  // Ties go to the first maximum in row-major order.
  Value ties = g.input("t", {1, 1, 2, 2});
  v.emplace("t", make_tensor({1, 1, 2, 2}, {1, 1, 1, 1}));
  Value one = g.input("one", {1, 1, 1, 1});
  v.emplace("one", make_tensor({1, 1, 1, 1}, {5}));
  CHECK(run_values(g, max_pool2d_backward(one, ties), v) == std::vector<double>{5, 0, 0, 0});
  // Upsampling [[1, 2], [3, 4]] by [1, 2] repeats each column twice.
  CHECK(run_values(g, upsample_nearest2d(gp, {1, 2}), v) == std::vector<double>{10, 10, 20, 20, 30, 30, 40, 40});
  CHECK(upsample_nearest2d(gp, {3, 2}).shape() == Shape{1, 1, 6, 4});
}

TEST_CASE("conv and pool shape errors name the problem", "[ops][conv]") {
  Graph g;
  Value x = g.input("x", {2, 3, 8, 8});
  CHECK_THROWS_WITH(conv2d(x, g.input("w", {4, 2, 3, 3})), Catch::Contains("x has 3 channels"));
  CHECK_THROWS_WITH(conv2d(x, g.input("w9", {4, 3, 9, 9})), Catch::Contains("does not fit"));
  CHECK_THROWS_WITH(conv2d(g.input("flat", {2, 192}), g.input("w1", {4, 3, 3, 3})),
                    Catch::Contains("4-D"));
  CHECK_THROWS_WITH(conv_transpose2d(x, g.input("wt", {3, 2, 3, 3}), {.stride = {2, 2}, .output_padding = {2, 0}}),
                    Catch::Contains("output_padding must be in [0, stride)"));
  CHECK_THROWS_WITH(max_pool2d(x, {{2, 2}, {2, 2}, {2, 2}}), Catch::Contains("padding in [0, kernel / 2]"));
  CHECK_THROWS_WITH(conv2d_weight_grad(x, g.input("dy", {2, 4, 5, 5}), g.input("w2", {4, 3, 3, 3})),
                    Catch::Contains("not dy's"));
}

// A conv autoencoder's step in float32: conv, pool, upsample, transposed conv, and every gradient.
struct ConvStep {
  Graph g;
  std::vector<Value> outputs;
  ParameterStore values;
  explicit ConvStep(std::int64_t n) {
    Value x = g.input("x", {n, 2, 12, 12});
    Value w1 = g.input("w1", {8, 2, 3, 3}), w2 = g.input("w2", {8, 2, 3, 3});
    Value h = relu(conv2d(x, w1, {.stride = {2, 2}, .padding = {1, 1}}));  // [n, 8, 6, 6]
    Value p = avg_pool2d(max_pool2d(h, {{2, 2}, {1, 1}, {1, 1}}), {{2, 2}, {0, 0}, {0, 0}});
    Value u = upsample_nearest2d(p, {2, 2});  // [n, 8, 6, 6]
    Value y = conv_transpose2d(u, w2, {.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 1}});
    // Wide enough (16 channels out of a 12x12 plane) to go by phases (ops/conv_kernels.hpp).
    Value w3 = g.input("w3", {2, 16, 3, 3});
    Value z = conv_transpose2d(x, w3, {.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 1}});
    Value loss = sum(square(y - x * 0.5)) + sum(square(z)) * 0.25;
    outputs = {y, z};
    for (Value d : grad(loss, {x, w1, w2, w3})) outputs.push_back(d);
    values = {{"x", random({n, 2, 12, 12}, 8)}, {"w1", random({8, 2, 3, 3}, 9)},
              {"w2", random({8, 2, 3, 3}, 10)}, {"w3", random({2, 16, 3, 3}, 11)}};
  }
};

// Calls f(pixel, column) for each (image m < count, channel in [c0, c), tap, output) whose input
// pixel lies inside the image, in tap order: pixel indexes `count` images, column the column
// matrix of channels [c0, c) (ops/conv_kernels.hpp).
template <class F>
void each_tap(const ops::ConvGeometry& g, std::int64_t count, std::int64_t c0, F f) {
  const std::int64_t ld = count * g.p();
  for (std::int64_t m = 0; m < count; ++m)
    for (std::int64_t ch = c0; ch < g.c; ++ch)
      for (std::int64_t a = 0; a < g.kh; ++a)
        for (std::int64_t b = 0; b < g.kw; ++b)
          for (std::int64_t i = 0; i < g.oh; ++i)
            for (std::int64_t j = 0; j < g.ow; ++j) {
              std::int64_t r = i * g.stride[0] - g.padding[0] + a * g.dilation[0];
              std::int64_t q = j * g.stride[1] - g.padding[1] + b * g.dilation[1];
              if (r < 0 || r >= g.h || q < 0 || q >= g.w) continue;
              f(static_cast<std::size_t>(((m * g.c + ch) * g.h + r) * g.w + q),
                static_cast<std::size_t>((((ch - c0) * g.kh + a) * g.kw + b) * ld + m * g.p() + i * g.ow + j));
            }
}

// Exact, not close: im2col is a gather, and col2im must give each pixel its taps in tap order,
// the bits of a plain scatter-add (what keeps the input gradient independent of how it is
// blocked). Checked bit for bit so a faster rewrite cannot change the order unnoticed.
TEST_CASE("im2col and col2im give the bits of a gather and of a scatter-add in tap order", "[ops][conv]") {
  for (const Config& c : configs()) {
    DYNAMIC_SECTION("x " << to_string(c.x) << " w " << to_string(c.w) << " " << attrs_of(c).to_string()) {
      ops::ConvGeometry g = ops::conv_geometry(c.x, c.w, attrs_of(c));
      const std::int64_t count = 3, ld = count * g.p();
      Tensor colv = testing::random_tensor({g.k(), ld}, {-1.0, 1.0}, 4, 21).to(DType::f32);
      const float* col = colv.data<float>();
      std::vector<float> want(static_cast<std::size_t>(count * g.image())), got(want.size(), 7.0f);
      each_tap(g, count, 0, [&](std::size_t pixel, std::size_t column) { want[pixel] += col[column]; });
      ops::col2im(g, col, count, got.data());
      CHECK(got == want);

      // im2col of channels [1, c) of the images just made, against the same loops gathering.
      const std::int64_t c0 = std::min<std::int64_t>(1, g.c - 1);
      std::vector<float> gathered(static_cast<std::size_t>((g.c - c0) * g.kh * g.kw * ld), 5.0f),
          expected(gathered.size(), 0.0f);
      each_tap(g, count, c0, [&](std::size_t pixel, std::size_t column) { expected[column] = want[pixel]; });
      ops::im2col(g, want.data(), count, c0, g.c, gathered.data());
      CHECK(gathered == expected);
    }
  }
}

// The kernel picks the phases only for wide layers on large planes; here it is made to take them
// at every setting, strides 1 to 3, dilations, odd sizes, against the direct loops.
TEST_CASE("the transposed convolution by phases matches direct loops", "[ops][conv]") {
  for (const Config& c : configs()) {
    DYNAMIC_SECTION("x " << to_string(c.x) << " w " << to_string(c.w) << " " << attrs_of(c).to_string()) {
      Direct d(c);
      ops::ConvGeometry g = ops::conv_geometry(c.x, c.w, attrs_of(c));
      Tensor wv = random(c.w, 2), gv = random(d.y(), 3);
      const double* w = wv.data<double>();
      const double* gy = gv.data<double>();
      std::vector<double> want(static_cast<std::size_t>(numel(c.x)));
      d.each([&](std::int64_t ix, std::int64_t iw, std::int64_t iy) {
        want[static_cast<std::size_t>(ix)] += gy[iy] * w[iw];
      });
      std::vector<double> got(want.size(), 7.0);
      ops::conv2d_backward_data_by_phases(g, gy, w, got.data());
      testing::check_close(got, want, 1e-12);
      // float32 through each sgemm library, as the dispatch would run it.
      SgemmGuard guard;
      for (SgemmLibrary library : testing::available_sgemm_libraries()) {
        INFO("float32 products from " << sgemm_library_name(library));
        set_sgemm_library(library);
        Tensor wf = wv.to(DType::f32), gf = gv.to(DType::f32);
        std::vector<float> out(want.size(), 7.0f);
        ops::conv2d_backward_data_by_phases(g, gf.data<float>(), wf.data<float>(), out.data());
        testing::check_close(std::vector<double>(out.begin(), out.end()), want, 1e-4);
      }
    }
  }
  // The shapes the kernel sends by phases: the conv VAE's widest transposed convolution.
  CHECK(ops::transpose_by_phases(ops::conv_geometry({2, 32, 28, 28}, {64, 32, 3, 3},
                                                    attrs_of({{}, {}, {2, 2}, {1, 1}, {1, 1}}))));
  CHECK(ops::transpose_by_phases(ops::conv_geometry({5, 16, 24, 24}, {2, 16, 3, 3},  // ConvStep's z
                                                    attrs_of({{}, {}, {2, 2}, {1, 1}, {1, 1}}))));
  CHECK_FALSE(ops::transpose_by_phases(ops::conv_geometry({2, 64, 14, 14}, {64, 64, 3, 3},
                                                          attrs_of({{}, {}, {2, 2}, {1, 1}, {1, 1}}))));
}

TEST_CASE("conv ops give the same bits at 1 and 2 threads", "[ops][conv]") {
  ThreadGuard guard;
  SgemmGuard sgemm;
  TapGuard taps;
  ConvStep step(37);  // blocks of 5 images, the last of 2
  for (bool tap_products : {false, true})
  for (SgemmLibrary library : testing::available_sgemm_libraries()) {
    INFO("float32 " << (tap_products ? "tap products" : "im2col") << ", products from " << sgemm_library_name(library));
    ops::set_conv_tap_products(tap_products);
    set_sgemm_library(library);
    std::vector<std::vector<double>> first;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      auto out = testing::run_graph(step.g, step.outputs, step.values, DType::f32);
      std::vector<std::vector<double>> now;
      for (const Tensor& t : out) now.push_back(testing::to_vector(t));
      if (first.empty()) first = now;
      else for (std::size_t i = 0; i < now.size(); ++i) CHECK(now[i] == first[i]);
    }
  }
}

// The float32 weight gradient sums a block's positions row by row across its images, so its bits
// follow the blocks: at the conv VAE's widths the scratch budget sets them (the small layers
// above are cut into the fewest blocks whatever the threads), and it must not follow the channel
// group each thread owns.
TEST_CASE("the weight gradient gives the same bits at 1 and 2 threads where blocks fill the scratch", "[ops][conv]") {
  ThreadGuard guard;
  TapGuard taps;
  const Shape xs{128, 64, 14, 14}, ws{64, 64, 3, 3};
  const Attrs attrs{{"stride", Axes{2, 2}}, {"padding", Axes{1, 1}}};
  const ops::ConvGeometry g = ops::conv_geometry(xs, ws, attrs);
  auto values = [](std::int64_t n, std::uint32_t stream) {
    Tensor t = random({n}, stream);
    std::vector<float> out(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(t.data<double>()[i]);
    return out;
  };
  const auto x = values(g.n * g.image(), 1), dy = values(g.n * g.f * g.p(), 2);
  for (bool tap_products : {false, true}) {
    INFO((tap_products ? "tap products" : "im2col"));
    ops::set_conv_tap_products(tap_products);
    std::vector<float> first;
    for (int threads : {1, 2}) {
      set_num_threads(threads);
      std::vector<float> dw(static_cast<std::size_t>(g.f * g.k()));
      ops::conv2d_backward_weight(g, x.data(), dy.data(), dw.data());
      if (first.empty()) first = dw;
      else CHECK(dw == first);
    }
  }
}

TEST_CASE("a conv training step allocates nothing once warm", "[ops][conv][alloc]") {
  ThreadGuard guard;
  ConvStep step(64);
  set_num_threads(2);
  ShapeMap shapes;
  for (const auto& [name, t] : step.values) shapes[name] = t.shape();
  Program p = compile_program(step.g, step.outputs, shapes, {DType::f32, false});
  // Bound tensors are viewed, not owned: the float32 copies live as long as the program runs.
  std::map<std::string, Tensor> bound;
  for (const auto& [name, t] : step.values) p.bind(name, bound[name] = t.to(DType::f32));
  // Scratch is per thread, grown to the largest layer the first time a thread runs a block after it.
  for (std::uint64_t s = 0; s < 8; ++s) p.run({true, 1, s});
  testing::allocations = 0;
  testing::counting = true;
  for (std::uint64_t s = 8; s < 13; ++s) p.run({true, 1, s});
  testing::counting = false;
  CHECK(testing::allocations.load() == 0);
}

}  // namespace
}  // namespace graphrun
