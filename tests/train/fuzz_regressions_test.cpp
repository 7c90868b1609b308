// Every seed of the fuzz corpora (tests/fuzz/corpus/<target>/) and every input a fuzzer once
// crashed on (tests/fuzz/regressions/<target>/) goes through the same checks as the fuzz targets
// (tests/fuzz/checks.hpp): the parsers must refuse it with their documented exception or accept
// it consistently, never crash. Under GRAPHRUN_SANITIZE this is the fuzzers' finding, replayed.
#include <catch2/catch.hpp>

#include "fuzz/checks.hpp"
#include "fuzz/replay.hpp"
#include "train/temp_dir.hpp"
#include "fuzz/graph_file_check.hpp"
#if __has_include(<graphrun/tools/model_file.hpp>)
#include "fuzz/model_file_check.hpp"
#define GRAPHRUN_HAVE_MODEL_FILE 1
#endif


using graphrun::fuzz::replay;

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
