// The test binary's allocation counter (defined with the replaced operator new in
// program_test.cpp): while `counting` is set, every operator new adds one to `allocations`.
#pragma once

#include <atomic>

namespace graphrun::testing {
extern std::atomic<bool> counting;
extern std::atomic<long> allocations;
}  // namespace graphrun::testing
