// The research ops of ops/research_rows.cpp: uniform noise, random permutations, gathering and
// scattering rows, tiling, and their gradients at a batch size other than the one built with.
#include "graph/run_helpers.hpp"

#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/parallel.hpp>
#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace graphrun {
namespace {

using testing::make_tensor;
using testing::run_values;

double mean_of(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

TEST_CASE("random_uniform_like draws in (0, 1) with mean 1/2 and variance 1/12",
          "[ops][research]") {
  Graph g;
  Value x = g.input("x", {200, 500});
  ParameterStore v{{"x", Tensor(DType::f32, {200, 500})}};
  Value u = random_uniform_like(x);
  auto f32 = run_values(g, u, v);
  auto f64 = run_values(g, u, v, DType::f64);
  CHECK(*std::min_element(f32.begin(), f32.end()) > 0.0);
  CHECK(*std::max_element(f32.begin(), f32.end()) < 1.0);
  double m = mean_of(f64), var = 0;
  for (double e : f64) var += (e - m) * (e - m);
  var /= static_cast<double>(f64.size());
  CHECK(m == Approx(0.5).margin(0.003));         // sd sqrt(1/12 / 1e5) = 0.0009
  CHECK(var == Approx(1.0 / 12).margin(0.001));  // sd sqrt(1/180 / 1e5) = 0.00024
  // The same draws in both types; neighbours (two per draw) uncorrelated.
  testing::check_close(f32, f64, 1e-7);
  double cov = 0;
  for (std::size_t i = 0; i + 1 < f64.size(); i += 2) cov += (f64[i] - 0.5) * (f64[i + 1] - 0.5);
  CHECK(cov / (static_cast<double>(f64.size()) / 2) == Approx(0).margin(0.002));
  // Outside training: 0.5 with train_only, draws without.
  RunOptions eval{false, 0, 0};
  auto half = run_values(g, random_uniform_like(x, true), v, DType::f32, eval);
  CHECK(std::all_of(half.begin(), half.end(), [](double e) { return e == 0.5; }));
  auto drawn = run_values(g, u, v, DType::f32, eval);
  CHECK(drawn[7] != 0.5);
}

// The permutation a program draws at `step`.
std::vector<double> permutation_at(Program& p, std::uint64_t step) {
  p.run({true, 42, step});
  return testing::to_vector(p.output(0));
}

TEST_CASE("random_permutation_like permutes 0..n-1, anew each step, uniformly", "[ops][research]") {
  Graph g;
  Value x = g.input("x", {1000, 3});
  Value perm = random_permutation_like(x);
  CHECK(perm.shape() == Shape{1000});
  ParameterStore v{{"x", Tensor(DType::f32, {1000, 3})}};
  auto p = run_values(g, perm, v);
  auto sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<double> iota(1000);
  std::iota(iota.begin(), iota.end(), 0.0);
  CHECK(sorted == iota);
  CHECK(p != iota);
  CHECK(run_values(g, perm, v, DType::f64) == p);  // same draws in float64
  CHECK(run_values(g, perm, v, DType::f32, {true, 0, 1}) != p);  // another step

  // Each of the 4 x 4 (position, value) pairs of a 4-permutation over 2400 steps: 600 expected,
  // sd sqrt(2400 * 1/4 * 3/4) = 21.
  Graph small;
  Value y = small.input("y", {4});
  Program prog =
      compile_program(small, {random_permutation_like(y)}, {{"y", {4}}}, {DType::f32, false});
  for (const auto& [name, shape] : prog.bindings()) prog.bind(name, Tensor(DType::f32, shape));
  std::vector<int> counts(16, 0);
  for (std::uint64_t step = 0; step < 2400; ++step) {
    auto q = permutation_at(prog, step);
    for (int pos = 0; pos < 4; ++pos)
      ++counts[static_cast<std::size_t>(pos * 4 + static_cast<int>(q[pos]))];
  }
  for (int c : counts) CHECK(std::abs(c - 600) < 100);
  CHECK_THROWS_AS(random_permutation_like(small.scalar(1.0)), ShapeError);
}

TEST_CASE("random ops of research_rows give the same bits at 1 and 2 threads", "[ops][research]") {
  struct Restore {
    ~Restore() { set_num_threads(0); }
  } restore;
  Graph g;
  Value x = g.input("x", {3000, 40});
  ParameterStore v{{"x", Tensor(DType::f32, {3000, 40})}};
  std::vector<Value> outputs{random_uniform_like(x), random_permutation_like(x)};
  std::vector<std::vector<double>> runs;
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    auto out = testing::run_graph(g, outputs, v);
    runs.push_back(testing::to_vector(out[0]));
    auto perm = testing::to_vector(out[1]);
    runs.back().insert(runs.back().end(), perm.begin(), perm.end());
  }
  CHECK(runs[0] == runs[1]);
}

TEST_CASE("gather_rows picks rows by index; its gradient adds repeated rows", "[ops][research]") {
  Graph g;
  Value x = g.parameter("x", {3, 2}, Init::zeros());
  Value idx = g.input("idx", {4});
  Value y = gather_rows(x, idx);
  CHECK(y.shape() == Shape{4, 2});
  ParameterStore v{{"x", make_tensor({3, 2}, {0, 1, 10, 11, 20, 21}, DType::f64)},
                   {"idx", make_tensor({4}, {2, 0, 2, 1}, DType::f64)}};
  CHECK(run_values(g, y, v, DType::f64) == std::vector<double>{20, 21, 0, 1, 20, 21, 10, 11});
  // loss = sum(y * w), w = [1, 2; 3, 4; 5, 6; 7, 8]: row 0 of x gets w row 1, row 1 gets w row 3,
  // row 2 gets w rows 0 + 2 = [6, 8].
  Value w = g.constant({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  Value dx = grad(sum(mul(y, w)), {x})[0];
  CHECK(run_values(g, dx, v, DType::f64) == std::vector<double>{3, 4, 7, 8, 6, 8});
  // An index outside [0, 3) stops the run and names itself.
  ParameterStore bad = v;
  bad["idx"] = make_tensor({4}, {0, 3, 1, 1}, DType::f64);
  CHECK_THROWS_WITH(run_values(g, y, bad, DType::f64), Catch::Contains("index 3"));
  CHECK_THROWS_AS(gather_rows(x, g.input("m", {2, 2})), ShapeError);
}

TEST_CASE("scatter_rows_add adds rows into zeros", "[ops][research]") {
  Graph g;
  Value rows = g.input("g", {3, 2});
  Value idx = g.input("idx", {3});
  Value like = g.input("like", {4, 2});
  // Rows 0 and 2 of g both go to row 1: [1 + 5, 2 + 6]; row 1 of g to row 3.
  ParameterStore v{{"g", make_tensor({3, 2}, {1, 2, 3, 4, 5, 6})},
                   {"idx", make_tensor({3}, {1, 3, 1})},
                   {"like", Tensor(DType::f32, {4, 2})}};
  CHECK(run_values(g, scatter_rows_add(rows, idx, like), v) ==
        std::vector<double>{0, 0, 6, 8, 0, 0, 3, 4});
  CHECK_THROWS_AS(scatter_rows_add(rows, idx, g.input("wide", {4, 3})), ShapeError);
}

TEST_CASE("tile stacks copies along the batch; its gradient sums them", "[ops][research]") {
  Graph g;
  Value x = g.parameter("x", {2, 2}, Init::zeros());
  Value y = tile(x, 3);
  CHECK(y.shape() == Shape{6, 2});
  ParameterStore v{{"x", make_tensor({2, 2}, {1, 2, 3, 4}, DType::f64)}};
  CHECK(run_values(g, y, v, DType::f64) == std::vector<double>{1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4});
  // loss = sum(y * [0, 1, ..., 11]): x[b, j] collects weights 2b + j + {0, 4, 8}, which sum to
  // 3 (2b + j) + 12.
  std::vector<double> w(12);
  std::iota(w.begin(), w.end(), 0.0);
  Value dx = grad(sum(mul(y, g.constant({6, 2}, w))), {x})[0];
  CHECK(run_values(g, dx, v, DType::f64) == std::vector<double>{12, 15, 18, 21});
  CHECK_THROWS_AS(tile(x, 0), ShapeError);
}

TEST_CASE("sort orders each column along the batch; its gradient goes back to the source rows",
          "[ops][research]") {
  Graph g;
  Value x = g.parameter("x", {4, 2}, Init::zeros());
  Value y = sort(x);
  // Column 0 holds a tie (2 at rows 0 and 2) and a NaN; column 1 a -0 against a 0.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  ParameterStore v{{"x", make_tensor({4, 2}, {2, 0, nan, 5, 2, -0.0, -1, -3}, DType::f64)}};
  for (DType t : {DType::f64, DType::f32}) {
    auto got = run_values(g, y, v, t);
    CHECK(got[0] == -1);
    CHECK(got[2] == 2);
    CHECK(got[4] == 2);
    CHECK(std::isnan(got[6]));  // NaN last
    CHECK(std::vector<double>{got[1], got[3], got[5], got[7]} == std::vector<double>{-3, 0, -0.0, 5});
    CHECK(!std::signbit(got[3]));  // 0 (row 0) before -0 (row 2): equal, so in row order
  }
  // loss = sum(y * w): x's row r gets w's row where r landed. Column 0 sorts rows 3, 0, 2, 1;
  // column 1 rows 3, 0, 2, 1 too.
  Value w = g.constant({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  Value dx = grad(sum(mul(y, w)), {x})[0];
  CHECK(run_values(g, dx, v, DType::f64) == std::vector<double>{3, 4, 7, 8, 5, 6, 1, 2});
  CHECK_THROWS_AS(sort(g.constant({}, {1})), ShapeError);
}

TEST_CASE("sort_by and unsort_by are inverse permutations and each other's gradient",
          "[ops][research]") {
  Graph g;
  Value key = g.input("key", {5, 3});
  Value v = g.parameter("v", {5, 3}, Init::zeros());
  ParameterStore values{{"key", testing::random_tensor({5, 3}, {-1, 1}, 3, 1)},
                        {"v", testing::random_tensor({5, 3}, {-1, 1}, 4, 1)}};
  auto want_v = run_values(g, v, values, DType::f64);
  CHECK(run_values(g, unsort_by(key, sort_by(key, v)), values, DType::f64) == want_v);
  CHECK(run_values(g, sort_by(key, unsort_by(key, v)), values, DType::f64) == want_v);
  // sort(x) is sort_by(x, x).
  CHECK(run_values(g, sort(key), values, DType::f64) ==
        run_values(g, sort_by(key, key), values, DType::f64));
  // The gradient of sum(sort_by(key, v) * w) with respect to v is unsort_by(key, w).
  Value w = g.input("w", {5, 3});
  values.emplace("w", testing::random_tensor({5, 3}, {-1, 1}, 5, 1));
  Value dv = grad(sum(mul(sort_by(key, v), w)), {v})[0];
  CHECK(run_values(g, dv, values, DType::f64) == run_values(g, unsort_by(key, w), values, DType::f64));
  CHECK_THROWS_AS(sort_by(key, g.input("u", {5, 2})), ShapeError);
}

TEST_CASE("gradients of tile, gather_rows and logsumexp hold at another batch size",
          "[ops][research]") {
  // Built for a batch of 2, compiled for 5: no rule may keep the 2.
  Graph g;
  Value x = g.input("x", {2, 3});
  Value k = tile(x, 4);                                              // [4B, 3]
  Value picked = gather_rows(k, random_permutation_like(k));          // shuffled rows of k
  Value lse = logsumexp(reshape(k, {4, -1, 3}), {0});                 // ln(4 e^x) = x + ln 4
  Value loss = sum(square(tile(x, 2))) + sum(lse) + sum(picked);
  Value dx = grad(loss, {x})[0];
  Tensor x5 = testing::random_tensor({5, 3}, {-1, 1}, 3, 11);
  auto out = run_values(g, dx, {{"x", x5}}, DType::f64);
  REQUIRE(out.size() == 15);
  // d/dx: 2 sum x^2 gives 4 x; x + ln 4 gives 1; each row of x appears 4 times in `picked`: 4.
  auto xs = x5.values<double>();
  for (std::size_t i = 0; i < 15; ++i) CHECK(out[i] == Approx(4 * xs[i] + 5).epsilon(1e-12));
}

}  // namespace
}  // namespace graphrun
