#include <graphrun/train/pca.hpp>

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

namespace {

double column_mean(const std::vector<double>& values, int k, int column) {
  double sum = 0.0;
  for (std::size_t i = column; i < values.size(); i += k) sum += values[i];
  return sum / static_cast<double>(values.size() / k);
}

}  // namespace

TEST_CASE("pca recovers a dominant direction", "[pca]") {
  // Points along (3, 4) / 5 around (10, -2) with a spread of ~5, plus noise of 0.01.
  std::mt19937 rng(7);
  std::normal_distribution<float> along(0.0f, 5.0f), noise(0.0f, 0.01f);
  const int n = 500;
  std::vector<float> data;
  for (int i = 0; i < n; ++i) {
    const float t = along(rng);
    data.push_back(10.0f + 0.6f * t + noise(rng));
    data.push_back(-2.0f + 0.8f * t + noise(rng));
  }
  const auto pca = graphrun::fit_pca(data, n, 2, 2);
  const double cos = pca.components[0] * 0.6 + pca.components[1] * 0.8;
  CHECK(std::abs(cos) > 0.999);
  CHECK(pca.components[1] > 0.0);  // the largest loading is positive
  CHECK(pca.variances[0] > 1000 * pca.variances[1]);
  CHECK(pca.mean[0] == Approx(10.0).margin(0.5));

  const auto projected = graphrun::pca_project(data, n, 2, 2);
  REQUIRE(projected.size() == 2 * n);
  CHECK(column_mean(projected, 2, 0) == Approx(0.0).margin(1e-5));
  CHECK(column_mean(projected, 2, 1) == Approx(0.0).margin(1e-5));
  // The first coordinate is the position along the line: it matches the centred point's dot
  // product with (0.6, 0.8) up to noise.
  const double expected = (data[0] - pca.mean[0]) * 0.6 + (data[1] - pca.mean[1]) * 0.8;
  CHECK(projected[0] == Approx(expected).margin(0.05));
}

TEST_CASE("pca orders components by variance in higher dimensions", "[pca]") {
  // Independent columns with standard deviations 1, 4, 0.5, 2: components are the axes 1, 3.
  std::mt19937 rng(3);
  std::normal_distribution<float> unit(0.0f, 1.0f);
  const int n = 4000;
  const float scales[4] = {1.0f, 4.0f, 0.5f, 2.0f};
  std::vector<float> data;
  for (int i = 0; i < n; ++i) {
    for (float s : scales) data.push_back(s * unit(rng));
  }
  const auto pca = graphrun::fit_pca(data, n, 4, 3);
  CHECK(std::abs(pca.components[1]) > 0.99);
  CHECK(std::abs(pca.components[4 + 3]) > 0.99);
  CHECK(std::abs(pca.components[8 + 0]) > 0.99);
  CHECK(pca.variances[0] == Approx(16.0).epsilon(0.1));
  CHECK(graphrun::fit_pca(data, n, 4, 3).components == pca.components);  // deterministic
}

TEST_CASE("pca handles constant data and rejects bad arguments", "[pca]") {
  const std::vector<float> same(6, 2.5f);
  const auto projected = graphrun::pca_project(same, 3, 2, 2);
  for (double v : projected) CHECK(v == 0.0);
  const std::vector<float> data = {1, 2, 3, 4, 5, 6};
  CHECK_THROWS_AS(graphrun::pca_project(data, 1, 6, 1), std::invalid_argument);
  CHECK_THROWS_AS(graphrun::pca_project(data, 3, 2, 3), std::invalid_argument);
  CHECK_THROWS_AS(graphrun::pca_project(data, 2, 2, 1), std::invalid_argument);
  std::vector<float> with_nan = data;
  with_nan[3] = std::nanf("");
  CHECK_THROWS_AS(graphrun::pca_project(with_nan, 3, 2, 1), std::invalid_argument);
}
