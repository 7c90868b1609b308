// Counter-based random numbers (Philox4x32-10 from Random123): a draw is a pure function of
// (seed, node, step, element index), so it does not depend on threads or on order of evaluation,
// and a resumed run or a gradient check replays the same draws.
#pragma once

#include <graphrun/graph/op.hpp>

#include <array>
#include <cstdint>

namespace graphrun {

// Uniform in (0, 1), never exactly 0 or 1.
double random_uniform(const RandomKey& key, std::uint64_t index);
// Standard normal. Box-Muller turns the two uniforms of one counter into two independent normals:
// indices 2k and 2k + 1 share counter k, so filling n values costs n / 2 draws.
double random_normal(const RandomKey& key, std::uint64_t index);
// The four 32-bit words of counter `draw`, for ops that need fewer bits per element: a Bernoulli
// mask compares one word per element, so one draw serves four elements.
std::array<std::uint32_t, 4> random_words(const RandomKey& key, std::uint64_t draw);
// random_words of draws first, first + 1, ..., first + count - 1, into out[4 * i .. 4 * i + 3]:
// the same values, computed 16 draws at a time in vector registers.
void random_words(const RandomKey& key, std::uint64_t first, std::int64_t count, std::uint32_t* out);
// The two normals of one draw's words: radius sqrt(-2 ln u) at angle 2 pi v, where u and v are
// the 53-bit uniforms of words 0-1 and 2-3, with a vectorizable ln, sin and cos accurate to an
// ulp or two rather than libm's scalar calls.
std::array<double, 2> box_muller(const std::array<std::uint32_t, 4>& words);
// The normals at indices 2 * pair and 2 * pair + 1.
std::array<double, 2> random_normal_pair(const RandomKey& key, std::uint64_t pair);
// random_normal_pair of pairs first, ..., first + count - 1 into out[2 * i], out[2 * i + 1]: the
// same values, with the draws batched through the vector random_words.
void random_normal_pairs(const RandomKey& key, std::uint64_t first, std::int64_t count, double* out);

}  // namespace graphrun
