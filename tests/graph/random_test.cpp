// The counter-based generator: a pure function of (seed, node, step, index), uniform in (0, 1).
#include <graphrun/graph/random.hpp>

#include <catch2/catch.hpp>

#include <cmath>

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
