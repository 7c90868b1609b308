// The composite helpers of ops/composites.hpp: values by hand, then gradients through their parts
// against central differences in float64.
#include "graph/run_helpers.hpp"

#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/gradcheck.hpp>
#include <graphrun/ops/composites.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numbers>
#include <numeric>

namespace graphrun {
namespace {

using testing::check_close;
using testing::make_tensor;
using testing::run_values;

const double kLn2Pi = std::log(2 * std::numbers::pi);

TEST_CASE("softmax and log_softmax along rows and columns", "[ops][composites]") {
  Graph g;
  Value x = g.input("x", {2, 3});
  // Row 0 is ln [1, 2, 5]: softmax [1, 2, 5] / 8. Row 1 is row 0 + 1000, the same softmax.
  const double l2 = std::log(2.0), l5 = std::log(5.0);
  ParameterStore v{{"x", make_tensor({2, 3}, {0, l2, l5, 1000, 1000 + l2, 1000 + l5}, DType::f64)}};
  check_close(run_values(g, softmax(x), v, DType::f64), {0.125, 0.25, 0.625, 0.125, 0.25, 0.625},
              1e-12);
  check_close(run_values(g, log_softmax(x, 1), v, DType::f64),
              {std::log(0.125), std::log(0.25), std::log(0.625), std::log(0.125), std::log(0.25),
               std::log(0.625)},
              1e-12);
  // Columns: row 1 is e^1000 times row 0, so all of each column's mass is in row 1.
  check_close(run_values(g, softmax(x, 0), v, DType::f64), {0, 0, 0, 1, 1, 1}, 1e-12);
  check_close(run_values(g, log_softmax(x, 0), v, DType::f64), {-1000, -1000, -1000, 0, 0, 0},
              1e-9);
}

TEST_CASE("log-densities of Gaussians and Bernoullis", "[ops][composites]") {
  Graph g;
  Value x = g.input("x", {2});
  Value mu = g.input("mu", {2});
  Value lv = g.input("lv", {2});
  ParameterStore v{{"x", make_tensor({2}, {1, 2}, DType::f64)},
                   {"mu", make_tensor({2}, {0, 1}, DType::f64)},
                   {"lv", make_tensor({2}, {0, std::log(4.0)}, DType::f64)}};
  // N(1; 0, 1): -0.5 (ln 2 pi + 0 + 1) = -1.41894; N(2; 1, 4): -0.5 (ln 2 pi + ln 4 + 1/4).
  check_close(run_values(g, gaussian_log_density(x, mu, lv), v, DType::f64),
              {-0.5 * (kLn2Pi + 1), -0.5 * (kLn2Pi + std::log(4.0) + 0.25)}, 1e-12);
  // N(1; 0, 1) and N(2; 0, 1): -0.5 (ln 2 pi + 1), -0.5 (ln 2 pi + 4).
  check_close(run_values(g, std_normal_log_density(x), v, DType::f64),
              {-0.5 * (kLn2Pi + 1), -0.5 * (kLn2Pi + 4)}, 1e-12);
  // A scalar mean and log-variance broadcast over x: N(x; 1, e^0) at [1, 2] is
  // [0, -0.5] - 0.5 ln 2 pi.
  check_close(run_values(g, gaussian_log_density(x, g.scalar(1.0), g.scalar(0.0)), v, DType::f64),
              {-0.5 * kLn2Pi, -0.5 * kLn2Pi - 0.5}, 1e-12);
  // sigmoid(ln 3) = 3/4: ln 3/4 for x = 1, ln 1/4 for x = 0, and ln 1/2 at logit 0.
  Graph h;
  Value l = h.input("l", {3});
  Value t = h.input("t", {3});
  ParameterStore w{{"l", make_tensor({3}, {std::log(3.0), std::log(3.0), 0}, DType::f64)},
                   {"t", make_tensor({3}, {1, 0, 1}, DType::f64)}};
  check_close(run_values(h, bernoulli_log_likelihood(l, t), w, DType::f64),
              {std::log(0.75), std::log(0.25), std::log(0.5)}, 1e-12);
}

TEST_CASE("pairwise squared distances and the RBF and IMQ kernels", "[ops][composites]") {
  Graph g;
  Value a = g.input("a", {2, 2});
  Value b = g.input("b", {3, 2});
  ParameterStore v{{"a", make_tensor({2, 2}, {0, 0, 1, 1}, DType::f64)},
                   {"b", make_tensor({3, 2}, {1, 0, 3, 4, 1, 1}, DType::f64)}};
  // From (0, 0): 1, 9 + 16, 1 + 1; from (1, 1): 0 + 1, 4 + 9, 0.
  std::vector<double> d{1, 25, 2, 1, 13, 0};
  check_close(run_values(g, pairwise_sq_distances(a, b), v, DType::f64), d, 1e-12);
  std::vector<double> rbf, imq;
  for (double e : d) {
    rbf.push_back(std::exp(-e / 2));  // scale 2
    imq.push_back(2 / (2 + e));
  }
  check_close(run_values(g, rbf_kernel(a, b, 2.0), v, DType::f64), rbf, 1e-12);
  check_close(run_values(g, imq_kernel(a, b, 2.0), v, DType::f64), imq, 1e-12);
  // Self-distances are 0, never negative, also in float32.
  auto self = run_values(g, pairwise_sq_distances(b, b), v);
  CHECK(*std::min_element(self.begin(), self.end()) >= 0.0);
  CHECK(self[0] == 0.0);
  CHECK_THROWS_AS(pairwise_sq_distances(a, g.input("c", {3, 4})), ShapeError);
  CHECK_THROWS_AS(rbf_kernel(a, b, 0.0), ShapeError);
}

TEST_CASE("clamp bounds values and passes the gradient on [lo, hi]", "[ops][composites]") {
  Graph g;
  Value x = g.parameter("x", {5}, Init::zeros());
  Value y = clamp(x, -1, 1);
  ParameterStore v{{"x", make_tensor({5}, {-2, -1, 0.5, 1, 3}, DType::f64)}};
  CHECK(run_values(g, y, v, DType::f64) == std::vector<double>{-1, -1, 0.5, 1, 1});
  // Bounds included: -1 and 1 pass their gradient, as torch.clamp does.
  CHECK(run_values(g, grad(sum(y), {x})[0], v, DType::f64) == std::vector<double>{0, 1, 1, 1, 0});
  CHECK_THROWS_AS(clamp(x, 1, -1), ShapeError);
}

TEST_CASE("gumbel_softmax: rows on the simplex, argmax frequencies the softmax",
          "[ops][composites]") {
  // 40000 rows of logits ln [1, 2, 5]: by the Gumbel-max trick the argmax of logits + G is
  // category k with probability softmax_k = [1, 2, 5] / 8; sd of each fraction <= 0.0025.
  const std::int64_t rows = 40000;
  Graph g;
  Value logits = g.input("l", {rows, 3});
  std::vector<double> l;
  for (std::int64_t r = 0; r < rows; ++r) l.insert(l.end(), {0, std::log(2.0), std::log(5.0)});
  ParameterStore v{{"l", make_tensor({rows, 3}, l, DType::f64)}};
  Value y = gumbel_softmax(logits, 0.5, -1, true);
  auto out = testing::run_graph(g, {sum(y, {1}), mean(one_hot_argmax(y), {0})}, v, DType::f64);
  for (double s : testing::to_vector(out[0])) REQUIRE(s == Approx(1).epsilon(1e-12));
  check_close(testing::to_vector(out[1]), {0.125, 0.25, 0.625}, 0.012);
  // Outside training with train_only: softmax(logits / 0.5) = [1, 4, 25] / 30 in every row.
  auto eval = run_values(g, y, v, DType::f64, {false, 0, 0});
  check_close({eval[0], eval[1], eval[2]}, {1.0 / 30, 4.0 / 30, 25.0 / 30}, 1e-12);
}

TEST_CASE("permute_dims shuffles each column on its own", "[ops][composites]") {
  const std::int64_t rows = 50;
  Graph g;
  Value z = g.input("z", {rows, 3});
  // Column j holds 100 j + row: each permuted column must hold the same values in a new order.
  std::vector<double> values;
  for (std::int64_t r = 0; r < rows; ++r)
    for (int j = 0; j < 3; ++j) values.push_back(100.0 * j + static_cast<double>(r));
  auto out = run_values(g, permute_dims(z), {{"z", make_tensor({rows, 3}, values)}});
  std::vector<std::vector<double>> cols(3);
  for (std::size_t i = 0; i < out.size(); ++i)
    cols[i % 3].push_back(out[i] - 100.0 * static_cast<double>(i % 3));
  std::vector<double> in_order(static_cast<std::size_t>(rows));
  std::iota(in_order.begin(), in_order.end(), 0.0);
  for (auto& c : cols) {
    CHECK(c != in_order);
    auto sorted = c;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == in_order);
  }
  CHECK(cols[0] != cols[1]);  // different permutations per column
  CHECK(cols[1] != cols[2]);
}

// loss = sum(f(params) * w) with fixed weights, checked against central differences.
void check_composite(const std::string& what, const std::vector<Shape>& shapes,
                     const std::function<Value(Graph&, const std::vector<Value>&)>& f,
                     std::pair<double, double> range = {-1.0, 1.0}) {
  INFO(what);
  Graph g;
  ParameterStore values;
  std::vector<Value> params;
  std::vector<std::string> names;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    names.push_back(fmt::format("p{}", i));
    params.push_back(g.parameter(names.back(), shapes[i], Init::zeros()));
    values.emplace(names.back(),
                   testing::random_tensor(shapes[i], range, static_cast<std::uint32_t>(i), 31));
  }
  Value y = f(g, params);
  Tensor w = testing::random_tensor(y.shape(), {-1.0, 1.0}, 99, 31);
  Value loss = sum(mul(y, g.constant(y.shape(), std::vector<double>(w.values<double>().begin(),
                                                                    w.values<double>().end()))));
  auto report = check_gradients(g, loss, names, values);
  INFO(report.to_string());
  CHECK(report.ok());
}

TEST_CASE("composites pass the gradient check in float64", "[ops][composites][gradcheck]") {
  using P = const std::vector<Value>&;
  check_composite("softmax", {{3, 4}}, [](Graph&, P p) { return softmax(p[0]); });
  check_composite("softmax axis 0", {{3, 4}}, [](Graph&, P p) { return softmax(p[0], 0); });
  check_composite("log_softmax", {{3, 4}}, [](Graph&, P p) { return log_softmax(p[0], 1); });
  check_composite("gaussian_log_density", {{3, 4}, {4}, {3, 4}},
                  [](Graph&, P p) { return gaussian_log_density(p[0], p[1], p[2]); });
  check_composite("std_normal_log_density", {{3, 4}},
                  [](Graph&, P p) { return std_normal_log_density(p[0]); });
  check_composite("bernoulli_log_likelihood", {{3, 4}, {3, 4}},
                  [](Graph&, P p) { return bernoulli_log_likelihood(p[0], p[1]); });
  check_composite("pairwise_sq_distances", {{3, 2}, {4, 2}},
                  [](Graph&, P p) { return pairwise_sq_distances(p[0], p[1]); });
  check_composite("rbf_kernel", {{3, 2}, {4, 2}},
                  [](Graph&, P p) { return rbf_kernel(p[0], p[1], 1.5); });
  check_composite("imq_kernel", {{3, 2}, {4, 2}},
                  [](Graph&, P p) { return imq_kernel(p[0], p[1], 1.5); });
  check_composite("clamp", {{3, 4}}, [](Graph&, P p) { return clamp(p[0], -0.5, 0.5); });
  check_composite("gumbel_softmax", {{3, 4}, {}},
                  [](Graph&, P p) { return gumbel_softmax(p[0], exp(p[1])); });
  check_composite("permute_dims", {{5, 3}}, [](Graph&, P p) { return permute_dims(p[0]); });
}

}  // namespace
}  // namespace graphrun
