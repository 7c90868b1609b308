// Vectorizable float32 exp and log(1 + e^-a). libm's expf and log1pf are scalar calls that GCC
// cannot vectorize without -ffast-math; on a VAE step log1pf alone took 12% of the time. These
// are plain arithmetic on floats and bits (Cephes-style polynomials), so loops over them
// vectorize, and they are accurate to a few ulp. float64 kernels keep libm: they serve gradient
// checks, where accuracy is the point.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace graphrun::ops {

// e^x, denormals included; 0 below -103.9, +inf above ln(FLT_MAX) = 88.7228.
inline float fast_exp(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  // Below -87.3 the result is denormal: compute e^(x + 24 ln 2) and scale by 2^-24.
  bool tiny = x < -87.3f;
  float xs = tiny ? x + 16.6355324f : x;
  float xc = xs < -87.3f ? -87.3f : (xs > 88.72f ? 88.72f : xs);
  // NaN passes every clamp above; converting it to int below is undefined behaviour (UBSan's
  // float-cast-overflow). Compute with 0 instead and hand the NaN back at the end.
  xc = xc == xc ? xc : 0.0f;
  // Round to nearest by adding and removing 1.5 * 2^23: plain arithmetic, so it vectorizes.
  constexpr float kRound = 12582912.0f;
  float n = (xc * kLog2e + kRound) - kRound;
  float r = xc - n * kLn2Hi - n * kLn2Lo;  // |r| <= ln2 / 2
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  auto bits = std::bit_cast<std::int32_t>(p) + (static_cast<std::int32_t>(n) << 23);
  float y = std::bit_cast<float>(bits);
  y = tiny ? y * 5.9604644775390625e-8f : y;
  y = xs < -87.3f ? 0.0f : y;
  y = x == x ? y : x;
  return x > 88.7228f ? __builtin_inff() : y;
}

// ln(1 + e^-a) for a >= 0, the stable tail of softplus and of BCE with logits. With e = e^-a in
// (0, 1], ln(1 + e) = ln(1 + f) + k ln 2 where f = e (k = 0) for e up to sqrt(2) - 1, else
// f = (e - 1) / 2 (k = 1, as 1 + e = 2 (1 + f)). Either f is exact or nearly, and lies in
// [-0.293, 0.414], where Cephes' logf polynomial holds: no rounded 1 + e to correct, so no division.
inline float fast_log1p_exp_neg(float a) {
  float e = fast_exp(-a);
  bool high = e > 0.41421356f;
  float f = high ? (e - 1.0f) * 0.5f : e;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  float z = f * f;
  return f - 0.5f * z + p * z * f + (high ? 0.693147180559945f : 0.0f);
}

// Overloads the kernels are written with: float32 takes the fast versions above, float64 libm.
inline float exp_of(float x) { return fast_exp(x); }
inline double exp_of(double x) { return std::exp(x); }
inline float log1p_exp_neg(float a) { return fast_log1p_exp_neg(a); }
inline double log1p_exp_neg(double a) { return std::log1p(std::exp(-a)); }

}  // namespace graphrun::ops
