// compile_program: shape errors with concrete shapes, cycle detection, dead-code elimination, the
// memory plan and the per-shape program cache.
#include "graph/run_helpers.hpp"

#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/parallel.hpp>
#include <graphrun/graph/parameters.hpp>
#include <graphrun/graph/program.hpp>
#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <array>
#include <cmath>
#include <cstring>
#include <random>

namespace graphrun {
namespace {

using testing::make_tensor;
using testing::message_of;
using testing::to_vector;

TEST_CASE("compile with a concrete input shape that breaks a later node reports that node",
          "[graph][compile]") {
  Graph g;
  Value x = g.input("x", {2, 4});
  Value w = g.parameter("w", {4, 3}, Init::zeros());
  Value bias = g.input("bias", {2, 3});
  Value h = matmul(x, w);  // [B, 3]: follows x
  int line = __LINE__ + 1;
  Value y = h + bias;  // [B, 3] + [2, 3]: only B = 2 (or 1) fits
  Value loss = sum(y);
  CHECK_NOTHROW(compile_program(g, {loss}, {{"x", {2, 4}}}));
  auto msg = message_of<ShapeError>([&] { compile_program(g, {loss}, {{"x", {5, 4}}}); });
  INFO(msg);
  CHECK_THAT(msg, Catch::Contains(fmt::format("add (node {})", y.id())));
  CHECK_THAT(msg, Catch::Contains("[5, 3]"));
  CHECK_THAT(msg, Catch::Contains("[2, 3]"));
  CHECK_THAT(msg, Catch::Contains(fmt::format("compile_test.cpp:{}", line)));
  // A bad rank in the input shapes is refused before anything else.
  CHECK_THROWS_AS(compile_program(g, {loss}, {{"x", {1, 1, 1, 1, 1}}}), ShapeError);
}

TEST_CASE("a cycle made with set_input is reported naming a node on it", "[graph][compile]") {
  Graph g;
  Value x = g.input("x", {3});
  Value a = relu(x);     // node 1
  Value b = exp(a);      // node 2
  Value c = neg(b);      // node 3
  Value out = sum(c);    // node 4
  g.set_input(a.id(), 0, c);  // a <- c <- b <- a
  auto msg = message_of<std::logic_error>([&] { compile_program(g, {out}); });
  INFO(msg);
  CHECK_THAT(msg, Catch::Contains("cycle"));
  bool names_one = msg.find(fmt::format("node {} ", a.id())) != std::string::npos ||
                   msg.find(fmt::format("node {} ", b.id())) != std::string::npos ||
                   msg.find(fmt::format("node {} ", c.id())) != std::string::npos;
  CHECK(names_one);
  CHECK_THAT(msg, !Catch::Contains(fmt::format("node {} ", out.id())));
  CHECK_THAT(msg, !Catch::Contains("node 0 "));

  SECTION("a self-loop too") {
    Graph h;
    Value y = h.input("y", {2});
    Value r = relu(y);
    h.set_input(r.id(), 0, r);
    auto self = message_of<std::logic_error>([&] { compile_program(h, {r}); });
    CHECK_THAT(self, Catch::Contains(fmt::format("node {} 'relu'", r.id())));
  }
}

TEST_CASE("grad refuses a graph with a cycle", "[graph][compile]") {
  Graph g;
  Value x = g.input("x", {});
  Value a = exp(x);
  Value b = a * a;
  g.set_input(a.id(), 0, b);
  CHECK_THROWS_WITH(grad(b, {x}), Catch::Contains("cycle"));
}

TEST_CASE("dead code is not scheduled and dead inputs need no binding", "[graph][compile]") {
  Graph g;
  Value x = g.input("x", {2});
  Value unused = g.input("unused", {1000});
  Value y = exp(x);
  Value dead = relu(unused) * 3.0;  // never requested
  (void)dead;
  Value z = neg(y);

  const CompileOptions unfused{.fuse = false};  // one step per op, to count them
  Program all = compile_program(g, {z, dead}, {}, unfused);
  CHECK(all.num_steps() == 4);  // exp, neg, relu, mul
  CHECK(all.bindings().count("unused") == 1);

  Program p = compile_program(g, {z}, {}, unfused);
  CHECK(p.num_steps() == 2);  // exp, neg
  auto text = p.describe();
  INFO(text);
  CHECK_THAT(text, Catch::Contains("exp"));
  CHECK_THAT(text, Catch::Contains("neg"));
  CHECK_THAT(text, !Catch::Contains("relu"));
  CHECK_THAT(text, !Catch::Contains("mul"));
  CHECK(p.bindings().size() == 1);
  CHECK(p.bindings().count("unused") == 0);
  CHECK_THROWS_WITH(p.bind("unused", Tensor(DType::f32, {1000})), Catch::Contains("reads: x"));

  Tensor xv = make_tensor({2}, {0.0, 1.0});
  p.bind("x", xv);
  p.run();  // runs although "unused" is never bound
  // neg(exp([0, 1])) = [-1, -e]
  testing::check_close(to_vector(p.output(0)), {-1.0, -std::exp(1.0)}, 1e-6);
}

// A function called twice on one value builds its nodes twice; compile computes them once, and
// the results are the same bits as computing both. Another attribute, another input buffer or a
// random op is not a duplicate.
TEST_CASE("duplicate computations run once, random ops never", "[graph][compile]") {
  Graph g;
  Value x = g.input("x", {3, 4});
  Value w = g.parameter("w", {4, 2}, Init::zeros());
  auto f = [&](Value v) { return sigmoid(matmul(v, w)); };
  Value a = sum(f(x), {1});
  Value b = sum(f(x), {1});      // the same three ops again: shared
  Value c = sum(f(x), {0});      // other axes: its sum is not a duplicate
  Value d = sum(f(exp(x)), {1});  // another input: not a duplicate
  Value n1 = random_normal_like(x), n2 = random_normal_like(x);
  const std::vector<Value> outs{a, b, c, d, n1, n2};
  const CompileOptions shared{.fuse = false};
  const CompileOptions each{.fuse = false, .share_duplicates = false};
  Program p = compile_program(g, outs, {}, shared);
  Program q = compile_program(g, outs, {}, each);
  CHECK(p.memory_plan().shared_steps == 5);  // b's three ops, c's product and sigmoid
  CHECK(q.memory_plan().shared_steps == 0);
  CHECK(q.num_steps() - p.num_steps() == p.memory_plan().shared_steps);
  Tensor xv = testing::random_tensor({3, 4}, {-1.0, 1.0}, 1, 5).to(DType::f32);
  Tensor wv = testing::random_tensor({4, 2}, {-1.0, 1.0}, 2, 5).to(DType::f32);
  for (Program* prog : {&p, &q}) {
    prog->bind("x", xv);
    prog->bind("w", wv);
    prog->run();
  }
  for (std::size_t i = 0; i < outs.size(); ++i) {
    INFO("output " << i);
    CHECK(to_vector(p.output(i)) == to_vector(q.output(i)));
  }
  CHECK(to_vector(p.output(4)) != to_vector(p.output(5)));
}

TEST_CASE("a value read only for its shape is neither computed nor bound", "[graph][compile]") {
  Graph g;
  Value x = g.input("x", {1000});
  Value s = g.input("s", {});
  Value big = exp(x);
  Value spread = expand_like(s, big);  // reads big's shape, not its values
  Program p = compile_program(g, {spread}, {{"x", {4}}});
  CHECK(p.num_steps() == 1);           // no exp
  CHECK(p.bindings().size() == 1);     // only s
  CHECK(p.output_shape(0) == Shape{4});  // the shape still follows x
  Tensor sv = make_tensor({}, {2.5});
  p.bind("s", sv);
  p.run();
  CHECK(to_vector(p.output(0)) == std::vector<double>{2.5, 2.5, 2.5, 2.5});
  // Random ops read their input's shape only.
  Program noise = compile_program(g, {random_normal_like(exp(x))});
  CHECK(noise.num_steps() == 1);
  CHECK(noise.bindings().empty());
}

TEST_CASE("reusing memory never orders steps that data flow leaves independent",
          "[graph][compile][memory]") {
  Graph g;
  Value x = g.input("x", {1000});
  // A chain: c may take a's memory, since c already waits for a through b.
  Value a = exp(x);
  Value b = neg(a);
  Value c = exp(b);
  Value d = neg(c);
  // Two branches from x that meet only at the end: neither may wait for the other.
  Value left = neg(exp(x));
  Value right = exp(neg(x));
  Value out = left + right;
  const CompileOptions unfused{.fuse = false, .concurrent_plan = true};
  Program chain = compile_program(g, {d}, {}, unfused);
  CHECK(chain.memory_plan().arena_bytes < chain.memory_plan().buffer_bytes);

  Program p = compile_program(g, {out}, {}, unfused);
  std::string text = p.describe();
  INFO(text);
  // Steps 0-1 are one branch and 2-3 the other (schedule order); only the add waits for both.
  auto line_of = [&](int step) {
    auto at = text.find(fmt::format("\n  {:>3} ", step));
    REQUIRE(at != std::string::npos);
    return text.substr(at + 1, text.find('\n', at + 1) - at - 1);
  };
  int waits = 0;
  for (int s = 0; s < p.num_steps(); ++s) {
    std::string line = line_of(s);
    if (line.find("after") != std::string::npos) ++waits;
    if (line.find(" add ") != std::string::npos) CHECK_THAT(line, Catch::EndsWith("after 1 3"));
  }
  CHECK(waits == 3);  // the second op of each branch and the add
  Tensor xv = make_tensor({1000}, std::vector<double>(1000, 0.5));
  p.bind("x", xv);
  p.run();
  CHECK(p.output(0).item(7) == Approx(-std::exp(0.5) + std::exp(-0.5)));

  // Planned for one thread, the second branch takes the bytes of the first's exp(x): 12000
  // bytes instead of 16000, and the branches no longer run side by side.
  Program one = compile_program(g, {out}, {}, {.fuse = false, .concurrent_plan = false});
  CHECK(one.memory_plan().arena_bytes == 3 * 4032);
  CHECK(p.memory_plan().arena_bytes == 4 * 4032);
  CHECK(one.describe().find("after 1\n") != std::string::npos);  // neg(x) waits for neg(exp(x))
  one.bind("x", xv);
  one.run();
  CHECK(p.output(0).item(7) == one.output(0).item(7));
}

// Handed out step by step, h3 found only h1's 38400 freed bytes below h2 and went to the end
// (96000 bytes). Placed by size, the largest first, the arena is what the fullest step holds.
TEST_CASE("buffers placed by size need no more than the fullest step of a chain",
          "[graph][compile][memory]") {
  Graph g;
  Value x = g.input("x", {16, 100});
  Value w1 = g.input("w1", {100, 600}), w2 = g.input("w2", {600, 100}), w3 = g.input("w3", {100, 800});
  Value h1 = matmul(x, w1);   // 38400 bytes
  Value h2 = matmul(h1, w2);  // 6400
  Value h3 = matmul(h2, w3);  // 51200
  Program p = compile_program(g, {sum(h3)}, {}, {.fuse = false});
  INFO(p.describe());
  CHECK(p.memory_plan().buffers == 4);
  CHECK(p.memory_plan().arena_bytes == 6400 + 51200);  // h2 and h3, read and written by one step
}

// Random networks with their gradients: fused steps, steps that read many buffers, branches
// that run side by side at 2 threads (also when planned for one thread, where sharing bytes
// makes them wait for each other). Their plans share bytes; the reference keeps every value
// as an output, so it shares none. A buffer overwritten before its last reader would show as
// other bits.
TEST_CASE("random graphs give the same bits with shared memory as with none",
          "[graph][compile][memory]") {
  struct Restore {
    ~Restore() { set_num_threads(0); }
  } restore;
  for (std::uint32_t seed = 1; seed <= 40; ++seed) {
    std::mt19937 rng(seed);
    auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    const std::int64_t rows = std::array<std::int64_t, 3>{3, 8, 17}[pick(3)];
    const std::int64_t widths[] = {4, 16, 40};
    Graph g;
    std::vector<Value> pool{g.input("x", {rows, widths[pick(3)]})};
    std::vector<Value> params;
    const int ops = 10 + static_cast<int>(pick(25));
    for (int k = 0; k < ops; ++k) {
      Value a = pool[pool.size() - 1 - pick(std::min<std::size_t>(pool.size(), 6))];
      switch (pick(5)) {
        case 0: {
          Value (*unary[])(Value, Loc) = {&neg, &tanh, &sigmoid, &relu, &square};
          pool.push_back(unary[pick(5)](a, Loc::current()));
          break;
        }
        case 1: {
          Value b = a;
          for (Value v : pool)
            if (v.shape() == a.shape() && pick(2) == 0) b = v;
          pool.push_back(pick(2) == 0 ? a + b : a * b);
          break;
        }
        case 2:
        case 3: {
          Shape shape{a.shape()[1], widths[pick(3)]};
          Value w = g.parameter(fmt::format("w{}", k), shape, Init::normal(0.3));
          params.push_back(w);
          pool.push_back(tanh(matmul(a, w)));
          break;
        }
        default:
          pool.push_back(tanh(a * sum(a, {1}, true)));
      }
    }
    if (params.empty()) continue;
    Value loss = sum(pool.back()) + sum(pool[pool.size() / 2]);
    std::vector<Value> outputs{loss};
    for (Value d : grad(loss, params)) outputs.push_back(d);
    std::vector<Value> everything;
    for (int id = 0; id < g.size(); ++id) everything.push_back(g.value(id));
    ParameterStore store = init_parameters(g, seed);
    Tensor x = testing::random_tensor(pool.front().shape(), {-1, 1}, 0, seed).to(DType::f32);
    for (auto [fuse, concurrent] : {std::pair{true, true}, {false, true}, {true, false}}) {
      const CompileOptions options{.fuse = fuse, .concurrent_plan = concurrent};
      Program shared = compile_program(g, outputs, {}, options);
      Program alone = compile_program(g, everything, {}, {.fuse = fuse});
      INFO("seed " << seed << ", fuse " << fuse << ", concurrent plan " << concurrent << "\n"
                   << shared.describe());
      CHECK(shared.memory_plan().arena_bytes < alone.memory_plan().arena_bytes);
      for (Program* p : {&shared, &alone}) {
        p->bind_parameters(store);
        p->bind("x", x);
      }
      set_num_threads(1);
      alone.run();
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        shared.run();
        for (std::size_t k = 0; k < outputs.size(); ++k) {
          Tensor got = shared.output(k);
          Tensor want = alone.output(static_cast<std::size_t>(outputs[k].id()));
          CHECK(std::memcmp(got.raw(), want.raw(), got.bytes()) == 0);
        }
      }
    }
  }
}

TEST_CASE("a shape-only use does not keep a buffer alive", "[graph][compile][memory]") {
  Graph g;
  Value x = g.input("x", {1000});
  Value a = exp(x);
  Value b = neg(a);
  Value c = neg(b);                    // a is dead here: only its shape is used later
  Value d = expand_like(sum(c), a);
  Program p = compile_program(g, {d}, {}, {.fuse = false});
  // Live at once at most: b and c (4000 bytes each), then d with c's sum.
  CHECK(p.memory_plan().arena_bytes < 3 * 4000);
  CHECK(p.memory_plan().buffer_bytes > 4 * 4000);
  Tensor xv(DType::f32, {1000});
  p.bind("x", xv);
  p.run();
  // x = 0: a = 1, c = 1, sum = 1000, spread over 1000 elements.
  CHECK(p.output(0).item(999) == 1000.0);
}

TEST_CASE("run refuses an unbound live input, naming it", "[graph][compile]") {
  Graph g;
  Value x = g.input("x", {2});
  Program p = compile_program(g, {relu(x)});
  CHECK_THROWS_WITH(p.run(), Catch::Contains("'x'") && Catch::Contains("not bound"));
  CHECK_THROWS_AS(p.bind("x", Tensor(DType::f32, {3})), ShapeError);
  CHECK_THROWS_AS(p.bind("x", Tensor(DType::f64, {2})), ShapeError);
}

// A 784-256-128-10 MLP: logits and the loss of a batch, with gradients for every parameter.
struct Mlp {
  Graph g;
  Value x, y, loss;
  std::vector<Value> params, grads;

  Mlp() {
    x = g.input("x", {64, 784});
    y = g.input("y", {64, 10});
    Shape dims[] = {{784, 256}, {256, 128}, {128, 10}};
    Value h = x;
    for (int i = 0; i < 3; ++i) {
      Value w = g.parameter(fmt::format("w{}", i), dims[i], Init::xavier_uniform());
      Value b = g.parameter(fmt::format("b{}", i), {dims[i][1]}, Init::normal(0.1));
      params.push_back(w);
      params.push_back(b);
      h = matmul(h, w) + b;
      if (i < 2) h = relu(h);
    }
    loss = mean(sum(bce_with_logits(h, y), {1}));
    grads = grad(loss, params);
  }
  std::vector<Value> outputs() const {
    std::vector<Value> out{loss};
    out.insert(out.end(), grads.begin(), grads.end());
    return out;
  }
};

Tensor filled(const Shape& shape, double scale, double offset, DType dtype) {
  Tensor t(DType::f64, shape);
  auto v = t.values<double>();
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = offset + scale * std::sin(0.37 * static_cast<double>(i) + 0.1);
  return t.to(dtype);
}

// The MLP's logits with plain loops over the parameter store (float64).
std::vector<double> hand_forward(const ParameterStore& params, const Tensor& x) {
  std::vector<double> h = to_vector(x);
  std::int64_t rows = x.shape()[0], width = x.shape()[1];
  for (int i = 0; i < 3; ++i) {
    const Tensor& w = params.at(fmt::format("w{}", i));
    const Tensor& b = params.at(fmt::format("b{}", i));
    std::int64_t out = w.shape()[1];
    std::vector<double> next(static_cast<std::size_t>(rows * out));
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t j = 0; j < out; ++j) {
        double acc = b.item(j);
        for (std::int64_t k = 0; k < width; ++k)
          acc += h[static_cast<std::size_t>(r * width + k)] * w.item(k * out + j);
        next[static_cast<std::size_t>(r * out + j)] = i < 2 ? std::max(acc, 0.0) : acc;
      }
    h = std::move(next);
    width = out;
  }
  return h;
}

TEST_CASE("the memory plan shares buffers and outputs stay correct", "[graph][compile][memory]") {
  Mlp m;
  ParameterStore params = init_parameters(m.g, 7, DType::f64);
  Tensor x = filled({64, 784}, 0.5, 0.5, DType::f64);
  Tensor y = filled({64, 10}, 0.5, 0.5, DType::f64);

  Program p = compile_program(m.g, m.outputs(), {}, {DType::f64, false});
  const auto& plan = p.memory_plan();
  INFO(p.describe());
  CHECK(plan.arena_bytes < plan.buffer_bytes);
  CHECK(plan.arena_bytes > 0);
  // Forward and backward keep at least the activations: 64 x (256 + 128) doubles.
  CHECK(plan.arena_bytes >= 64 * (256 + 128) * sizeof(double));
  p.bind_parameters(params);
  p.bind("x", x);
  p.bind("y", y);
  p.run();
  p.run();  // a second run over reused memory gives the same

  // Reference: each gradient computed by its own program, with no buffer of one output shared
  // with another output's computation ending earlier than it.
  for (std::size_t i = 0; i < m.outputs().size(); ++i) {
    Program one = compile_program(m.g, {m.outputs()[i]}, {}, {DType::f64, false});
    one.bind_parameters(params);
    one.bind("x", x);
    one.bind("y", y);
    one.run();
    auto want = to_vector(one.output(0));
    auto got = to_vector(p.output(i));
    INFO("output " << i);
    REQUIRE(got.size() == want.size());
    CHECK(got == want);
  }

  // And by hand, with plain loops: the loss and the last bias gradient,
  // d loss / d b2[j] = mean_b (sigmoid(logit_bj) - y_bj).
  auto logits = hand_forward(params, x);
  double loss = 0;
  std::vector<double> db2(10, 0.0);
  for (int b = 0; b < 64; ++b)
    for (int j = 0; j < 10; ++j) {
      double l = logits[static_cast<std::size_t>(b * 10 + j)], t = y.item(b * 10 + j);
      loss += std::max(l, 0.0) - l * t + std::log1p(std::exp(-std::abs(l)));
      db2[static_cast<std::size_t>(j)] += (1 / (1 + std::exp(-l)) - t) / 64;
    }
  CHECK(p.output(0).item() == Approx(loss / 64).epsilon(1e-12));
  testing::check_close(to_vector(p.output(6)), db2, 1e-12);
}

TEST_CASE("the bias gradient of the MLP matches the closed form", "[graph][compile][memory]") {
  Graph g;
  Value x = g.input("x", {3, 2});
  Value y = g.input("y", {3, 2});
  Value w = g.parameter("w", {2, 2}, Init::zeros());
  Value b = g.parameter("b", {2}, Init::zeros());
  Value logits = matmul(x, w) + b;
  Value loss = mean(sum(bce_with_logits(logits, y), {1}));
  auto grads = grad(loss, {b});
  ParameterStore values{{"x", make_tensor({3, 2}, {1, 2, 3, 4, 5, 6}, DType::f64)},
                        {"y", make_tensor({3, 2}, {1, 0, 0, 1, 1, 1}, DType::f64)},
                        {"w", make_tensor({2, 2}, {0, 0, 0, 0}, DType::f64)},
                        {"b", make_tensor({2}, {0, 0}, DType::f64)}};
  auto got = testing::run_values(g, grads[0], values, DType::f64);
  // logits are 0, sigmoid 0.5: db_j = mean_b(0.5 - y_bj) = 0.5 - mean(y[:, j]):
  // j=0: 0.5 - 2/3, j=1: 0.5 - 2/3.
  testing::check_close(got, {0.5 - 2.0 / 3.0, 0.5 - 2.0 / 3.0}, 1e-12);
}

TEST_CASE("ProgramCache compiles once per distinct set of input shapes", "[graph][compile]") {
  Mlp m;
  ProgramCache cache(m.g, m.outputs());
  Program& full = cache.get({{"x", {64, 784}}, {"y", {64, 10}}});
  CHECK(cache.size() == 1);
  Program& last = cache.get({{"x", {17, 784}}, {"y", {17, 10}}});
  CHECK(cache.size() == 2);
  CHECK(&full != &last);
  CHECK(&cache.get({{"x", {64, 784}}, {"y", {64, 10}}}) == &full);
  CHECK(&cache.get({{"x", {17, 784}}, {"y", {17, 10}}}) == &last);
  CHECK(cache.size() == 2);
  // The declared shapes, given or left out, are the same program.
  CHECK(&cache.get({}) == &full);
  CHECK(&cache.get({{"x", {64, 784}}}) == &full);
  CHECK(cache.size() == 2);
  CHECK(last.bindings().at("x") == Shape{17, 784});
  // A shape that does not compile throws and leaves no entry behind.
  CHECK_THROWS_AS(cache.get({{"x", {17, 783}}}), ShapeError);
  CHECK(cache.size() == 2);
  CHECK(last.output_shape(1) == Shape{784, 256});  // a weight gradient keeps its shape
  CHECK(last.output_shape(0) == Shape{});

  // The small batch runs and matches a direct compile.
  ParameterStore params = init_parameters(m.g, 3);
  Tensor x = filled({17, 784}, 0.5, 0.5, DType::f32);
  Tensor y = filled({17, 10}, 0.5, 0.5, DType::f32);
  last.bind_parameters(params);
  last.bind("x", x);
  last.bind("y", y);
  last.run();
  Program direct = compile_program(m.g, m.outputs(), {{"x", {17, 784}}, {"y", {17, 10}}});
  direct.bind_parameters(params);
  direct.bind("x", x);
  direct.bind("y", y);
  direct.run();
  CHECK(last.output(0).item() == direct.output(0).item());
  CHECK(std::isfinite(last.output(0).item()));
}

TEST_CASE("a cache's programs share one arena, which grows and moves them along", "[graph][compile]") {
  Mlp m;
  ParameterStore params = init_parameters(m.g, 3);
  auto run = [&](Program& p, std::int64_t rows) {
    Tensor x = filled({rows, 784}, 0.5, 0.5, DType::f32);
    Tensor y = filled({rows, 10}, 0.5, 0.5, DType::f32);
    p.bind_parameters(params);
    p.bind("x", x);
    p.bind("y", y);
    p.run();
    return to_vector(p.output(2));  // a weight gradient: every row of the batch goes into it
  };
  auto direct = [&](std::int64_t rows) {
    Program p = compile_program(m.g, m.outputs(), {{"x", {rows, 784}}, {"y", {rows, 10}}});
    return run(p, rows);
  };
  ProgramCache cache(m.g, m.outputs());
  // The small batch first, so the large one makes the arena grow and move.
  Program& small = cache.get({{"x", {5, 784}}, {"y", {5, 10}}});
  CHECK(run(small, 5) == direct(5));
  const void* before = small.arena_memory();
  Program& large = cache.get({{"x", {64, 784}}, {"y", {64, 10}}});
  CHECK(small.arena_memory() == large.arena_memory());
  CHECK(large.arena_memory() != before);
  CHECK(run(large, 64) == direct(64));
  // The small program follows the arena to its new place.
  CHECK(run(small, 5) == direct(5));

  // Given in the options, one arena serves several caches (a trainer's training and evaluation).
  auto shared = std::make_shared<SharedArena>();
  CompileOptions options;
  options.arena = shared;
  ProgramCache a(m.g, m.outputs(), options), b(m.g, {m.outputs()[0]}, options);
  Program& pa = a.get({{"x", {64, 784}}, {"y", {64, 10}}});
  Program& pb = b.get({{"x", {64, 784}}, {"y", {64, 10}}});
  CHECK(pa.arena_memory() == shared->memory());
  CHECK(pb.arena_memory() == shared->memory());
  CHECK(shared->bytes() == std::max(pa.memory_plan().arena_bytes, pb.memory_plan().arena_bytes));
  CHECK(run(pa, 64) == direct(64));
}

TEST_CASE("outputs may be inputs, parameters or constants", "[graph][compile]") {
  Graph g;
  Value x = g.input("x", {2});
  Value c = g.constant({2}, {3, 4});
  Value s = x + c;
  Program p = compile_program(g, {x, c, s});
  Tensor xv = make_tensor({2}, {1, 2});
  p.bind("x", xv);
  p.run();
  CHECK(to_vector(p.output(0)) == std::vector<double>{1, 2});
  CHECK(to_vector(p.output(1)) == std::vector<double>{3, 4});
  CHECK(to_vector(p.output(2)) == std::vector<double>{4, 6});  // [1+3, 2+4]
}

TEST_CASE("compile refuses outputs from another graph", "[graph][compile]") {
  Graph g, other;
  Value x = other.input("x", {1});
  CHECK_THROWS_AS(compile_program(g, {x}), std::invalid_argument);
}

}  // namespace
}  // namespace graphrun
