// Every registered op is gradient-checked at every sample it declares, in float64, against
// central differences. An op registered without samples fails here. Ops that declare every input
// non-differentiable (stop_gradient, one_hot_argmax) are checked to block gradients instead.
#include "graph/run_helpers.hpp"

#include <graphrun/graph/autodiff.hpp>
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

// A constant of the shape of v, random in [-1, 1] and fixed by `stream`.
Value random_weights(Graph& g, const Shape& shape, std::uint32_t stream) {
  Tensor w = random_tensor(shape, {-1.0, 1.0}, stream);
  return g.constant(shape, std::vector<double>(w.values<double>().begin(), w.values<double>().end()));
}

// loss = sum(op(x...) * w) with a fixed random w, so every output element gets its own weight.
// At order 2 the second derivatives, which grad() in graph files and gradient penalties rely on:
// the loss's gradients, built as graph nodes, weighted by other fixed random tensors and summed,
// are checked against central differences like any other loss.
GradCheckReport check_sample(const OpDef& op, const GradSample& sample, int order = 1) {
  Graph g;
  ParameterStore values;
  std::vector<Value> inputs, differentiable;
  std::vector<std::string> wrt;
  for (std::size_t i = 0; i < sample.shapes.size(); ++i) {
    auto name = fmt::format("x{}", i);
    inputs.push_back(g.parameter(name, sample.shapes[i], Init::zeros()));
    auto range = sample.ranges[std::min(i, sample.ranges.size() - 1)];
    values.emplace(name, random_tensor(sample.shapes[i], range, static_cast<std::uint32_t>(i)));
    if (!op.input_differentiable(i)) continue;
    wrt.push_back(name);
    differentiable.push_back(inputs.back());
  }
  if (wrt.empty()) return {};
  Value y = g.apply(op, inputs, sample.attrs);
  Value loss = sum(mul(y, random_weights(g, y.shape(), 99)));
  if (order == 2) {
    auto grads = grad(loss, differentiable);
    loss = Value();
    for (std::size_t i = 0; i < grads.size(); ++i) {
      Value term = sum(mul(grads[i], random_weights(g, grads[i].shape(), 200 + static_cast<std::uint32_t>(i))));
      loss = loss.valid() ? add(loss, term) : term;
    }
  }
  return check_gradients(g, loss, wrt, values);
}

bool blocks_gradients(const OpDef& op) {
  if (op.random || op.differentiable.empty()) return false;
  for (bool d : op.differentiable)
    if (d) return false;
  return true;
}

// For an op whose inputs are all declared non-differentiable: its rule must say "no gradient" for
// every input, and the gradient autodiff builds through it must be exactly zero, even though the
// loss reads the op's output (an identity like stop_gradient has true derivative 1).
void check_blocks(const OpDef& op, const GradSample& sample) {
  Graph g;
  ParameterStore values;
  std::vector<Value> inputs;
  for (std::size_t i = 0; i < sample.shapes.size(); ++i) {
    auto name = fmt::format("x{}", i);
    inputs.push_back(g.parameter(name, sample.shapes[i], Init::zeros()));
    auto range = sample.ranges[std::min(i, sample.ranges.size() - 1)];
    values.emplace(name, random_tensor(sample.shapes[i], range, static_cast<std::uint32_t>(i)));
  }
  Value y = g.apply(op, inputs, sample.attrs);
  Value loss = sum(y);
  auto rule = op.grad(GradContext{inputs, y, expand_like(g.scalar(1.0), y), sample.attrs, Loc::current()});
  REQUIRE(rule.size() == inputs.size());
  for (std::size_t i = 0; i < rule.size(); ++i) {
    INFO("input " << i);
    CHECK_FALSE(rule[i].valid());
  }
  auto grads = grad(loss, inputs);
  std::vector<Value> outputs{loss};
  outputs.insert(outputs.end(), grads.begin(), grads.end());
  auto out = testing::run_graph(g, outputs, values, DType::f64);
  CHECK(out[0].item() != 0.0);  // the loss does read the op
  for (std::size_t i = 1; i < out.size(); ++i) {
    INFO("gradient of input " << i - 1);
    for (double v : testing::to_vector(out[i])) CHECK(v == 0.0);
  }
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
      const bool blocks = blocks_gradients(*op);
      for (const auto& sample : op->samples) {
        std::string shapes;
        for (const auto& s : sample.shapes) shapes += to_string(s) + " ";
        INFO("input shapes " << shapes << "attributes " << sample.attrs.to_string());
        if (blocks) {
          check_blocks(*op, sample);
          continue;
        }
        auto report = check_sample(*op, sample);
        if (report.tensors.empty()) continue;
        any_differentiable = true;
        INFO(report.to_string());
        CHECK(report.ok());
      }
      // Random ops take their input for its shape only, and gradient stops say they block;
      // all others must be differentiable.
      CHECK(any_differentiable != (op->random || blocks));
    }
  }
}

TEST_CASE("every differentiable op has second derivatives that pass the check", "[ops][gradcheck]") {
  for (const OpDef* op : op_registry().all()) {
    if (op->random || blocks_gradients(*op)) continue;
    DYNAMIC_SECTION("op " << op->name) {
      INFO("op " << op->name << ": " << op->summary);
      for (const auto& sample : op->samples) {
        std::string shapes;
        for (const auto& s : sample.shapes) shapes += to_string(s) + " ";
        INFO("input shapes " << shapes << "attributes " << sample.attrs.to_string());
        auto report = check_sample(*op, sample, 2);
        INFO(report.to_string());
        CHECK(report.ok());
      }
    }
  }
}

}  // namespace
}  // namespace graphrun
