// RunOptions::batch_offset: a run over rows [k, k + m) of a batch draws, row for row, what a run
// over the whole batch draws there, so a data-parallel step's parts see one process's noise.
// Rows of 5 values put the slices at odd element offsets, inside a draw shared by 2 or 4 elements.
#include "graph/run_helpers.hpp"

#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>

namespace graphrun {
namespace {

using testing::run_values;

TEST_CASE("random ops with a batch offset draw the rows of the whole batch", "[ops][random]") {
  constexpr std::int64_t kRows = 9, kCols = 5;
  for (int op = 0; op < 3; ++op) {
    Graph g;
    Value x = g.input("x", {kRows, kCols});
    Value y = op == 0 ? random_normal_like(x) : op == 1 ? bernoulli_mask_like(x, 0.5) : random_uniform_like(x);
    ParameterStore whole{{"x", Tensor(DType::f32, {kRows, kCols})}};
    RunOptions run{true, 7, 3};
    const auto all = run_values(g, y, whole, DType::f32, run);
    for (std::int64_t first : {0, 1, 2, 3, 5}) {
      for (std::int64_t rows : {1, 2, 3, 4}) {
        if (first + rows > kRows) continue;
        INFO("op " << op << ", rows " << first << " to " << first + rows);
        ParameterStore part{{"x", Tensor(DType::f32, {rows, kCols})}};
        RunOptions slice = run;
        slice.batch_offset = first;
        const auto got = run_values(g, y, part, DType::f32, slice);
        REQUIRE(got.size() == static_cast<std::size_t>(rows * kCols));
        for (std::size_t i = 0; i < got.size(); ++i)
          CHECK(got[i] == all[static_cast<std::size_t>(first * kCols) + i]);
      }
    }
  }
}

}  // namespace
}  // namespace graphrun
