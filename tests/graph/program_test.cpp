// The executor: a training step allocates nothing after its first run, gives the same bits at any
// thread count, and check_numerics names the node that made a NaN or Inf.
#include "graph/alloc_counter.hpp"
#include "graph/run_helpers.hpp"
#include "ops/sgemm_libraries.hpp"

#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/parallel.hpp>
#include <graphrun/graph/parameters.hpp>
#include <graphrun/graph/program.hpp>
#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <atomic>
#include <type_traits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

// ---- counting global allocation ----------------------------------------------------------------
// Replaces the global operator new/delete for the whole test binary; counts only while
// `counting` is set, so other tests are unaffected. Every form allocates with malloc (or
// posix_memalign) and frees with free, which GCC cannot see through.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
namespace graphrun::testing {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
}  // namespace graphrun::testing

namespace {
using graphrun::testing::allocations;
using graphrun::testing::counting;

void* counted_alloc(std::size_t n, std::size_t align) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (n == 0) n = 1;
  void* p = nullptr;
  if (align <= alignof(std::max_align_t)) {
    p = std::malloc(n);
  } else if (posix_memalign(&p, align, n) != 0) {
    p = nullptr;
  }
  return p;
}
}  // namespace

void* operator new(std::size_t n) {
  if (void* p = counted_alloc(n, 0)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  if (void* p = counted_alloc(n, 0)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = counted_alloc(n, static_cast<std::size_t>(a))) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
  if (void* p = counted_alloc(n, static_cast<std::size_t>(a))) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

namespace graphrun {
namespace {

using testing::make_tensor;
using testing::message_of;
using testing::to_vector;

// Restores the default thread count when a test ends, whatever it set.
struct ThreadGuard {
  ~ThreadGuard() { set_num_threads(0); }
};

// A denoising-autoencoder training step: corrupt x with noise, an MLP to logits, BCE against the
// clean x, plus a KL term and an input-energy term that reduces a whole large tensor. Returns
// loss and every gradient.
struct TrainStep {
  Graph g;
  Value x, loss, noise;
  std::vector<Value> params, grads;
  std::int64_t batch, width;

  TrainStep(std::int64_t batch_, std::int64_t width_, std::int64_t hidden)
      : batch(batch_), width(width_) {
    x = g.input("x", {batch, width});
    noise = random_normal_like(x, true);
    Value corrupted = x + noise * 0.1;
    Value w1 = g.parameter("w1", {width, hidden}, Init::xavier_uniform());
    Value b1 = g.parameter("b1", {hidden}, Init::normal(0.1));
    Value w2 = g.parameter("w2", {hidden, width}, Init::xavier_uniform());
    Value b2 = g.parameter("b2", {width}, Init::zeros());
    Value h = relu(matmul(corrupted, w1) + b1);
    Value logits = matmul(h, w2) + b2;
    Value rec = mean(sum(bce_with_logits(logits, x), {1}));
    Value kl = mean(kl_normal(h, h * 0.5));
    Value energy = mean(square(logits)) * 1e-3;  // a reduction over all batch * width elements
    loss = rec + kl + energy;
    params = {w1, b1, w2, b2};
    grads = grad(loss, params);
  }
  std::vector<Value> outputs() const {
    std::vector<Value> out{loss, noise};
    out.insert(out.end(), grads.begin(), grads.end());
    return out;
  }
  Tensor input() const {
    Tensor t(DType::f32, {batch, width});
    auto v = t.values<float>();
    for (std::size_t i = 0; i < v.size(); ++i)
      v[i] = static_cast<float>(0.5 + 0.5 * std::sin(0.013 * static_cast<double>(i)));
    return t;
  }
};

TEST_CASE("a training step allocates nothing after its first run", "[graph][program][alloc]") {
  ThreadGuard guard;
  TrainStep step(64, 784, 128);
  ParameterStore params = init_parameters(step.g, 1);
  Tensor x = step.input();
  for (int threads : {1, 2}) {
    DYNAMIC_SECTION(threads << " threads") {
      set_num_threads(threads);
      REQUIRE(num_threads() == threads);
      Program p = compile_program(step.g, step.outputs());
      p.bind_parameters(params);
      p.bind("x", x);
      p.run({true, 5, 0});  // the first run may allocate (thread pools, scratch)
      allocations = 0;
      counting = true;
      for (std::uint64_t s = 1; s < 6; ++s) p.run({true, 5, s});
      counting = false;
      CHECK(allocations.load() == 0);
      CHECK(std::isfinite(p.output(0).item()));
    }
  }
}

// A copy would share the arena: two programs writing each other's results.
static_assert(!std::is_copy_constructible_v<Program> && !std::is_copy_assignable_v<Program>);
static_assert(std::is_nothrow_move_constructible_v<Program>);

TEST_CASE("the allocation counter sees allocations", "[graph][program][alloc]") {
  allocations = 0;
  counting = true;
  auto* v = new std::vector<int>(100);
  counting = false;
  delete v;
  CHECK(allocations.load() >= 2);
}

// Outputs of one run at a thread count, copied out as raw bytes.
std::vector<std::vector<char>> run_bytes(TrainStep& step, ParameterStore& params, const Tensor& x,
                                         int threads, std::uint64_t seed, std::uint64_t s) {
  set_num_threads(threads);
  Program p = compile_program(step.g, step.outputs());
  p.bind_parameters(params);
  p.bind("x", x);
  p.run({true, seed, s});
  return testing::output_bytes(p);
}

TEST_CASE("a training step gives the same bits at 1 and 2 threads", "[graph][program][determinism]") {
  ThreadGuard guard;
  testing::SgemmGuard sgemm_guard;
  // 320 x 784 = 250880 elements per input-sized tensor: reductions and random draws span many
  // parallel chunks; 320 rows cover several matmul row blocks.
  TrainStep step(320, 784, 64);
  ParameterStore params = init_parameters(step.g, 11);
  Tensor x = step.input();
  for (SgemmLibrary library : testing::available_sgemm_libraries()) {
    INFO("float32 products from " << sgemm_library_name(library));
    set_sgemm_library(library);
    auto at_one = run_bytes(step, params, x, 1, 42, 3);
    auto at_two = run_bytes(step, params, x, 2, 42, 3);
    REQUIRE(at_one.size() == at_two.size());
    for (std::size_t i = 0; i < at_one.size(); ++i) {
      INFO("output " << i);
      REQUIRE(at_one[i].size() == at_two[i].size());
      CHECK(std::memcmp(at_one[i].data(), at_two[i].data(), at_one[i].size()) == 0);
    }
  }
  set_sgemm_library(SgemmLibrary::openblas);
  auto one = run_bytes(step, params, x, 1, 42, 3);
  CHECK(one[1].size() == 320 * 784 * sizeof(float));  // the noise itself is compared

  // Same (seed, step): the same draws; another step or seed: different ones.
  auto again = run_bytes(step, params, x, 2, 42, 3);
  auto next_step = run_bytes(step, params, x, 2, 42, 4);
  auto other_seed = run_bytes(step, params, x, 2, 43, 3);
  CHECK(std::memcmp(again[1].data(), one[1].data(), one[1].size()) == 0);
  CHECK(std::memcmp(next_step[1].data(), one[1].data(), one[1].size()) != 0);
  CHECK(std::memcmp(other_seed[1].data(), one[1].data(), one[1].size()) != 0);
  CHECK(std::memcmp(next_step[0].data(), one[0].data(), one[0].size()) != 0);  // the loss moves
}

TEST_CASE("a large sum is the same at any thread count and close to the exact value",
          "[graph][program][determinism]") {
  ThreadGuard guard;
  Graph g;
  const std::int64_t n = 300007;  // not a multiple of any chunk size
  Value x = g.input("x", {n});
  Value total = sum(x);
  Value by_rows = sum(reshape(x, {1, n}), {1});
  Tensor xv(DType::f32, {n});
  auto v = xv.values<float>();
  double exact = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    v[static_cast<std::size_t>(i)] = static_cast<float>(1.0 / static_cast<double>(1 + i % 1000));
    exact += v[static_cast<std::size_t>(i)];
  }
  float results[2][2];
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Program p = compile_program(g, {total, by_rows});
    p.bind("x", xv);
    p.run();
    results[threads - 1][0] = p.output(0).data<float>()[0];
    results[threads - 1][1] = p.output(1).data<float>()[0];
  }
  CHECK(std::memcmp(results[0], results[1], sizeof(results[0])) == 0);
  CHECK(results[0][0] == Approx(exact).epsilon(1e-6));
  CHECK(results[0][1] == Approx(exact).epsilon(1e-6));
}

TEST_CASE("check_numerics names the node and op that made a NaN, with input ranges",
          "[graph][program][numerics]") {
  Graph g;
  Value x = g.input("x", {3});
  Value e = exp(x);
  int line = __LINE__ + 1;
  Value l = log(x - 1.0);
  Value out = sum(l + e);
  Tensor xv = make_tensor({3}, {0.5, 2.0, 3.0});  // x - 1 = [-0.5, 1, 2]: ln(-0.5) is NaN

  Program loose = compile_program(g, {out});
  loose.bind("x", xv);
  CHECK_NOTHROW(loose.run());
  CHECK(std::isnan(loose.output(0).item()));

  Program strict = compile_program(g, {out}, {}, {DType::f32, true});
  strict.bind("x", xv);
  auto msg = message_of<NumericsError>([&] { strict.run(); });
  INFO(msg);
  CHECK_THAT(msg, Catch::Contains(fmt::format("node {} 'log'", l.id())));
  CHECK_THAT(msg, Catch::Contains(fmt::format("program_test.cpp:{}", line)));
  CHECK_THAT(msg, Catch::Contains("op 'log'"));
  CHECK_THAT(msg, Catch::Contains("[-0.5, 2]"));  // the range of the log's input

  Tensor fine = make_tensor({3}, {1.5, 2.0, 3.0});
  strict.bind("x", fine);
  CHECK_NOTHROW(strict.run());
  CHECK(std::isfinite(strict.output(0).item()));
}

TEST_CASE("check_numerics catches an overflow to Inf", "[graph][program][numerics]") {
  Graph g;
  Value x = g.input("x", {2});
  Value y = exp(x);
  Program p = compile_program(g, {y}, {}, {DType::f32, true});
  Tensor xv = make_tensor({2}, {1.0, 100.0});  // e^100 > FLT_MAX
  p.bind("x", xv);
  auto msg = message_of<NumericsError>([&] { p.run(); });
  CHECK_THAT(msg, Catch::Contains("'exp'") && Catch::Contains("[1, 100]"));
  Program wide = compile_program(g, {y}, {}, {DType::f64, true});
  Tensor xd = make_tensor({2}, {1.0, 100.0}, DType::f64);
  wide.bind("x", xd);
  CHECK_NOTHROW(wide.run());  // e^100 fits a double
}

TEST_CASE("bind reads caller memory without copying", "[graph][program]") {
  Graph g;
  Value x = g.input("x", {2});
  Program p = compile_program(g, {x * 2.0});
  Tensor xv = make_tensor({2}, {1, 2});
  p.bind("x", xv);
  p.run();
  CHECK(to_vector(p.output(0)) == std::vector<double>{2, 4});
  xv.data<float>()[0] = 10;  // changed in place: the next run sees it
  p.run();
  CHECK(to_vector(p.output(0)) == std::vector<double>{20, 4});
}

TEST_CASE("a run flushes denormals to zero on every thread unless told not to",
          "[graph][program][numerics]") {
  ThreadGuard guard;
  set_num_threads(2);
  // Each square underflows to a denormal (1e-40); enough elements for many parallel chunks.
  const std::int64_t n = 1 << 20;
  Graph g;
  Value x = g.input("x", {n});
  Program p = compile_program(g, {mul(x, x)});
  Tensor xv(DType::f32, {n});
  std::fill(xv.data<float>(), xv.data<float>() + n, 1e-20f);
  p.bind("x", xv);
  auto nonzero = [&] {
    const float* y = p.output(0).data<float>();
    return std::count_if(y, y + n, [](float v) { return v != 0.0f; });
  };
  RunOptions ieee;
  ieee.flush_denormals = false;
  p.run(ieee);
  CHECK(nonzero() == n);
  CHECK(p.output(0).data<float>()[0] == 1e-20f * 1e-20f);
  p.run();
  CHECK(nonzero() == 0);
  // The caller's own arithmetic is untouched afterwards.
  volatile float a = 1e-20f;
  CHECK(a * a != 0.0f);
}

}  // namespace
}  // namespace graphrun
