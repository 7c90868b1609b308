// Random ops: statistics of the draws, and what train_only does outside training.
#include "graph/run_helpers.hpp"

#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>

#include <cmath>

namespace graphrun {
namespace {

using testing::run_values;

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

TEST_CASE("bernoulli_mask_like keeps a fraction `keep` of 100k draws", "[ops][random]") {
  Graph g;
  Value x = g.input("x", {100, 1000});
  ParameterStore v{{"x", Tensor(DType::f32, {100, 1000})}};
  for (double keep : {0.1, 0.7, 1.0, 0.0}) {
    INFO("keep " << keep);
    auto m = run_values(g, bernoulli_mask_like(x, keep), v);
    for (std::size_t i = 0; i < m.size(); i += 997) CHECK((m[i] == 0 || m[i] == 1));
    // sd of the mean: sqrt(0.7 * 0.3 / 1e5) = 0.00145
    CHECK(mean_of(m) == Approx(keep).margin(0.006));
    // Neighbours share a draw (four words each): they must still be independent.
    double both = 0, pairs = 0;
    for (std::size_t i = 0; i + 1 < m.size(); ++i, ++pairs) both += m[i] * m[i + 1];
    CHECK(both / pairs == Approx(keep * keep).margin(0.008));
  }
  // Outside training, train_only makes it all ones; without train_only it still draws.
  RunOptions eval{false, 0, 0};
  auto ones = run_values(g, bernoulli_mask_like(x, 0.3, true), v, DType::f32, eval);
  CHECK(mean_of(ones) == 1.0);
  auto drawn = run_values(g, bernoulli_mask_like(x, 0.3, false), v, DType::f32, eval);
  CHECK(mean_of(drawn) == Approx(0.3).margin(0.006));
  CHECK_THROWS_AS(bernoulli_mask_like(x, 1.5), ShapeError);
}

TEST_CASE("random_normal_like has mean 0 and variance 1", "[ops][random]") {
  Graph g;
  Value x = g.input("x", {200, 500});
  ParameterStore v{{"x", Tensor(DType::f64, {200, 500})}};
  auto z = run_values(g, random_normal_like(x), v, DType::f64);
  double m = mean_of(z), var = 0;
  for (double e : z) var += (e - m) * (e - m);
  var /= static_cast<double>(z.size());
  CHECK(m == Approx(0).margin(0.01));   // sd 1 / sqrt(1e5) = 0.0032
  CHECK(var == Approx(1).margin(0.02));  // sd sqrt(2 / 1e5) = 0.0045
  // Outside training: zeros with train_only, draws without.
  RunOptions eval{false, 0, 0};
  auto zeros = run_values(g, random_normal_like(x, true), v, DType::f64, eval);
  CHECK(mean_of(zeros) == 0.0);
  CHECK(zeros[123] == 0.0);
  auto still = run_values(g, random_normal_like(x, false), v, DType::f64, eval);
  CHECK(still[123] != 0.0);
}

TEST_CASE("two random nodes draw differently; float32 and float64 draw the same", "[ops][random]") {
  Graph g;
  Value x = g.input("x", {1000});
  Value a = random_normal_like(x);
  Value b = random_normal_like(x);
  ParameterStore v{{"x", Tensor(DType::f32, {1000})}};
  auto out = testing::run_graph(g, {a, b}, v);
  CHECK(testing::to_vector(out[0]) != testing::to_vector(out[1]));
  auto wide = testing::run_graph(g, {a}, v, DType::f64);
  testing::check_close(testing::to_vector(wide[0]), testing::to_vector(out[0]), 1e-6);
}

}  // namespace
}  // namespace graphrun
