// One graph, any batch size: every registered op's gradient-check samples are built at one size
// of their leading (batch) dimension and compiled at others; values and gradients must be the
// same bits as a graph built at that size. A gradient rule or attribute that kept a size from
// build time (a slice offset, a skipped broadcast) fails here.
#include "graph/run_helpers.hpp"

#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/op.hpp>
#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <optional>

namespace graphrun {
namespace {

// The sample's shapes with the leading dimension of the batch inputs (those whose leading
// dimension is input 0's) set to n.
std::vector<Shape> at_batch(const GradSample& sample, std::int64_t n) {
  auto shapes = sample.shapes;
  const std::int64_t b = shapes[0][0];
  for (auto& s : shapes)
    if (!s.empty() && s[0] == b) s[0] = n;
  return shapes;
}

struct Built {
  std::unique_ptr<Graph> graph = std::make_unique<Graph>();
  std::vector<Value> outputs;  // y, then d(sum(y * w))/d(x_i) for each differentiable input
};

// y = op(x...), loss = sum(y * w) with inputs x_i and w, gradients with respect to the x_i.
std::optional<Built> build(const OpDef& op, const GradSample& sample,
                           const std::vector<Shape>& shapes) {
  Built b;
  Graph& g = *b.graph;
  std::vector<Value> xs, wrt;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    xs.push_back(g.input(fmt::format("x{}", i), shapes[i]));
    if (op.input_differentiable(i) && !op.random) wrt.push_back(xs.back());
  }
  Value y;
  try {
    y = g.apply(op, xs, sample.attrs);
  } catch (const ShapeError&) {
    return std::nullopt;  // the op does not take this size: nothing to compare
  }
  Value w = g.input("w", y.shape());
  b.outputs.push_back(y);
  if (!wrt.empty()) {
    auto grads = grad(sum(mul(y, w)), wrt);
    b.outputs.insert(b.outputs.end(), grads.begin(), grads.end());
  }
  return b;
}

std::vector<Tensor> run(const Built& b, const GradSample& sample, const std::vector<Shape>& shapes,
                        const Shape& y_shape) {
  ParameterStore values;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    auto range = sample.ranges[std::min(i, sample.ranges.size() - 1)];
    values.emplace(fmt::format("x{}", i),
                   testing::random_tensor(shapes[i], range, static_cast<std::uint32_t>(i), 5));
  }
  values.emplace("w", testing::random_tensor(y_shape, {-1.0, 1.0}, 99, 5));
  return testing::run_graph(*b.graph, b.outputs, values, DType::f64, {true, 7, 3});
}

TEST_CASE("every op built at one batch size computes the same at another", "[ops][batch]") {
  int compared = 0;
  for (const OpDef* op : op_registry().all()) {
    for (const auto& sample : op->samples) {
      if (sample.shapes[0].empty()) continue;  // no batch dimension
      const std::int64_t b = sample.shapes[0][0];
      for (auto [built_at, compiled_at] : {std::pair{b, b + 2}, {std::int64_t{1}, b + 1}, {b + 1, std::int64_t{1}}}) {
        if (built_at == compiled_at) continue;
        auto shapes = at_batch(sample, compiled_at);
        auto reference = build(*op, sample, shapes);
        auto other = build(*op, sample, at_batch(sample, built_at));
        if (!reference || !other) continue;
        INFO("op " << op->name << " " << sample.attrs.to_string() << ": built at batch "
                   << built_at << ", compiled at " << compiled_at);
        REQUIRE(other->outputs.size() == reference->outputs.size());
        const Shape y_shape = reference->outputs[0].shape();
        std::vector<Tensor> want, got;
        try {
          want = run(*reference, sample, shapes, y_shape);
        } catch (const std::exception&) {
          continue;  // the sample's values do not suit this size (indices past its end)
        }
        try {
          got = run(*other, sample, shapes, y_shape);
        } catch (const std::exception& e) {
          FAIL("compiling at the other batch size failed: " << e.what());
        }
        for (std::size_t k = 0; k < want.size(); ++k) {
          INFO("output " << k << (k == 0 ? " (the op's value)" : " (a gradient)"));
          REQUIRE(got[k].shape() == want[k].shape());
          CHECK(testing::to_vector(got[k]) == testing::to_vector(want[k]));
        }
        ++compared;
      }
    }
  }
  CHECK(compared > 100);
}

// The fault that showed the class of bug: K copies of a [B, Z] code joined along the batch axis,
// trained until the last, smaller batch of an epoch.
TEST_CASE("concat along the batch axis trains at a smaller last batch", "[ops][batch]") {
  Graph g;
  Value z = g.input("z", {8, 3});
  Value w = g.parameter("w", {3, 2}, Init::zeros());
  Value loss = sum(square(matmul(concat({z, z, z}, 0), w)));
  auto dw = grad(loss, {w});
  ParameterStore values;
  values.emplace("z", testing::random_tensor({5, 3}, {-1, 1}, 0, 1));
  values.emplace("w", testing::random_tensor({3, 2}, {-1, 1}, 1, 1));
  auto got = testing::run_graph(g, {dw[0]}, values, DType::f64);
  // d/dw sum((3 copies of z) w)^2 = 3 * 2 z^T z w.
  Graph h;
  Value z5 = h.input("z", {5, 3});
  Value w5 = h.parameter("w", {3, 2}, Init::zeros());
  Value want = matmul(matmul(z5, z5, true, false), w5) * 6.0;
  testing::check_close(testing::to_vector(got[0]),
                       testing::run_values(h, want, values, DType::f64), 1e-12);
}

}  // namespace
}  // namespace graphrun
