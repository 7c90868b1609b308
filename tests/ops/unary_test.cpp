// Unary ops by hand, and sigmoid / softplus at +-100.
#include "graph/run_helpers.hpp"

#include <graphrun/ops/fast_math.hpp>
#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

namespace graphrun {
namespace {

using testing::check_close;
using testing::make_tensor;
using testing::run_values;

std::vector<double> map_values(Value (*f)(Value, Loc), const std::vector<double>& xs,
                               DType dtype = DType::f64, const RunOptions& options = {}) {
  Graph g;
  auto n = static_cast<std::int64_t>(xs.size());
  Value x = g.input("x", {n});
  return run_values(g, f(x, Loc::current()), {{"x", make_tensor({n}, xs, dtype)}}, dtype, options);
}

TEST_CASE("unary ops on small values", "[ops][unary]") {
  std::vector<double> xs{-2, -0.5, 0, 1.5};
  CHECK(map_values(neg, xs) == std::vector<double>{2, 0.5, 0, -1.5});
  CHECK(map_values(square, xs) == std::vector<double>{4, 0.25, 0, 2.25});
  CHECK(map_values(abs, xs) == std::vector<double>{2, 0.5, 0, 1.5});
  CHECK(map_values(sign, xs) == std::vector<double>{-1, -1, 0, 1});
  CHECK(map_values(relu, xs) == std::vector<double>{0, 0, 0, 1.5});
  check_close(map_values(exp, xs), {std::exp(-2.0), std::exp(-0.5), 1, std::exp(1.5)}, 1e-12);
  check_close(map_values(tanh, xs), {std::tanh(-2.0), std::tanh(-0.5), 0, std::tanh(1.5)}, 1e-12);
  // sigmoid(0) = 0.5, sigmoid(-x) = 1 - sigmoid(x)
  check_close(map_values(sigmoid, xs), {1 / (1 + std::exp(2.0)), 1 / (1 + std::exp(0.5)), 0.5,
                                   1 / (1 + std::exp(-1.5))}, 1e-12);
  // softplus(0) = ln 2
  check_close(map_values(softplus, xs), {std::log1p(std::exp(-2.0)), std::log1p(std::exp(-0.5)),
                                    std::log(2.0), std::log1p(std::exp(1.5))}, 1e-12);
  // ln [1, e, 0.25] = [0, 1, -1.386294]; sqrt [4, 0.25, 2] = [2, 0.5, 1.414214]
  check_close(map_values(log, {1, std::exp(1.0), 0.25}), {0, 1, std::log(0.25)}, 1e-12);
  check_close(map_values(sqrt, {4, 0.25, 2}), {2, 0.5, std::sqrt(2.0)}, 1e-12);
}

TEST_CASE("sigmoid and softplus are finite and right at +-100", "[ops][unary][numerics]") {
  // e^-100 = 3.7e-44 is a float denormal, which a run flushes to zero unless told not to; either
  // way never a NaN from inf/inf.
  RunOptions ieee;
  ieee.flush_denormals = false;
  for (DType dtype : {DType::f32, DType::f64})
    for (bool flush : {false, true}) {
      INFO(dtype_name(dtype) << (flush ? " flushing denormals" : " IEEE denormals"));
      auto tiny = [&](double v) {
        if (dtype == DType::f32 && flush) CHECK(v == 0.0);
        else CHECK(v == Approx(std::exp(-100.0)).epsilon(dtype == DType::f32 ? 0.05 : 1e-12));
      };
      RunOptions options = flush ? RunOptions{} : ieee;
      auto s = map_values(sigmoid, {100, -100, 30, -30}, dtype, options);
      CHECK(s[0] == 1.0);
      tiny(s[1]);
      CHECK(s[2] == Approx(1.0));
      CHECK(s[3] == Approx(std::exp(-30.0) / (1 + std::exp(-30.0))).epsilon(1e-6));
      auto sp = map_values(softplus, {100, -100, 0}, dtype, options);
      CHECK(sp[0] == Approx(100));
      tiny(sp[1]);
      CHECK(sp[2] == Approx(std::log(2.0)));
      for (double v : s) CHECK(std::isfinite(v));
      for (double v : sp) CHECK(std::isfinite(v));
    }
}

TEST_CASE("NaN and infinities pass through the float32 fast exp paths", "[ops][unary][numerics]") {
  // fast_exp once converted NaN to int (undefined behaviour, caught by clang's UBSan).
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (DType dtype : {DType::f32, DType::f64}) {
    INFO(dtype_name(dtype));
    auto e = map_values(exp, {nan, inf, -inf}, dtype);
    CHECK(std::isnan(e[0]));
    CHECK(e[1] == inf);
    CHECK(e[2] == 0.0);
    CHECK(std::isnan(map_values(sigmoid, {nan}, dtype)[0]));
    CHECK(std::isnan(map_values(softplus, {nan}, dtype)[0]));
  }
}

TEST_CASE("the float32 fast exp and ln(1 + e^-a) are within 2 ulp of double libm", "[ops][unary][numerics]") {
  // Their own polynomials replace libm in every float32 kernel; sweep the whole useful range.
  auto ulps = [](float got, double want) {
    double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(want)) - 23);
    return std::abs(static_cast<double>(got) - want) / ulp;
  };
  double worst_exp = 0, worst_log1p = 0;
  for (int i = 0; i <= 400000; ++i) {
    float x = -87.0f + 175.0f * static_cast<float>(i) / 400000.0f;  // normal results only
    worst_exp = std::max(worst_exp, ulps(ops::fast_exp(x), std::exp(static_cast<double>(x))));
    float a = 40.0f * static_cast<float>(i) / 400000.0f;
    worst_log1p = std::max(worst_log1p, ulps(ops::fast_log1p_exp_neg(a), std::log1p(std::exp(-static_cast<double>(a)))));
  }
  CHECK(worst_exp <= 2.0);
  CHECK(worst_log1p <= 2.0);
}

TEST_CASE("unary ops keep rank-3 shapes and elementwise order", "[ops][unary]") {
  Graph g;
  Value x = g.input("x", {2, 2, 2});
  Value y = relu(x);
  CHECK(y.shape() == Shape{2, 2, 2});
  auto got = run_values(g, y, {{"x", make_tensor({2, 2, 2}, {1, -1, 2, -2, 3, -3, 4, -4})}});
  CHECK(got == std::vector<double>{1, 0, 2, 0, 3, 0, 4, 0});
}

}  // namespace
}  // namespace graphrun
