// Symbolic reverse mode: accumulation over several uses, scalar losses only, loud failures for
// missing or malformed gradient rules, and gradients of gradients.
#include "graph/run_helpers.hpp"

#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/op.hpp>
#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>

namespace graphrun {
namespace {

using testing::cube_op;
using testing::make_tensor;
using testing::message_of;
using testing::run_values;


TEST_CASE("a value used twice accumulates its gradient", "[graph][autodiff]") {
  Graph g;
  Value x = g.input("x", {3});
  Value loss = sum(x * x);
  auto dx = grad(loss, {x});
  // d/dx sum(x^2) = 2x = [2, -4, 6]
  auto got = run_values(g, dx[0], {{"x", make_tensor({3}, {1, -2, 3})}});
  CHECK(got == std::vector<double>{2, -4, 6});
  CHECK(dx[0].node().name == "grad/x");
  CHECK(dx[0].node().backward);
  CHECK_FALSE(loss.node().backward);
}

TEST_CASE("gradients along separate paths add up", "[graph][autodiff]") {
  Graph g;
  Value x = g.input("x", {2});
  Value loss = sum(exp(x) + x * 3.0 + relu(x));
  auto dx = grad(loss, {x});
  // d/dx = e^x + 3 + (x > 0): x = [0.5, -1] -> [e^0.5 + 4, e^-1 + 3]
  auto got = run_values(g, dx[0], {{"x", make_tensor({2}, {0.5, -1}, DType::f64)}}, DType::f64);
  testing::check_close(got, {std::exp(0.5) + 4, std::exp(-1.0) + 3}, 1e-12);
}

TEST_CASE("grad needs a scalar loss", "[graph][autodiff]") {
  Graph g;
  Value x = g.input("x", {3});
  auto msg = message_of<ShapeError>([&] { grad(x * 2.0, {x}); });
  CHECK_THAT(msg, Catch::Contains("scalar") && Catch::Contains("[3]"));
}

TEST_CASE("a value the loss does not depend on gets a zero gradient", "[graph][autodiff]") {
  Graph g;
  Value x = g.input("x", {2});
  Value y = g.input("y", {2, 2});
  auto d = grad(sum(x), {x, y});
  REQUIRE(d[1].shape() == Shape{2, 2});
  CHECK(run_values(g, d[1], {}) == std::vector<double>{0, 0, 0, 0});
}

TEST_CASE("an op without a gradient rule fails loudly, naming the node", "[graph][autodiff]") {
  static const OpDef op = cube_op(nullptr);
  Graph g;
  Value x = g.input("x", {2});
  Value y = g.apply(op, {x});
  auto msg = message_of<std::logic_error>([&] { grad(sum(y), {x}); });
  CHECK_THAT(msg, Catch::Contains("failed to compute gradient for"));
  CHECK_THAT(msg, Catch::Contains(fmt::format("node {} 'test_cube'", y.id())));
  // Off the path to the wanted gradient, the missing rule is never asked for.
  Value z = g.input("z", {2});
  CHECK_NOTHROW(grad(sum(y) + sum(z), {z}));
}

TEST_CASE("a gradient rule with the wrong shape or count is caught", "[graph][autodiff]") {
  Graph g;
  Value x = g.input("x", {2, 3});
  SECTION("wrong shape") {
    static const OpDef op = cube_op([](const GradContext& c) {
      return std::vector<Value>{sum(c.grad, {0})};  // [3] for a [2, 3] input
    });
    auto msg = message_of<std::logic_error>([&] { grad(sum(g.apply(op, {x})), {x}); });
    CHECK_THAT(msg, Catch::Contains("[3]") && Catch::Contains("[2, 3]"));
    CHECK_THAT(msg, Catch::Contains("test_cube"));
  }
  SECTION("wrong count") {
    static const OpDef op = cube_op([](const GradContext& c) {
      return std::vector<Value>{c.grad, c.grad};
    });
    auto msg = message_of<std::logic_error>([&] { grad(sum(g.apply(op, {x})), {x}); });
    CHECK_THAT(msg, Catch::Contains("returned 2 gradients for 1 inputs"));
  }
  SECTION("no gradient for a differentiable input") {
    static const OpDef op = cube_op([](const GradContext&) { return std::vector<Value>{Value()}; });
    auto msg = message_of<std::logic_error>([&] { grad(sum(g.apply(op, {x})), {x}); });
    CHECK_THAT(msg, Catch::Contains("declares differentiable"));
  }
}

TEST_CASE("gradients of values off the path are not accumulated", "[graph][autodiff]") {
  Graph g;
  Value x = g.input("x", {4, 3});
  Value w1 = g.parameter("w1", {3, 2}, Init::zeros());
  Value w2 = g.parameter("w2", {3, 2}, Init::zeros());
  Value loss = sum(matmul(x, w1)) + sum(matmul(x, w2));
  int before = g.size();
  grad(loss, {w1, w2});
  // x is used twice but nobody asked for dx: no add node sums its two contributions.
  int adds = 0;
  for (int id = before; id < g.size(); ++id)
    if (g.node(id).kind == NodeKind::op && g.node(id).op->name == "add") ++adds;
  CHECK(adds == 0);
}

TEST_CASE("second-order: d2/dx2 x^3 at x = 2 is 12", "[graph][autodiff]") {
  Graph g;
  Value x = g.input("x", {});
  Value y = x * x * x;
  Value dy = grad(y, {x})[0];     // 3x^2
  Value d2y = grad(dy, {x})[0];   // 6x
  Value d3y = grad(d2y, {x})[0];  // 6
  auto out = testing::run_graph(g, {dy, d2y, d3y}, {{"x", make_tensor({}, {2.0}, DType::f64)}},
                                DType::f64);
  CHECK(out[0].item() == Approx(12.0));  // 3 * 2^2
  CHECK(out[1].item() == Approx(12.0));  // 6 * 2
  CHECK(out[2].item() == Approx(6.0));
}

// Second derivative of sum(f(x)) elementwise: grad(sum(grad(sum(f(x)), x)), x).
std::vector<double> second_derivative(Value (*f)(Value, Loc), const std::vector<double>& xs) {
  Graph g;
  auto n = static_cast<std::int64_t>(xs.size());
  Value x = g.input("x", {n});
  Value first = grad(sum(f(x, Loc::current())), {x})[0];
  Value second = grad(sum(first), {x})[0];
  return run_values(g, second, {{"x", make_tensor({n}, xs, DType::f64)}}, DType::f64);
}

TEST_CASE("double backward through relu, sigmoid and tanh", "[graph][autodiff]") {
  std::vector<double> xs{-1.5, -0.3, 0.4, 2.0};
  SECTION("relu^3: (r^3)'' = 6 r") {
    auto cube_relu = [](Value x, Loc) { Value r = relu(x); return r * r * r; };
    auto got = second_derivative(+cube_relu, xs);
    testing::check_close(got, {0, 0, 6 * 0.4, 6 * 2.0}, 1e-12);
    // relu itself: piecewise linear, second derivative 0.
    auto flat = second_derivative([](Value x, Loc at) { return relu(x, at); }, xs);
    testing::check_close(flat, {0, 0, 0, 0}, 1e-12);
  }
  SECTION("sigmoid'' = s (1 - s) (1 - 2 s)") {
    auto got = second_derivative([](Value x, Loc at) { return sigmoid(x, at); }, xs);
    std::vector<double> want;
    for (double x : xs) {
      double s = 1 / (1 + std::exp(-x));
      want.push_back(s * (1 - s) * (1 - 2 * s));
    }
    testing::check_close(got, want, 1e-12);
  }
  SECTION("tanh'' = -2 t (1 - t^2)") {
    auto got = second_derivative([](Value x, Loc at) { return tanh(x, at); }, xs);
    std::vector<double> want;
    for (double x : xs) want.push_back(-2 * std::tanh(x) * (1 - std::tanh(x) * std::tanh(x)));
    testing::check_close(got, want, 1e-12);
  }
}

TEST_CASE("grad of a broadcast add sums back to each input's shape", "[graph][autodiff]") {
  Graph g;
  Value a = g.input("a", {2, 3});
  Value b = g.input("b", {3});
  Value c = g.input("c", {2, 1});
  auto d = grad(sum((a + b) * c), {a, b, c});
  ParameterStore v{{"a", make_tensor({2, 3}, {1, 2, 3, 4, 5, 6})},
                   {"b", make_tensor({3}, {10, 20, 30})},
                   {"c", make_tensor({2, 1}, {2, -1})}};
  auto out = testing::run_graph(g, d, v);
  // da = c broadcast: [[2, 2, 2], [-1, -1, -1]]; db = sum over rows of c = [1, 1, 1];
  // dc = row sums of a + b: [11+22+33, 14+25+36] = [66, 75]
  CHECK(testing::to_vector(out[0]) == std::vector<double>{2, 2, 2, -1, -1, -1});
  CHECK(testing::to_vector(out[1]) == std::vector<double>{1, 1, 1});
  CHECK(testing::to_vector(out[2]) == std::vector<double>{66, 75});
}

TEST_CASE("topological_order puts inputs first and names a cycle", "[graph][autodiff]") {
  Graph g;
  Value x = g.input("x", {});
  Value a = exp(x);
  Value b = a + x;
  auto order = topological_order(g, {b.id()});
  REQUIRE(order.size() == 3);
  CHECK(order.back() == b.id());
  auto pos = [&](int id) { return std::find(order.begin(), order.end(), id) - order.begin(); };
  CHECK(pos(x.id()) < pos(a.id()));
  g.set_input(a.id(), 0, b);
  CHECK_THROWS_WITH(topological_order(g, {b.id()}), Catch::Contains("cycle through node"));
}

}  // namespace
}  // namespace graphrun
