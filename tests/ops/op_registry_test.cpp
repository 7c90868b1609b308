// Registry-wide kernel checks: every op's float32 kernel agrees with its float64 kernel at every
// gradient-check sample, and the registry refuses incomplete definitions.
#include "graph/run_helpers.hpp"

#include <graphrun/graph/op.hpp>
#include <graphrun/graph/random.hpp>
#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cmath>

namespace graphrun {
namespace {

Tensor random_tensor(const Shape& shape, std::pair<double, double> range, std::uint32_t stream) {
  return testing::random_tensor(shape, range, stream, 5);
}

TEST_CASE("every op's float32 kernel agrees with its float64 kernel", "[ops][registry]") {
  for (const OpDef* op : op_registry().all()) {
    DYNAMIC_SECTION("op " << op->name) {
      for (const auto& sample : op->samples) {
        INFO("attributes " << sample.attrs.to_string());
        Graph g;
        ParameterStore values;
        std::vector<Value> inputs;
        for (std::size_t i = 0; i < sample.shapes.size(); ++i) {
          auto name = fmt::format("x{}", i);
          inputs.push_back(g.input(name, sample.shapes[i]));
          auto range = sample.ranges[std::min(i, sample.ranges.size() - 1)];
          values.emplace(name, random_tensor(sample.shapes[i], range, static_cast<std::uint32_t>(i)));
        }
        Value y = g.apply(*op, inputs, sample.attrs);
        auto wide = testing::to_vector(testing::run_graph(g, {y}, values, DType::f64)[0]);
        auto narrow = testing::to_vector(testing::run_graph(g, {y}, values, DType::f32)[0]);
        REQUIRE(wide.size() == narrow.size());
        REQUIRE(static_cast<std::int64_t>(wide.size()) == numel(y.shape()));
        for (std::size_t i = 0; i < wide.size(); ++i) {
          INFO("element " << i);
          CHECK(std::isfinite(wide[i]));
          CHECK(narrow[i] == Approx(wide[i]).epsilon(1e-5).margin(1e-5));
        }
      }
    }
  }
}

TEST_CASE("the registry refuses incomplete or duplicate definitions", "[ops][registry]") {
  OpRegistry r;
  OpDef d;
  CHECK_THROWS_WITH(r.add(d), Catch::Contains("no name"));
  d.name = std::string("x");  // assigning a literal trips a GCC 12 -Wrestrict false positive
  CHECK_THROWS_WITH(r.add(d), Catch::Contains("no shape rule"));
  d.shape = [](std::span<const Shape> in, const Attrs&) { return in[0]; };
  CHECK_THROWS_WITH(r.add(d), Catch::Contains("float32 and float64"));
  d.f32 = [](const KernelArgs<float>&) {};
  d.f64 = [](const KernelArgs<double>&) {};
  CHECK_THROWS_WITH(r.add(d), Catch::Contains("summary"));
  d.summary = std::string("y = x");
  const OpDef& added = r.add(d);
  CHECK(&added == r.find("x"));
  CHECK_THROWS_WITH(r.add(d), Catch::Contains("taken"));
  CHECK_THROWS_WITH(op_registry().at("no_such_op"), Catch::Contains("matmul"));
  CHECK(op_registry().find("no_such_op") == nullptr);
}

// Graph files call ops by name with attributes as named arguments: each attribute an op reads
// must be declared, or a file could not give it.
TEST_CASE("every attribute in an op's samples is declared", "[ops][registry]") {
  for (const OpDef* op : op_registry().all()) {
    for (const auto& sample : op->samples)
      for (const auto& [key, value] : sample.attrs.items()) {
        INFO("op " << op->name << " reads attribute '" << key << "' but does not declare it");
        bool declared = false;
        for (const auto& a : op->attributes) declared = declared || a.name == key;
        CHECK(declared);
      }
  }
}

TEST_CASE("shape-only inputs are declared where the summary says values are not read",
          "[ops][registry]") {
  for (const char* name : {"sum_to_like", "expand_like", "spread_like", "reshape_like",
                           "unslice_like"}) {
    INFO(name);
    const OpDef& op = op_registry().at(name);
    CHECK_FALSE(op.input_shape_only(0));
    CHECK(op.input_shape_only(1));
  }
  CHECK(op_registry().at("random_normal_like").input_shape_only(0));
  CHECK_FALSE(op_registry().at("relu_backward").input_shape_only(1));  // reads x's sign
}

}  // namespace
}  // namespace graphrun
