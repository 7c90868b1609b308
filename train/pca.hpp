// Principal component analysis for looking at latent codes: codes with more than two dimensions
// are projected onto their top principal components before they are scatter-plotted.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace graphrun {

struct Pca {
  std::int64_t d = 0;
  int k = 0;
  std::vector<double> mean;        // d
  std::vector<double> components;  // k x d row-major, unit length, by decreasing variance
  std::vector<double> variances;   // k eigenvalues of the covariance (divided by n - 1)
};

// Fits the top `k` principal components of `data` (n x d row-major): centre, form the d x d
// covariance in double, and diagonalise it with cyclic Jacobi rotations (exact and robust to
// repeated eigenvalues; O(d^3), meant for d up to a few hundred). Deterministic: each component's
// largest-magnitude loading (the first, on ties) is positive. Throws std::invalid_argument for
// n < 2, d < 1, k outside 1..d, data.size() != n * d or a NaN/Inf value.
Pca fit_pca(std::span<const float> data, std::int64_t n, std::int64_t d, int k = 2);

// (data - mean) times the components' transpose: n x k row-major. Throws std::invalid_argument
// when data.size() is not a multiple of pca.d.
std::vector<double> project(const Pca& pca, std::span<const float> data);

// fit_pca followed by project on the same data; the projections have zero mean per column.
std::vector<double> pca_project(std::span<const float> data, std::int64_t n, std::int64_t d,
                                int k = 2);

}  // namespace graphrun
