// How many FLOPs per second this machine gives `threads` threads right now: each thread runs
// independent chains of FMAs on the widest vectors the CPU running it has (AVX-512 or AVX2 + FMA,
// chosen at run time, whatever the build targets), with no memory traffic. The figure is the
// ceiling of any GEMM, and it moves: on the project's virtual machines the host at times runs one
// of two busy cores at half speed or less, for a few hundredths of a second, and then no program
// scales to two threads.
//
// The chains must stay in registers: 16 of them plus the two operands fit AVX-512's 32 vector
// registers, but not AVX2's 16, where the compiler spilled them to the stack and every FMA waited
// on a store and a load; the probe then reported a third to a half of the real peak (and the GEMM
// limit at 153-280% of it). AVX2 runs 12 chains: still more than latency (4-5 cycles) times two
// FMA pipes, in 14 of its 16 registers.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>
#include <string_view>
#include <thread>
#include <vector>

namespace fma_probe {

// The best time of `reps` runs of `iterations` rounds of `Chains` FMAs; `sink` keeps the result.
template <int Chains>
__attribute__((target("avx512f"))) double time_avx512(long iterations, int reps, float* sink) {
  __m512 acc[Chains];
  for (int i = 0; i < Chains; ++i) acc[i] = _mm512_set1_ps(0.001f * static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-4f);
  double best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    for (long it = 0; it < iterations; ++it)
      for (int i = 0; i < Chains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    for (int i = 1; i < Chains; ++i) acc[0] = _mm512_fmadd_ps(acc[0], a, acc[i]);
    _mm512_storeu_ps(sink, acc[0]);
    asm volatile("" : : "r"(sink) : "memory");
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

template <int Chains>
__attribute__((target("avx2,fma"))) double time_avx2(long iterations, int reps, float* sink) {
  __m256 acc[Chains];
  for (int i = 0; i < Chains; ++i) acc[i] = _mm256_set1_ps(0.001f * static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-4f);
  double best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    for (long it = 0; it < iterations; ++it)
      for (int i = 0; i < Chains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    for (int i = 1; i < Chains; ++i) acc[0] = _mm256_fmadd_ps(acc[0], a, acc[i]);
    _mm256_storeu_ps(sink, acc[0]);
    asm volatile("" : : "r"(sink) : "memory");
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// The vector instructions the probe uses on this CPU: "avx512", "avx2" or "" (neither).
inline const char* isa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
  return "";
}

}  // namespace fma_probe

// The sum over threads of each one's best rate over `reps` runs of about 2 ms (at 200 GFLOPS a
// core); 0 on a CPU without FMA.
inline double fma_rate(int threads, int reps) {
  const std::string_view isa = fma_probe::isa();
  if (isa.empty()) return 0;
  const bool wide = isa == "avx512";
  const int lanes = wide ? 16 : 8, chains = wide ? 16 : 12;
  const long iterations = 800'000L * 16 / lanes * 16 / chains;
  std::vector<double> rates(static_cast<std::size_t>(threads));
  auto run = [&](int t) {
    alignas(64) float sink[16];
    double best = wide ? fma_probe::time_avx512<16>(iterations, reps, sink)
                       : fma_probe::time_avx2<12>(iterations, reps, sink);
    rates[static_cast<std::size_t>(t)] = 2.0 * lanes * chains * static_cast<double>(iterations) / best;
  };
  std::vector<std::thread> others;
  for (int t = 1; t < threads; ++t) others.emplace_back(run, t);
  run(0);
  for (auto& th : others) th.join();
  return std::accumulate(rates.begin(), rates.end(), 0.0);
}
