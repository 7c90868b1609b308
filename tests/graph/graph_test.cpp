// The graph IR: building nodes, shape checks with messages that name the op, node, shapes,
// attributes and the builder's line, and rewiring with set_input.
#include "graph/run_helpers.hpp"

#include <graphrun/graph/graph.hpp>
#include <graphrun/graph/op.hpp>
#include <graphrun/graph/parameters.hpp>
#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

namespace graphrun {
namespace {

using testing::message_of;

TEST_CASE("matmul shape error names op, node, shapes, attributes and builder line",
          "[graph][shape]") {
  Graph g;
  Value a = g.input("a", {2, 3});
  Value b = g.input("b", {4, 5});
  int line = __LINE__ + 1;
  auto msg = message_of<ShapeError>([&] { matmul(a, b); });
  INFO(msg);
  CHECK_THAT(msg, Catch::Contains("matmul"));
  CHECK_THAT(msg, Catch::Contains("node 2"));  // a = 0, b = 1, the matmul would be 2
  CHECK_THAT(msg, Catch::Contains("[2, 3]"));
  CHECK_THAT(msg, Catch::Contains("[4, 5]"));
  CHECK_THAT(msg, Catch::Contains("transpose_a=0"));
  CHECK_THAT(msg, Catch::Contains("transpose_b=0"));
  CHECK_THAT(msg, Catch::Contains(fmt::format("graph_test.cpp:{}", line)));
  CHECK(g.size() == 2);  // the failed node is not recorded
}

TEST_CASE("a ShapeError is an invalid_argument", "[graph][shape]") {
  Graph g;
  Value a = g.input("a", {2, 3});
  Value b = g.input("b", {4, 5});
  static_assert(std::is_base_of_v<std::invalid_argument, ShapeError>);
  CHECK_THROWS_AS(matmul(a, b), std::invalid_argument);
  Value c = g.input("c", {3, 4});
  CHECK(matmul(a, c).shape() == Shape{2, 4});  // [2, 3] x [3, 4]
}

TEST_CASE("add reports a broadcasting failure with both shapes and the caller's line",
          "[graph][shape]") {
  Graph g;
  Value a = g.input("a", {2, 3});
  Value b = g.input("b", {4});
  int line = __LINE__ + 1;
  auto msg = message_of<ShapeError>([&] { (void)(a + b); });
  INFO(msg);
  CHECK_THAT(msg, Catch::Contains("add"));
  CHECK_THAT(msg, Catch::Contains("[2, 3]"));
  CHECK_THAT(msg, Catch::Contains("[4]"));
  CHECK_THAT(msg, Catch::Contains("cannot broadcast"));
  CHECK_THAT(msg, Catch::Contains(fmt::format("graph_test.cpp:{}", line)));
}

TEST_CASE("arity is checked for ops applied directly", "[graph][shape]") {
  Graph g;
  Value a = g.input("a", {2});
  auto msg = message_of<ShapeError>([&] { g.apply(op_registry().at("add"), {a}); });
  CHECK_THAT(msg, Catch::Contains("takes 2 inputs, got 1"));
}

TEST_CASE("bad attributes surface as a ShapeError naming the op", "[graph][shape]") {
  Graph g;
  Value a = g.input("a", {2, 3});
  auto msg = message_of<ShapeError>([&] { sum(a, {2}); });
  CHECK_THAT(msg, Catch::Contains("sum"));
  CHECK_THAT(msg, Catch::Contains("axis 2 is out of range for rank 2"));
  // A missing attribute (an op applied by hand) reads as a shape error too.
  auto missing = message_of<ShapeError>([&] { g.apply(op_registry().at("sum"), {a}); });
  CHECK_THAT(missing, Catch::Contains("missing attribute"));
}

TEST_CASE("names of inputs and parameters are unique and can be found", "[graph]") {
  Graph g;
  Value x = g.input("x", {3});
  Value w = g.parameter("w", {3}, Init::zeros());
  CHECK_THROWS_WITH(g.input("w", {1}), Catch::Contains("already used"));
  CHECK_THROWS_WITH(g.parameter("x", {1}, Init::zeros()), Catch::Contains("already used"));
  CHECK(g.find("x") == x);
  CHECK(g.find("w") == w);
  CHECK_THROWS_WITH(g.find("y"), Catch::Contains("x, w"));
  CHECK(g.inputs().size() == 1);
  CHECK(g.parameters().size() == 1);
}

TEST_CASE("buffers are held like parameters but are not trained", "[graph][buffer]") {
  Graph g;
  Value w = g.parameter("w", {3}, Init::zeros());
  Value b = g.buffer("bn.mean", {1, 3}, Init::constant(1));
  CHECK(g.parameters() == std::vector<Value>{w});  // what grad() is taken with respect to
  CHECK(g.buffers() == std::vector<Value>{b});
  CHECK(g.find("bn.mean") == b);
  CHECK_THAT(b.node().describe(), Catch::Contains("buffer 'bn.mean'"));
  CHECK_THROWS_WITH(g.parameter("bn.mean", {1, 3}, Init::zeros()), Catch::Contains("already used by node 1 buffer"));
  CHECK_THROWS_WITH(g.buffer("w", {3}, Init::zeros()), Catch::Contains("already used"));
  CHECK_THROWS_WITH(g.shared_parameter("bn.mean", {1, 3}, Init::zeros()), Catch::Contains("is a buffer"));
  // Initialised, bound and saved with the parameters: one store holds both.
  ParameterStore store = init_parameters(g, 1);
  REQUIRE(store.count("bn.mean") == 1);
  CHECK(testing::to_vector(store.at("bn.mean")) == std::vector<double>{1, 1, 1});
}

TEST_CASE("shared_parameter gives the same weights for the same name", "[graph]") {
  Graph g;
  g.input("x", {3});
  Value a = g.shared_parameter("w", {3, 2}, Init::he_uniform());
  CHECK(g.shared_parameter("w", {3, 2}, Init::zeros()) == a);  // the first one's init stands
  CHECK(g.parameters().size() == 1);
  CHECK_THROWS_WITH(g.shared_parameter("w", {2, 3}, Init::zeros()), Catch::Contains("[3, 2]"));
  CHECK_THROWS_WITH(g.shared_parameter("x", {3}, Init::zeros()), Catch::Contains("already used"));
}

TEST_CASE("constants check their value count and shapes their rank", "[graph]") {
  Graph g;
  CHECK_THROWS_AS(g.constant({2, 2}, {1, 2, 3}), ShapeError);
  CHECK_THROWS_AS(g.input("x", {1, 1, 1, 1, 1}), ShapeError);
  CHECK_THROWS_AS(g.input("y", {2, -1}), ShapeError);
  CHECK(g.scalar(2.5).node().values == std::vector<double>{2.5});
}

TEST_CASE("values from another graph are refused", "[graph]") {
  Graph g1, g2;
  Value a = g1.input("a", {2});
  Value b = g2.input("b", {2});
  CHECK_THROWS_WITH(add(a, b), Catch::Contains("does not belong to this graph"));
  CHECK_THROWS_AS(relu(Value()), std::logic_error);
}

TEST_CASE("describe names the node, its op or label, and where it was built", "[graph]") {
  Graph g;
  Value x = g.input("x", {2});
  int line = __LINE__ + 1;
  Value y = relu(x);
  CHECK(y.node().describe() == fmt::format("node 1 'relu' built at graph_test.cpp:{}", line));
  g.set_label(y, "hidden");
  CHECK_THAT(y.node().describe(), Catch::Contains("'relu' (hidden)"));
  CHECK_THAT(x.node().describe(), Catch::Contains("input 'x'"));
}

TEST_CASE("scalar operators record the caller's line, not the library's", "[graph]") {
  Graph g;
  Value x = g.input("x", {2});
  int line = __LINE__ + 1;
  Value y = x * 2.0;
  Value z = 1.0 - x;
  Value n = -x;
  auto here = fmt::format("graph_test.cpp:{}", line);
  CHECK_THAT(y.node().describe(), Catch::Contains(here));
  CHECK_THAT(z.node().describe(), Catch::Contains(fmt::format("graph_test.cpp:{}", line + 1)));
  CHECK_THAT(n.node().describe(), Catch::Contains(fmt::format("graph_test.cpp:{}", line + 2)));
  // The scalar constants the operators make are placed at the caller's line too.
  CHECK_THAT(g.node(y.node().inputs[1]).describe(), Catch::Contains(here));
}

TEST_CASE("set_input rewires a node and refuses bad slots", "[graph]") {
  Graph g;
  Value x = g.input("x", {2});
  Value y = g.input("y", {2});
  Value r = relu(x);
  g.set_input(r.id(), 0, y);
  CHECK(r.node().inputs == std::vector<int>{y.id()});
  CHECK_THROWS_WITH(g.set_input(r.id(), 1, y), Catch::Contains("no input slot 1"));
  CHECK_THROWS_AS(g.set_input(x.id(), 0, y), std::invalid_argument);  // an input has no slots
}

}  // namespace
}  // namespace graphrun
