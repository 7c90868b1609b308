#include <graphrun/graph/random.hpp>

#include <Random123/philox.h>

#include <algorithm>
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
  return (static_cast<double>(bits) + 0.5) * 0x1p-53;
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

void random_words(const RandomKey& key, std::uint64_t first, std::int64_t count, std::uint32_t* out) {
  // Philox4x32-10 written out over 16 counters, so each round is a few vector instructions (one
  // 32x32->64 multiply per word pair) instead of a chain of scalar ones.
  constexpr int kLanes = 16;
  const auto k = key_of(key);
  for (std::int64_t base = 0; base < count; base += kLanes) {
    std::uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      auto c = counter_of(key, first + static_cast<std::uint64_t>(base + l));
      c0[l] = c[0];
      c1[l] = c[1];
      c2[l] = c[2];
      c3[l] = c[3];
    }
    std::uint32_t r0 = k[0], r1 = k[1];
    for (int round = 0; round < 10; ++round) {
      // Not unrolled: GCC would fully unroll 16 lanes into scalar code before vectorizing.
#pragma GCC unroll 1
      for (int l = 0; l < kLanes; ++l) {
        std::uint64_t p0 = std::uint64_t{0xD2511F53u} * c0[l];
        std::uint64_t p1 = std::uint64_t{0xCD9E8D57u} * c2[l];
        std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1[l] ^ r0;
        std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3[l] ^ r1;
        c1[l] = static_cast<std::uint32_t>(p1);
        c3[l] = static_cast<std::uint32_t>(p0);
        c0[l] = n0;
        c2[l] = n2;
      }
      r0 += 0x9E3779B9u;
      r1 += 0xBB67AE85u;
    }
    const std::int64_t n = std::min<std::int64_t>(kLanes, count - base);
    for (std::int64_t l = 0; l < n; ++l) {
      std::uint32_t* o = out + 4 * (base + l);
      o[0] = c0[l];
      o[1] = c1[l];
      o[2] = c2[l];
      o[3] = c3[l];
    }
  }
}

namespace {

// Box-Muller on the four words of one draw.
std::array<double, 2> box_muller(const std::uint32_t* r) {
  double radius = std::sqrt(-2.0 * std::log(to_unit(r[0], r[1])));
  double angle = 2.0 * std::numbers::pi * to_unit(r[2], r[3]);
  return {radius * std::cos(angle), radius * std::sin(angle)};
}

}  // namespace

std::array<double, 2> random_normal_pair(const RandomKey& key, std::uint64_t pair) {
  auto r = draw(key, pair);
  return box_muller(r.data());
}

void random_normal_pairs(const RandomKey& key, std::uint64_t first, std::int64_t count, double* out) {
  constexpr std::int64_t kDraws = 64;  // words of one batch on the stack
  std::uint32_t words[4 * kDraws];
  for (std::int64_t b = 0; b < count; b += kDraws) {
    std::int64_t draws = std::min(kDraws, count - b);
    random_words(key, first + static_cast<std::uint64_t>(b), draws, words);
    for (std::int64_t i = 0; i < draws; ++i) {
      auto z = box_muller(words + 4 * i);
      out[2 * (b + i)] = z[0];
      out[2 * (b + i) + 1] = z[1];
    }
  }
}

double random_normal(const RandomKey& key, std::uint64_t index) {
  return random_normal_pair(key, index / 2)[index % 2];
}

}  // namespace graphrun
