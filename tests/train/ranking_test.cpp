#include <graphrun/train/ranking.hpp>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <vector>

using graphrun::auroc;
using graphrun::average_precision;
using Labels = std::vector<std::uint8_t>;
using Scores = std::vector<double>;

namespace {

// The definitions, straight: every (anomaly, normal) pair ...
double naive_auroc(const Scores& s, const Labels& y) {
  double wins = 0.0;
  double pairs = 0.0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (y[i] == 0) continue;
    for (std::size_t j = 0; j < s.size(); ++j) {
      if (y[j] != 0) continue;
      wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
      pairs += 1.0;
    }
  }
  return wins / pairs;
}

// ... and every distinct threshold, highest first, with precision and recall counted afresh.
double naive_average_precision(const Scores& s, const Labels& y) {
  const std::set<double, std::greater<>> thresholds(s.begin(), s.end());
  double positives = 0.0;
  for (auto label : y) positives += label != 0;
  double ap = 0.0;
  double previous_recall = 0.0;
  for (double t : thresholds) {
    double tp = 0.0;
    double flagged = 0.0;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] < t) continue;
      flagged += 1.0;
      tp += y[i] != 0;
    }
    const double recall = tp / positives;
    ap += (recall - previous_recall) * (tp / flagged);
    previous_recall = recall;
  }
  return ap;
}

}  // namespace

TEST_CASE("auroc and average_precision of hand-computed rankings", "[ranking]") {
  SECTION("perfect") {
    const Scores s = {0.1, 0.2, 0.8, 0.9};
    const Labels y = {0, 0, 1, 1};
    CHECK(auroc(s, y) == 1.0);
    CHECK(average_precision(s, y) == 1.0);
  }
  SECTION("reversed") {
    const Scores s = {0.1, 0.2, 0.8, 0.9};
    const Labels y = {1, 1, 0, 0};
    CHECK(auroc(s, y) == 0.0);
    // From the top: 0.9 and 0.8 are normal; at 0.2 recall 1/2 with precision 1/3, at 0.1 recall
    // 1 with precision 2/4: AP = 1/2 * 1/3 + 1/2 * 1/2 = 5/12.
    CHECK(average_precision(s, y) == Approx(5.0 / 12.0).epsilon(1e-15));
  }
  SECTION("all tied") {
    const Scores s(5, 3.0);
    const Labels y = {1, 0, 0, 1, 0};
    CHECK(auroc(s, y) == 0.5);
    // One threshold flags everything: recall 1, precision 2/5.
    CHECK(average_precision(s, y) == Approx(0.4).epsilon(1e-15));
  }
  SECTION("a known sequence") {
    // Highest first: A N A A N N. The anomalies are hit at ranks 1, 3 and 4, each adding 1/3 of
    // recall at precisions 1/1, 2/3 and 3/4: AP = (1 + 2/3 + 3/4) / 3 = 29/36.
    // Anomaly-normal pairs won: 3 + 2 + 2 = 7 of 9 (the first anomaly beats all three normals,
    // the other two beat the two normals below them).
    const Scores s = {0.9, 0.8, 0.7, 0.6, 0.5, 0.4};
    const Labels y = {1, 0, 1, 1, 0, 0};
    CHECK(average_precision(s, y) == Approx(29.0 / 36.0).epsilon(1e-15));
    CHECK(auroc(s, y) == Approx(7.0 / 9.0).epsilon(1e-15));
  }
  SECTION("scikit-learn's documented example") {
    // average_precision_score and roc_auc_score document 0.83 and 0.75 for these: from the top
    // 0.8 (A), 0.4 (N), 0.35 (A), 0.1 (N) gives AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    const Scores s = {0.1, 0.4, 0.35, 0.8};
    const Labels y = {0, 0, 1, 1};
    CHECK(average_precision(s, y) == Approx(5.0 / 6.0).epsilon(1e-15));
    CHECK(auroc(s, y) == 0.75);
  }
  SECTION("any non-zero label is an anomaly") {
    const Scores s = {0.1, 0.2, 0.8, 0.9};
    const Labels y = {0, 0, 255, 7};
    CHECK(auroc(s, y) == 1.0);
    CHECK(average_precision(s, y) == 1.0);
  }
}

TEST_CASE("auroc and average_precision treat tied scores as one threshold", "[ranking]") {
  // Anomalies score 2 and 3, normals 1 and 2. Pairs: 2>1, 2=2 (one half), 3>1, 3>2: 3.5 / 4.
  const Scores s = {1, 2, 2, 3};
  const Labels y = {0, 1, 0, 1};
  CHECK(auroc(s, y) == 0.875);
  // From the top: 3 (A) is recall 1/2 at precision 1; the tie at 2 flags both its samples at
  // once, recall 1 at precision 2/3: AP = 1/2 + 1/3 = 5/6, whatever order the tie came in.
  CHECK(average_precision(s, y) == Approx(5.0 / 6.0).epsilon(1e-15));
  const Labels swapped_y = {0, 0, 1, 1};  // the tie's anomaly now comes second
  CHECK(auroc(s, swapped_y) == 0.875);
  CHECK(average_precision(s, swapped_y) == Approx(5.0 / 6.0).epsilon(1e-15));
  // Three tied at the top, two of them anomalies: one threshold of recall 1 at precision 2/3, so
  // AP = 2/3. Taking the tie one sample at a time would give 1 (A A N), 5/6 (A N A) or
  // 7/12 (N A A) depending on the order.
  CHECK(average_precision(Scores{5, 5, 5, 0}, Labels{1, 0, 1, 0}) ==
        Approx(2.0 / 3.0).epsilon(1e-15));
  CHECK(average_precision(Scores{5, 5, 5, 0}, Labels{0, 1, 1, 0}) ==
        Approx(2.0 / 3.0).epsilon(1e-15));
  // -0.0 and 0.0 are the same score.
  CHECK(auroc(Scores{-0.0, 0.0}, Labels{1, 0}) == 0.5);
  // A tie of two anomalies with one normal above and one below.
  const Scores t = {0, 5, 5, 9};
  const Labels ty = {0, 1, 1, 0};
  CHECK(auroc(t, ty) == 0.5);
  // 9 (N): recall 0. The tie flags three samples, two anomalies: recall 1 at precision 2/3.
  CHECK(average_precision(t, ty) == Approx(2.0 / 3.0).epsilon(1e-15));
}

TEST_CASE("auroc and average_precision depend only on the order of the scores", "[ranking]") {
  std::mt19937 rng(21);
  std::uniform_int_distribution<int> level(0, 30);  // integer scores, so many ties
  std::bernoulli_distribution coin(0.3);
  Scores s(200);
  Labels y(200);
  for (std::size_t i = 0; i < s.size(); ++i) {
    s[i] = level(rng);
    y[i] = coin(rng);
  }
  y[0] = 1;
  y[1] = 0;
  const double roc = auroc(s, y);
  const double ap = average_precision(s, y);
  const std::vector<std::function<double(double)>> increasing = {
      [](double x) { return 3.0 * x - 7.0; },
      [](double x) { return std::exp(x / 4.0); },
      [](double x) { return std::atan(x / 10.0); },
      [](double x) { return x * x * x; },
  };
  for (std::size_t k = 0; k < increasing.size(); ++k) {
    INFO("transform " << k);
    Scores t(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) t[i] = increasing[k](s[i]);
    CHECK(auroc(t, y) == roc);
    CHECK(average_precision(t, y) == ap);
  }
  // Negating the scores swaps "above" and "below": the complement, ties still one half.
  Scores negated(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) negated[i] = -s[i];
  CHECK(auroc(negated, y) == Approx(1.0 - roc).epsilon(1e-14));
}

TEST_CASE("auroc and average_precision agree with their naive definitions", "[ranking]") {
  std::mt19937 rng(2021);
  for (int trial = 0; trial < 300; ++trial) {
    const auto n = static_cast<std::size_t>(std::uniform_int_distribution<int>(2, 120)(rng));
    const bool ties = trial % 2 == 0;
    const double anomaly_rate = std::uniform_real_distribution<double>(0.05, 0.95)(rng);
    Scores s(n);
    Labels y(n);
    for (std::size_t i = 0; i < n; ++i) {
      y[i] = std::bernoulli_distribution(anomaly_rate)(rng);
      // Anomalies score a little higher on average, so results spread away from 0.5.
      s[i] = ties ? std::uniform_int_distribution<int>(0, 5)(rng) + (y[i] != 0 ? 1 : 0)
                  : std::normal_distribution<double>(y[i] != 0 ? 0.5 : 0.0, 1.0)(rng);
    }
    y[std::uniform_int_distribution<std::size_t>(0, n - 1)(rng)] = 1;
    INFO("trial " << trial << ", n " << n);
    CHECK(average_precision(s, y) == Approx(naive_average_precision(s, y)).epsilon(1e-12));
    if (std::count(y.begin(), y.end(), 0) == 0) continue;
    CHECK(auroc(s, y) == Approx(naive_auroc(s, y)).epsilon(1e-12));
  }
}

TEST_CASE("auroc and average_precision name what is wrong with their input", "[ranking]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(auroc(Scores{1, 2, 3}, Labels{0, 1}),
                    Catch::Contains("auroc: 3 scores but 2 anomaly labels"));
  CHECK_THROWS_WITH(average_precision(Scores{1}, Labels{0, 1}),
                    Catch::Contains("average_precision: 1 scores but 2 anomaly labels"));
  CHECK_THROWS_WITH(auroc(Scores{1, 2, 3}, Labels{0, 0, 0}),
                    Catch::Contains("none of the 3 samples is an anomaly"));
  CHECK_THROWS_WITH(auroc(Scores{1, 2, 3}, Labels{1, 1, 1}),
                    Catch::Contains("all 3 samples are anomalies; AUROC needs normal samples"));
  CHECK_THROWS_WITH(auroc(Scores{}, Labels{}), Catch::Contains("none of the 0 samples"));
  CHECK_THROWS_WITH(average_precision(Scores{1, 2}, Labels{0, 0}),
                    Catch::Contains("average_precision: none of the 2 samples is an anomaly"));
  CHECK_THROWS_WITH(auroc(Scores{1, 2, nan, 4}, Labels{0, 1, 0, 1}),
                    Catch::Contains("auroc: score 2 is NaN"));
  CHECK_THROWS_WITH(average_precision(Scores{nan, 2}, Labels{0, 1}),
                    Catch::Contains("average_precision: score 0 is NaN"));
  CHECK_THROWS_AS(auroc(Scores{1, 2, nan}, Labels{0, 1, 1}), std::invalid_argument);
  // With no normal samples every threshold's precision is 1.
  CHECK(average_precision(Scores{1, 2, 2}, Labels{1, 1, 1}) == 1.0);
  // Infinite scores are ordered like any other.
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(auroc(Scores{-inf, inf, 0}, Labels{0, 1, 0}) == 1.0);
}
