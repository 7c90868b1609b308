#include <graphrun/graph/random.hpp>

#include <Random123/philox.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>

namespace graphrun {
namespace {

// How (seed, node, step, index) map onto Philox's counter and key; draw and the batched
// random_words both go through these.
r123::Philox4x32::ctr_type counter_of(const RandomKey& key, std::uint64_t index) {
  return {{static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32), key.node,
           static_cast<std::uint32_t>(key.step)}};
}
r123::Philox4x32::key_type key_of(const RandomKey& key) {
  return {{static_cast<std::uint32_t>(key.seed),
           static_cast<std::uint32_t>(key.seed >> 32) ^ static_cast<std::uint32_t>(key.step >> 32) * 0x9E3779B9u}};
}

r123::Philox4x32::ctr_type draw(const RandomKey& key, std::uint64_t index) {
  return r123::Philox4x32()(counter_of(key, index), key_of(key));
}

// 53 random bits mapped to the open interval (0, 1).
double to_unit(std::uint32_t hi, std::uint32_t lo) {
  std::uint64_t bits = (static_cast<std::uint64_t>(hi) << 21) ^ (lo >> 11);
  // (2^53 - 0.5) 2^-53 rounds to 1.0: the one draw in 2^53 that would gives the largest double
  // below 1 instead, and every other draw is unchanged.
  return std::min((static_cast<double>(bits) + 0.5) * 0x1p-53, 1.0 - 0x1p-53);
}

}  // namespace

double random_uniform(const RandomKey& key, std::uint64_t index) {
  auto r = draw(key, index);
  return to_unit(r[0], r[1]);
}

std::array<std::uint32_t, 4> random_words(const RandomKey& key, std::uint64_t draw_index) {
  auto r = draw(key, draw_index);
  return {r[0], r[1], r[2], r[3]};
}

namespace {

// Philox4x32-10 written out over 16 counters, so each round is a few vector instructions (one
// 32x32->64 multiply per word pair) instead of a chain of scalar ones. Word w of draw
// first + l lands in c[w][l].
constexpr int kLanes = 16;
void philox_lanes(const RandomKey& key, std::uint64_t first, std::uint32_t (&c)[4][kLanes]) {
  const auto k = key_of(key);
  for (int l = 0; l < kLanes; ++l) {
    auto ctr = counter_of(key, first + static_cast<std::uint64_t>(l));
    for (int w = 0; w < 4; ++w) c[w][l] = ctr[static_cast<std::size_t>(w)];
  }
  std::uint32_t r0 = k[0], r1 = k[1];
  for (int round = 0; round < 10; ++round) {
    // Not unrolled: GCC would fully unroll 16 lanes into scalar code before vectorizing.
#pragma GCC unroll 1
    for (int l = 0; l < kLanes; ++l) {
      std::uint64_t p0 = std::uint64_t{0xD2511F53u} * c[0][l];
      std::uint64_t p1 = std::uint64_t{0xCD9E8D57u} * c[2][l];
      std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c[1][l] ^ r0;
      std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c[3][l] ^ r1;
      c[1][l] = static_cast<std::uint32_t>(p1);
      c[3][l] = static_cast<std::uint32_t>(p0);
      c[0][l] = n0;
      c[2][l] = n2;
    }
    r0 += 0x9E3779B9u;
    r1 += 0xBB67AE85u;
  }
}

// ln u for u in (0, 1], to within an ulp or so. libm's log is a scalar call; this is arithmetic
// on doubles and their bits, so a loop over it vectorizes. u = m 2^e with m in [sqrt(1/2),
// sqrt(2)), and ln m = 2 atanh(s) with s = (m - 1) / (m + 1), |s| < 0.172, through the classic
// minimax series in s^2 (fdlibm's coefficients).
inline double log_unit(double u) {
  auto bits = std::bit_cast<std::uint64_t>(u);
  auto e = static_cast<std::int64_t>(bits >> 52) - 1023;
  double m = std::bit_cast<double>((bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull);
  bool high = m > std::numbers::sqrt2;
  m = high ? m * 0.5 : m;
  double k = static_cast<double>(e) + (high ? 1.0 : 0.0);
  double f = m - 1.0;
  double s = f / (2.0 + f), z = s * s, w = z * z;
  double odd = w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01 + w * 1.531383769920937332e-01));
  double even = z * (6.666666666666735130e-01 +
                     w * (2.857142874366239149e-01 + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)));
  double half_f2 = 0.5 * f * f;
  constexpr double kLn2Hi = 6.93147180369123816490e-01, kLn2Lo = 1.90821492927058770002e-10;
  return k * kLn2Hi - ((half_f2 - (s * (half_f2 + odd + even) + k * kLn2Lo)) - f);
}

// cos and sin of 2 pi t for t in [0, 1]. The quadrant comes from t itself, so t - q/4 is exact
// and no multiple of pi is ever subtracted; then minimax polynomials on [-pi/4, pi/4].
inline void cos_sin_turns(double t, double& cos_out, double& sin_out) {
  auto quadrant = static_cast<std::int64_t>(t * 4.0 + 0.5);  // nearest quarter turn, 0..4
  double r = (t - static_cast<double>(quadrant) * 0.25) * (2.0 * std::numbers::pi);
  double z = r * r;
  double sin_r = r + r * z * (-1.66666666666666324348e-01 + z * (8.33333333332248946124e-03 +
                     z * (-1.98412698298579493134e-04 + z * (2.75573137070700676789e-06 +
                     z * (-2.50507602534068634195e-08 + z * 1.58969099521155010221e-10)))));
  double cos_r = 1.0 - 0.5 * z + z * z * (4.16666666666666019037e-02 + z * (-1.38888888888741095749e-03 +
                     z * (2.48015872894767294178e-05 + z * (-2.75573143513906633035e-07 +
                     z * (2.08757232129817482790e-09 + z * -1.13596475577881948265e-11)))));
  // Quadrant k turns (cos r, sin r) by k quarter turns: odd k swaps them, then signs flip.
  double a = quadrant & 1 ? sin_r : cos_r;
  double b = quadrant & 1 ? cos_r : sin_r;
  double c = (quadrant + 1) & 2 ? -a : a;
  double s = quadrant & 2 ? -b : b;
  cos_out = c;
  sin_out = s;
}

// Box-Muller on the four words of one draw: the two normals radius (cos, sin) of angle.
inline void box_muller_lane(std::uint32_t w0, std::uint32_t w1, std::uint32_t w2, std::uint32_t w3,
                       double& z0, double& z1) {
  double radius = std::sqrt(-2.0 * log_unit(to_unit(w0, w1)));
  double c, s;
  cos_sin_turns(to_unit(w2, w3), c, s);
  z0 = radius * c;
  z1 = radius * s;
}

}  // namespace

void random_words(const RandomKey& key, std::uint64_t first, std::int64_t count, std::uint32_t* out) {
  for (std::int64_t base = 0; base < count; base += kLanes) {
    std::uint32_t c[4][kLanes];
    philox_lanes(key, first + static_cast<std::uint64_t>(base), c);
    const std::int64_t n = std::min<std::int64_t>(kLanes, count - base);
    for (std::int64_t l = 0; l < n; ++l)
      for (int w = 0; w < 4; ++w) out[4 * (base + l) + w] = c[w][l];
  }
}

std::array<double, 2> box_muller(const std::array<std::uint32_t, 4>& words) {
  std::array<double, 2> z;
  box_muller_lane(words[0], words[1], words[2], words[3], z[0], z[1]);
  return z;
}

std::array<double, 2> random_normal_pair(const RandomKey& key, std::uint64_t pair) {
  auto r = draw(key, pair);
  return box_muller({r[0], r[1], r[2], r[3]});
}

void random_normal_pairs(const RandomKey& key, std::uint64_t first, std::int64_t count, double* out) {
  for (std::int64_t base = 0; base < count; base += kLanes) {
    std::uint32_t c[4][kLanes];
    philox_lanes(key, first + static_cast<std::uint64_t>(base), c);
    double z0[kLanes], z1[kLanes];
    for (int l = 0; l < kLanes; ++l) box_muller_lane(c[0][l], c[1][l], c[2][l], c[3][l], z0[l], z1[l]);
    const std::int64_t n = std::min<std::int64_t>(kLanes, count - base);
    for (std::int64_t l = 0; l < n; ++l) {
      out[2 * (base + l)] = z0[l];
      out[2 * (base + l) + 1] = z1[l];
    }
  }
}

double random_normal(const RandomKey& key, std::uint64_t index) {
  return random_normal_pair(key, index / 2)[index % 2];
}

}  // namespace graphrun
