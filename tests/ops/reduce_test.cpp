// Reductions and their inverses by hand, and the sparsity penalties.
#include "graph/run_helpers.hpp"

#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>

#include <cmath>

namespace graphrun {
namespace {

using testing::check_close;
using testing::make_tensor;
using testing::run_values;

// x = [[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]], shape [2, 2, 3]
struct Cube {
  Graph g;
  Value x = g.input("x", {2, 2, 3});
  ParameterStore v{{"x", make_tensor({2, 2, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})}};
  std::vector<double> run(Value y) { return run_values(g, y, v); }
};

TEST_CASE("sum over various axes", "[ops][reduce]") {
  Cube c;
  CHECK(c.run(sum(c.x)) == std::vector<double>{78});  // 12 * 13 / 2
  CHECK(sum(c.x).shape() == Shape{});
  // axis 0: [[1+7, 2+8, 3+9], [4+10, 5+11, 6+12]]
  CHECK(c.run(sum(c.x, {0})) == std::vector<double>{8, 10, 12, 14, 16, 18});
  // axis 1: [[1+4, 2+5, 3+6], [7+10, 8+11, 9+12]]
  CHECK(c.run(sum(c.x, {1})) == std::vector<double>{5, 7, 9, 17, 19, 21});
  // axis 2 (and -1): row sums [6, 15, 24, 33]
  CHECK(c.run(sum(c.x, {2})) == std::vector<double>{6, 15, 24, 33});
  CHECK(c.run(sum(c.x, {-1})) == std::vector<double>{6, 15, 24, 33});
  // axes 0 and 2: [6 + 24, 15 + 33]
  CHECK(c.run(sum(c.x, {0, 2})) == std::vector<double>{30, 48});
  // axes 1 and 2 with keepdims: [[[21]], [[57]]]
  Value k = sum(c.x, {1, 2}, true);
  CHECK(k.shape() == Shape{2, 1, 1});
  CHECK(c.run(k) == std::vector<double>{21, 57});
  CHECK(sum(c.x, {0}, true).shape() == Shape{1, 2, 3});
  CHECK(sum(c.x, {}, true).shape() == Shape{1, 1, 1});
}

TEST_CASE("mean over various axes", "[ops][reduce]") {
  Cube c;
  CHECK(c.run(mean(c.x)) == std::vector<double>{6.5});  // 78 / 12
  check_close(c.run(mean(c.x, {0})), {4, 5, 6, 7, 8, 9});
  check_close(c.run(mean(c.x, {2}, true)), {2, 5, 8, 11});
  check_close(c.run(mean(c.x, {0, 1})), {5.5, 6.5, 7.5});  // (1+4+7+10)/4, ...
}

TEST_CASE("a rank-4 reduction over inner axes", "[ops][reduce]") {
  Graph g;
  Value x = g.input("x", {2, 2, 2, 2});
  std::vector<double> xs(16);
  for (std::size_t i = 0; i < 16; ++i) xs[i] = static_cast<double>(i);
  // axes 1 and 3: out[a, c] = sum_{b, d} x[a, b, c, d] = sum of 8a + 4b + 2c + d
  // = 4 (8a + 2c) + 2 * 4 + 2 * 1 = 32a + 8c + 10
  auto got = run_values(g, sum(x, {1, 3}), {{"x", make_tensor({2, 2, 2, 2}, xs)}});
  CHECK(got == std::vector<double>{10, 18, 42, 50});
}

TEST_CASE("a column sum over many rows (the bias gradient)", "[ops][reduce]") {
  Graph g;
  const std::int64_t rows = 513, cols = 70;
  Value x = g.input("x", {rows, cols});
  Tensor xv(DType::f32, {rows, cols});
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < cols; ++j) xv.data<float>()[r * cols + j] = static_cast<float>(r % 5 + j);
  auto got = run_values(g, sum(x, {0}), {{"x", xv}});
  // sum_r (r % 5 + j) = (513 rows: 102 full cycles of 0..4 = 1020, plus 0, 1, 2) + 513 j
  for (std::int64_t j = 0; j < cols; ++j)
    CHECK(got[static_cast<std::size_t>(j)] == static_cast<double>(1020 + 3 + 513 * j));
}

TEST_CASE("a conv bias gradient: [N, F, H, W] summed to [1, F, 1, 1]", "[ops][reduce]") {
  Graph g;
  const std::int64_t n = 3, f = 5, hw = 4 * 6;
  Value x = g.input("x", {n, f, 4, 6});
  Value like = g.input("like", {1, f, 1, 1});
  Tensor xv(DType::f32, {n, f, 4, 6});
  for (std::int64_t i = 0; i < n * f * hw; ++i) xv.data<float>()[i] = std::sin(0.7f * static_cast<float>(i)) * 1e3f;
  ParameterStore v{{"x", xv}, {"like", Tensor(DType::f32, {1, f, 1, 1})}};
  auto to_like = run_values(g, sum_to_like(x, like), v);
  auto over_axes = run_values(g, sum(x, {0, 2, 3}), v);
  // The reference order: images in turn, each channel's pixels in turn, in double.
  for (std::int64_t k = 0; k < f; ++k) {
    double acc = 0;
    for (std::int64_t m = 0; m < n; ++m)
      for (std::int64_t i = 0; i < hw; ++i) acc += xv.data<float>()[(m * f + k) * hw + i];
    CHECK(to_like[static_cast<std::size_t>(k)] == static_cast<double>(static_cast<float>(acc)));
    CHECK(over_axes[static_cast<std::size_t>(k)] == static_cast<double>(static_cast<float>(acc)));
  }
}

TEST_CASE("norm2 is the Euclidean norm, also over many chunks and past float32's square range",
          "[ops][reduce]") {
  Cube c;
  double squares = 0;
  for (int i = 1; i <= 12; ++i) squares += i * i;
  CHECK(c.run(norm2(c.x))[0] == Approx(std::sqrt(squares)).epsilon(1e-7));

  Graph g;
  const std::int64_t n = 313600;  // a [400, 784] weight gradient: many parallel chunks
  Value x = g.input("x", {n});
  Tensor xv(DType::f32, {n});
  double exact = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    float v = static_cast<float>(std::sin(0.37 * static_cast<double>(i))) * 1e-3f;
    xv.data<float>()[i] = v;
    exact += static_cast<double>(v) * v;
  }
  CHECK(run_values(g, norm2(x), {{"x", xv}})[0] == Approx(std::sqrt(exact)).epsilon(1e-6));
  // Squares of 1e25 overflow float32, the norm 1e25 * sqrt(n) does not: summed in double.
  for (std::int64_t i = 0; i < n; ++i) xv.data<float>()[i] = 1e25f;
  CHECK(run_values(g, norm2(x), {{"x", xv}})[0] == Approx(1e25 * std::sqrt(static_cast<double>(n))).epsilon(1e-6));
}

TEST_CASE("sum_to_like, expand_like and spread_like", "[ops][reduce]") {
  Graph g;
  Value gr = g.input("g", {2, 3});
  Value row = g.input("row", {3});
  Value col = g.input("col", {2, 1});
  Value s = g.input("s", {});
  ParameterStore v{{"g", make_tensor({2, 3}, {1, 2, 3, 4, 5, 6})},
                   {"row", make_tensor({3}, {1, 2, 3})},
                   {"col", make_tensor({2, 1}, {10, 20})},
                   {"s", make_tensor({}, {5})}};
  CHECK(run_values(g, sum_to_like(gr, row), v) == std::vector<double>{5, 7, 9});
  CHECK(run_values(g, sum_to_like(gr, col), v) == std::vector<double>{6, 15});
  CHECK(run_values(g, sum_to_like(gr, s), v) == std::vector<double>{21});
  CHECK(run_values(g, expand_like(row, gr), v) == std::vector<double>{1, 2, 3, 1, 2, 3});
  CHECK(run_values(g, expand_like(col, gr), v) == std::vector<double>{10, 10, 10, 20, 20, 20});
  CHECK(run_values(g, expand_like(s, gr), v) == std::vector<double>(6, 5.0));
  // spread_like undoes sum / mean over axes: a [3] over axis 0 of [2, 3], divided by 2 for mean
  CHECK(run_values(g, spread_like(row, gr, {0}, false, false), v) ==
        std::vector<double>{1, 2, 3, 1, 2, 3});
  CHECK(run_values(g, spread_like(row, gr, {0}, false, true), v) ==
        std::vector<double>{0.5, 1, 1.5, 0.5, 1, 1.5});
  // [2, 1] over axis 1 with keepdims, mean: each / 3
  check_close(run_values(g, spread_like(col, gr, {1}, true, true), v),
              {10 / 3.0, 10 / 3.0, 10 / 3.0, 20 / 3.0, 20 / 3.0, 20 / 3.0});
  // a scalar over all axes, mean: 5 / 6
  check_close(run_values(g, spread_like(s, gr, {}, false, true), v), std::vector<double>(6, 5 / 6.0));
  CHECK_THROWS_AS(sum_to_like(row, gr), ShapeError);
  CHECK_THROWS_AS(expand_like(gr, row), ShapeError);
  CHECK_THROWS_AS(spread_like(col, gr, {0}, false, false), ShapeError);
}

TEST_CASE("l1_activity is sum |h| per sample", "[ops][reduce]") {
  Graph g;
  Value h = g.input("h", {2, 3});
  // (|1| + |-2| + |3| + |-4| + |0| + |6|) / 2 = 8
  auto got = run_values(g, l1_activity(h), {{"h", make_tensor({2, 3}, {1, -2, 3, -4, 0, 6})}});
  CHECK(got == std::vector<double>{8});
  Value v = g.input("v", {4});
  // rank 1: (1 + 2 + 3 + 4) / 4 = 2.5
  CHECK(run_values(g, l1_activity(v), {{"v", make_tensor({4}, {1, -2, 3, -4})}}) ==
        std::vector<double>{2.5});
  Value r3 = g.input("r3", {2, 1, 2});
  CHECK(run_values(g, l1_activity(r3), {{"r3", make_tensor({2, 1, 2}, {1, 1, -1, -3})}}) ==
        std::vector<double>{3});  // (2 + 4) / 2
}

TEST_CASE("kl_sparsity is zero when every code equals rho, and matches by hand", "[ops][reduce]") {
  Graph g;
  Value h = g.input("h", {3, 2});
  Value kl = kl_sparsity(h, 0.2);
  CHECK(run_values(g, kl, {{"h", make_tensor({3, 2}, std::vector<double>(6, 0.2), DType::f64)}},
                   DType::f64)[0] == Approx(0).margin(1e-15));
  // Columns average to p = [0.5, 0.1]:
  // 0.2 ln(0.2/0.5) + 0.8 ln(0.8/0.5) + 0.2 ln(0.2/0.1) + 0.8 ln(0.8/0.9)
  // = (-0.18326 + 0.37601) + (0.13863 - 0.09423) = 0.19275 + 0.04440
  double want = 0.2 * std::log(0.4) + 0.8 * std::log(1.6) + 0.2 * std::log(2.0) + 0.8 * std::log(0.8 / 0.9);
  auto got = run_values(g, kl, {{"h", make_tensor({3, 2}, {0.3, 0.1, 0.5, 0.05, 0.7, 0.15},
                                                  DType::f64)}}, DType::f64);
  CHECK(got[0] == Approx(want).epsilon(1e-12));
  CHECK(want == Approx(0.23715).epsilon(1e-4));
  CHECK_THROWS_AS(kl_sparsity(h, 1.0), ShapeError);
  CHECK_THROWS_AS(kl_sparsity(g.input("v", {3}), 0.1), ShapeError);
}

}  // namespace
}  // namespace graphrun
