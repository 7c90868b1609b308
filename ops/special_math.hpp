// ln Gamma and the polygamma functions in double, for the lgamma and polygamma ops. libm's
// lgamma writes the global `signgam`, a data race when TBB runs it on several threads, and libm
// has no digamma at all; these are plain arithmetic, accurate to a few ulp of the terms involved
// (about 1e-15 absolute near the zeros of ln Gamma at 1 and 2, relative elsewhere).
//
// Both shift x up by the recurrence until an asymptotic series converges to double precision, then
// undo the shift: Gamma(x + 1) = x Gamma(x), and psi^(n)(x + 1) = psi^(n)(x) + (-1)^n n! / x^(n+1).
#pragma once

#include <cmath>
#include <limits>
#include <numbers>

namespace graphrun::ops {

// ln Gamma(x) for x > 0; NaN for x <= 0 or NaN. Stirling's series from x >= 10, where its first
// omitted term, 3617 / (122400 x^15), is below 3e-17.
inline double lgamma_positive(double x) {
  if (!(x > 0)) return std::numeric_limits<double>::quiet_NaN();
  if (std::isinf(x)) return x;
  double shift = 1;  // x (x + 1) ... up to the shifted x: at most 10 factors below 20
  while (x < 10) {
    shift *= x;
    x += 1;
  }
  double z = 1 / x, z2 = z * z;
  double series =
      z * (1.0 / 12 - z2 * (1.0 / 360 - z2 * (1.0 / 1260 - z2 * (1.0 / 1680 - z2 * (1.0 / 1188 -
           z2 * (691.0 / 360360 - z2 / 156))))));
  constexpr double kHalfLog2Pi = 0.91893853320467274178;
  return (x - 0.5) * std::log(x) - x + kHalfLog2Pi + series - std::log(shift);
}

// psi(x) = d/dx ln Gamma(x) for x > 0. From x >= 15 the series ln x - 1/(2x) - sum_k
// B_2k / (2k x^2k), seven terms, leaves an error below 1e-19.
inline double digamma_positive(double x) {
  double shift = 0;  // sum of 1/x over the steps
  while (x < 15) {
    shift += 1 / x;
    x += 1;
  }
  double z2 = 1 / (x * x);
  double series = z2 * (1.0 / 12 - z2 * (1.0 / 120 - z2 * (1.0 / 252 - z2 * (1.0 / 240 -
                  z2 * (1.0 / 132 - z2 * (691.0 / 32760 - z2 / 12))))));
  return std::log(x) - 0.5 / x - series - shift;
}

// psi^(n)(x), the n-th derivative of digamma, for x > 0: (-1)^(n+1) n! zeta(n + 1, x) with the
// Hurwitz zeta zeta(s, x) = sum_k (x + k)^-s. Its asymptotic series x^(1-s) / (s - 1) + x^-s / 2 +
// sum_j B_2j / (2j)! s (s + 1) ... (s + 2j - 2) x^(-s-2j+1), eight terms, is taken from
// x >= 15 + n, where the first omitted term is below 1e-15 of the sum up to n = 10 and far
// smaller for the low orders training uses. Terms of the shift all have one sign: no cancellation.
inline double polygamma_positive(int n, double x) {
  if (!(x > 0)) return std::numeric_limits<double>::quiet_NaN();
  if (n == 0) return digamma_positive(x);
  if (std::isinf(x)) return 0;
  const double s = n + 1;
  double shift = 0;
  while (x < 15 + n) {
    shift += std::pow(x, -s);
    x += 1;
  }
  // B_2j / (2j)! for j = 1..8.
  constexpr double kB[] = {1.0 / 12,         -1.0 / 720,          1.0 / 30240,
                           -1.0 / 1209600,   1.0 / 47900160,      -691.0 / 1307674368000,
                           1.0 / 74724249600, -3617.0 / 10670622842880000};
  double xs = std::pow(x, -s);
  double zeta = x * xs / n + 0.5 * xs;
  double power = xs / x, rising = s;  // x^(-s-2j+1) and s (s + 1) ... (s + 2j - 2)
  for (int j = 1; j <= 8; ++j) {
    zeta += kB[j - 1] * rising * power;
    rising *= (s + 2 * j - 1) * (s + 2 * j);
    power /= x * x;
  }
  double factorial = 1;
  for (int k = 2; k <= n; ++k) factorial *= k;
  return (n % 2 == 1 ? 1 : -1) * factorial * (zeta + shift);
}

}  // namespace graphrun::ops
