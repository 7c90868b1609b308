// One single-threaded product in row-major storage, C = op(A) op(B) + beta C: through the chosen
// sgemm library for float32 (set_sgemm_library, ops.hpp) and CBLAS for float64. The kernels split
// their products into fixed blocks themselves (matmul.cpp, conv_kernels.cpp), so a product is
// the same bits at any thread count. Internal to ops/, installed like kernel_util.hpp.
#pragma once

#include <cstdint>

namespace graphrun::ops {

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc);
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const double* a,
          std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
          std::int64_t ldc);

}  // namespace graphrun::ops
