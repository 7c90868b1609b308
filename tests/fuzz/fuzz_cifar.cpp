// libFuzzer target for CIFAR-10 binary batches: see check_cifar in cifar_check.hpp. A broken
// check, an exception other than DataError, a crash, a sanitizer report or memory beyond
// -rss_limit_mb is a finding.
#include <cstdio>
#include <cstdlib>

#include "fuzz/cifar_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string problem = graphrun::fuzz::check_cifar(graphrun::fuzz::fuzz_dir(), data, size);
  if (!problem.empty()) {
    std::fprintf(stderr, "fuzz_cifar: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
