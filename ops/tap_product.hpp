// Float32 products for convolutions that read each kernel tap's operand in place, at its own
// offset, and sum all taps of an output tile in registers: no im2col copy, no column matrix, and
// no output read and written again for every tap (what a BLAS product per tap costs). Internal to
// ops/, installed like kernel_util.hpp.
//
// Every output element is one chain of fused multiply-adds in a fixed order, whatever the vector
// width: the AVX-512, AVX2 and portable paths give the same bits, so a build for one machine
// trains like a build for another.
#pragma once

#include <cstdint>
#include <vector>

namespace graphrun::ops {

// The vector code tap products run: the widest this build has (chosen by -march), or one a test
// chooses to check a path this machine would not take.
enum class TapIsa { portable, avx2, avx512 };
std::vector<TapIsa> tap_isas_built();  // portable first, the default last
TapIsa tap_isa();
void set_tap_isa(TapIsa isa);  // process-wide; throws std::invalid_argument if not built
const char* tap_isa_name(TapIsa isa);

// Floats past the last column a product may read (never write): its operands need this much
// readable memory after them.
constexpr std::int64_t kTapReadPast = 16;

// c[i, j] = sum over taps t, then rows r < k, of a[t][i * a_row + r * a_col] * b[t][r * ldb + j],
// for i < m, j < n, overwriting c[i * ldc + j]. Single-threaded; allocation-free once warm.
struct TapProduct {
  std::int64_t m = 0, n = 0, k = 0, taps = 0;
  const float* const* a = nullptr;  // taps pointers
  std::int64_t a_row = 0, a_col = 0;
  const float* const* b = nullptr;  // taps pointers, each readable to column n + kTapReadPast
  std::int64_t ldb = 0;
  float* c = nullptr;
  std::int64_t ldc = 0;
};
void tap_product(const TapProduct& p);

// c[i, j] = c[i, j] (when accumulating, else 0) + sum over l < k of rows[i][l] * b[l * ldb + j],
// for i < m, j < n: a product whose left rows are read in place, each from its own pointer (a
// weight gradient's taps of an image). b readable to column n + kTapReadPast of its last row.
// Single-threaded.
void row_product(std::int64_t m, std::int64_t n, std::int64_t k, const float* const* rows,
                 const float* b, std::int64_t ldb, float* c, std::int64_t ldc, bool accumulate);

}  // namespace graphrun::ops
