// What the per-kernel benchmarks share: their command line, [--reps N] [--threads 1,2], and
// their timer.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

struct Times {
  double median, best;  // ms
};

// Runs f once to warm up, then `reps` times.
inline Times times_ms(int reps, const std::function<void()>& f) {
  f();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    auto start = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return {t[static_cast<std::size_t>(reps / 2)], t.front()};
}

inline double median_ms(int reps, const std::function<void()>& f) { return times_ms(reps, f).median; }

struct BenchArgs {
  int reps = 21;
  std::vector<int> threads{1, 2};
};

// Exits with the usage line on anything else.
inline BenchArgs parse_bench_args(int argc, char** argv, const char* program) {
  BenchArgs args;
  for (int i = 1; i < argc; i += 2) {
    std::string key = argv[i];
    if (i + 1 < argc && key == "--reps") {
      args.reps = std::max(1, std::atoi(argv[i + 1]));
    } else if (i + 1 < argc && key == "--threads") {
      args.threads.clear();
      for (const char* p = argv[i + 1]; *p;) {
        args.threads.push_back(std::max(1, std::atoi(p)));
        while (*p && *p != ',') ++p;
        if (*p == ',') ++p;
      }
    } else {
      fmt::print(stderr, "usage: {} [--reps N] [--threads 1,2]\n", program);
      std::exit(2);
    }
  }
  return args;
}
