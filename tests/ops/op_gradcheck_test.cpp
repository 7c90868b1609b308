// Every registered op is gradient-checked at every sample it declares, in float64, against
// central differences. An op registered without samples fails here.
#include "graph/run_helpers.hpp"

#include <graphrun/graph/gradcheck.hpp>
#include <graphrun/graph/op.hpp>
#include <graphrun/graph/random.hpp>
#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

namespace graphrun {
namespace {

Tensor random_tensor(const Shape& shape, std::pair<double, double> range, std::uint32_t stream) {
  return testing::random_tensor(shape, range, stream, 77);
}

// loss = sum(op(x...) * w) with a fixed random w, so every output element gets its own weight.
GradCheckReport check_sample(const OpDef& op, const GradSample& sample) {
  Graph g;
  ParameterStore values;
  std::vector<Value> inputs;
  std::vector<std::string> wrt;
  for (std::size_t i = 0; i < sample.shapes.size(); ++i) {
    auto name = fmt::format("x{}", i);
    inputs.push_back(g.parameter(name, sample.shapes[i], Init::zeros()));
    auto range = sample.ranges[std::min(i, sample.ranges.size() - 1)];
    values.emplace(name, random_tensor(sample.shapes[i], range, static_cast<std::uint32_t>(i)));
    if (op.input_differentiable(i)) wrt.push_back(name);
  }
  Value y = g.apply(op, inputs, sample.attrs);
  Tensor w = random_tensor(y.shape(), {-1.0, 1.0}, 99);
  Value weights = g.constant(y.shape(), std::vector<double>(w.values<double>().begin(), w.values<double>().end()));
  Value loss = sum(mul(y, weights));
  if (wrt.empty()) return {};
  return check_gradients(g, loss, wrt, values);
}

TEST_CASE("every registered op passes its gradient check", "[ops][gradcheck]") {
  auto ops = op_registry().all();
  REQUIRE(ops.size() >= 30);
  for (const OpDef* op : ops) {
    DYNAMIC_SECTION("op " << op->name) {
      INFO("op " << op->name << ": " << op->summary);
      REQUIRE_FALSE(op->samples.empty());
      REQUIRE(op->grad);
      bool any_differentiable = false;
      for (const auto& sample : op->samples) {
        std::string shapes;
        for (const auto& s : sample.shapes) shapes += to_string(s) + " ";
        INFO("input shapes " << shapes << "attributes " << sample.attrs.to_string());
        auto report = check_sample(*op, sample);
        if (report.tensors.empty()) continue;
        any_differentiable = true;
        INFO(report.to_string());
        CHECK(report.ok());
      }
      // Random ops take their input for its shape only; all others must be differentiable.
      CHECK(any_differentiable != op->random);
    }
  }
}

}  // namespace
}  // namespace graphrun
