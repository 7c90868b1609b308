// Replays a fuzz target's seed corpus (tests/fuzz/corpus/<target>/) and its past findings
// (tests/fuzz/regressions/<target>/) through the target's check in the normal suite.
#pragma once

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "train/temp_dir.hpp"

namespace graphrun::fuzz {

namespace fs = std::filesystem;

// The files of corpus/<target>/ and regressions/<target>/, in name order.
inline std::vector<fs::path> fuzz_inputs(const std::string& target) {
  std::vector<fs::path> files;
  fs::path root = fs::path(GRAPHRUN_SOURCE_DIR) / "tests" / "fuzz";
  for (const char* kind : {"corpus", "regressions"}) {
    fs::path dir = root / kind / target;
    if (!fs::is_directory(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

template <class Check>
void replay(const std::string& target, Check check) {
  auto files = fuzz_inputs(target);
  REQUIRE(!files.empty());  // at least the seed corpus
  testing::TempDir dir;
  for (const auto& file : files) {
    INFO(file.string());
    std::string bytes = testing::read_text(file);
    std::string problem;
    REQUIRE_NOTHROW(problem = check(dir.path(), reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                    bytes.size()));
    CHECK(problem == "");
  }
}

}  // namespace graphrun::fuzz
