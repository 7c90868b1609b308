// libFuzzer target for graph files (models/graph_syntax.hpp, models/graph_model.hpp): see
// check_graph_file. A broken check, an unexpected exception, a crash, a sanitizer report or a
// time-out (an input that makes the builder loop) is a finding.
#include <cstdio>
#include <cstdlib>

#include "fuzz/graph_file_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string problem = graphrun::fuzz::check_graph_file({}, data, size);
  if (!problem.empty()) {
    std::fprintf(stderr, "fuzz_graph_file: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
