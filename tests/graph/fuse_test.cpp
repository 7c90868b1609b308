// Elementwise fusion: fused programs compute the same bits as one kernel per op, for every
// fusable op and sample, for chains with biases shorter or longer than a chunk, at 1 and 2 threads.
#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/parallel.hpp>
#include <graphrun/graph/parameters.hpp>
#include <graphrun/ops/conv.hpp>
#include <graphrun/ops/conv_kernels.hpp>
#include <graphrun/ops/ops.hpp>

#include <cstring>

#include "graph/run_helpers.hpp"

namespace graphrun {
namespace {

struct ThreadGuard {
  ~ThreadGuard() { set_num_threads(0); }
};

// Every output of one run, as raw bytes, compiled with fusion on or off.
std::vector<std::vector<char>> run_bytes(const Graph& g, const std::vector<Value>& outputs,
                                         const ParameterStore& values, DType dtype, bool fuse,
                                         int* steps = nullptr) {
  ParameterStore converted;
  ShapeMap shapes;
  for (const auto& [name, t] : values) {
    converted.emplace(name, t.dtype() == dtype ? t : t.to(dtype));
    shapes[name] = t.shape();
  }
  Program p = compile_program(g, outputs, shapes, {.dtype = dtype, .fuse = fuse});
  for (const auto& [name, shape] : p.bindings()) p.bind(name, converted.at(name));
  p.run({true, 3, 1});
  if (steps) *steps = p.num_steps();
  return testing::output_bytes(p);
}

// True when every input is the output's shape, a single value or a trailing row: the inputs the
// fuser accepts.
bool fusable_shapes(const std::vector<Shape>& in, const Shape& out) {
  for (Shape s : in) {
    if (numel(s) == numel(out) || numel(s) == 1) continue;
    while (!s.empty() && s.front() == 1) s.erase(s.begin());
    if (s.size() > out.size() || !std::equal(s.begin(), s.end(), out.end() - static_cast<std::ptrdiff_t>(s.size())))
      return false;
  }
  return true;
}

}  // namespace

TEST_CASE("every fusable op computes the same bits fused as alone", "[graph][fuse]") {
  int checked = 0;
  for (const OpDef* op : op_registry().all()) {
    if (!op->f32_run) continue;
    for (std::size_t k = 0; k < op->samples.size(); ++k) {
      const GradSample& sample = op->samples[k];
      Graph g;
      std::vector<Value> inputs;
      ParameterStore values;
      for (std::size_t i = 0; i < sample.shapes.size(); ++i) {
        std::string name = "in" + std::to_string(i);
        inputs.push_back(g.input(name, sample.shapes[i]));
        auto range = sample.ranges[std::min(i, sample.ranges.size() - 1)];
        values.emplace(name, testing::random_tensor(sample.shapes[i], range, static_cast<std::uint32_t>(i), 11));
      }
      Value y = g.apply(*op, inputs, sample.attrs);
      // A repeating op says itself whether it fuses (spread_like: not when a mean scales it).
      if (op->broadcast ? op->broadcast(sample.shapes, sample.attrs) == Broadcast::none
                        : !fusable_shapes(sample.shapes, y.shape()))
        continue;
      // y feeds two more fused ops and is read by nothing else, so it lives only in a chunk buffer.
      Value out = neg(y) + y;
      for (DType dtype : {DType::f32, DType::f64}) {
        INFO(op->name << " sample " << k << " " << dtype_name(dtype));
        int fused_steps = 0;
        auto fused = run_bytes(g, {out}, values, dtype, true, &fused_steps);
        CHECK(fused == run_bytes(g, {out}, values, dtype, false));
        CHECK(fused_steps == 1);
      }
      ++checked;
    }
  }
  CHECK(checked >= 30);
}

TEST_CASE("a fused chain with a bias shorter or longer than a chunk matches unfused at 1 and 2 threads",
          "[graph][fuse]") {
  ThreadGuard guard;
  // Rows taken several to a chunk (the last chunk partial), and one row split over three chunks.
  for (auto [rows, width] : {std::pair<std::int64_t, std::int64_t>{40, 7}, {2001, 20}, {40, 1500}}) {
    Graph g;
    Value x = g.input("x", {rows, width});
    Value b = g.input("b", {width});
    Value s = g.input("s", {});
    Value h = relu(x + b);             // h is stored: the sum below reads it
    Value z = sigmoid(h * s - 0.25);   // the rest stays in chunk buffers
    Value loss = sum(h) + sum(exp(z) * x);
    ParameterStore values;
    values.emplace("x", testing::random_tensor({rows, width}, {-1, 1}, 1, 4));
    values.emplace("b", testing::random_tensor({width}, {-1, 1}, 2, 4));
    values.emplace("s", testing::random_tensor({}, {0.5, 2}, 3, 4));
    auto want = run_bytes(g, {loss, h, z}, values, DType::f32, false);
    for (int threads : {1, 2}) {
      INFO(rows << " rows of " << width << ", " << threads << " threads");
      set_num_threads(threads);
      int steps = 0;
      CHECK(run_bytes(g, {loss, h, z}, values, DType::f32, true, &steps) == want);
      CHECK(steps < 8);
    }
  }
}

TEST_CASE("a sum's gradient fuses into the chain it scales, as one value per row", "[graph][fuse]") {
  ThreadGuard guard;
  // The VAE's reconstruction term: per-row sums of BCE, then their mean. The gradient of the row
  // sum is spread_like [B] -> [B, N], one value per row, which multiplies sigmoid(l) - x.
  for (std::int64_t width : {20, 1500}) {  // rows shorter than a chunk, and split over three
    Graph g;
    Value h = g.input("h", {300, width});
    Value b = g.input("b", {width});
    Value x = g.input("x", {300, width});
    Value loss = mean(sum(bce_with_logits(h + b, x), {1}));
    auto grads = grad(loss, {h, b});
    ParameterStore values;
    values.emplace("h", testing::random_tensor({300, width}, {-3, 3}, 1, 5));
    values.emplace("b", testing::random_tensor({width}, {-1, 1}, 2, 5));
    values.emplace("x", testing::random_tensor({300, width}, {0, 1}, 3, 5));
    std::vector<Value> outputs{loss, grads[0], grads[1]};
    auto want = run_bytes(g, outputs, values, DType::f32, false);
    for (int threads : {1, 2}) {
      INFO("width " << width << ", " << threads << " threads");
      set_num_threads(threads);
      CHECK(run_bytes(g, outputs, values, DType::f32, true) == want);
    }
    Program p = compile_program(g, outputs);
    CHECK_THAT(p.describe(), Catch::Contains("bce_with_logits+spread_like+mul"));
  }
}

TEST_CASE("fusion keeps results read elsewhere and plans less memory", "[graph][fuse][memory]") {
  Graph g;
  Value x = g.input("x", {64, 100});
  Value a = exp(x);
  Value b = a * 2.0;      // read only by c: not stored
  Value c = b - x;
  Value d = sum(a) + sum(c);  // a and c are read by the sums: stored
  Program fused = compile_program(g, {d});
  Program plain = compile_program(g, {d}, {}, {.fuse = false});
  CHECK(fused.num_steps() < plain.num_steps());
  CHECK(fused.memory_plan().buffer_bytes < plain.memory_plan().buffer_bytes);
  CHECK_THAT(fused.describe(), Catch::Contains("exp+mul+sub"));
  // check_numerics must name a single op, so it turns fusion off.
  Program checked = compile_program(g, {d}, {}, {.check_numerics = true});
  CHECK(checked.num_steps() == plain.num_steps());
}

TEST_CASE("a convolution runs the bias and relu after it, relu's gradient and the bias gradient's sum, on each block it finishes",
          "[graph][fuse][conv]") {
  ThreadGuard guard;
  const bool taps = ops::conv_tap_products();
  struct TapGuard {
    bool taps;
    ~TapGuard() { ops::set_conv_tap_products(taps); }
  } tap_guard{taps};
  // 19 images go in blocks with a partial last one; 8 channels put the float32 layers on tap
  // products, one channel on im2col.
  Graph g;
  Value x = g.input("x", {19, 1, 12, 10});
  Value w1 = g.input("w1", {8, 1, 3, 3}), b1 = g.input("b1", {1, 8, 1, 1});
  Value w2 = g.input("w2", {8, 8, 3, 3}), b2 = g.input("b2", {1, 8, 1, 1});
  Value w3 = g.input("w3", {8, 8, 3, 3}), b3 = g.input("b3", {1, 8, 1, 1});
  Value w4 = g.input("w4", {8, 1, 3, 3});
  Value h1 = relu(conv2d(x, w1, {.padding = {1, 1}}) + b1);
  Value h2 = relu(conv2d(h1, w2, {.stride = {2, 2}, .padding = {1, 1}}) + b2);
  Value h3 = relu(conv_transpose2d(h2, w3, {.stride = {2, 2}, .padding = {1, 1}, .output_padding = {1, 1}}) + b3);
  Value y = conv_transpose2d(h3, w4, {.padding = {1, 1}});
  Value loss = sum(square(y - x));
  std::vector<Value> outputs{loss};
  for (Value v : grad(loss, {x, w1, b1, w2, b2, w3, b3, w4})) outputs.push_back(v);
  ParameterStore values;
  std::uint32_t seed = 1;
  for (const auto& [name, shape] : std::vector<std::pair<std::string, Shape>>{
           {"x", {19, 1, 12, 10}}, {"w1", {8, 1, 3, 3}}, {"b1", {1, 8, 1, 1}}, {"w2", {8, 8, 3, 3}},
           {"b2", {1, 8, 1, 1}}, {"w3", {8, 8, 3, 3}}, {"b3", {1, 8, 1, 1}}, {"w4", {8, 1, 3, 3}}})
    values.emplace(name, testing::random_tensor(shape, {-0.5, 0.5}, seed++, 6));

  Program p = compile_program(g, outputs);
  const std::string steps = p.describe();
  CHECK_THAT(steps, Catch::Contains("then add+relu over [19, 8, 12, 10]"));
  CHECK_THAT(steps, Catch::Contains("then add+relu over [19, 8, 6, 5]"));
  CHECK_THAT(steps, Catch::Contains("then relu_backward"));
  // The three bias gradients sum relu_backward's results range by range inside the convolution
  // that computes them (OpDef::blockwise), the ranges of a partial last block included.
  std::size_t reductions = 0;
  for (std::size_t at = steps.find("then sum_to_like over its ranges"); at != std::string::npos;
       at = steps.find("then sum_to_like over its ranges", at + 1))
    ++reductions;
  CHECK(reductions == 3);
  for (bool tap_products : {true, false}) {
    ops::set_conv_tap_products(tap_products);
    for (DType dtype : {DType::f32, DType::f64}) {
      set_num_threads(1);
      auto want = run_bytes(g, outputs, values, dtype, false);
      for (int threads : {1, 2}) {
        INFO(dtype_name(dtype) << ", tap products " << tap_products << ", " << threads << " threads");
        set_num_threads(threads);
        CHECK(run_bytes(g, outputs, values, dtype, true) == want);
      }
    }
  }
}

TEST_CASE("a convolution whose output is read elsewhere keeps its elementwise ops apart",
          "[graph][fuse][conv]") {
  Graph g;
  Value x = g.input("x", {4, 2, 6, 6});
  Value w = g.input("w", {3, 2, 3, 3});
  Value c = conv2d(x, w);
  Value read_twice = relu(c + 1.0) + sum(c);  // c itself is read by the sum
  Program p = compile_program(g, {read_twice});
  CHECK_THAT(p.describe(), !Catch::Contains("then"));
  ParameterStore values;
  values.emplace("x", testing::random_tensor({4, 2, 6, 6}, {-1, 1}, 1, 7));
  values.emplace("w", testing::random_tensor({3, 2, 3, 3}, {-1, 1}, 2, 7));
  for (DType dtype : {DType::f32, DType::f64})
    CHECK(run_bytes(g, {read_twice}, values, dtype, true) == run_bytes(g, {read_twice}, values, dtype, false));
}

}  // namespace graphrun
