// The gradient checker: it must catch a wrong rule, skip kinks, and replay random draws.
#include "graph/run_helpers.hpp"

#include <graphrun/graph/gradcheck.hpp>
#include <graphrun/graph/op.hpp>
#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>

namespace graphrun {
namespace {

using testing::make_tensor;

// y = x^3 with the rule dy/dx = factor * x^2 (right when factor = 3).
OpDef cube_with_factor(double factor) {
  return testing::cube_op([factor](const GradContext& c) {
    return std::vector<Value>{mul(c.grad, square(c.inputs[0]) * factor, c.where)};
  });
}

GradCheckReport check_cube(const OpDef& op) {
  Graph g;
  Value x = g.parameter("x", {4}, Init::zeros());
  Value loss = sum(g.apply(op, {x}) * g.constant({4}, {1, -2, 0.5, 3}));
  return check_gradients(g, loss, {"x"}, {{"x", make_tensor({4}, {0.3, -0.7, 1.1, 0.9}, DType::f64)}});
}

TEST_CASE("the gradient checker accepts a right rule and catches one off by a factor",
          "[graph][gradcheck]") {
  static const OpDef right = cube_with_factor(3.0);
  static const OpDef wrong = cube_with_factor(3.3);  // 10% off
  auto good = check_cube(right);
  INFO(good.to_string());
  CHECK(good.ok());
  CHECK(good.tensors.at(0).checked == 4);
  CHECK(good.worst() < 1e-7);
  auto bad = check_cube(wrong);
  INFO(bad.to_string());
  CHECK_FALSE(bad.ok());
  CHECK(bad.worst() == Approx(0.3 / 3.3).epsilon(1e-4));  // |3.3 - 3| / 3.3
  CHECK_THAT(bad.to_string(), Catch::Contains("FAIL"));
}

TEST_CASE("the gradient checker skips kinks such as relu at 0", "[graph][gradcheck]") {
  Graph g;
  Value x = g.parameter("x", {4}, Init::zeros());
  Value loss = sum(relu(x) * g.constant({4}, {1, 2, 3, 4}));
  auto report = check_gradients(g, loss, {"x"},
                                {{"x", make_tensor({4}, {0.0, 0.5, -0.5, 0.0}, DType::f64)}});
  INFO(report.to_string());
  CHECK(report.ok());
  CHECK(report.tensors.at(0).kinks == 2);
  CHECK(report.tensors.at(0).checked == 2);
}

TEST_CASE("a tensor that is all kinks does not pass", "[graph][gradcheck]") {
  Graph g;
  Value x = g.parameter("x", {2}, Init::zeros());
  Value loss = sum(abs(x));
  auto report = check_gradients(g, loss, {"x"}, {{"x", make_tensor({2}, {0.0, 0.0}, DType::f64)}});
  CHECK(report.tensors.at(0).kinks == 2);
  CHECK_FALSE(report.ok());
}

TEST_CASE("the gradient checker replays random draws", "[graph][gradcheck]") {
  Graph g;
  Value x = g.parameter("x", {3, 5}, Init::zeros());
  Value noisy = x + random_normal_like(x);
  Value mask = bernoulli_mask_like(x, 0.6);
  Value loss = sum(square(noisy) * mask);  // d/dx = 2 (x + noise) mask: depends on the draws
  Tensor xv(DType::f64, {3, 5});
  for (std::int64_t i = 0; i < 15; ++i) xv.data<double>()[i] = 0.1 * static_cast<double>(i) - 0.7;
  auto report = check_gradients(g, loss, {"x"}, {{"x", xv}});
  INFO(report.to_string());
  CHECK(report.ok());
  CHECK(report.tensors.at(0).checked == 15);
}

TEST_CASE("large tensors are checked at a sample of elements", "[graph][gradcheck]") {
  Graph g;
  Value x = g.parameter("x", {100}, Init::zeros());
  Value loss = sum(square(x));
  Tensor xv(DType::f64, {100});
  for (std::int64_t i = 0; i < 100; ++i) xv.data<double>()[i] = 0.01 * static_cast<double>(i) + 0.5;
  GradCheckOptions options;
  options.max_elements = 10;
  auto report = check_gradients(g, loss, {"x"}, {{"x", xv}}, options);
  CHECK(report.tensors.at(0).checked == 10);
  CHECK(report.ok());
  options.max_elements = 1;
  auto single = check_gradients(g, loss, {"x"}, {{"x", xv}}, options);
  CHECK(single.tensors.at(0).checked == 1);
}

TEST_CASE("the gradient checker names a missing value", "[graph][gradcheck]") {
  Graph g;
  Value x = g.parameter("x", {2}, Init::zeros());
  Value loss = sum(x);
  CHECK_THROWS_AS(check_gradients(g, loss, {"y"}, {{"x", make_tensor({2}, {1, 2})}}),
                  std::out_of_range);
}

}  // namespace
}  // namespace graphrun
