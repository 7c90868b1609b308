#include <graphrun/graph/random.hpp>

#include <Random123/philox.h>

#include <cmath>
#include <numbers>

namespace graphrun {
namespace {

r123::Philox4x32::ctr_type draw(const RandomKey& key, std::uint64_t index) {
  r123::Philox4x32 rng;
  r123::Philox4x32::ctr_type ctr = {{static_cast<std::uint32_t>(index),
                                     static_cast<std::uint32_t>(index >> 32), key.node,
                                     static_cast<std::uint32_t>(key.step)}};
  r123::Philox4x32::key_type k = {{static_cast<std::uint32_t>(key.seed),
                                   static_cast<std::uint32_t>(key.seed >> 32) ^
                                       static_cast<std::uint32_t>(key.step >> 32) * 0x9E3779B9u}};
  return rng(ctr, k);
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

std::array<double, 2> random_normal_pair(const RandomKey& key, std::uint64_t pair) {
  auto r = draw(key, pair);
  double radius = std::sqrt(-2.0 * std::log(to_unit(r[0], r[1])));
  double angle = 2.0 * std::numbers::pi * to_unit(r[2], r[3]);
  return {radius * std::cos(angle), radius * std::sin(angle)};
}

double random_normal(const RandomKey& key, std::uint64_t index) {
  return random_normal_pair(key, index / 2)[index % 2];
}

}  // namespace graphrun
