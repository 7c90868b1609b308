// The research ops of ops/research.cpp by hand: logsumexp, gradient stops, one-hot argmax,
// maximum / minimum, leaky_relu, lgamma and polygamma against known values.
#include "graph/run_helpers.hpp"

#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/parallel.hpp>
#include <graphrun/ops/ops.hpp>
#include <graphrun/ops/special_math.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <numbers>

namespace graphrun {
namespace {

using testing::check_close;
using testing::make_tensor;
using testing::run_values;

TEST_CASE("logsumexp over rows, columns and all, stable at +-1000", "[ops][research]") {
  Graph g;
  Value x = g.input("x", {2, 3});
  // Row 0: ln(e^0 + e^1 + e^2) = 2 + ln(1 + e^-1 + e^-2) = 2.4076059644. Row 1 is row 0 plus
  // 1000: a naive e^1002 overflows, the shifted sum gives 1002.4076059644.
  ParameterStore v{{"x", make_tensor({2, 3}, {0, 1, 2, 1000, 1001, 1002}, DType::f64)}};
  const double row = 2 + std::log(1 + std::exp(-1.0) + std::exp(-2.0));
  for (DType dtype : {DType::f64, DType::f32}) {
    INFO(dtype_name(dtype));
    double tol = dtype == DType::f64 ? 1e-12 : 1e-6;
    check_close(run_values(g, logsumexp(x, {1}), v, dtype), {row, 1000 + row}, tol);
    // Columns: ln(e^0 + e^1000) = 1000 + ln(1 + e^-1000) = 1000 exactly in double.
    check_close(run_values(g, logsumexp(x, {0}, true), v, dtype), {1000, 1001, 1002}, tol);
    // All: 1002 + ln(1 + e^-1 + e^-2 + tiny) = 1000 + row.
    check_close(run_values(g, logsumexp(x), v, dtype), {1000 + row}, tol);
  }
  // -1000 everywhere: ln(3 e^-1000) = -1000 + ln 3, where e^-1000 alone underflows to 0.
  ParameterStore low{{"x", make_tensor({2, 3}, std::vector<double>(6, -1000), DType::f64)}};
  check_close(run_values(g, logsumexp(x, {1}), low, DType::f64),
              {-1000 + std::log(3.0), -1000 + std::log(3.0)}, 1e-12);
  // All -inf is -inf, not NaN; one +inf is +inf.
  const double inf = std::numeric_limits<double>::infinity();
  ParameterStore edge{{"x", make_tensor({2, 3}, {-inf, -inf, -inf, 0, inf, 1}, DType::f64)}};
  CHECK(run_values(g, logsumexp(x, {1}), edge, DType::f64) == std::vector<double>{-inf, inf});
}

TEST_CASE("logsumexp's gradient is the softmax", "[ops][research]") {
  Graph g;
  Value x = g.parameter("x", {1, 3}, Init::zeros());
  Value dx = grad(sum(logsumexp(x, {1})), {x})[0];
  // softmax [0, ln 2, ln 5] = [1, 2, 5] / 8
  ParameterStore v{{"x", make_tensor({1, 3}, {0, std::log(2.0), std::log(5.0)}, DType::f64)}};
  check_close(run_values(g, dx, v, DType::f64), {0.125, 0.25, 0.625}, 1e-12);
}

TEST_CASE("logsumexp over many elements gives the same bits at 1 and 2 threads",
          "[ops][research]") {
  struct Restore {
    ~Restore() { set_num_threads(0); }
  } restore;
  Graph g;
  Value x = g.input("x", {300, 400});
  ParameterStore v{{"x", testing::random_tensor({300, 400}, {-5, 5}, 1, 9)}};
  std::vector<Value> outputs{logsumexp(x), logsumexp(x, {0}), logsumexp(x, {1})};
  std::vector<std::vector<double>> runs;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    auto out = testing::run_graph(g, outputs, v);
    std::vector<double> all;
    for (const auto& t : out)
      for (double e : testing::to_vector(t)) all.push_back(e);
    runs.push_back(all);
  }
  CHECK(runs[0] == runs[1]);
}

TEST_CASE("stop_gradient passes values and blocks gradients, also of parameters",
          "[ops][research]") {
  Graph g;
  Value w = g.parameter("w", {3}, Init::zeros());
  // loss = sum(w * stop(w)): d/dw counts only the first factor, so dw = stop(w) = w, not 2 w.
  Value loss = sum(mul(w, stop_gradient(w)));
  Value dw = grad(loss, {w})[0];
  ParameterStore v{{"w", make_tensor({3}, {1, -2, 0.5}, DType::f64)}};
  auto out = testing::run_graph(g, {loss, dw}, v, DType::f64);
  CHECK(out[0].item() == Approx(1 + 4 + 0.25));
  CHECK(testing::to_vector(out[1]) == std::vector<double>{1, -2, 0.5});
  // Only through the stop: the gradient is zero.
  Graph h;
  Value p = h.parameter("p", {2}, Init::zeros());
  Value dp = grad(sum(exp(stop_gradient(p))), {p})[0];
  CHECK(run_values(h, dp, {{"p", make_tensor({2}, {0.3, 0.7}, DType::f64)}}, DType::f64) ==
        std::vector<double>{0, 0});
}

TEST_CASE("if_training picks a in training and b outside, and sends the gradient there",
          "[ops][research]") {
  Graph g;
  Value a = g.parameter("a", {2, 2}, Init::zeros());
  Value b = g.parameter("b", {2, 2}, Init::zeros());
  Value y = if_training(a, b);
  auto grads = grad(sum(mul(y, y)), {a, b});
  ParameterStore v{{"a", make_tensor({2, 2}, {1, 2, 3, 4}, DType::f64)},
                   {"b", make_tensor({2, 2}, {-1, -2, -3, -4}, DType::f64)}};
  RunOptions training;
  auto out = testing::run_graph(g, {y, grads[0], grads[1]}, v, DType::f64, training);
  CHECK(testing::to_vector(out[0]) == std::vector<double>{1, 2, 3, 4});
  CHECK(testing::to_vector(out[1]) == std::vector<double>{2, 4, 6, 8});
  CHECK(testing::to_vector(out[2]) == std::vector<double>{0, 0, 0, 0});
  RunOptions evaluation;
  evaluation.training = false;
  out = testing::run_graph(g, {y, grads[0], grads[1]}, v, DType::f64, evaluation);
  CHECK(testing::to_vector(out[0]) == std::vector<double>{-1, -2, -3, -4});
  CHECK(testing::to_vector(out[1]) == std::vector<double>{0, 0, 0, 0});
  CHECK(testing::to_vector(out[2]) == std::vector<double>{-2, -4, -6, -8});
  CHECK_THROWS_WITH(if_training(a, g.parameter("c", {2}, Init::zeros())), Catch::Contains("one shape"));
}

TEST_CASE("one_hot_argmax marks the first largest element; argmin through neg", "[ops][research]") {
  Graph g;
  Value x = g.input("x", {2, 3});
  ParameterStore v{{"x", make_tensor({2, 3}, {1, 3, 3, -1, -5, 2})}};
  // Rows: [1, 3, 3] has its first max at 1; [-1, -5, 2] at 2.
  CHECK(run_values(g, one_hot_argmax(x), v) == std::vector<double>{0, 1, 0, 0, 0, 1});
  // Columns: max(1, -1) row 0, max(3, -5) row 0, max(3, 2) row 0.
  CHECK(run_values(g, one_hot_argmax(x, 0), v) == std::vector<double>{1, 1, 1, 0, 0, 0});
  // argmin of the rows: 1 at column 0, -5 at column 1.
  CHECK(run_values(g, one_hot_argmax(neg(x), 1), v) == std::vector<double>{1, 0, 0, 0, 1, 0});
  CHECK_THROWS_AS(one_hot_argmax(x, 2), ShapeError);
}

TEST_CASE("maximum and minimum broadcast; ties send the gradient to a", "[ops][research]") {
  Graph g;
  Value a = g.parameter("a", {2, 3}, Init::zeros());
  Value b = g.parameter("b", {3}, Init::zeros());
  ParameterStore v{{"a", make_tensor({2, 3}, {1, 2, 3, -1, 0, 5}, DType::f64)},
                   {"b", make_tensor({3}, {2, 2, 2}, DType::f64)}};
  CHECK(run_values(g, maximum(a, b), v, DType::f64) == std::vector<double>{2, 2, 3, 2, 2, 5});
  CHECK(run_values(g, minimum(a, b), v, DType::f64) == std::vector<double>{1, 2, 2, -1, 0, 2});
  // max: a wins at (0,1) (tie), (0,2), (1,2); b at the other three, summed per column of b:
  // b gets [1 + 1, 0 + 1, 0 + 0] = [2, 1, 0].
  auto gmax = grad(sum(maximum(a, b)), {a, b});
  auto out = testing::run_graph(g, {gmax[0], gmax[1]}, v, DType::f64);
  CHECK(testing::to_vector(out[0]) == std::vector<double>{0, 1, 1, 0, 0, 1});
  CHECK(testing::to_vector(out[1]) == std::vector<double>{2, 1, 0});
  // min: a wins at (0,0), (0,1) (tie), (1,0), (1,1); b at (0,2) and (1,2).
  auto gmin = grad(sum(minimum(a, b)), {a, b});
  out = testing::run_graph(g, {gmin[0], gmin[1]}, v, DType::f64);
  CHECK(testing::to_vector(out[0]) == std::vector<double>{1, 1, 0, 1, 1, 0});
  CHECK(testing::to_vector(out[1]) == std::vector<double>{0, 0, 2});
}

TEST_CASE("leaky_relu with a scalar or per-channel slope, and its gradients", "[ops][research]") {
  Graph g;
  Value x = g.parameter("x", {2, 2}, Init::zeros());
  Value s = g.parameter("s", {2}, Init::zeros());
  ParameterStore v{{"x", make_tensor({2, 2}, {-2, 3, 0, -4}, DType::f64)},
                   {"s", make_tensor({2}, {0.1, 0.5}, DType::f64)}};
  // 0.2 * [-2, 0, -4] = [-0.4, 0, -0.8]
  check_close(run_values(g, leaky_relu(x, 0.2), v, DType::f64), {-0.4, 3, 0, -0.8}, 1e-15);
  // Column slopes [0.1, 0.5]: -2 * 0.1, 3, 0, -4 * 0.5.
  Value y = leaky_relu(x, s);
  check_close(run_values(g, y, v, DType::f64), {-0.2, 3, 0, -2}, 1e-15);
  // dy/dx = 1 where x > 0, else the column's slope (x = 0 included); dy/ds = min(x, 0) summed
  // per column: [-2 + 0, 0 + -4].
  auto d = grad(sum(y), {x, s});
  auto out = testing::run_graph(g, {d[0], d[1]}, v, DType::f64);
  check_close(testing::to_vector(out[0]), {0.1, 1, 0.1, 0.5}, 1e-15);
  check_close(testing::to_vector(out[1]), {-2, -4}, 1e-15);
  CHECK_THROWS_AS(leaky_relu(s, x), ShapeError);  // a [2, 2] slope does not fit x [2]
}

TEST_CASE("lgamma and polygamma match known values in float64", "[ops][research]") {
  using std::numbers::pi;
  const double euler = 0.57721566490153286061, zeta3 = 1.2020569031595942854;
  // Gamma(1/2) = sqrt(pi); Gamma(1) = Gamma(2) = 1; Gamma(3) = 2; Gamma(10) = 9! = 362880.
  check_close({ops::lgamma_positive(0.5), ops::lgamma_positive(1), ops::lgamma_positive(2),
               ops::lgamma_positive(3), ops::lgamma_positive(10)},
              {0.5 * std::log(pi), 0, 0, std::log(2.0), std::log(362880.0)}, 1e-14);
  // psi(1) = -gamma; psi(1/2) = -gamma - 2 ln 2; psi'(1) = pi^2 / 6; psi'(1/2) = pi^2 / 2;
  // psi''(1) = -2 zeta(3); psi'''(1) = 6 zeta(4) = pi^4 / 15.
  check_close({ops::polygamma_positive(0, 1), ops::polygamma_positive(0, 0.5),
               ops::polygamma_positive(1, 1), ops::polygamma_positive(1, 0.5),
               ops::polygamma_positive(2, 1), ops::polygamma_positive(3, 1)},
              {-euler, -euler - 2 * std::log(2.0), pi * pi / 6, pi * pi / 2, -2 * zeta3,
               std::pow(pi, 4) / 15},
              1e-14);
  // Against libm's lgamma (one thread here, so its global signgam does no harm) over (0.01, 60),
  // and the recurrences psi^(n)(x + 1) = psi^(n)(x) + (-1)^n n! / x^(n+1) over (0.5, 60), where
  // the difference cancels at most a factor 20 (psi''(1/2) = -16.8 against 2 / (1/2)^3 = 16).
  for (double x = 0.01; x < 60; x *= 1.37) {
    INFO("x = " << x);
    CHECK(ops::lgamma_positive(x) == Approx(std::lgamma(x)).epsilon(1e-14).margin(1e-14));
  }
  for (double x = 0.5; x < 60; x *= 1.37) {
    INFO("x = " << x);
    CHECK(ops::polygamma_positive(0, x + 1) ==
          Approx(ops::polygamma_positive(0, x) + 1 / x).epsilon(1e-13).margin(1e-14));
    CHECK(ops::polygamma_positive(1, x + 1) ==
          Approx(ops::polygamma_positive(1, x) - 1 / (x * x)).epsilon(1e-13));
    CHECK(ops::polygamma_positive(2, x + 1) ==
          Approx(ops::polygamma_positive(2, x) + 2 / (x * x * x)).epsilon(1e-13));
  }
  CHECK(std::isnan(ops::lgamma_positive(0)));
  CHECK(std::isnan(ops::polygamma_positive(1, -2.5)));
  CHECK(ops::polygamma_positive(1, std::numeric_limits<double>::infinity()) == 0);
}

TEST_CASE("lgamma's gradient is digamma, polygamma's the next order", "[ops][research]") {
  Graph g;
  Value x = g.parameter("x", {2}, Init::zeros());
  auto d = grad(sum(lgamma(x)) + sum(polygamma(x, 1)), {x});
  // d/dx [ln Gamma(x) + psi'(x)] = psi(x) + psi''(x); at 1: -gamma - 2 zeta(3).
  auto out = run_values(g, d[0], {{"x", make_tensor({2}, {1, 1}, DType::f64)}}, DType::f64);
  check_close(out, std::vector<double>(2, -0.57721566490153286 - 2 * 1.2020569031595943), 1e-13);
  CHECK_THROWS_AS(polygamma(x, -1), ShapeError);
}

}  // namespace
}  // namespace graphrun
