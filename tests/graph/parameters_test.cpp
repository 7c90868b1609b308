// init_parameters: deterministic per seed, keyed by name, within each Init's bounds.
#include "graph/run_helpers.hpp"

#include <graphrun/graph/parameters.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

namespace graphrun {
namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw(), b.raw(), a.bytes()) == 0;
}

TEST_CASE("init_parameters is deterministic per seed and differs between seeds",
          "[graph][parameters]") {
  Graph g;
  g.parameter("w", {20, 30}, Init::xavier_uniform());
  g.parameter("b", {30}, Init::normal(0.5));
  auto a = init_parameters(g, 1);
  auto b = init_parameters(g, 1);
  auto c = init_parameters(g, 2);
  REQUIRE(a.size() == 2);
  CHECK(same_bits(a.at("w"), b.at("w")));
  CHECK(same_bits(a.at("b"), b.at("b")));
  CHECK_FALSE(same_bits(a.at("w"), c.at("w")));
  CHECK_FALSE(same_bits(a.at("b"), c.at("b")));
  CHECK(a.at("w").dtype() == DType::f32);
  CHECK(init_parameters(g, 1, DType::f64).at("w").dtype() == DType::f64);
  // Two parameters of one seed do not share draws.
  Graph twins;
  twins.parameter("p", {50}, Init::normal(1));
  twins.parameter("q", {50}, Init::normal(1));
  auto t = init_parameters(twins, 5);
  CHECK_FALSE(same_bits(t.at("p"), t.at("q")));
}

TEST_CASE("xavier_uniform stays within sqrt(6 / (fan_in + fan_out)) and fills it",
          "[graph][parameters]") {
  Graph g;
  g.parameter("w", {784, 256}, Init::xavier_uniform());
  auto p = init_parameters(g, 9, DType::f64);
  double bound = std::sqrt(6.0 / (784 + 256));  // 0.07596
  double lo = 1, hi = -1, sum = 0;
  for (double v : p.at("w").values<double>()) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
  }
  CHECK(hi <= bound);
  CHECK(lo >= -bound);
  CHECK(hi > 0.99 * bound);  // 200k uniform draws reach the edges
  CHECK(lo < -0.99 * bound);
  CHECK(std::abs(sum / (784 * 256)) < 0.01 * bound);
}

TEST_CASE("he_normal and normal have the stated spread; constants and zeros are exact",
          "[graph][parameters]") {
  Graph g;
  g.parameter("he", {400, 300}, Init::he_normal());
  g.parameter("n", {100000}, Init::normal(0.2));
  g.parameter("c", {3}, Init::constant(1.5));
  g.parameter("z", {3}, Init::zeros());
  auto p = init_parameters(g, 4, DType::f64);
  auto stddev = [](const Tensor& t) {
    double s = 0, s2 = 0;
    for (double v : t.values<double>()) s += v, s2 += v * v;
    double n = static_cast<double>(t.numel());
    return std::sqrt(s2 / n - (s / n) * (s / n));
  };
  CHECK(stddev(p.at("he")) == Approx(std::sqrt(2.0 / 400)).epsilon(0.02));
  CHECK(stddev(p.at("n")) == Approx(0.2).epsilon(0.02));
  CHECK(testing::to_vector(p.at("c")) == std::vector<double>{1.5, 1.5, 1.5});
  CHECK(testing::to_vector(p.at("z")) == std::vector<double>{0, 0, 0});
}

TEST_CASE("a parameter's values do not change when another is added", "[graph][parameters]") {
  Graph small;
  small.parameter("enc/w", {10, 5}, Init::xavier_normal());
  auto before = init_parameters(small, 3);

  Graph big;
  big.parameter("first", {7, 7}, Init::he_uniform());  // added before it, shifting node ids
  big.input("x", {2});
  big.parameter("enc/w", {10, 5}, Init::xavier_normal());
  big.parameter("dec/w", {5, 10}, Init::xavier_normal());
  auto after = init_parameters(big, 3);
  CHECK(same_bits(before.at("enc/w"), after.at("enc/w")));
  CHECK(after.size() == 3);
}

TEST_CASE("a convolution weight's fans count its kernel area", "[graph][parameters]") {
  Graph g;
  g.parameter("conv", {64, 32, 3, 3}, Init::he_uniform());  // fan_in 32 * 9 = 288
  g.parameter("xav", {16, 8, 5, 5}, Init::xavier_uniform());  // (8 + 16) * 25 = 600
  auto p = init_parameters(g, 2, DType::f64);
  auto extreme = [](const Tensor& t) {
    double m = 0;
    for (double v : t.values<double>()) m = std::max(m, std::abs(v));
    return m;
  };
  CHECK(extreme(p.at("conv")) <= std::sqrt(6.0 / 288));
  CHECK(extreme(p.at("conv")) > 0.99 * std::sqrt(6.0 / 288));
  CHECK(extreme(p.at("xav")) <= std::sqrt(6.0 / 600));
  CHECK(extreme(p.at("xav")) > 0.98 * std::sqrt(6.0 / 600));
}

}  // namespace
}  // namespace graphrun
