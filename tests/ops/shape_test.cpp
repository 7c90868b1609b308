// Data movement ops by hand: reshape, transpose, permute, concat, slice and unslice_like.
#include "graph/run_helpers.hpp"

#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>

namespace graphrun {
namespace {

using testing::make_tensor;
using testing::run_values;

// x = [[1, 2, 3], [4, 5, 6]]
struct Mat {
  Graph g;
  Value x = g.input("x", {2, 3});
  ParameterStore v{{"x", make_tensor({2, 3}, {1, 2, 3, 4, 5, 6})}};
  std::vector<double> run(Value y) { return run_values(g, y, v); }
};

TEST_CASE("reshape infers one -1 and keeps the order", "[ops][shape]") {
  Mat m;
  Value r = reshape(m.x, {3, -1});
  CHECK(r.shape() == Shape{3, 2});
  CHECK(m.run(r) == std::vector<double>{1, 2, 3, 4, 5, 6});
  CHECK(reshape(m.x, {-1}).shape() == Shape{6});
  CHECK(reshape(m.x, {1, 2, 1, 3}).shape() == Shape{1, 2, 1, 3});
  CHECK_THROWS_WITH(reshape(m.x, {4, -1}), Catch::Contains("cannot infer"));
  CHECK_THROWS_WITH(reshape(m.x, {-1, -1}), Catch::Contains("at most one"));
  CHECK_THROWS_AS(reshape(m.x, {5}), ShapeError);
  CHECK(m.run(reshape_like(m.x, m.g.input("like", {3, 2}))) == std::vector<double>{1, 2, 3, 4, 5, 6});
}

TEST_CASE("transpose, small and across tiles", "[ops][shape]") {
  Mat m;
  // [[1, 4], [2, 5], [3, 6]]
  CHECK(m.run(transpose(m.x)) == std::vector<double>{1, 4, 2, 5, 3, 6});
  CHECK_THROWS_AS(transpose(m.g.input("v", {3})), ShapeError);
  Graph g;
  const std::int64_t rows = 70, cols = 45;  // more than one 32 x 32 tile each way
  Value x = g.input("x", {rows, cols});
  Tensor xv(DType::f64, {rows, cols});
  for (std::int64_t i = 0; i < rows * cols; ++i) xv.data<double>()[i] = static_cast<double>(i);
  auto t = run_values(g, transpose(x), {{"x", xv}}, DType::f64);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j)
      REQUIRE(t[static_cast<std::size_t>(j * rows + i)] == static_cast<double>(i * cols + j));
}

TEST_CASE("permute reorders the axes of any rank in float32 and float64", "[ops][shape]") {
  Graph g;
  Value x = g.input("x", {2, 3, 4});
  std::vector<double> xv(24);
  for (int i = 0; i < 24; ++i) xv[static_cast<std::size_t>(i)] = i;
  ParameterStore v{{"x", make_tensor({2, 3, 4}, xv)}};
  Value y = permute(x, {2, 0, 1});
  CHECK(y.shape() == Shape{4, 2, 3});
  std::vector<double> want;  // y[k, i, j] = x[i, j, k]
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) want.push_back(i * 12 + j * 4 + k);
  CHECK(run_values(g, y, v, DType::f64) == want);
  CHECK(run_values(g, y, v, DType::f32) == want);
  CHECK(run_values(g, permute(y, {1, 2, 0}), v) == xv);  // the inverse permutation
  CHECK(run_values(g, permute(x, {0, -2, -1}), v) == xv);
  CHECK(permute(g.input("nchw", {5, 3, 7, 9}), {0, 2, 3, 1}).shape() == Shape{5, 7, 9, 3});
  CHECK_THROWS_WITH(permute(x, {0, 1}), Catch::Contains("name 2 axes of a rank-3 input"));
  CHECK_THROWS_WITH(permute(x, {0, 1, 1}), Catch::Contains("appears twice"));
  CHECK_THROWS_AS(permute(x, {0, 1, 3}), ShapeError);
}

TEST_CASE("concat along each axis", "[ops][shape]") {
  Mat m;
  Value y = m.g.input("y", {2, 1});
  Value z = m.g.input("z", {1, 3});
  m.v.emplace("y", make_tensor({2, 1}, {7, 8}));
  m.v.emplace("z", make_tensor({1, 3}, {9, 10, 11}));
  // axis 1: [[1, 2, 3, 7], [4, 5, 6, 8]]
  Value c1 = concat({m.x, y}, 1);
  CHECK(c1.shape() == Shape{2, 4});
  CHECK(m.run(c1) == std::vector<double>{1, 2, 3, 7, 4, 5, 6, 8});
  // axis 0 (given as -2): [[9, 10, 11], [1, 2, 3], [4, 5, 6]]
  Value c0 = concat({z, m.x}, -2);
  CHECK(c0.shape() == Shape{3, 3});
  CHECK(m.run(c0) == std::vector<double>{9, 10, 11, 1, 2, 3, 4, 5, 6});
  CHECK(m.run(concat({m.x}, 0)) == std::vector<double>{1, 2, 3, 4, 5, 6});
  CHECK_THROWS_WITH(concat({m.x, z}, 1), Catch::Contains("does not match"));
  CHECK_THROWS_AS(concat({}, 0), ShapeError);
  CHECK_THROWS_AS(concat({m.x, y}, 2), ShapeError);
}

TEST_CASE("slice and its inverse unslice_like", "[ops][shape]") {
  Mat m;
  // columns 1:3: [[2, 3], [5, 6]]
  CHECK(m.run(slice(m.x, 1, 1, 3)) == std::vector<double>{2, 3, 5, 6});
  // row 1:2: [[4, 5, 6]]
  CHECK(m.run(slice(m.x, 0, 1, 2)) == std::vector<double>{4, 5, 6});
  CHECK(m.run(slice(m.x, -1, 0, 1)) == std::vector<double>{1, 4});
  CHECK(slice(m.x, 1, 2, 2).shape() == Shape{2, 0});
  CHECK_THROWS_WITH(slice(m.x, 1, 2, 4), Catch::Contains("outside dimension"));
  CHECK_THROWS_AS(slice(m.x, 1, 2, 1), ShapeError);
  // [[2, 3], [5, 6]] put back at column 1 of zeros [2, 3]: [[0, 2, 3], [0, 5, 6]]
  Value piece = slice(m.x, 1, 1, 3);
  CHECK(m.run(unslice_like(piece, m.x, 1, 1)) == std::vector<double>{0, 2, 3, 0, 5, 6});
  CHECK_THROWS_AS(unslice_like(piece, m.x, 1, 2), ShapeError);
}

TEST_CASE("slice of a rank-3 tensor along the middle axis", "[ops][shape]") {
  Graph g;
  Value x = g.input("x", {2, 3, 2});
  std::vector<double> xs(12);
  for (std::size_t i = 0; i < 12; ++i) xs[i] = static_cast<double>(i);
  // x[:, 1:3, :] = [[2, 3, 4, 5], [8, 9, 10, 11]]
  CHECK(run_values(g, slice(x, 1, 1, 3), {{"x", make_tensor({2, 3, 2}, xs)}}) ==
        std::vector<double>{2, 3, 4, 5, 8, 9, 10, 11});
}

}  // namespace
}  // namespace graphrun
