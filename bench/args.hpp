// The command line the per-kernel benchmarks share: [--reps N] [--threads 1,2].
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

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
