// Register-tiled products: a tile of MR rows by NV vectors of columns lives in registers for the
// whole sum, fed by one vector load of b per vector and one broadcast of a per row. The shapes
// (MR x NV: 8 x 3 with 16-float vectors, 6 x 2 with 8-float ones, OpenBLAS's Haswell shape)
// leave room for the operands in the 32 or 16 vector registers. Built for AVX2 alone
// (-march=znver3) and run here, 6 x 2 did 67 to 106 GFLOP/s on the conv VAE's shapes where 4 x 3
// did 49 to 57 and 8 x 1 63 to 85.
#include <graphrun/ops/tap_product.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <stdexcept>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace graphrun::ops {
namespace {

struct Portable {
  static constexpr int W = 8, MR = 4, NV = 3;
  struct reg {
    float v[W];
  };
  static reg zero() { return {}; }
  static reg load(const float* p) {
    reg r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
  }
  static void store(float* p, const reg& r) { std::memcpy(p, r.v, sizeof r.v); }
  static reg bcast(float x) {
    reg r;
    for (float& e : r.v) e = x;
    return r;
  }
  static reg fma(const reg& a, const reg& b, reg c) {
    for (int l = 0; l < W; ++l) c.v[l] = std::fma(a.v[l], b.v[l], c.v[l]);
    return c;
  }
};

#if defined(__AVX2__) && defined(__FMA__)
struct Avx2 {
  static constexpr int W = 8, MR = 6, NV = 2;
  using reg = __m256;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg r) { _mm256_storeu_ps(p, r); }
  static reg bcast(float x) { return _mm256_set1_ps(x); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
};
#endif

#if defined(__AVX512F__)
struct Avx512 {
  static constexpr int W = 16, MR = 8, NV = 3;
  using reg = __m512;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg r) { _mm512_storeu_ps(p, r); }
  static reg bcast(float x) { return _mm512_set1_ps(x); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
};
#endif

TapIsa widest() {
#if defined(__AVX512F__)
  return TapIsa::avx512;
#elif defined(__AVX2__) && defined(__FMA__)
  return TapIsa::avx2;
#else
  return TapIsa::portable;
#endif
}

std::atomic<TapIsa> chosen{widest()};

// Where a tile's rows of a start for tap t: MR pointers, a row past the tile's last repeating
// it (its results are thrown away), then each row's values at r * col.
struct TapRows {
  const float* const* a;
  std::int64_t row, col, first, rows;
  template <int MR>
  void at_tap(std::int64_t t, const float** out) const {
    for (int i = 0; i < MR; ++i) out[i] = a[t] + (first + std::min<std::int64_t>(i, rows - 1)) * row;
  }
};
struct InPlaceRows {
  const float* const* rows;  // MR pointers, one tap
  std::int64_t col = 1;
  template <int MR>
  void at_tap(std::int64_t, const float** out) const {
    for (int i = 0; i < MR; ++i) out[i] = rows[i];
  }
};

// One tile: rows rows (<= MR) by cols columns (<= NV W) at column j. Full tiles load and store c
// in place; edges go through a buffer on the stack, and the columns of a last partial vector are
// computed from whatever b holds there and thrown away.
template <class V, int MR, int NV, class A>
void tile(const A& a, const float* const* b, std::int64_t taps, std::int64_t k, std::int64_t ldb,
          std::int64_t j, float* c, std::int64_t ldc, int rows, int cols, bool accumulate) {
  constexpr int W = V::W;
  using reg = typename V::reg;
  const bool full = rows == MR && cols == NV * W;
  alignas(64) float edge[MR][NV * W];
  reg acc[MR][NV];
  if (!accumulate) {
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
  } else if (full) {
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v] = V::load(c + i * ldc + j + v * W);
  } else {
    for (int i = 0; i < MR; ++i)
      for (int q = 0; q < NV * W; ++q) edge[i][q] = i < rows && q < cols ? c[i * ldc + j + q] : 0.0f;
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < NV; ++v) acc[i][v] = V::load(&edge[i][v * W]);
  }
  const std::int64_t col = a.col;
  for (std::int64_t t = 0; t < taps; ++t) {
    const float* bp = b[t] + j;
    const float* ar[MR];
    a.template at_tap<MR>(t, ar);
    for (std::int64_t r = 0, o = 0; r < k; ++r, o += col, bp += ldb) {
      reg bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[v] = V::load(bp + v * W);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        reg av = V::bcast(ar[i][o]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = V::fma(av, bv[v], acc[i][v]);
      }
    }
  }
  if (full) {
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < NV; ++v) V::store(c + i * ldc + j + v * W, acc[i][v]);
    return;
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) V::store(&edge[i][v * W], acc[i][v]);
  for (int i = 0; i < rows; ++i)
    for (int q = 0; q < cols; ++q) c[i * ldc + j + q] = edge[i][q];
}

// Columns [0, n) in tiles of NV vectors, the last narrowed to the vectors it needs.
template <class V, int MR, int NV, class A>
void tile_columns(const A& a, const float* const* b, std::int64_t taps, std::int64_t k,
                  std::int64_t ldb, std::int64_t n, float* c, std::int64_t ldc, int rows,
                  bool accumulate, std::int64_t j0, std::int64_t j1) {
  constexpr int W = V::W;
  for (std::int64_t j = j0; j < j1; j += NV * W) {
    const int cols = static_cast<int>(std::min<std::int64_t>(NV * W, n - j));
    switch ((cols + W - 1) / W) {
      case 1: tile<V, MR, 1>(a, b, taps, k, ldb, j, c, ldc, rows, cols, accumulate); break;
      case 2: if constexpr (NV >= 2) tile<V, MR, 2>(a, b, taps, k, ldb, j, c, ldc, rows, cols, accumulate); break;
      case 3: if constexpr (NV >= 3) tile<V, MR, 3>(a, b, taps, k, ldb, j, c, ldc, rows, cols, accumulate); break;
      default: if constexpr (NV >= 4) tile<V, MR, 4>(a, b, taps, k, ldb, j, c, ldc, rows, cols, accumulate); break;
    }
  }
}

template <class V>
void tap_product_with(const TapProduct& p) {
  constexpr int MR = V::MR, NV = V::NV, W = V::W;
  // A few column tiles at a time against every row tile, so b's columns are read from cache by
  // all row tiles. a is read in place: a tile's rows of it stay in L1 for the whole panel.
  constexpr std::int64_t kPanel = 4 * NV * W;
  for (std::int64_t j0 = 0; j0 < p.n; j0 += kPanel) {
    const std::int64_t j1 = std::min(p.n, j0 + kPanel);
    for (std::int64_t i0 = 0; i0 < p.m; i0 += MR) {
      const std::int64_t rows = std::min<std::int64_t>(MR, p.m - i0);
      tile_columns<V, MR, NV>(TapRows{p.a, p.a_row, p.a_col, i0, rows}, p.b, p.taps, p.k, p.ldb,
                              p.n, p.c + i0 * p.ldc, p.ldc, static_cast<int>(rows), false, j0, j1);
    }
  }
}

// row_product's tiles: as many rows as registers allow for the vectors a row of c needs.
template <class V>
constexpr int row_tile_rows(int vectors) {
  return vectors >= 4 ? (V::W == 16 ? 6 : 3) : vectors == 2 ? (V::W == 16 ? 12 : 6) : V::MR;
}
// The vectors of c's row a tile holds: all of a row of 2 or a multiple of 4, else the default.
template <class V>
int row_tile_vectors(std::int64_t n) {
  if constexpr (V::W == 16) return n % 64 == 0 ? 4 : n == 32 ? 2 : V::NV;
  else return n % (2 * V::W) == 0 ? 2 : V::NV;  // 16 registers: 6 x 2 as for tap products
}

template <class V, int MR, int NV>
void row_product_tiles(std::int64_t m, std::int64_t n, std::int64_t k, const float* const* rows,
                       const float* b, std::int64_t ldb, float* c, std::int64_t ldc, bool accumulate) {
  for (std::int64_t i0 = 0; i0 < m; i0 += MR) {
    const int count = static_cast<int>(std::min<std::int64_t>(MR, m - i0));
    const float* tile_rows[MR];
    for (int i = 0; i < MR; ++i) tile_rows[i] = rows[i0 + std::min(i, count - 1)];
    tile_columns<V, MR, NV>(InPlaceRows{tile_rows}, &b, 1, k, ldb, n, c + i0 * ldc, ldc, count,
                            accumulate, 0, n);
  }
}

template <class V>
void row_product_with(std::int64_t m, std::int64_t n, std::int64_t k, const float* const* rows,
                      const float* b, std::int64_t ldb, float* c, std::int64_t ldc, bool accumulate) {
  const int vectors = row_tile_vectors<V>(n);
  if (vectors == 4)
    row_product_tiles<V, row_tile_rows<V>(4), 4>(m, n, k, rows, b, ldb, c, ldc, accumulate);
  else if (vectors == 2)
    row_product_tiles<V, row_tile_rows<V>(2), 2>(m, n, k, rows, b, ldb, c, ldc, accumulate);
  else
    row_product_tiles<V, V::MR, V::NV>(m, n, k, rows, b, ldb, c, ldc, accumulate);
}

template <class F>
void dispatch(F f) {
  switch (chosen.load(std::memory_order_relaxed)) {
#if defined(__AVX512F__)
    case TapIsa::avx512:
      return f(Avx512{});
#endif
#if defined(__AVX2__) && defined(__FMA__)
    case TapIsa::avx2:
      return f(Avx2{});
#endif
    default:
      return f(Portable{});
  }
}

}  // namespace

std::vector<TapIsa> tap_isas_built() {
  std::vector<TapIsa> out{TapIsa::portable};
#if defined(__AVX2__) && defined(__FMA__)
  out.push_back(TapIsa::avx2);
#endif
#if defined(__AVX512F__)
  out.push_back(TapIsa::avx512);
#endif
  return out;
}

TapIsa tap_isa() { return chosen.load(std::memory_order_relaxed); }

void set_tap_isa(TapIsa isa) {
  auto built = tap_isas_built();
  if (std::find(built.begin(), built.end(), isa) == built.end())
    throw std::invalid_argument(std::string("this build has no ") + tap_isa_name(isa) + " tap products");
  chosen.store(isa, std::memory_order_relaxed);
}

const char* tap_isa_name(TapIsa isa) {
  switch (isa) {
    case TapIsa::avx512: return "avx512";
    case TapIsa::avx2: return "avx2";
    default: return "portable";
  }
}

void tap_product(const TapProduct& p) {
  if (p.m <= 0 || p.n <= 0) return;
  dispatch([&](auto v) { tap_product_with<decltype(v)>(p); });
}

void row_product(std::int64_t m, std::int64_t n, std::int64_t k, const float* const* rows,
                 const float* b, std::int64_t ldb, float* c, std::int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  dispatch([&](auto v) { row_product_with<decltype(v)>(m, n, k, rows, b, ldb, c, ldc, accumulate); });
}

}  // namespace graphrun::ops
