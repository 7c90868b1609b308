// How many FLOPs per second this machine gives `threads` threads right now: each thread runs 16
// independent chains of FMAs on the widest vectors the build targets (enough to cover four cycles
// of latency on two FMA pipes), with no memory traffic. The figure is the ceiling of any GEMM, and
// it moves: on the project's virtual machines the host at times runs one of two busy cores at half
// speed or less, for a few hundredths of a second, and then no program scales to two threads.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

// The sum over threads of each one's best rate over `reps` runs of about 2 ms (at 200 GFLOPS a
// core); 0 when the build has no FMA instructions (configure with GRAPHRUN_NATIVE).
inline double fma_rate(int threads, int reps) {
#if defined(__AVX512F__) || defined(__FMA__)
#if defined(__AVX512F__)
  using Vec = __m512;
  auto fma = [](Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); };
  auto splat = [](float x) { return _mm512_set1_ps(x); };
  constexpr int kLanes = 16;
#else
  using Vec = __m256;
  auto fma = [](Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); };
  auto splat = [](float x) { return _mm256_set1_ps(x); };
  constexpr int kLanes = 8;
#endif
  constexpr int kChains = 16;
  constexpr long kIterations = 800'000 * 16 / kLanes;
  std::vector<double> rates(static_cast<std::size_t>(threads));
  auto run = [&](int t) {
    Vec acc[kChains];
    for (int i = 0; i < kChains; ++i) acc[i] = splat(0.001f * static_cast<float>(i));
    Vec a = splat(0.999f), b = splat(1e-4f);
    double best = 1e30;
    for (int rep = 0; rep < reps; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      for (long it = 0; it < kIterations; ++it)
        for (int i = 0; i < kChains; ++i) acc[i] = fma(acc[i], a, b);
      // The chains feed a store the compiler must keep, so the loop cannot be dropped.
      alignas(64) float sink[kLanes];
      for (int i = 1; i < kChains; ++i) acc[0] = fma(acc[0], a, acc[i]);
      std::memcpy(sink, &acc[0], sizeof sink);
      asm volatile("" : : "r"(sink) : "memory");
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    rates[static_cast<std::size_t>(t)] = 2.0 * kLanes * kChains * static_cast<double>(kIterations) / best;
  };
  std::vector<std::thread> others;
  for (int t = 1; t < threads; ++t) others.emplace_back(run, t);
  run(0);
  for (auto& th : others) th.join();
  return std::accumulate(rates.begin(), rates.end(), 0.0);
#else
  (void)threads;
  (void)reps;
  return 0;
#endif
}
