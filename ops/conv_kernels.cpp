// Convolution in float32 by tap products (ops/tap_product.hpp): the input split into phase
// planes so every tap reads a contiguous run, transposed convolutions by output phases, weight
// gradients against dy transposed; every tap summed in registers. Layers with a single input
// channel and every float64 convolution go by im2col + gemm over blocks of images (as Caffe,
// Darknet and ggml do). Each image is worked on by exactly one task, in blocks, and the weight
// gradient is split by channels (and, on im2col, filters), never summed across tasks: the bits do
// not depend on the thread count. The BLAS runs single-threaded inside TBB tasks (ops/matmul.cpp).
//
// Scratch (a block's phase planes or column matrix and packed operands) is thread_local, 64-byte
// aligned and grown to the largest block any thread has run (ops/scratch.hpp): once every thread
// has run one block after the largest layer, a step allocates nothing. A task never waits on TBB
// while it holds the buffer, so no other task can reuse it underneath. The im2col products go
// through ops/gemm.hpp, so train.sgemm = onednn applies to them as to matmul.
#include <graphrun/ops/conv_kernels.hpp>
#include <graphrun/ops/gemm.hpp>
#include <graphrun/ops/kernel_util.hpp>
#include <graphrun/ops/scratch.hpp>
#include <graphrun/ops/tap_product.hpp>


#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <numeric>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace graphrun::ops {
namespace {

// Elements of scratch a block aims at (512 KiB of floats, Zen 3's L2). 2 MiB had made the conv
// VAE's layers 5 to 10% faster than 512 KiB on Zen 5 (1 MiB of L2); on Zen 3 it is the other way
// round, by 4 to 6% at 1 and 2 threads (bench/RESULTS.md, 2026-12-02). The best size follows the
// L2; this one is the smaller machines'.
constexpr std::int64_t kBlockElements = 1 << 17;
// Images are cut into at least this many blocks when there are enough, so two threads share the
// work and the last block does not leave one idle for long.
constexpr std::int64_t kMinBlocks = 8;
// The weight gradient's tasks: channel groups times filter groups, at most this many. Each task
// packs dy once per channel group and runs an im2col once per filter group, and its product
// shrinks with the split: 2 tasks ran the conv VAE's weight gradients 1.2x to 1.5x faster than 8
// at 1 thread and 1.1x to 1.4x at 2 (bench/RESULTS.md, 2026-12-02). Fixed, never the thread
// count, so the bits do not depend on it.
constexpr std::int64_t kWeightTasks = 2;

// Rounds a scratch offset up to a cache line, so each packed matrix starts on one.
std::int64_t lines(std::int64_t n) { return (n + 15) / 16 * 16; }

// Images [first, first + count) of n in blocks of `size`.
struct Blocks {
  std::int64_t size = 1, count = 0;
  std::int64_t first(std::int64_t b) const { return b * size; }
  std::int64_t length(std::int64_t b, std::int64_t n) const { return std::min(size, n - b * size); }
};

Blocks image_blocks(std::int64_t n, std::int64_t per_image) {
  std::int64_t most = std::max<std::int64_t>(1, (n + kMinBlocks - 1) / kMinBlocks);
  std::int64_t size = std::clamp<std::int64_t>(kBlockElements / std::max<std::int64_t>(per_image, 1), 1, most);
  return {size, (n + size - 1) / size};
}

// An image's own product is wide enough from this many output pixels (28 x 28 has 784): then
// im2col's products go an image at a time and read and write [n, f, p] tensors in place, where
// blocks of images copy them to and from [f, images x p] (3% of a conv VAE step for its
// one-channel layers, which stay on im2col).
constexpr std::int64_t kWideImage = 512;

Blocks im2col_blocks(const ConvGeometry& g, std::int64_t per_image) {
  return g.p() >= kWideImage ? Blocks{1, g.n} : image_blocks(g.n, per_image);
}

// The outputs [lo, hi) of `out` whose input o s + off lies in [0, in).
struct Span {
  std::int64_t lo, hi;
};
Span valid_range(std::int64_t out, std::int64_t s, std::int64_t off, std::int64_t in) {
  std::int64_t lo = off >= 0 ? 0 : (-off + s - 1) / s;
  std::int64_t hi = in - 1 - off < 0 ? 0 : (in - 1 - off) / s + 1;
  lo = std::min(lo, out);
  return {lo, std::clamp(hi, lo, out)};
}

// Rows [f0, f1) of `count` images of y [n, f, p] side by side: packed[f - f0, m * p + q].
template <class T>
void pack_rows(const ConvGeometry& g, const T* y, std::int64_t count, std::int64_t f0,
               std::int64_t f1, T* packed) {
  const std::int64_t P = g.p(), ld = count * P;
  for (std::int64_t f = f0; f < f1; ++f)
    for (std::int64_t m = 0; m < count; ++m)
      std::memcpy(packed + (f - f0) * ld + m * P, y + (m * g.f + f) * P,
                  static_cast<std::size_t>(P) * sizeof(T));
}

// The inverse of pack_rows over all f.
template <class T>
void unpack_rows(const ConvGeometry& g, const T* packed, std::int64_t count, T* y) {
  const std::int64_t P = g.p(), ld = count * P;
  for (std::int64_t m = 0; m < count; ++m)
    for (std::int64_t f = 0; f < g.f; ++f)
      std::memcpy(y + (m * g.f + f) * P, packed + f * ld + m * P,
                  static_cast<std::size_t>(P) * sizeof(T));
}

}  // namespace

// The valid rows and columns of kernel tap (a, b): outputs whose input lies inside the image.
struct Tap {
  Span rows, cols;
  std::int64_t row_off, col_off;  // input row = i * stride + row_off, likewise columns
};
Tap tap(const ConvGeometry& g, std::int64_t a, std::int64_t b) {
  Tap t;
  t.row_off = a * g.dilation[0] - g.padding[0];
  t.col_off = b * g.dilation[1] - g.padding[1];
  t.rows = valid_range(g.oh, g.stride[0], t.row_off, g.h);
  t.cols = valid_range(g.ow, g.stride[1], t.col_off, g.w);
  return t;
}

// Calls f with the stride as a constant for strides 1 and 2, so the row loops compile to vector
// loads and shuffles instead of one element at a time.
template <class F>
void by_stride(std::int64_t stride, F f) {
  if (stride == 1) f(std::integral_constant<std::int64_t, 1>{});
  else if (stride == 2) f(std::integral_constant<std::int64_t, 2>{});
  else f(stride);
}

// Rows of a few outputs each (7 to 28 here) make the per-row cost count: the valid ranges are
// found once per tap, and plain loops replace fill and memcpy calls.
template <class T>
void im2col(const ConvGeometry& g, const T* x, std::int64_t count, std::int64_t c0,
            std::int64_t c1, T* col) {
  const std::int64_t P = g.p(), ld = count * P, plane = g.h * g.w, ow = g.ow;
  const std::int64_t sh = g.stride[0], sw = g.stride[1];
  T* row = col;
  for (std::int64_t c = c0; c < c1; ++c)
    for (std::int64_t a = 0; a < g.kh; ++a)
      for (std::int64_t b = 0; b < g.kw; ++b, row += ld) {
        const Tap t = tap(g, a, b);
        for (std::int64_t m = 0; m < count; ++m) {
          const T* __restrict src = x + m * g.image() + c * plane;
          T* __restrict dst = row + m * P;
          for (std::int64_t q = 0; q < t.rows.lo * ow; ++q) dst[q] = T(0);
          for (std::int64_t i = t.rows.lo; i < t.rows.hi; ++i) {
            T* __restrict d = dst + i * ow;
            const std::int64_t base = (i * sh + t.row_off) * g.w + t.col_off;
            for (std::int64_t j = 0; j < t.cols.lo; ++j) d[j] = T(0);
            by_stride(sw, [&](auto step) {
              for (std::int64_t j = t.cols.lo; j < t.cols.hi; ++j) d[j] = src[base + j * step];
            });
            for (std::int64_t j = t.cols.hi; j < ow; ++j) d[j] = T(0);
          }
          for (std::int64_t q = t.rows.hi * ow; q < P; ++q) dst[q] = T(0);
        }
      }
}

// Each image is one plane at a time, so the plane stays in L1 while its kh kw rows are added, in
// row order: a fixed order per element.
template <class T>
void col2im(const ConvGeometry& g, const T* col, std::int64_t count, T* x) {
  const std::int64_t P = g.p(), ld = count * P, plane = g.h * g.w, ow = g.ow;
  const std::int64_t sh = g.stride[0], sw = g.stride[1];
  for (std::int64_t q = 0; q < count * g.image(); ++q) x[q] = T(0);
  for (std::int64_t m = 0; m < count; ++m)
    for (std::int64_t c = 0; c < g.c; ++c) {
      T* __restrict dst = x + m * g.image() + c * plane;
      for (std::int64_t a = 0; a < g.kh; ++a)
        for (std::int64_t b = 0; b < g.kw; ++b) {
          const T* __restrict src = col + ((c * g.kh + a) * g.kw + b) * ld + m * P;
          const Tap t = tap(g, a, b);
          for (std::int64_t i = t.rows.lo; i < t.rows.hi; ++i) {
            const std::int64_t base = (i * sh + t.row_off) * g.w + t.col_off;
            const T* __restrict s = src + i * ow;
            by_stride(sw, [&](auto step) {
              for (std::int64_t j = t.cols.lo; j < t.cols.hi; ++j) dst[base + j * step] += s[j];
            });
          }
        }
    }
}

namespace {

// Rows of 7 to 30 floats, moved many thousand times a step: GCC's vector loops run rows this short
// in their scalar remainder, so with AVX-512 they move as masked vectors (masked-off lanes are
// neither read nor written, so a row may end at its buffer's end). Other machines and float64
// take the plain loops.
template <class T>
void move_row(T* __restrict d, const T* __restrict s, std::int64_t n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    // Longer rows as memmove: GCC turns a loop of whole vectors into a call of it anyway, which
    // then costs every short row a call.
    if (n > 16) {
      std::memmove(d, s, static_cast<std::size_t>(n) * sizeof(float));
      return;
    }
    if (n > 0) {
      const __mmask16 k = static_cast<__mmask16>((1u << n) - 1);
      _mm512_mask_storeu_ps(d, k, _mm512_maskz_loadu_ps(k, s));
    }
    return;
  }
#endif
  for (std::int64_t v = 0; v < n; ++v) d[v] = s[v];
}

// d[v] = s[2 v], v < n.
template <class T>
void gather2_row(T* __restrict d, const T* __restrict s, std::int64_t n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (; n > 0; n -= 16, d += 16, s += 32) {
      const std::int64_t m = std::min<std::int64_t>(n, 16), read = 2 * m - 1;
      const __mmask16 lo = static_cast<__mmask16>(read >= 16 ? 0xffffu : (1u << read) - 1);
      const __mmask16 hi = static_cast<__mmask16>(read > 16 ? (1u << (read - 16)) - 1 : 0u);
      const __m512 v = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(lo, s), even,
                                              _mm512_maskz_loadu_ps(hi, s + 16));
      _mm512_mask_storeu_ps(d, static_cast<__mmask16>(m >= 16 ? 0xffffu : (1u << m) - 1), v);
    }
    return;
  }
#endif
  for (std::int64_t v = 0; v < n; ++v) d[v] = s[2 * v];
}

// d[2 j] = s0[j] for j < n0 and d[2 j + 1] = s1[j] for j < n1 (n0 - n1 is 0 or 1): two rows of
// a row's two column phases, stored once.
template <class T>
void interleave2_row(T* __restrict d, const T* __restrict s0, std::int64_t n0,
                     const T* __restrict s1, std::int64_t n1) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    auto mask = [](std::int64_t k) {
      return static_cast<__mmask16>(k >= 16 ? 0xffffu : k <= 0 ? 0u : (1u << k) - 1);
    };
    for (std::int64_t left = n0 + n1; left > 0; left -= 32, d += 32, s0 += 16, s1 += 16, n0 -= 16, n1 -= 16) {
      const __m512 a = _mm512_maskz_loadu_ps(mask(n0), s0), b = _mm512_maskz_loadu_ps(mask(n1), s1);
      _mm512_mask_storeu_ps(d, mask(left), _mm512_permutex2var_ps(a, lo, b));
      if (left > 16) _mm512_mask_storeu_ps(d + 16, mask(left - 16), _mm512_permutex2var_ps(a, hi, b));
    }
    return;
  }
#endif
  for (std::int64_t j = 0; j < n0; ++j) d[2 * j] = s0[j];
  for (std::int64_t j = 0; j < n1; ++j) d[2 * j + 1] = s1[j];
}

// d[2 v] = s[v], v < n; the odd elements of d are left as they are.
template <class T>
void scatter2_row(T* __restrict d, const T* __restrict s, std::int64_t n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    const __m512i spread = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m512i spread_hi = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    for (; n > 0; n -= 16, d += 32, s += 16) {
      const std::int64_t m = std::min<std::int64_t>(n, 16);
      const __m512 v = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m >= 16 ? 0xffffu : (1u << m) - 1), s);
      // Even lanes of each half: bit 2 i for the i-th value there.
      const std::int64_t low = std::min<std::int64_t>(m, 8), high = m - low;
      const unsigned lo_mask = 0x5555u & ((1u << (2 * low)) - 1);
      const unsigned hi_mask = high > 0 ? 0x5555u & ((1u << (2 * high)) - 1) : 0u;
      _mm512_mask_storeu_ps(d, static_cast<__mmask16>(lo_mask), _mm512_maskz_permutexvar_ps(0xffff, spread, v));
      if (hi_mask)
        _mm512_mask_storeu_ps(d + 16, static_cast<__mmask16>(hi_mask), _mm512_maskz_permutexvar_ps(0xffff, spread_hi, v));
    }
    return;
  }
#endif
  for (std::int64_t v = 0; v < n; ++v) d[2 * v] = s[v];
}

// d[c ld_d + r] = s[r ld_s + c] for 16 rows r and cols <= 16 columns c: with AVX-512 sixteen
// masked loads, the usual 64 shuffles and a store per column.
inline void transpose16(const float* __restrict s, std::int64_t ld_s, std::int64_t cols,
                        float* __restrict d, std::int64_t ld_d) {
#if defined(__AVX512F__)
  const __mmask16 k = static_cast<__mmask16>(cols >= 16 ? 0xffffu : (1u << cols) - 1);
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_maskz_loadu_ps(k, s + i * ld_s);
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_maskz_unpacklo_ps(0xffff, r[i], r[i + 1]);
    t[i + 1] = _mm512_maskz_unpackhi_ps(0xffff, r[i], r[i + 1]);
  }
  // u[4 g + q]: rows 4 g .. 4 g + 3 at columns 4 lane + q.
  __m512 u[16];
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_maskz_shuffle_ps(0xffff, t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_maskz_shuffle_ps(0xffff, t[4 * g], t[4 * g + 2], 0xee);
    u[4 * g + 2] = _mm512_maskz_shuffle_ps(0xffff, t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_maskz_shuffle_ps(0xffff, t[4 * g + 1], t[4 * g + 3], 0xee);
  }
  for (int q = 0; q < 4; ++q) {
    const __m512 x0 = _mm512_maskz_shuffle_f32x4(0xffff, u[q], u[4 + q], 0x88), x1 = _mm512_maskz_shuffle_f32x4(0xffff, u[q], u[4 + q], 0xdd);
    const __m512 y0 = _mm512_maskz_shuffle_f32x4(0xffff, u[8 + q], u[12 + q], 0x88), y1 = _mm512_maskz_shuffle_f32x4(0xffff, u[8 + q], u[12 + q], 0xdd);
    const __m512 c[4] = {_mm512_maskz_shuffle_f32x4(0xffff, x0, y0, 0x88), _mm512_maskz_shuffle_f32x4(0xffff, x1, y1, 0x88),
                         _mm512_maskz_shuffle_f32x4(0xffff, x0, y0, 0xdd), _mm512_maskz_shuffle_f32x4(0xffff, x1, y1, 0xdd)};
    for (int lane = 0; lane < 4; ++lane)
      if (4 * lane + q < cols) _mm512_storeu_ps(d + (4 * lane + q) * ld_d, c[lane]);
  }
#else
  for (std::int64_t c = 0; c < cols; ++c)
    for (std::int64_t i = 0; i < 16; ++i) d[c * ld_d + i] = s[i * ld_s + c];
#endif
}

}  // namespace

// On by default where the AVX-512 tiles are built. Built for AVX2 alone (-march=znver3) and run
// on the Zen 4, tap products were level with im2col and OpenBLAS's Haswell kernels (dec3 forward
// 14.6 to 18.1 ms against 15.7 to 17.2, input gradient 16.0 to 23.6 against 14.8 to 15.0), so an
// AVX2 build keeps im2col until a machine with AVX2 alone says otherwise.
#if defined(__AVX512F__)
std::atomic<bool> tap_products{true};
#else
std::atomic<bool> tap_products{false};
#endif

namespace {

// A strided convolution's input as its taps read it: phase (rh, rw) of an image's channel is the
// plane of padded pixels (u s_h + rh, v s_w + rw), u < hp, v < wp, so tap (a, b) reads phase
// (a d_h mod s_h, b d_w mod s_w) from the offset (a d_h / s_h, b d_w / s_w) on, a contiguous run
// like a stride-1 convolution's. A phase is a matrix of channels by the `count` images' rows,
// row u of every image before row u + 1 of any (row u of image m at column (u count + m) wp), and
// a tail its last taps read. Output (i, j) of image m sits at column (i count + m) wp + j: a row
// offset moves by whole groups of rows and stays in the image, so only the columns past ow are
// computed and thrown away. (With each image's plane whole, the rows past oh were computed too:
// 8 x 8 positions for a 7 x 7 output, 31% more products.)
struct PhaseLayout {
  std::int64_t hp = 0, wp = 0, plane = 0, count = 0, ld = 0, channels = 0;
  std::int64_t group = 0;  // count wp: one row of every image
  std::int64_t row(std::int64_t m, std::int64_t u) const { return u * group + m * wp; }
};

PhaseLayout phase_layout(const ConvGeometry& g, std::int64_t count, std::int64_t channels) {
  PhaseLayout l;
  l.hp = g.oh + (g.kh - 1) * g.dilation[0] / g.stride[0];
  l.wp = g.ow + (g.kw - 1) * g.dilation[1] / g.stride[1];
  l.plane = l.hp * l.wp;
  l.count = count;
  l.channels = channels;
  l.group = count * l.wp;
  // A product computes oh groups of rows from a tap's offset, at most (hp - oh) groups and
  // wp - ow columns in: its last columns read that far past the hp groups.
  l.ld = lines(count * l.plane + (l.wp - g.ow) + kTapReadPast);
  return l;
}

std::int64_t phase_count(const ConvGeometry& g) { return g.stride[0] * g.stride[1]; }

// Where tap (a, b) reads channel 0 of image 0: its phase matrix plus its offset.
const float* tap_start(const ConvGeometry& g, const PhaseLayout& l, const float* phases,
                       std::int64_t a, std::int64_t b) {
  const std::int64_t ra = a * g.dilation[0], rb = b * g.dilation[1];
  const std::int64_t q = (ra % g.stride[0]) * g.stride[1] + rb % g.stride[1];
  return phases + q * l.channels * l.ld + (ra / g.stride[0]) * l.group + rb / g.stride[1];
}

// Whether any tap reads phase row rh (along = 0) or phase column rh (along = 1).
bool phase_read(const ConvGeometry& g, int along, std::int64_t r) {
  const std::int64_t k = along == 0 ? g.kh : g.kw;
  for (std::int64_t a = 0; a < k; ++a)
    if ((a * g.dilation[along]) % g.stride[along] == r) return true;
  return false;
}

// Channels [c0, c0 + l.channels) of `count` images at x into their phase matrices; phases no tap
// reads are left alone.
void phase_split(const ConvGeometry& g, const PhaseLayout& l, const float* x, std::int64_t c0,
                 float* phases) {
  const std::int64_t sh = g.stride[0], sw = g.stride[1], wp = l.wp, ph = g.padding[0];
  // The phase columns some tap reads, kept out of memory: a flag stored beside the row just
  // copied in made every read of it wait for that masked store (40% of this function).
  std::uint64_t read_cols = 0;
  for (std::int64_t rw = 0; rw < std::min<std::int64_t>(sw, 64); ++rw)
    if (phase_read(g, 1, rw)) read_cols |= std::uint64_t{1} << rw;
  auto column_read = [&](std::int64_t rw) {
    return rw < 64 ? (read_cols >> rw & 1) != 0 : phase_read(g, 1, rw);
  };
#if defined(__AVX512F__)
  // Stride 2 across rows of at most 32 pixels (every layer of the conv VAE): the row stays in two
  // registers and each phase row is one permute of them, the padding's zeros masked in. (Copied
  // first into a bordered row in memory, each phase's loads waited for the masked store there.)
  if (sw == 2 && sh <= 2 && g.w <= 32 && wp <= 16) {
    __m512i index[2];
    __mmask16 valid[2];
    const __mmask16 row_mask = static_cast<__mmask16>(g.w >= 16 ? 0xffffu : (1u << g.w) - 1);
    const __mmask16 high_mask = static_cast<__mmask16>(g.w > 16 ? (1u << (g.w - 16)) - 1 : 0u);
    const __mmask16 out_mask = static_cast<__mmask16>(wp >= 16 ? 0xffffu : (1u << wp) - 1);
    const bool rows_read[2] = {phase_read(g, 0, 0), sh > 1 && phase_read(g, 0, 1)};
    for (int rw = 0; rw < 2; ++rw) {
      alignas(64) std::int32_t at[16];
      unsigned ok = 0;
      for (int v = 0; v < 16; ++v) {
        const std::int64_t col = 2 * v + rw - g.padding[1];
        at[v] = static_cast<std::int32_t>(col >= 0 && col < g.w ? col : 0);
        if (col >= 0 && col < g.w && v < wp) ok |= 1u << v;
      }
      index[rw] = _mm512_load_si512(at);
      valid[rw] = static_cast<__mmask16>(ok);
    }
    for (std::int64_t c = 0; c < l.channels; ++c) {
      for (std::int64_t m = 0; m < l.count; ++m) {
        const float* src = x + (m * g.c + c0 + c) * g.h * g.w;
        // The image's rows in order, so the plane streams in from memory.
        for (std::int64_t u = 0; u < l.hp; ++u)
          for (std::int64_t rh = 0; rh < sh; ++rh) {
            if (!rows_read[rh]) continue;
            const std::int64_t row = u * sh + rh - ph;
            const bool inside = row >= 0 && row < g.h;
            const __m512 lo = inside ? _mm512_maskz_loadu_ps(row_mask, src + row * g.w) : _mm512_setzero_ps();
            const __m512 hi = inside ? _mm512_maskz_loadu_ps(high_mask, src + row * g.w + 16) : _mm512_setzero_ps();
            for (int rw = 0; rw < 2; ++rw) {
              if (!column_read(rw)) continue;
              float* d = phases + ((rh * sw + rw) * l.channels + c) * l.ld + l.row(m, u);
              _mm512_mask_storeu_ps(d, out_mask, _mm512_maskz_permutex2var_ps(valid[rw], lo, index[rw], hi));
            }
          }
      }
      for (std::int64_t q = 0; q < sh * sw; ++q) {
        float* row = phases + (q * l.channels + c) * l.ld;
        if (phase_read(g, 0, q / sw) && column_read(q % sw)) std::fill(row + l.count * l.plane, row + l.ld, 0.0f);
      }
    }
    return;
  }
#endif
  // Each phase column's pixels inside the image, found once: the divisions cost more than a row.
  Span first_cols[4];
  for (std::int64_t rw = 0; rw < std::min<std::int64_t>(sw, 4); ++rw)
    first_cols[rw] = valid_range(wp, sw, rw - g.padding[1], g.w);
  for (std::int64_t c = 0; c < l.channels; ++c) {
    for (std::int64_t m = 0; m < l.count; ++m) {
      const float* src = x + (m * g.c + c0 + c) * g.h * g.w;
      for (std::int64_t rh = 0; rh < sh; ++rh) {
        if (!phase_read(g, 0, rh)) continue;
        for (std::int64_t u = 0; u < l.hp; ++u) {
          const std::int64_t row = u * sh + rh - ph;
          const bool inside = row >= 0 && row < g.h;
          for (std::int64_t rw = 0; rw < sw; ++rw) {
            if (!column_read(rw)) continue;
            float* __restrict d = phases + ((rh * sw + rw) * l.channels + c) * l.ld + l.row(m, u);
            if (!inside) {
              std::fill(d, d + wp, 0.0f);
              continue;
            }
            const Span cols = rw < 4 ? first_cols[rw] : valid_range(wp, sw, rw - g.padding[1], g.w);
            const float* __restrict p = src + row * g.w + rw - g.padding[1];
            for (std::int64_t v = 0; v < cols.lo; ++v) d[v] = 0.0f;
            by_stride(sw, [&](auto step) {
              for (std::int64_t v = cols.lo; v < cols.hi; ++v) d[v] = p[v * step];
            });
            for (std::int64_t v = cols.hi; v < wp; ++v) d[v] = 0.0f;
          }
        }
      }
    }
    for (std::int64_t q = 0; q < sh * sw; ++q) {
      float* row = phases + (q * l.channels + c) * l.ld;
      if (phase_read(g, 0, q / sw) && column_read(q % sw)) std::fill(row + l.count * l.plane, row + l.ld, 0.0f);
    }
  }
}

struct TapPointers {};

// conv2d in float32 by tap products: per block of images, the phases of the input, then one
// product summing every tap, then the valid columns into y.
void conv2d_forward_taps(const ConvGeometry& g, const float* x, const float* w, float* y,
                         const ReadyCallback& ready) {
  const std::int64_t taps = g.kh * g.kw, K = g.k(), P = g.p();
  const PhaseLayout one = phase_layout(g, 1, g.c);
  Blocks blocks = image_blocks(g.n, (phase_count(g) * g.c + g.f) * one.plane);
  parallel_for(blocks.count, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t blk = lo; blk < hi; ++blk) {
      const std::int64_t first = blocks.first(blk), count = blocks.length(blk, g.n);
      const PhaseLayout l = phase_layout(g, count, g.c);
      const std::int64_t n = g.oh * l.group;
      float* phases = scratch<float>(phase_count(g) * g.c * l.ld + g.f * n);
      float* out = phases + phase_count(g) * g.c * l.ld;
      const float** ptrs = scratch<const float*, TapPointers>(2 * taps);
      phase_split(g, l, x + first * g.image(), 0, phases);
      for (std::int64_t a = 0; a < g.kh; ++a)
        for (std::int64_t b = 0; b < g.kw; ++b) {
          ptrs[a * g.kw + b] = w + a * g.kw + b;
          ptrs[taps + a * g.kw + b] = tap_start(g, l, phases, a, b);
        }
      tap_product({g.f, n, g.c, taps, ptrs, K, taps, ptrs + taps, l.ld, out, n});
      for (std::int64_t m = 0; m < count; ++m)
        for (std::int64_t f = 0; f < g.f; ++f) {
          const float* __restrict src = out + f * n;
          float* __restrict dst = y + ((first + m) * g.f + f) * P;
          for (std::int64_t i = 0; i < g.oh; ++i)
            move_row(dst + i * g.ow, src + l.row(m, i), g.ow);
        }
      ready(first * g.f * P, count * g.f * P);
    }
  });
}

// dy of `count` images as [output position in the phase layout, f] (oh groups of rows), zeros
// where no output is: 16 filters at a time, so 16 rows are read along and whole cache lines
// written.
void transpose_onto_planes(const ConvGeometry& g, const PhaseLayout& l, const float* dy, float* dyt) {
  const std::int64_t P = g.p(), F = g.f;
  for (std::int64_t m = 0; m < l.count; ++m) {
    for (std::int64_t i = 0; i < g.oh; ++i) {
      float* row = dyt + l.row(m, i) * F;
      std::fill(row + g.ow * F, row + l.wp * F, 0.0f);
      std::int64_t f0 = 0;
      for (; f0 + 16 <= F; f0 += 16)
        for (std::int64_t j0 = 0; j0 < g.ow; j0 += 16)
          transpose16(dy + (m * F + f0) * P + i * g.ow + j0, P, std::min<std::int64_t>(16, g.ow - j0),
                      row + j0 * F + f0, F);
      for (std::int64_t f = f0; f < F; ++f)
        for (std::int64_t j = 0; j < g.ow; ++j) row[j * F + f] = dy[(m * F + f) * P + i * g.ow + j];
    }
  }
}


// The weight gradient in float32: dw[f, (c, a, b)] is a sum over every output pixel of dy times
// the pixel tap (a, b) reads, so with the input in phases and dy laid out on the same positions
// (zeros where the columns are thrown away), each (c, a, b) is a row of a phase matrix read in
// place and dy is the right operand, transposed to [position, f]. Each dw element is one chain
// of fused multiply-adds over the blocks of images in order, and in a block over its positions
// in order (row by row, each row across the block's images), however the rows are grouped: the
// blocks follow from the layer's shape alone, so tasks own one channel group per thread (each
// transposes dy for itself) and the bits still do not depend on the thread count.
void conv2d_backward_weight_taps(const ConvGeometry& g, const float* x, const float* dy, float* dw) {
  const std::int64_t taps = g.kh * g.kw, K = g.k(), P = g.p();
  const std::int64_t groups = std::min<std::int64_t>(g.c, num_threads());
  parallel_for(groups, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t t = lo; t < hi; ++t) {
      const std::int64_t c0 = g.c * t / groups, c1 = g.c * (t + 1) / groups, rows = (c1 - c0) * taps;
      const PhaseLayout one = phase_layout(g, 1, c1 - c0);
      Blocks blocks = image_blocks(g.n, (phase_count(g) * g.c + g.f) * one.plane);
      const PhaseLayout most = phase_layout(g, blocks.size, c1 - c0);
      const std::int64_t phase_size = phase_count(g) * (c1 - c0) * most.ld;
      const std::int64_t dyt_size = lines(blocks.size * most.plane * g.f + kTapReadPast);
      float* phases = scratch<float>(phase_size + dyt_size + rows * g.f);
      float* dyt = phases + phase_size;
      float* sum = dyt + dyt_size;  // [(c - c0, a, b), f]
      const float** ptrs = scratch<const float*, TapPointers>(rows);
      for (std::int64_t blk = 0; blk < blocks.count; ++blk) {
        const std::int64_t first = blocks.first(blk), count = blocks.length(blk, g.n);
        const PhaseLayout l = phase_layout(g, count, c1 - c0);
        const std::int64_t n = g.oh * l.group;
        phase_split(g, l, x + first * g.image(), c0, phases);
        transpose_onto_planes(g, l, dy + first * g.f * P, dyt);
        for (std::int64_t c = 0; c < c1 - c0; ++c)
          for (std::int64_t a = 0; a < g.kh; ++a)
            for (std::int64_t b = 0; b < g.kw; ++b)
              ptrs[(c * g.kh + a) * g.kw + b] = tap_start(g, l, phases, a, b) + c * l.ld;
        row_product(rows, g.f, n, ptrs, dyt, g.f, sum, g.f, blk > 0);
      }
      for (std::int64_t f = 0; f < g.f; ++f)
        for (std::int64_t r = 0; r < rows; ++r) dw[f * K + c0 * taps + r] = sum[r * g.f + f];
    }
  });
}

// A stride-1 convolution from many channels to few filters (a decoder's last layer, to the
// image's channels) is the transposed convolution of the same input with the roles swapped:
// conv2d(x, w) at padding p is x convolved transposed by w~[c, f, a, b] = w[f, c, kh-1-a, kw-1-b]
// at padding d (k - 1) - p. Its column matrix has f kh kw rows where the direct one has c kh kw,
// and its products put the c channels where a tile has room for them: for 32 channels to 1 the
// forward, input gradient and weight gradient took 8.1, 9.7 and 13.7 ms of a step on tap
// products, tiles one row in eight full. The flipped weights live on the stack (a kernel may
// wait on TBB, and a task run meanwhile on its thread would share a scratch buffer), which
// bounds the layers that swap.
constexpr std::int64_t kSwappedWeightBytes = 32 << 10;

template <class T>
bool swaps_roles(const ConvGeometry& g) {
  return g.stride[0] == 1 && g.stride[1] == 1 && g.f < 8 && g.c > g.f &&
         g.padding[0] <= g.dilation[0] * (g.kh - 1) && g.padding[1] <= g.dilation[1] * (g.kw - 1) &&
         g.f * g.k() * static_cast<std::int64_t>(sizeof(T)) <= kSwappedWeightBytes;
}

// The swapped geometry: images [n, f, oh, ow] to outputs [n, c, h, w].
ConvGeometry swapped(const ConvGeometry& g) {
  ConvGeometry s = g;
  s.c = g.f, s.f = g.c, s.h = g.oh, s.w = g.ow, s.oh = g.h, s.ow = g.w;
  s.padding = {g.dilation[0] * (g.kh - 1) - g.padding[0], g.dilation[1] * (g.kw - 1) - g.padding[1]};
  return s;
}

// w [f, c, kh, kw] of geometry g as [c, f, kh, kw], flipped along both kernel axes: the swapped
// geometry's weights, and back again.
template <class T>
void flip_weights(const ConvGeometry& g, const T* w, T* out) {
  for (std::int64_t f = 0; f < g.f; ++f)
    for (std::int64_t c = 0; c < g.c; ++c)
      for (std::int64_t a = 0; a < g.kh; ++a)
        for (std::int64_t b = 0; b < g.kw; ++b)
          out[((c * g.f + f) * g.kh + a) * g.kw + b] = w[((f * g.c + c) * g.kh + g.kh - 1 - a) * g.kw + g.kw - 1 - b];
}

}  // namespace

void set_conv_tap_products(bool on) { tap_products.store(on, std::memory_order_relaxed); }
bool conv_tap_products() { return tap_products.load(std::memory_order_relaxed); }

template <class T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, T* y, const ReadyCallback& ready) {
  const std::int64_t K = g.k(), P = g.p();
  if (g.n == 0 || g.f == 0 || P == 0) return;
  if (K == 0) {
    std::fill(y, y + g.n * g.f * P, T(0));
    ready(0, g.n * g.f * P);
    return;
  }
  if (swaps_roles<T>(g)) {
    alignas(64) T flipped[kSwappedWeightBytes / sizeof(T)];
    flip_weights(g, w, flipped);
    return conv2d_backward_data(swapped(g), x, flipped, y, ready);
  }
  // A tile's sum over few (channel, tap) rows (an image's single channel has 9) is short beside
  // its setup and stores, and the phases cost as much: im2col's product is faster there.
  if constexpr (std::is_same_v<T, float>)
    if (conv_tap_products() && K >= 64) return conv2d_forward_taps(g, x, w, y, ready);
  Blocks blocks = im2col_blocks(g, (K + g.f) * P);
  parallel_for(blocks.count, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t blk = lo; blk < hi; ++blk) {
      std::int64_t first = blocks.first(blk), count = blocks.length(blk, g.n), ld = count * P;
      T* col = scratch<T>(lines(K * ld) + g.f * ld);
      im2col(g, x + first * g.image(), count, 0, g.c, col);
      // One image's [f, p] is already its place in y; more go through a packed product.
      T* out = count == 1 ? y + first * g.f * P : col + lines(K * ld);
      gemm(false, false, g.f, ld, K, w, K, col, ld, T(0), out, ld);
      if (count > 1) unpack_rows(g, out, count, y + first * g.f * P);
      ready(first * g.f * P, count * g.f * P);
    }
  });
}

namespace {

// The transposed convolution by phases. Along an axis of stride s, the image rows r, r + s,
// r + 2s, ... (phase r) are reached only by the kernel rows a with r + p - a d a multiple of s,
// image row r + s u from dy's row u + off(a), off(a) = (r + p - a d) / s. So a phase is a
// stride-1 convolution of dy by its own taps, and each tap a product whose right operand is dy
// itself, shifted: laid out with zero borders, dy's rows of a block of images are one matrix,
// and the tap's product reads it from the shifted start (outputs past a row's end land in
// columns that are thrown away). The taps of a phase accumulate in its product's output, which
// is then stored into every s-th pixel. No im2col and no scatter-add (col2im was 46% of the conv
// VAE's widest transposed convolution).
struct AxisPhase {
  std::int64_t first = 0, count = 0;  // image rows first + s u, u in [0, count)
  std::int64_t taps = 0;              // kernel rows in the phase: top, top - a_step, ...
  std::int64_t top = 0, a_step = 1;
  std::int64_t off = 0, step = 1;     // their offsets in dy: off, off + step, ...
};

AxisPhase axis_phase(std::int64_t r, std::int64_t len, std::int64_t k, std::int64_t s,
                     std::int64_t p, std::int64_t d) {
  AxisPhase a;
  a.first = r;
  a.count = r < len ? (len - r + s - 1) / s : 0;
  a.a_step = s / std::gcd(s, d);
  a.step = d / std::gcd(s, d);
  for (std::int64_t t = k - 1; t >= 0; --t)  // the largest kernel row has the smallest offset
    if (((r + p - t * d) % s + s) % s == 0) {
      a.top = t;
      a.off = (r + p - t * d) / s;
      a.taps = t / a.a_step + 1;
      break;
    }
  return a;
}

// dy's plane along one axis, bordered so that every phase's taps read inside it: dy row i is
// row i + before, and the plane has `size` rows, at least every phase's count.
struct AxisPad {
  std::int64_t before = 0, size = 0;
};

AxisPad axis_pad(std::int64_t len, std::int64_t k, std::int64_t s, std::int64_t p,
                 std::int64_t d, std::int64_t out) {
  std::int64_t low = 0, high = out - 1, rows = 0;
  for (std::int64_t r = 0; r < s; ++r) {
    AxisPhase a = axis_phase(r, len, k, s, p, d);
    if (a.taps == 0 || a.count == 0) continue;
    low = std::min(low, a.off);
    high = std::max(high, a.count - 1 + a.off + (a.taps - 1) * a.step);
    rows = std::max(rows, a.count);
  }
  return {-low, std::max(high - low + 1, rows)};
}

}  // namespace

// Phases pay for the thrown-away columns of dy's borders and for products of c rows; col2im for
// its scatter-add. On the conv VAE (Zen 4, 1 thread) the widest layer, 32 channels from a 14x14
// plane bordered to 15x15, went from 18.2 to 14.3 ms; 7x7 planes (8x8 bordered) were 2 to 27%
// slower by phases, and one channel slower still. Stride 1 stays with col2im (not measured: the
// conv VAE's one stride-1 transposed convolution has one channel).
bool transpose_by_phases(const ConvGeometry& g) {
  if (g.stride[0] == 1 && g.stride[1] == 1) return false;
  const AxisPad ph = axis_pad(g.h, g.kh, g.stride[0], g.padding[0], g.dilation[0], g.oh);
  const AxisPad pw = axis_pad(g.w, g.kw, g.stride[1], g.padding[1], g.dilation[1], g.ow);
  return g.c >= 16 && ph.size * pw.size * 4 <= g.p() * 5;
}

template <class T>
void conv2d_backward_data_by_phases(const ConvGeometry& g, const T* dy, const T* w, T* dx,
                                    const ReadyCallback& ready) {
  const std::int64_t sh = g.stride[0], sw = g.stride[1], khw = g.kh * g.kw;
  const AxisPad ph = axis_pad(g.h, g.kh, sh, g.padding[0], g.dilation[0], g.oh);
  const AxisPad pw = axis_pad(g.w, g.kw, sw, g.padding[1], g.dilation[1], g.ow);
  const std::int64_t plane = ph.size * pw.size;
  // The farthest any tap reads past a column: the matrix of dy gets that many zeros at its end.
  const std::int64_t tail = lines((ph.size - 1) * pw.size + pw.size + kTapReadPast);
  // float32 sums a phase's taps in one tap product (ops/tap_product.hpp), float64 by a product
  // per tap accumulating in the output.
  const bool taps_here = std::is_same_v<T, float> && conv_tap_products();
  Blocks blocks = image_blocks(g.n, (g.f + g.c) * plane);
  const std::int64_t wsize = lines(khw * g.c * g.f);
  // A few ranges of blocks per thread, so the weights are repacked a few times, not per block;
  // each block is computed alone, so the partition does not change the bits.
  const std::int64_t grain = std::max<std::int64_t>(1, blocks.count / (3 * num_threads()));
  parallel_for(blocks.count, grain, [&](std::int64_t lo, std::int64_t hi) {
    // Each tap's weights as a [c, f] matrix, wt[((a kw + b) c + c) f + f] = w[f, c, a, b],
    // repacked by every task (small beside its products): a buffer filled before parallel_for
    // could be overwritten by another node this thread runs while it waits (run_dag).
    const std::int64_t most = blocks.size * plane;
    T* wt = scratch<T>(wsize + g.f * (most + tail) + 2 * g.c * most);
    // Written in order: written across, every store went to its own line (22% of the kernel).
    for (std::int64_t t = 0; t < khw; ++t)
      for (std::int64_t c = 0; c < g.c; ++c)
        for (std::int64_t f = 0; f < g.f; ++f)
          wt[(t * g.c + c) * g.f + f] = w[(f * g.c + c) * khw + t];
    for (std::int64_t blk = lo; blk < hi; ++blk) {
      const std::int64_t first = blocks.first(blk), count = blocks.length(blk, g.n);
      // Bordered row r of image m at column r group + m pw.size, as in the phases of
      // conv2d_forward_taps: a row offset stays in the image, and a phase computes only its rows.
      const std::int64_t n = count * plane, ld = n + tail, group = count * pw.size;
      T* packed = wt + wsize;
      T* out = packed + g.f * ld;
      const T** ptrs = scratch<const T*, TapPointers>(2 * khw);
      // dy's rows into the bordered rows, the borders and the tail written as zeros.
      for (std::int64_t f = 0; f < g.f; ++f) {
        T* row = packed + f * ld;
        std::fill(row, row + ph.before * group, T(0));
        for (std::int64_t m = 0; m < count; ++m) {
          const T* src = dy + ((first + m) * g.f + f) * g.p();
          for (std::int64_t i = 0; i < g.oh; ++i) {
            T* d = row + (ph.before + i) * group + m * pw.size;
            for (std::int64_t j = 0; j < pw.before; ++j) d[j] = T(0);
            move_row(d + pw.before, src + i * g.ow, g.ow);
            for (std::int64_t j = pw.before + g.ow; j < pw.size; ++j) d[j] = T(0);
          }
        }
        std::fill(row + (ph.before + g.oh) * group, row + ld, T(0));
      }
      // With two column phases that both exist, each keeps its own output and a row of dx is
      // stored once, interleaved: stored phase by phase, every line of dx (which is far larger
      // than the caches) was fetched twice.
      const bool pairs = sw == 2 && axis_phase(0, g.w, g.kw, 2, g.padding[1], g.dilation[1]).count > 0 &&
                         axis_phase(1, g.w, g.kw, 2, g.padding[1], g.dilation[1]).count > 0;
      for (std::int64_t rh = 0; rh < sh; ++rh) {
        AxisPhase h = axis_phase(rh, g.h, g.kh, sh, g.padding[0], g.dilation[0]);
        if (h.count == 0) continue;
        const std::int64_t nq = h.count * group;  // the phase's rows of every image
        for (std::int64_t rw = 0; rw < sw; ++rw) {
          AxisPhase v = axis_phase(rw, g.w, g.kw, sw, g.padding[1], g.dilation[1]);
          if (v.count == 0) continue;
          T* phase_out = pairs ? out + rw * g.c * nq : out;
          if (h.taps == 0 || v.taps == 0) std::fill(phase_out, phase_out + g.c * nq, T(0));
          for (std::int64_t i = 0; i < h.taps; ++i)
            for (std::int64_t j = 0; j < v.taps; ++j) {
              const std::int64_t a = h.top - i * h.a_step, b = v.top - j * v.a_step;
              const std::int64_t shift = (h.off + i * h.step + ph.before) * group +
                                         v.off + j * v.step + pw.before;
              if (taps_here) {
                ptrs[i * v.taps + j] = wt + (a * g.kw + b) * g.c * g.f;
                ptrs[khw + i * v.taps + j] = packed + shift;
              } else {
                gemm(false, false, g.c, nq, g.f, wt + (a * g.kw + b) * g.c * g.f, g.f,
                     packed + shift, ld, i + j == 0 ? T(0) : T(1), phase_out, nq);
              }
            }
          if constexpr (std::is_same_v<T, float>)
            if (taps_here && h.taps * v.taps > 0)
              tap_product({g.c, nq, g.f, h.taps * v.taps, ptrs, g.f, 1, ptrs + khw, ld, phase_out, nq});
          if (pairs) continue;
          for (std::int64_t m = 0; m < count; ++m)
            for (std::int64_t c = 0; c < g.c; ++c) {
              const T* __restrict src = phase_out + c * nq + m * pw.size;
              T* __restrict img = dx + ((first + m) * g.c + c) * g.h * g.w;
              for (std::int64_t u = 0; u < h.count; ++u) {
                T* __restrict row = img + (h.first + u * sh) * g.w + v.first;
                const T* __restrict s = src + u * group;
                if (sw == 1) move_row(row, s, v.count);
                else if (sw == 2) scatter2_row(row, s, v.count);
                else for (std::int64_t j = 0; j < v.count; ++j) row[j * sw] = s[j];
              }
            }
        }
        if (!pairs) continue;
        const std::int64_t even = (g.w + 1) / 2, odd = g.w / 2;  // phase 0's columns, phase 1's
        for (std::int64_t m = 0; m < count; ++m)
          for (std::int64_t c = 0; c < g.c; ++c) {
            const T* s0 = out + c * nq + m * pw.size;
            const T* s1 = s0 + g.c * nq;
            T* img = dx + ((first + m) * g.c + c) * g.h * g.w;
            for (std::int64_t u = 0; u < h.count; ++u)
              interleave2_row(img + (h.first + u * sh) * g.w, s0 + u * group, even,
                              s1 + u * group, odd);
          }
      }
      ready(first * g.image(), count * g.image());
    }
  });
}

template <class T>
void conv2d_backward_data(const ConvGeometry& g, const T* dy, const T* w, T* dx,
                          const ReadyCallback& ready) {
  const std::int64_t K = g.k(), P = g.p();
  if (g.n == 0 || g.image() == 0) return;
  if (g.f == 0 || P == 0) {
    std::fill(dx, dx + g.n * g.image(), T(0));
    ready(0, g.n * g.image());
    return;
  }
  if (swaps_roles<T>(g)) {
    alignas(64) T flipped[kSwappedWeightBytes / sizeof(T)];
    flip_weights(g, w, flipped);
    return conv2d_forward(swapped(g), dy, flipped, dx, ready);
  }
  // Tap products have no col2im to save but pay for no products of few rows either: they take
  // every layer wide enough to fill a tile's rows.
  if (transpose_by_phases(g) || (std::is_same_v<T, float> && conv_tap_products() && g.c >= 8))
    return conv2d_backward_data_by_phases(g, dy, w, dx, ready);
  Blocks blocks = im2col_blocks(g, (K + g.f) * P);
  parallel_for(blocks.count, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t blk = lo; blk < hi; ++blk) {
      std::int64_t first = blocks.first(blk), count = blocks.length(blk, g.n), ld = count * P;
      T* col = scratch<T>(lines(K * ld) + g.f * ld);
      const T* in = dy + first * g.f * P;
      if (count > 1) {
        T* packed = col + lines(K * ld);
        pack_rows(g, in, count, 0, g.f, packed);
        in = packed;
      }
      gemm(true, false, K, ld, g.f, w, K, in, ld, T(0), col, ld);
      col2im(g, col, count, dx + first * g.image());
      ready(first * g.image(), count * g.image());
    }
  });
}

// Task t owns the block dw[f0:f1, (c0:c1) kh kw] and sums it over every image in a fixed order of
// image blocks, accumulating through the gemm's beta: no partial sums to combine across tasks.
// Channel groups repeat the packing of dy, filter groups the im2col; both are copies, small
// beside the product.
template <class T>
void conv2d_backward_weight(const ConvGeometry& g, const T* x, const T* dy, T* dw) {
  const std::int64_t K = g.k(), P = g.p(), khw = g.kh * g.kw;
  if (g.f == 0 || K == 0) return;
  if (g.n == 0 || P == 0) {
    std::fill(dw, dw + g.f * K, T(0));
    return;
  }
  if (swaps_roles<T>(g)) {
    const ConvGeometry s = swapped(g);
    alignas(64) T flipped[kSwappedWeightBytes / sizeof(T)];
    conv2d_backward_weight(s, dy, x, flipped);
    flip_weights(s, flipped, dw);
    return;
  }
  // Tap products transpose dy, once per thread: with few (channel, tap) rows to spread that
  // over, im2col's product is faster, as for the forward.
  if constexpr (std::is_same_v<T, float>)
    if (conv_tap_products() && K >= 64) return conv2d_backward_weight_taps(g, x, dy, dw);
  std::int64_t cg = std::min(g.c, kWeightTasks);
  std::int64_t fg = std::clamp<std::int64_t>(kWeightTasks / cg, 1, std::max<std::int64_t>(1, g.f / 16));
  parallel_for(cg * fg, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t t = lo; t < hi; ++t) {
      std::int64_t c0 = g.c * (t / fg) / cg, c1 = g.c * (t / fg + 1) / cg;
      std::int64_t f0 = g.f * (t % fg) / fg, f1 = g.f * (t % fg + 1) / fg;
      std::int64_t kc = (c1 - c0) * khw, fc = f1 - f0;
      Blocks blocks = im2col_blocks(g, (kc + fc) * P);
      for (std::int64_t blk = 0; blk < blocks.count; ++blk) {
        std::int64_t first = blocks.first(blk), count = blocks.length(blk, g.n), ld = count * P;
        T* col = scratch<T>(lines(kc * ld) + fc * ld);
        const T* rows = dy + (first * g.f + f0) * P;  // one image's rows are in place
        if (count > 1) {
          T* packed = col + lines(kc * ld);
          pack_rows(g, dy + first * g.f * P, count, f0, f1, packed);
          rows = packed;
        }
        im2col(g, x + first * g.image(), count, c0, c1, col);
        gemm(false, true, fc, kc, ld, rows, ld, col, ld, blk == 0 ? T(0) : T(1),
             dw + f0 * K + c0 * khw, K);
      }
    }
  });
}

Size2 size2_attr(const Attrs& attrs, std::string_view key, Size2 fallback) {
  if (!attrs.has(key)) return fallback;
  const auto& v = attrs.ints(key);
  if (v.empty()) return fallback;  // declared as [] (graph files' default): the op's own default
  if (v.size() == 1) return {v[0], v[0]};
  if (v.size() == 2) return {v[0], v[1]};
  throw ShapeError(fmt::format("{} takes one value or two ([h, w]), got {}", key, v.size()));
}

ConvGeometry conv_geometry(const Shape& image, const Shape& weight, const Attrs& attrs) {
  ConvGeometry g;
  g.n = image[0], g.c = image[1], g.h = image[2], g.w = image[3];
  g.f = weight[0], g.kh = weight[2], g.kw = weight[3];
  g.stride = size2_attr(attrs, "stride", {1, 1});
  g.padding = size2_attr(attrs, "padding", {0, 0});
  g.dilation = size2_attr(attrs, "dilation", {1, 1});
  g.oh = window_count(g.h, g.kh, g.stride[0], g.padding[0], g.dilation[0]);
  g.ow = window_count(g.w, g.kw, g.stride[1], g.padding[1], g.dilation[1]);
  return g;
}

template void im2col<float>(const ConvGeometry&, const float*, std::int64_t, std::int64_t,
                            std::int64_t, float*);
template void im2col<double>(const ConvGeometry&, const double*, std::int64_t, std::int64_t,
                             std::int64_t, double*);
template void col2im<float>(const ConvGeometry&, const float*, std::int64_t, float*);
template void col2im<double>(const ConvGeometry&, const double*, std::int64_t, double*);
template void conv2d_forward<float>(const ConvGeometry&, const float*, const float*, float*,
                                     const ReadyCallback&);
template void conv2d_forward<double>(const ConvGeometry&, const double*, const double*, double*,
                                     const ReadyCallback&);
template void conv2d_backward_data<float>(const ConvGeometry&, const float*, const float*, float*,
                                          const ReadyCallback&);
template void conv2d_backward_data<double>(const ConvGeometry&, const double*, const double*,
                                           double*, const ReadyCallback&);
template void conv2d_backward_data_by_phases<float>(const ConvGeometry&, const float*, const float*,
                                                   float*, const ReadyCallback&);
template void conv2d_backward_data_by_phases<double>(const ConvGeometry&, const double*,
                                                    const double*, double*, const ReadyCallback&);
template void conv2d_backward_weight<float>(const ConvGeometry&, const float*, const float*,
                                            float*);
template void conv2d_backward_weight<double>(const ConvGeometry&, const double*, const double*,
                                             double*);

}  // namespace graphrun::ops
