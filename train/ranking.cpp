#include <graphrun/train/ranking.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <fmt/format.h>
#include <numeric>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace graphrun {
namespace {

// The samples sharing one score.
struct TieGroup {
  std::uint64_t anomalies = 0;
  std::uint64_t normals = 0;
};

struct Groups {
  std::vector<TieGroup> ascending;  // by score
  std::uint64_t anomalies = 0;
  std::uint64_t normals = 0;
};

// Both metrics are functions of the class counts per distinct score, in score order; working on
// those groups is what makes tied scores count as one threshold (AP) or one half (AUROC).
Groups tie_groups(std::string_view metric, std::span<const double> scores,
                  std::span<const std::uint8_t> is_anomaly) {
  if (scores.size() != is_anomaly.size()) {
    throw std::invalid_argument(fmt::format("{}: {} scores but {} anomaly labels", metric,
                                            scores.size(), is_anomaly.size()));
  }
  for (std::size_t i = 0; i < scores.size(); ++i) {
    // A NaN would break the sort's ordering, and no rank is right for it anyway.
    if (std::isnan(scores[i])) {
      throw std::invalid_argument(fmt::format("{}: score {} is NaN", metric, i));
    }
  }
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
  Groups groups;
  for (std::size_t k = 0; k < order.size(); ++k) {
    if (k == 0 || scores[order[k]] != scores[order[k - 1]]) groups.ascending.emplace_back();
    if (is_anomaly[order[k]] != 0) {
      ++groups.ascending.back().anomalies;
      ++groups.anomalies;
    } else {
      ++groups.ascending.back().normals;
      ++groups.normals;
    }
  }
  if (groups.anomalies == 0) {
    throw std::invalid_argument(fmt::format(
        "{}: none of the {} samples is an anomaly; the metric needs at least one", metric,
        scores.size()));
  }
  return groups;
}

}  // namespace

double auroc(std::span<const double> scores, std::span<const std::uint8_t> is_anomaly) {
  const Groups groups = tie_groups("auroc", scores, is_anomaly);
  if (groups.normals == 0) {
    throw std::invalid_argument(fmt::format(
        "auroc: all {} samples are anomalies; AUROC needs normal samples too", scores.size()));
  }
  // Twice the Mann-Whitney U: each anomaly beats the normals below its score and ties the normals
  // at it (the average-rank rule). Counting per group instead of summing average ranks keeps the
  // arithmetic in exact integers, with no large rank sum to subtract from.
  std::uint64_t twice_u = 0;
  std::uint64_t normals_below = 0;
  for (const TieGroup& g : groups.ascending) {
    twice_u += g.anomalies * (2 * normals_below + g.normals);
    normals_below += g.normals;
  }
  return static_cast<double>(twice_u) /
         (2.0 * static_cast<double>(groups.anomalies) * static_cast<double>(groups.normals));
}

double average_precision(std::span<const double> scores,
                         std::span<const std::uint8_t> is_anomaly) {
  const Groups groups = tie_groups("average_precision", scores, is_anomaly);
  // Each threshold adds its recall step g.anomalies / total times its precision; the division by
  // the total is done once at the end. Thresholds without anomalies add nothing.
  double sum = 0.0;
  std::uint64_t true_positives = 0;
  std::uint64_t flagged = 0;
  for (auto g = groups.ascending.rbegin(); g != groups.ascending.rend(); ++g) {
    true_positives += g->anomalies;
    flagged += g->anomalies + g->normals;
    if (g->anomalies != 0) {
      sum += static_cast<double>(g->anomalies) * static_cast<double>(true_positives) /
             static_cast<double>(flagged);
    }
  }
  return sum / static_cast<double>(groups.anomalies);
}

}  // namespace graphrun
