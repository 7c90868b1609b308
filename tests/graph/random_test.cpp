// The counter-based generator: a pure function of (seed, node, step, index), uniform in (0, 1).
#include <graphrun/graph/random.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace graphrun {
namespace {

TEST_CASE("draws are a pure function of the key and the index", "[graph][random]") {
  RandomKey key{7, 3, 11};
  CHECK(random_uniform(key, 5) == random_uniform(key, 5));
  CHECK(random_normal(key, 5) == random_normal(key, 5));
  CHECK(random_uniform(key, 5) != random_uniform(key, 6));
  CHECK(random_uniform(key, 5) != random_uniform({8, 3, 11}, 5));  // seed
  CHECK(random_uniform(key, 5) != random_uniform({7, 4, 11}, 5));  // step
  CHECK(random_uniform(key, 5) != random_uniform({7, 3, 12}, 5));  // node
  // The high halves of seed, step and index count too.
  CHECK(random_uniform(key, 5) != random_uniform({7 + (1ull << 32), 3, 11}, 5));
  CHECK(random_uniform(key, 5) != random_uniform({7, 3 + (1ull << 32), 11}, 5));
  CHECK(random_uniform(key, 5) != random_uniform(key, 5 + (1ull << 32)));
}

TEST_CASE("batched words are the scalar Philox words, at any start and length", "[graph][random]") {
  // Keys with high halves set in seed and step, an index range that crosses 2^32, and lengths
  // that are not multiples of the 16-lane batch.
  for (RandomKey key : {RandomKey{7, 3, 11}, RandomKey{(5ull << 32) + 9, (2ull << 32) + 1, 4}}) {
    for (std::uint64_t first : {std::uint64_t{0}, std::uint64_t{37}, std::uint64_t{(1ull << 32) - 20}}) {
      for (std::int64_t count : {1, 16, 45}) {
        std::vector<std::uint32_t> batch(static_cast<std::size_t>(4 * count));
        random_words(key, first, count, batch.data());
        bool same = true;
        for (std::int64_t i = 0; i < count; ++i) {
          auto one = random_words(key, first + static_cast<std::uint64_t>(i));
          for (int j = 0; j < 4; ++j) same = same && batch[static_cast<std::size_t>(4 * i + j)] == one[static_cast<std::size_t>(j)];
        }
        INFO("first " << first << " count " << count);
        CHECK(same);
      }
    }
  }
}

TEST_CASE("batched normal pairs are the scalar ones, at any start and length", "[graph][random]") {
  RandomKey key{(5ull << 32) + 9, 3, 4};
  for (std::uint64_t first : {std::uint64_t{0}, std::uint64_t{37}}) {
    for (std::int64_t count : {1, 16, 45, 150}) {  // within, at and across the 16-draw batch
      std::vector<double> batch(static_cast<std::size_t>(2 * count));
      random_normal_pairs(key, first, count, batch.data());
      bool same = true;
      for (std::int64_t i = 0; i < count; ++i) {
        auto one = random_normal_pair(key, first + static_cast<std::uint64_t>(i));
        same = same && batch[static_cast<std::size_t>(2 * i)] == one[0] &&
               batch[static_cast<std::size_t>(2 * i + 1)] == one[1];
      }
      INFO("first " << first << " count " << count);
      CHECK(same);
    }
  }
}

// The uniform of two words, as the generator documents it: 53 bits, centred in their interval,
// the top one (which would round to 1) held just below 1.
double unit(std::uint32_t hi, std::uint32_t lo) {
  double u = (static_cast<double>((static_cast<std::uint64_t>(hi) << 21) ^ (lo >> 11)) + 0.5) * 0x1p-53;
  return std::min(u, 1.0 - 0x1p-53);
}

TEST_CASE("Box-Muller's own ln, sin and cos agree with libm", "[graph][random]") {
  auto check = [](std::array<std::uint32_t, 4> w) {
    double radius = std::sqrt(-2.0 * std::log(unit(w[0], w[1])));
    double angle = 2.0 * M_PI * unit(w[2], w[3]);
    auto z = box_muller(w);
    // 2 pi v is rounded before libm sees it, which alone moves its result by up to ~1e-15.
    double tolerance = 4e-15 * std::max(1.0, radius);
    INFO(w[0] << " " << w[1] << " " << w[2] << " " << w[3]);
    CHECK(std::abs(z[0] - radius * std::cos(angle)) <= tolerance);
    CHECK(std::abs(z[1] - radius * std::sin(angle)) <= tolerance);
    return z;
  };
  // The ends of u (radius 8.6 and 1e-8) and angles on and around every eighth of a turn, where
  // the quadrant and the polynomials change.
  for (std::uint32_t hi : {0u, 1u, 0x5a827999u, 0x7fffffffu, 0xb504f333u, 0xfffffffeu, 0xffffffffu})
    for (std::uint32_t lo : {0u, 0xffffffffu})
      for (std::uint32_t eighth = 0; eighth <= 8; ++eighth)
        for (std::int64_t nudge : {-1, 0, 1}) {
          std::uint64_t v = (std::uint64_t{eighth} << 50) + static_cast<std::uint64_t>(nudge);
          if (v >= (1ull << 53)) continue;
          check({hi, lo, static_cast<std::uint32_t>(v >> 21), static_cast<std::uint32_t>(v << 11)});
        }
  CHECK(box_muller({0, 0, 0, 0})[0] == Approx(std::sqrt(-2.0 * std::log(0x1p-54))));
  // And a spread of ordinary draws.
  RandomKey key{3, 1, 2};
  for (std::uint64_t i = 0; i < 20000; ++i) check(random_words(key, i));
}

TEST_CASE("uniform draws are in (0, 1) with mean 1/2, normals have mean 0 and variance 1",
          "[graph][random]") {
  RandomKey key{1, 0, 0};
  const int n = 200000;
  double su = 0, sn = 0, sn2 = 0, lo = 1, hi = 0;
  for (int i = 0; i < n; ++i) {
    double u = random_uniform(key, static_cast<std::uint64_t>(i));
    double z = random_normal(key, static_cast<std::uint64_t>(i));
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    su += u;
    sn += z;
    sn2 += z * z;
  }
  CHECK(lo > 0);
  CHECK(hi < 1);
  CHECK(su / n == Approx(0.5).margin(0.005));  // sd of the mean: 0.29 / sqrt(2e5) = 0.00065
  CHECK(sn / n == Approx(0).margin(0.01));     // sd 0.0022
  CHECK(sn2 / n == Approx(1).margin(0.02));    // sd 0.0032
}

}  // namespace
}  // namespace graphrun
