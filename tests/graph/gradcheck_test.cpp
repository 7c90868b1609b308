// The gradient checker: it must catch a wrong rule, skip kinks, and replay random draws.
#include "graph/run_helpers.hpp"

#include <graphrun/graph/gradcheck.hpp>
#include <graphrun/graph/op.hpp>
#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>

#include <limits>

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

// loss = 1000 + 1e-6 sum(cube(x)): gradients of ~1e-6 under a loss whose float64 rounding
// leaves the central differences uncertain by ~1e-7 (DBL_EPSILON 1000 / eps).
GradCheckReport check_small_cube(const OpDef& op) {
  Graph g;
  Value x = g.parameter("x", {4}, Init::zeros());
  Value loss = sum(g.apply(op, {x})) * 1e-6 + 1000.0;
  return check_gradients(g, loss, {"x"}, {{"x", make_tensor({4}, {0.3, -0.7, 1.1, 0.9}, DType::f64)}});
}

TEST_CASE("the gradient checker judges errors within the loss's rounding on that rounding",
          "[graph][gradcheck]") {
  static const OpDef right = cube_with_factor(3.0);
  static const OpDef wrong = cube_with_factor(6.0);  // twice the gradient
  auto good = check_small_cube(right);
  INFO(good.to_string());
  CHECK(good.ok());  // relative errors of ~5e-2 against the gradient, all rounding
  CHECK(good.tensors.at(0).checked == 4);
  CHECK(good.tensors.at(0).resolution == Approx(1000 * std::numeric_limits<double>::epsilon() / 1e-6).epsilon(1e-3));
  CHECK(good.tensors.at(0).worst_abs <= good.tensors.at(0).resolution);
  auto bad = check_small_cube(wrong);
  INFO(bad.to_string());
  CHECK_FALSE(bad.ok());
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

// Relus of many crossing 0 within the step: each slope change (1 against 1,000) is far below what
// the one-sided differences call a kink, yet the first moves the central difference at eps by
// 0.35, a relative error of 3.5e-4. The kinks sit 3e-5 and 3e-6 from x, so the pairs of steps
// (1e-4, 1e-5) and (1e-5, 1e-6) each disagree, and the element is judged at 1e-6 (against 1e-7),
// where no kink is crossed: checked, at a finer step, and a wrong rule there still fails.
GradCheckReport check_near_kinks(const OpDef& op, double at) {
  Graph g;
  Value x = g.parameter("x", {1}, Init::zeros());
  std::vector<double> offsets(100, 5.0), slopes(100, 10.0);
  offsets[0] = -0.5 + 3e-5;  // relu(x + offset) has its kink 3e-5 from x = 0.5
  offsets[1] = -0.5 - 3e-6;  // and this one 3e-6 on the other side
  slopes[0] = slopes[1] = 1.0;
  Value rows = relu(x + g.constant({100}, offsets)) * g.constant({100}, slopes);
  Value loss = sum(rows) + sum(g.apply(op, {x})) * 100.0;
  GradCheckOptions options;
  options.eps = 1e-4;
  options.tolerance = 1e-4;
  return check_gradients(g, loss, {"x"}, {{"x", make_tensor({1}, {at}, DType::f64)}}, options);
}

TEST_CASE("the gradient checker steps below kinks that move the slope a little", "[graph][gradcheck]") {
  static const OpDef right = cube_with_factor(3.0);
  static const OpDef wrong = cube_with_factor(3.3);  // 10% off: 7.5 of a gradient of ~1,070
  auto near = check_near_kinks(right, 0.5);
  INFO(near.to_string());
  CHECK(near.ok());
  CHECK(near.tensors.at(0).kinks == 0);
  CHECK(near.tensors.at(0).checked == 1);
  CHECK(near.tensors.at(0).finer == 1);
  auto wrong_near = check_near_kinks(wrong, 0.5);
  INFO(wrong_near.to_string());
  CHECK_FALSE(wrong_near.ok());
  CHECK(wrong_near.tensors.at(0).kinks == 0);
  // Away from the kinks the step stays eps.
  auto away = check_near_kinks(right, 0.7);
  INFO(away.to_string());
  CHECK(away.ok());
  CHECK(away.tensors.at(0).finer == 0);
  CHECK(away.tensors.at(0).checked == 1);
}

// Found in vae_gan.graph on Fashion-MNIST: a conv bias shared by many positions, a few of them
// exactly at a leaky relu's kink. Both central differences take the mean of the two slopes there
// and agree, and the jump is far below the one-sided test's threshold of 1e-3, so the element
// failed. The second difference shows the jump; the bias whose rows sit off the kink is checked.
TEST_CASE("the gradient checker skips a kink exactly at the point, however small its jump", "[graph][gradcheck]") {
  Graph g;
  Value b = g.parameter("b", {1, 2}, Init::zeros());
  std::vector<double> rows(200), weights(200, 1e-4);
  for (std::size_t i = 0; i < 200; ++i) rows[i] = 0.5 + 0.01 * static_cast<double>(i % 37);
  rows[0] = rows[2] = 0.0;  // two rows of column 0 exactly at the kink
  Value loss = sum(leaky_relu(g.constant({100, 2}, rows) + b, 0.2) * g.constant({100, 2}, weights));
  GradCheckOptions options;
  options.eps = 1e-5;
  auto report = check_gradients(g, loss, {"b"}, {{"b", make_tensor({1, 2}, {0.0, 0.0}, DType::f64)}}, options);
  INFO(report.to_string());
  CHECK(report.ok());
  CHECK(report.tensors.at(0).kinks == 1);
  CHECK(report.tensors.at(0).checked == 1);
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

// loss = sum(x * held(x + noise)) + sum(square(x - held(0.5 x))), with `held` an identity that
// passes no gradient back. Autodiff gives (x + noise) + x; central differences through the
// identities give 2x + noise + 0.5 x, so only a check that holds both outputs passes.
Value straight_through_loss(Graph& g, const OpDef& held) {
  Value x = g.parameter("x", {2, 3}, Init::zeros());
  Value noisy = g.apply(held, {x + random_normal_like(x)});
  Value half = g.apply(held, {x * 0.5});
  return sum(x * noisy) + sum(square(x - half));
}

Tensor straight_through_x() {
  return make_tensor({2, 3}, {0.3, -0.7, 1.1, 0.9, -0.2, 0.6}, DType::f64);
}

TEST_CASE("the gradient checker holds stop_gradient outputs at their values",
          "[graph][gradcheck]") {
  Graph g;
  Value loss = straight_through_loss(g, op_registry().at("stop_gradient"));
  // The caller's forward graph, to compare after the check.
  const int forward_nodes = g.size();
  std::vector<std::vector<int>> wiring;
  for (int id = 0; id < forward_nodes; ++id) wiring.push_back(g.node(id).inputs);
  const auto inputs = g.inputs().size();

  auto report = check_gradients(g, loss, {"x"}, {{"x", straight_through_x()}});
  INFO(report.to_string());
  CHECK(report.ok());
  CHECK(report.tensors.at(0).checked == 6);
  CHECK(report.worst() < 1e-7);
  CHECK(report.held == 2);
  CHECK(report.held_ops == std::vector<std::string>{"stop_gradient"});
  CHECK_THAT(report.to_string(), Catch::Contains("2 outputs of stop_gradient held at their values"));

  // The graph only gained the backward pass: no input, and every forward node reads what it read.
  CHECK(g.inputs().size() == inputs);
  for (int id = 0; id < forward_nodes; ++id) CHECK(g.node(id).inputs == wiring[static_cast<std::size_t>(id)]);
  for (int id = forward_nodes; id < g.size(); ++id) CHECK(g.node(id).backward);

  // Checked again on the same graph (now with a backward pass), it holds the same two.
  auto again = check_gradients(g, loss, {"x"}, {{"x", straight_through_x()}});
  CHECK(again.ok());
  CHECK(again.held == 2);
}

TEST_CASE("the gradient checker finds the ops to hold by their flag, not by their name",
          "[graph][gradcheck]") {
  CHECK(op_registry().at("stop_gradient").stops_gradient);
  // No gradient, and none is missed: a zero derivative almost everywhere (see check_gradients).
  CHECK_FALSE(op_registry().at("one_hot_argmax").stops_gradient);
  CHECK_FALSE(op_registry().at("random_normal_like").stops_gradient);

  static const OpDef detach = [] {  // a research op under another name, flagged
    OpDef d = op_registry().at("stop_gradient");
    d.name = "test_detach";
    return d;
  }();
  Graph flagged;
  auto held = check_gradients(flagged, straight_through_loss(flagged, detach), {"x"},
                              {{"x", straight_through_x()}});
  INFO(held.to_string());
  CHECK(held.ok());
  CHECK(held.held == 2);
  CHECK(held.held_ops == std::vector<std::string>{"test_detach"});

  static const OpDef unflagged = [] {  // the name, without the flag: seen through, and caught
    OpDef d = op_registry().at("stop_gradient");
    d.stops_gradient = false;
    return d;
  }();
  Graph plain;
  auto seen_through = check_gradients(plain, straight_through_loss(plain, unflagged), {"x"},
                                      {{"x", straight_through_x()}});
  INFO(seen_through.to_string());
  CHECK(seen_through.held == 0);
  CHECK_FALSE(seen_through.ok());
  CHECK_THAT(seen_through.to_string(), !Catch::Contains("held"));
}

TEST_CASE("the gradient checker holds a stop_gradient a rewrite rewired to a later node",
          "[graph][gradcheck]") {
  Graph g;
  Value x = g.parameter("x", {5}, Init::zeros());
  Value sg = stop_gradient(x);
  Value loss = sum(x * sg + random_normal_like(x) * x);
  Value later = x * 2.0 + random_normal_like(x);  // made after the loss, random too
  g.set_input(sg.id(), 0, later);  // sg now reads a node built after it
  Tensor xv = make_tensor({5}, {0.3, -0.7, 1.1, 0.9, -0.4}, DType::f64);
  auto report = check_gradients(g, loss, {"x"}, {{"x", xv}});
  INFO(report.to_string());
  CHECK(report.ok());
  CHECK(report.held == 1);
  CHECK(g.node(sg.id()).inputs == std::vector<int>{later.id()});
}

TEST_CASE("one_hot_argmax needs no holding: its derivative is zero, or a skipped kink",
          "[graph][gradcheck]") {
  Graph g;
  Value x = g.parameter("x", {2, 4}, Init::zeros());
  Value loss = sum(one_hot_argmax(x, 1) * square(x));  // d/dx = 2 x at each row's largest
  Tensor xv = make_tensor({2, 4}, {0.3, -0.7, 1.1, 0.9, -0.2, 0.6, 0.1, 0.5}, DType::f64);
  auto report = check_gradients(g, loss, {"x"}, {{"x", xv}});
  INFO(report.to_string());
  CHECK(report.ok());
  CHECK(report.held == 0);
  CHECK(report.tensors.at(0).checked == 8);
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
