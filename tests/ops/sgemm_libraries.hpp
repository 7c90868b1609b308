// The float32 product libraries this machine offers, for tests that must hold with each.
#pragma once

#include <graphrun/ops/ops.hpp>

#include <vector>

namespace graphrun::testing {

inline std::vector<SgemmLibrary> available_sgemm_libraries() {
  std::vector<SgemmLibrary> out{SgemmLibrary::openblas};
  if (sgemm_library_available(SgemmLibrary::onednn)) out.push_back(SgemmLibrary::onednn);
  return out;
}

// Restores the default library when a test ends, whatever it chose.
struct SgemmGuard {
  ~SgemmGuard() { set_sgemm_library(SgemmLibrary::openblas); }
};

}  // namespace graphrun::testing
