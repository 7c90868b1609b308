#include <graphrun/train/pca.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <fmt/format.h>
#include <numeric>
#include <stdexcept>

namespace graphrun {
namespace {

using Index = std::size_t;

void check_arguments(std::span<const float> data, std::int64_t n, std::int64_t d, int k) {
  if (n < 2 || d < 1 || k < 1 || k > d) {
    throw std::invalid_argument(fmt::format(
        "pca: need n >= 2 rows, d >= 1 columns and 1 <= k <= d; got n={} d={} k={}", n, d, k));
  }
  if (static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(d) != data.size()) {
    throw std::invalid_argument(
        fmt::format("pca: {} x {} data needs {} values, got {}", n, d, n * d, data.size()));
  }
  for (Index i = 0; i < data.size(); ++i) {
    if (!std::isfinite(data[i])) {
      throw std::invalid_argument(fmt::format("pca: value {} at row {} column {} is not finite",
                                              data[i], i / static_cast<Index>(d),
                                              i % static_cast<Index>(d)));
    }
  }
}

std::vector<double> column_means(std::span<const float> data, Index n, Index d) {
  std::vector<double> mean(d, 0.0);
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < d; ++j) mean[j] += data[i * d + j];
  }
  for (double& m : mean) m /= static_cast<double>(n);
  return mean;
}

// The sample covariance (d x d, row-major), accumulated in double from centred rows.
std::vector<double> covariance(std::span<const float> data, Index n, Index d,
                               const std::vector<double>& mean) {
  std::vector<double> cov(d * d, 0.0);
  std::vector<double> row(d);
  for (Index i = 0; i < n; ++i) {
    for (Index j = 0; j < d; ++j) row[j] = data[i * d + j] - mean[j];
    for (Index a = 0; a < d; ++a) {
      const double ra = row[a];
      double* out = &cov[a * d];
      for (Index b = a; b < d; ++b) out[b] += ra * row[b];
    }
  }
  const double scale = 1.0 / static_cast<double>(n - 1);
  for (Index a = 0; a < d; ++a) {
    for (Index b = a; b < d; ++b) {
      cov[a * d + b] *= scale;
      cov[b * d + a] = cov[a * d + b];
    }
  }
  return cov;
}

// Cyclic Jacobi: rotations A <- J^T A J zero one off-diagonal entry at a time until A is
// diagonal; the product of the rotations (V) holds the eigenvectors in its columns. Chosen over
// power iteration because it does not slow down when leading eigenvalues are nearly equal.
void jacobi_eigen(std::vector<double>& a, std::vector<double>& v, Index d) {
  v.assign(d * d, 0.0);
  for (Index i = 0; i < d; ++i) v[i * d + i] = 1.0;
  const double total = std::inner_product(a.begin(), a.end(), a.begin(), 0.0);
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0.0;
    for (Index p = 0; p < d; ++p) {
      for (Index q = p + 1; q < d; ++q) off += a[p * d + q] * a[p * d + q];
    }
    if (off <= total * 1e-30 || off == 0.0) return;
    for (Index p = 0; p < d; ++p) {
      for (Index q = p + 1; q < d; ++q) {
        const double apq = a[p * d + q];
        if (apq == 0.0) continue;
        // The smaller root of t^2 + 2 theta t - 1 = 0 keeps the rotation angle under 45 degrees.
        const double theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
        const double t = std::copysign(1.0, theta) / (std::abs(theta) + std::hypot(theta, 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0);
        const double s = t * c;
        for (Index k = 0; k < d; ++k) {
          const double kp = a[k * d + p], kq = a[k * d + q];
          a[k * d + p] = c * kp - s * kq;
          a[k * d + q] = s * kp + c * kq;
        }
        for (Index k = 0; k < d; ++k) {
          const double pk = a[p * d + k], qk = a[q * d + k];
          a[p * d + k] = c * pk - s * qk;
          a[q * d + k] = s * pk + c * qk;
        }
        a[p * d + q] = a[q * d + p] = 0.0;
        for (Index k = 0; k < d; ++k) {
          const double kp = v[k * d + p], kq = v[k * d + q];
          v[k * d + p] = c * kp - s * kq;
          v[k * d + q] = s * kp + c * kq;
        }
      }
    }
  }
}

// Flips `component` so that its largest-magnitude loading is positive: eigenvectors are only
// defined up to sign, and plots should not mirror between runs or library versions.
void fix_sign(double* component, Index d) {
  Index largest = 0;
  for (Index j = 1; j < d; ++j) {
    if (std::abs(component[j]) > std::abs(component[largest])) largest = j;
  }
  if (component[largest] < 0.0) {
    for (Index j = 0; j < d; ++j) component[j] = -component[j];
  }
}

}  // namespace

Pca fit_pca(std::span<const float> data, std::int64_t n, std::int64_t d, int k) {
  check_arguments(data, n, d, k);
  const auto rows = static_cast<Index>(n);
  const auto dim = static_cast<Index>(d);
  Pca pca;
  pca.d = d;
  pca.k = k;
  pca.mean = column_means(data, rows, dim);
  auto cov = covariance(data, rows, dim, pca.mean);
  std::vector<double> vectors;
  jacobi_eigen(cov, vectors, dim);
  std::vector<Index> order(dim);
  std::iota(order.begin(), order.end(), Index{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](Index a, Index b) { return cov[a * dim + a] > cov[b * dim + b]; });
  pca.components.resize(static_cast<Index>(k) * dim);
  for (Index c = 0; c < static_cast<Index>(k); ++c) {
    double* component = &pca.components[c * dim];
    for (Index j = 0; j < dim; ++j) component[j] = vectors[j * dim + order[c]];
    fix_sign(component, dim);
    pca.variances.push_back(std::max(cov[order[c] * dim + order[c]], 0.0));
  }
  return pca;
}

std::vector<double> project(const Pca& pca, std::span<const float> data) {
  const auto dim = static_cast<Index>(pca.d);
  if (dim == 0 || data.size() % dim != 0) {
    throw std::invalid_argument(fmt::format(
        "pca project: {} values do not form rows of the fitted width {}", data.size(), pca.d));
  }
  const Index rows = data.size() / dim;
  const auto k = static_cast<Index>(pca.k);
  std::vector<double> out(rows * k, 0.0);
  for (Index i = 0; i < rows; ++i) {
    for (Index c = 0; c < k; ++c) {
      const double* component = &pca.components[c * dim];
      double sum = 0.0;
      for (Index j = 0; j < dim; ++j) sum += (data[i * dim + j] - pca.mean[j]) * component[j];
      out[i * k + c] = sum;
    }
  }
  return out;
}

std::vector<double> pca_project(std::span<const float> data, std::int64_t n, std::int64_t d,
                                int k) {
  return project(fit_pca(data, n, d, k), data);
}

}  // namespace graphrun
