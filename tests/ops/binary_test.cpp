// Binary ops by hand: broadcasting arithmetic, the fused backward helpers, and the losses at
// extreme logits.
#include "graph/run_helpers.hpp"

#include <graphrun/graph/autodiff.hpp>
#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>

#include <cmath>

namespace graphrun {
namespace {

using testing::check_close;
using testing::make_tensor;
using testing::run_values;

TEST_CASE("add broadcasts [2, 3] + [3] and [2, 1] + [1, 3]", "[ops][binary]") {
  Graph g;
  Value a = g.input("a", {2, 3});
  Value b = g.input("b", {3});
  Value c = g.input("c", {2, 1});
  Value d = g.input("d", {1, 3});
  ParameterStore v{{"a", make_tensor({2, 3}, {1, 2, 3, 4, 5, 6})},
                   {"b", make_tensor({3}, {10, 20, 30})},
                   {"c", make_tensor({2, 1}, {100, 200})},
                   {"d", make_tensor({1, 3}, {1, 2, 3})}};
  // [[1, 2, 3], [4, 5, 6]] + [10, 20, 30] row by row
  CHECK(run_values(g, a + b, v) == std::vector<double>{11, 22, 33, 14, 25, 36});
  // [[100], [200]] + [[1, 2, 3]] -> [[101, 102, 103], [201, 202, 203]]
  Value outer = c + d;
  CHECK(outer.shape() == Shape{2, 3});
  CHECK(run_values(g, outer, v) == std::vector<double>{101, 102, 103, 201, 202, 203});
  // The broadcast operand first: [3] - [2, 3] = [[9, 18, 27], [6, 15, 24]]
  CHECK(run_values(g, b - a, v) == std::vector<double>{9, 18, 27, 6, 15, 24});
  // [2, 1] * [2, 3]: each row scaled: [[100, 200, 300], [800, 1000, 1200]]
  CHECK(run_values(g, c * a, v) == std::vector<double>{100, 200, 300, 800, 1000, 1200});
  // A scalar on either side: 12 / [1, 2, 3, 4, 5, 6] and [..] / 2
  check_close(run_values(g, 12.0 / a, v), {12, 6, 4, 3, 2.4, 2});
  check_close(run_values(g, a / 2.0, v), {0.5, 1, 1.5, 2, 2.5, 3});
}

TEST_CASE("broadcasting over rank 3 and rank 4", "[ops][binary]") {
  Graph g;
  Value a = g.input("a", {2, 1, 2});
  Value b = g.input("b", {3, 1});
  ParameterStore v{{"a", make_tensor({2, 1, 2}, {1, 2, 3, 4})},
                   {"b", make_tensor({3, 1}, {10, 20, 30})}};
  // out[i, j, k] = a[i, 0, k] + b[j, 0]: shape [2, 3, 2]
  Value s = a + b;
  CHECK(s.shape() == Shape{2, 3, 2});
  CHECK(run_values(g, s, v) ==
        std::vector<double>{11, 12, 21, 22, 31, 32, 13, 14, 23, 24, 33, 34});
  Value big = g.input("big", {2, 1, 1, 2});
  ParameterStore w{{"big", make_tensor({2, 1, 1, 2}, {1, 2, 3, 4})},
                   {"b", make_tensor({3, 1}, {10, 20, 30})}};
  // [2, 1, 1, 2] * [3, 1] -> [2, 1, 3, 2]: out[i, 0, j, k] = big[i, k] * b[j]
  CHECK(run_values(g, big * b, w) ==
        std::vector<double>{10, 20, 20, 40, 30, 60, 30, 40, 60, 80, 90, 120});
}

TEST_CASE("a large bias broadcast takes the parallel paths and stays right", "[ops][binary]") {
  Graph g;
  const std::int64_t rows = 300, cols = 257;  // 77100 elements: several parallel chunks
  Value x = g.input("x", {rows, cols});
  Value b = g.input("b", {cols});
  Tensor xv(DType::f32, {rows, cols}), bv(DType::f32, {cols});
  for (std::int64_t i = 0; i < rows * cols; ++i) xv.data<float>()[i] = static_cast<float>(i % 97);
  for (std::int64_t j = 0; j < cols; ++j) bv.data<float>()[j] = static_cast<float>(j);
  ParameterStore v{{"x", xv}, {"b", bv}};
  auto fwd = run_values(g, x + b, v);
  auto rev = run_values(g, b - x, v);
  for (std::int64_t i = 0; i < rows * cols; i += 131) {
    double want = static_cast<double>(i % 97 + i % cols);
    CHECK(fwd[static_cast<std::size_t>(i)] == want);
    CHECK(rev[static_cast<std::size_t>(i)] == static_cast<double>(i % cols - i % 97));
  }
}

TEST_CASE("the backward helpers", "[ops][binary]") {
  Graph g;
  Value gr = g.input("g", {4});
  Value x = g.input("x", {4});
  ParameterStore v{{"g", make_tensor({4}, {1, 2, 3, 4})}, {"x", make_tensor({4}, {-1, 0, 0.5, 0.25})}};
  // relu_backward: g where x > 0: [0, 0, 3, 4] (0 at x = 0)
  CHECK(run_values(g, relu_backward(gr, x), v) == std::vector<double>{0, 0, 3, 4});
  // sigmoid_backward: g y (1 - y): [1*-1*2, 0, 3*0.5*0.5, 4*0.25*0.75] = [-2, 0, 0.75, 0.75]
  check_close(run_values(g, sigmoid_backward(gr, x), v), {-2, 0, 0.75, 0.75});
  // tanh_backward: g (1 - y^2): [0, 2, 3*0.75, 4*0.9375] = [0, 2, 2.25, 3.75]
  check_close(run_values(g, tanh_backward(gr, x), v), {0, 2, 2.25, 3.75});
  // mse: (g - x)^2 = [4, 4, 6.25, 14.0625]
  check_close(run_values(g, mse(gr, x), v), {4, 4, 6.25, 14.0625});
  CHECK_THROWS_AS(mse(gr, g.input("y", {2, 2})), ShapeError);  // mse does not broadcast
}

double bce_closed(double l, double t) {
  // -(t ln s + (1 - t) ln(1 - s)), s = sigmoid(l), in a form exact at large |l|:
  // ln s = -softplus(-l), ln(1 - s) = -softplus(l)
  auto softplus = [](double z) { return std::max(z, 0.0) + std::log1p(std::exp(-std::abs(z))); };
  return t * softplus(-l) + (1 - t) * softplus(l);
}

TEST_CASE("bce_with_logits is finite and exact at logits of +-100", "[ops][binary][numerics]") {
  std::vector<double> ls{100, -100, 100, -100, 100, -100, 0, 2};
  std::vector<double> ts{0, 1, 1, 0, 0.5, 0.5, 0.5, 1};
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(dtype_name(dtype));
    Graph g;
    Value l = g.input("l", {8});
    Value t = g.input("t", {8});
    ParameterStore v{{"l", make_tensor({8}, ls, dtype)}, {"t", make_tensor({8}, ts, dtype)}};
    auto got = run_values(g, bce_with_logits(l, t), v, dtype);
    // l=100,t=0 -> 100; l=-100,t=1 -> 100; l=+-100 with the matching target -> e^-100 ~ 0;
    // t=0.5 -> 50 + e^-100 ~ 50; l=0 -> ln 2; l=2,t=1 -> ln(1 + e^-2)
    CHECK(got[0] == Approx(100));
    CHECK(got[1] == Approx(100));
    CHECK(got[2] == Approx(0).margin(1e-30));
    CHECK(got[3] == Approx(0).margin(1e-30));
    CHECK(got[4] == Approx(50));
    CHECK(got[5] == Approx(50));
    CHECK(got[6] == Approx(std::log(2.0)));
    CHECK(got[7] == Approx(std::log1p(std::exp(-2.0))));
    for (std::size_t i = 0; i < 8; ++i) {
      CHECK(std::isfinite(got[i]));
      CHECK(got[i] == Approx(bce_closed(ls[i], ts[i])).margin(1e-30));
    }
    // Its gradient: d/dl = sigmoid(l) - t, d/dt = -l; finite at +-100.
    auto grads = grad(sum(bce_with_logits(l, t)), {l, t});
    auto out = testing::run_graph(g, grads, v, dtype);
    auto dl = testing::to_vector(out[0]), dt = testing::to_vector(out[1]);
    check_close(dl, {1, -1, 0, 0, 0.5, -0.5, 0, 1 / (1 + std::exp(-2.0)) - 1}, 1e-6);
    check_close(dt, {-100, 100, -100, 100, -100, 100, 0, -2}, 1e-6);
  }
}

TEST_CASE("kl_normal equals KL(N(mu, s^2) || N(0, 1)) in closed form", "[ops][binary]") {
  // 0.5 (mu^2 + s^2 - 1 - ln s^2) with logvar = ln s^2.
  std::vector<double> mu{0, 1, -2, 0.5}, s{1, 1, 0.5, 3};
  std::vector<double> lv, want;
  for (std::size_t i = 0; i < mu.size(); ++i) {
    lv.push_back(std::log(s[i] * s[i]));
    want.push_back(0.5 * (mu[i] * mu[i] + s[i] * s[i] - 1 - std::log(s[i] * s[i])));
  }
  // by hand: [0, 0.5, 0.5 (4 + 0.25 - 1 - ln 0.25) = 2.318147, 0.5 (0.25 + 9 - 1 - ln 9) = 3.026388]
  check_close(want, {0, 0.5, 2.3181472, 3.0263889}, 1e-6);
  Graph g;
  Value m = g.input("m", {4});
  Value v = g.input("v", {4});
  auto got = run_values(g, kl_normal(m, v), {{"m", make_tensor({4}, mu, DType::f64)},
                                             {"v", make_tensor({4}, lv, DType::f64)}},
                        DType::f64);
  check_close(got, want, 1e-12);
}

}  // namespace
}  // namespace graphrun
