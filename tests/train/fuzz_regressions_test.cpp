// Every seed of the fuzz corpora (tests/fuzz/corpus/<target>/) and every input a fuzzer once
// crashed on (tests/fuzz/regressions/<target>/) goes through the same checks as the fuzz targets
// (tests/fuzz/checks.hpp): the parsers must refuse it with their documented exception or accept
// it consistently, never crash. Under GRAPHRUN_SANITIZE this is the fuzzers' finding, replayed.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "fuzz/checks.hpp"
#include "train/temp_dir.hpp"
#include "fuzz/graph_file_check.hpp"
#if __has_include(<graphrun/tools/model_file.hpp>)
#include "fuzz/model_file_check.hpp"
#define GRAPHRUN_HAVE_MODEL_FILE 1
#endif

namespace fs = std::filesystem;
using graphrun::testing::read_text;
using graphrun::testing::TempDir;

namespace {

// The files of corpus/<target>/ and regressions/<target>/, in name order.
std::vector<fs::path> fuzz_inputs(const std::string& target) {
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
  TempDir dir;
  for (const auto& file : files) {
    INFO(file.string());
    std::string bytes = read_text(file);
    std::string problem;
    REQUIRE_NOTHROW(problem = check(dir.path(), reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                    bytes.size()));
    CHECK(problem == "");
  }
}

}  // namespace

TEST_CASE("fuzz inputs for IDX are refused cleanly or read consistently", "[fuzz][idx]") {
  replay("fuzz_idx", graphrun::fuzz::check_idx);
}

TEST_CASE("fuzz inputs for safetensors are refused cleanly or round-trip", "[fuzz][safetensors]") {
  replay("fuzz_safetensors", graphrun::fuzz::check_safetensors);
}

TEST_CASE("fuzz inputs for graph files are refused cleanly or read back the same", "[fuzz][graphfile]") {
  replay("fuzz_graph_file", graphrun::fuzz::check_graph_file);
}

#ifdef GRAPHRUN_HAVE_MODEL_FILE
TEST_CASE("fuzz inputs for model files are refused cleanly or round-trip", "[fuzz][tools]") {
  replay("fuzz_model_file", graphrun::fuzz::check_model_file);
}
#endif
