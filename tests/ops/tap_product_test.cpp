// Tap products against plain loops of std::fma in the documented order, bit for bit, on every
// vector path this build has; and the convolutions built on them, path against path.
#include <graphrun/graph/tensor.hpp>
#include <graphrun/ops/conv_kernels.hpp>
#include <graphrun/ops/ops.hpp>
#include <graphrun/ops/tap_product.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

namespace graphrun {
namespace {

using ops::TapIsa;

struct IsaGuard {
  bool taps = ops::conv_tap_products();
  ~IsaGuard() {
    ops::set_tap_isa(ops::tap_isas_built().back());
    ops::set_conv_tap_products(taps);
  }
};

std::vector<float> noise(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> out(n);
  for (float& v : out) v = u(gen);
  return out;
}

TEST_CASE("tap products are chains of fused multiply-adds in tap then row order", "[ops][conv][taps]") {
  IsaGuard guard;
  struct Case {
    std::int64_t m, n, k, taps;
  };
  // Rows and columns at, below and past the tiles of each path (8 x 48, 4 x 24, 4 x 24).
  for (Case c : {Case{8, 48, 5, 3}, Case{17, 100, 7, 4}, Case{3, 5, 1, 9}, Case{64, 675, 32, 2}, Case{1, 1, 1, 1}}) {
    const std::int64_t ldb = c.n + 37, a_row = c.k + 2, a_col = 1;
    auto a = noise(static_cast<std::size_t>(c.taps * c.m * a_row), 1);
    auto b = noise(static_cast<std::size_t>(c.k * ldb + c.taps * 11 + ops::kTapReadPast), 2);
    std::vector<const float*> ap, bp;
    for (std::int64_t t = 0; t < c.taps; ++t) {
      ap.push_back(a.data() + t * c.m * a_row);
      bp.push_back(b.data() + t * 11);  // overlapping operands, as a convolution's taps are
    }
    std::vector<float> want(static_cast<std::size_t>(c.m * c.n));
    for (std::int64_t i = 0; i < c.m; ++i)
      for (std::int64_t j = 0; j < c.n; ++j) {
        float acc = 0.0f;
        for (std::int64_t t = 0; t < c.taps; ++t)
          for (std::int64_t r = 0; r < c.k; ++r)
            acc = std::fma(ap[t][i * a_row + r * a_col], bp[t][r * ldb + j], acc);
        want[i * c.n + j] = acc;
      }
    for (TapIsa isa : ops::tap_isas_built()) {
      INFO(ops::tap_isa_name(isa) << " m " << c.m << " n " << c.n << " k " << c.k << " taps " << c.taps);
      ops::set_tap_isa(isa);
      std::vector<float> got(want.size(), 7.0f);
      ops::tap_product({c.m, c.n, c.k, c.taps, ap.data(), a_row, a_col, bp.data(), ldb, got.data(), c.n});
      CHECK(got == want);
    }
  }
}

TEST_CASE("row products read their rows in place and continue each chain when accumulating", "[ops][conv][taps]") {
  IsaGuard guard;
  // Columns of c: 64 and 32 take the wide tiles, 7 and 50 the default ones.
  for (std::int64_t n : {64, 32, 7, 50}) {
    const std::int64_t m = 13, k = 40;
    auto data = noise(static_cast<std::size_t>(m * 3 + k + 8), 3);
    auto b = noise(static_cast<std::size_t>(k * n + ops::kTapReadPast), 4);
    std::vector<const float*> rows;
    for (std::int64_t i = 0; i < m; ++i) rows.push_back(data.data() + i * 3);
    auto start = noise(static_cast<std::size_t>(m * n), 5);
    std::vector<float> want = start;
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t l = 0; l < k; ++l) want[i * n + j] = std::fma(rows[i][l], b[l * n + j], want[i * n + j]);
    for (TapIsa isa : ops::tap_isas_built()) {
      INFO(ops::tap_isa_name(isa) << " n " << n);
      ops::set_tap_isa(isa);
      std::vector<float> got = start;
      // Two calls over halves of k continue the same chains as one over all of it.
      ops::row_product(m, n, k / 2, rows.data(), b.data(), n, got.data(), n, true);
      std::vector<const float*> later;
      for (const float* r : rows) later.push_back(r + k / 2);
      ops::row_product(m, n, k - k / 2, later.data(), b.data() + (k / 2) * n, n, got.data(), n, true);
      CHECK(got == want);
      std::vector<float> fresh(want.size(), 7.0f);
      ops::row_product(m, n, 0, rows.data(), b.data(), n, fresh.data(), n, false);
      CHECK(fresh == std::vector<float>(want.size(), 0.0f));
    }
  }
  CHECK_THROWS_AS(ops::set_tap_isa(static_cast<TapIsa>(99)), std::invalid_argument);
}

// The convolutions give the same bits on every path, and agree with im2col and the sgemm
// library to float32 rounding.
TEST_CASE("float32 convolutions give the same bits on every vector path", "[ops][conv][taps]") {
  IsaGuard guard;
  struct Case {
    Shape x, w;
    Size2 stride, padding, dilation;
  };
  for (const Case& c : {Case{{6, 16, 14, 14}, {32, 16, 3, 3}, {2, 2}, {1, 1}, {1, 1}},
                        Case{{4, 9, 11, 8}, {12, 9, 3, 3}, {1, 1}, {1, 1}, {1, 1}},
                        Case{{3, 8, 10, 9}, {5, 8, 3, 2}, {2, 1}, {2, 0}, {1, 2}}}) {
    Attrs attrs{{"stride", Axes{c.stride[0], c.stride[1]}},
                {"padding", Axes{c.padding[0], c.padding[1]}},
                {"dilation", Axes{c.dilation[0], c.dilation[1]}}};
    const ops::ConvGeometry g = ops::conv_geometry(c.x, c.w, attrs);
    auto x = noise(static_cast<std::size_t>(g.n * g.image()), 6);
    auto w = noise(static_cast<std::size_t>(g.f * g.k()), 7);
    auto dy = noise(static_cast<std::size_t>(g.n * g.f * g.p()), 8);
    auto run = [&] {
      std::vector<float> y(dy.size()), dx(x.size()), dw(w.size());
      ops::conv2d_forward(g, x.data(), w.data(), y.data());
      ops::conv2d_backward_data(g, dy.data(), w.data(), dx.data());
      ops::conv2d_backward_weight(g, x.data(), dy.data(), dw.data());
      return std::vector<std::vector<float>>{y, dx, dw};
    };
    ops::set_conv_tap_products(false);
    const auto blas = run();
    ops::set_conv_tap_products(true);
    std::vector<std::vector<float>> first;
    for (TapIsa isa : ops::tap_isas_built()) {
      INFO(ops::tap_isa_name(isa) << " x " << to_string(c.x) << " w " << to_string(c.w));
      ops::set_tap_isa(isa);
      auto got = run();
      if (first.empty()) first = got;
      for (std::size_t o = 0; o < got.size(); ++o) {
        INFO("output " << o << " (y, dx, dw)");
        CHECK(got[o] == first[o]);
        for (std::size_t i = 0; i < got[o].size(); ++i)
          if (std::abs(got[o][i] - blas[o][i]) > 1e-4f * (1.0f + std::abs(blas[o][i]))) {
            FAIL_CHECK("element " << i << ": " << got[o][i] << " against " << blas[o][i]);
            break;
          }
      }
    }
  }
}

}  // namespace
}  // namespace graphrun
