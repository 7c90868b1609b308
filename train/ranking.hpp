// Ranking metrics for one-class anomaly detection: how well anomaly scores put the anomalies of a
// labelled test set above its normal samples. Both depend only on the order of the scores, so any
// strictly increasing transform of them (a log, a scale) leaves the results unchanged.
#pragma once

#include <cstdint>
#include <span>

namespace graphrun {

// The area under the ROC curve: the probability that a random anomaly scores above a random
// normal sample, a tie counting one half (the Mann-Whitney U over n_anomalies * n_normal).
// 1 is a perfect ranking, 0.5 chance, 0 a perfectly reversed one. O(n log n).
// is_anomaly[i] != 0 marks sample i as an anomaly. Throws std::invalid_argument when the sizes
// differ, when there are no anomalies or no normal samples, or when a score is NaN.
double auroc(std::span<const double> scores, std::span<const std::uint8_t> is_anomaly);

// Average precision as scikit-learn's average_precision_score defines it: the sum over distinct
// score thresholds, highest first, of (R_n - R_{n-1}) * P_n, where P_n and R_n are the precision
// and recall of calling every sample scoring at least the n-th threshold an anomaly (R_0 = 0).
// Tied scores form one threshold, so ties are neither rewarded nor punished by their order.
// Chance level is the fraction of anomalies. O(n log n). Throws std::invalid_argument when the
// sizes differ, when there are no anomalies, or when a score is NaN; with no normal samples the
// precision is always 1 and so is the result.
double average_precision(std::span<const double> scores,
                         std::span<const std::uint8_t> is_anomaly);

}  // namespace graphrun
