// Counter-based random numbers (Philox4x32-10 from Random123): a draw is a pure function of
// (seed, node, step, element index), so it does not depend on threads or on order of evaluation,
// and a resumed run or a gradient check replays the same draws.
#pragma once

#include <graphrun/graph/op.hpp>

#include <cstdint>

namespace graphrun {

// Uniform in (0, 1), never exactly 0 or 1.
double random_uniform(const RandomKey& key, std::uint64_t index);
// Standard normal (Box-Muller on two uniforms of the same counter).
double random_normal(const RandomKey& key, std::uint64_t index);

}  // namespace graphrun
