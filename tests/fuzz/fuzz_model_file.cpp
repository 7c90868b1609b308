// libFuzzer target for model files (tools/model_file.hpp): see check_model_file. A broken check,
// an exception other than UsageError, a crash or a sanitizer report is a finding.
#include <cstdio>
#include <cstdlib>

#include "fuzz/model_file_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string problem = graphrun::fuzz::check_model_file(graphrun::fuzz::fuzz_dir(), data, size);
  if (!problem.empty()) {
    std::fprintf(stderr, "fuzz_model_file: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
