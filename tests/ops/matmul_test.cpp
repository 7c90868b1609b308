// matmul with each transpose flag, by hand and against a plain triple loop on shapes that split
// into several blocks of rows or of columns.
#include "graph/run_helpers.hpp"
#include "ops/sgemm_libraries.hpp"

#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>

#include <cmath>

namespace graphrun {
namespace {

using testing::make_tensor;
using testing::run_values;
using testing::available_sgemm_libraries;
using testing::SgemmGuard;

TEST_CASE("matmul with all four transpose flags, by hand", "[ops][matmul]") {
  // A = [[1, 2, 3], [4, 5, 6]] (2 x 3), B = [[1, 0], [0, 1], [2, -1]] (3 x 2)
  // A B = [[1 + 6, 2 - 3], [4 + 12, 5 - 6]] = [[7, -1], [16, -1]]
  Graph g;
  Value a = g.input("a", {2, 3});
  Value at = g.input("at", {3, 2});  // A^T stored
  Value b = g.input("b", {3, 2});
  Value bt = g.input("bt", {2, 3});  // B^T stored
  ParameterStore v{{"a", make_tensor({2, 3}, {1, 2, 3, 4, 5, 6})},
                   {"at", make_tensor({3, 2}, {1, 4, 2, 5, 3, 6})},
                   {"b", make_tensor({3, 2}, {1, 0, 0, 1, 2, -1})},
                   {"bt", make_tensor({2, 3}, {1, 0, 2, 0, 1, -1})}};
  std::vector<double> want{7, -1, 16, -1};
  CHECK(run_values(g, matmul(a, b), v) == want);
  CHECK(run_values(g, matmul(at, b, true, false), v) == want);
  CHECK(run_values(g, matmul(a, bt, false, true), v) == want);
  CHECK(run_values(g, matmul(at, bt, true, true), v) == want);
  // B A = [[1, 2, 3], [4, 5, 6], [2 - 4, 4 - 5, 6 - 6]] (3 x 3)
  CHECK(run_values(g, matmul(b, a), v) == std::vector<double>{1, 2, 3, 4, 5, 6, -2, -1, 0});
  CHECK(matmul(at, bt, true, true).shape() == Shape{2, 2});
}

// C = op(A) op(B) with plain loops; A is stored [K, M] when ta, B is stored [N, K] when tb.
std::vector<double> naive(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  std::int64_t m = ta ? a.shape()[1] : a.shape()[0], k = ta ? a.shape()[0] : a.shape()[1];
  std::int64_t n = tb ? b.shape()[0] : b.shape()[1];
  const double* pa = a.data<double>();
  const double* pb = b.data<double>();
  std::vector<double> c(static_cast<std::size_t>(m * n));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (std::int64_t p = 0; p < k; ++p)
        acc += pa[ta ? p * m + i : i * k + p] * pb[tb ? j * k + p : p * n + j];
      c[static_cast<std::size_t>(i * n + j)] = acc;
    }
  return c;
}

Tensor pattern(const Shape& s, double phase) {
  Tensor t(DType::f64, s);
  for (std::int64_t i = 0; i < t.numel(); ++i)
    t.data<double>()[i] = std::sin(0.7 * static_cast<double>(i) + phase);
  return t;
}

// ops/matmul.cpp splits C into blocks of at least 64 rows (or columns, when C is wider than
// tall), more than two only while each does at least 32 MFLOP, each starting on a cache line:
// [250, 800] x [800, 250] (100 MFLOP) is three row blocks, the last shorter (88, 88, 74 in
// float); [100, 700] x [700, 500] (70 MFLOP) is two column blocks (256, 244).
// float32 under each library this machine offers; float64 always takes OpenBLAS.
TEST_CASE("matmul split into row or column blocks matches a triple loop", "[ops][matmul]") {
  struct Case {
    std::int64_t m, k, n;
  };
  SgemmGuard guard;
  for (Case c : {Case{250, 800, 250}, Case{100, 700, 500}})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        DYNAMIC_SECTION(c.m << "x" << c.k << "x" << c.n << " transpose_a " << ta << " transpose_b " << tb) {
          Graph g;
          Shape sa = ta ? Shape{c.k, c.m} : Shape{c.m, c.k};
          Shape sb = tb ? Shape{c.n, c.k} : Shape{c.k, c.n};
          Value a = g.input("a", sa);
          Value b = g.input("b", sb);
          Tensor av = pattern(sa, 0.1), bv = pattern(sb, 0.9);
          auto want = naive(av, bv, ta, tb);
          auto got = run_values(g, matmul(a, b, ta, tb), {{"a", av}, {"b", bv}}, DType::f64);
          testing::check_close(got, want, 1e-11);
          for (SgemmLibrary library : available_sgemm_libraries()) {
            INFO("float32 products from " << sgemm_library_name(library));
            set_sgemm_library(library);
            auto got32 = run_values(g, matmul(a, b, ta, tb), {{"a", av}, {"b", bv}}, DType::f32);
            testing::check_close(got32, want, 1e-3);
          }
        }
      }
}

// The libraries block their sums differently, so a long one ends in different last bits: that
// the choice reaches the kernel, and that nothing else differs.
TEST_CASE("set_sgemm_library switches the library of float32 products", "[ops][matmul]") {
  SgemmGuard guard;
  set_sgemm_library(SgemmLibrary::openblas);
  CHECK(sgemm_library() == SgemmLibrary::openblas);
  if (!sgemm_library_available(SgemmLibrary::onednn)) {
    CHECK_THROWS_WITH(set_sgemm_library(SgemmLibrary::onednn), Catch::Contains("libdnnl2"));
    CHECK(sgemm_library() == SgemmLibrary::openblas);
    return;
  }
  Graph g;
  Value a = g.input("a", {250, 800});
  Value b = g.input("b", {800, 250});
  Tensor av = pattern({250, 800}, 0.1), bv = pattern({800, 250}, 0.9);
  auto openblas = run_values(g, matmul(a, b), {{"a", av}, {"b", bv}});
  set_sgemm_library(SgemmLibrary::onednn);
  CHECK(sgemm_library() == SgemmLibrary::onednn);
  CHECK(std::string(sgemm_library_name(sgemm_library())) == "onednn");
  auto onednn = run_values(g, matmul(a, b), {{"a", av}, {"b", bv}});
  CHECK(onednn != openblas);
  testing::check_close(onednn, openblas, 1e-5);
}

TEST_CASE("matmul with an empty inner or outer dimension", "[ops][matmul]") {
  Graph g;
  Value a = g.input("a", {3, 0});
  Value b = g.input("b", {0, 2});
  // A sum over nothing: zeros.
  CHECK(run_values(g, matmul(a, b), {{"a", Tensor(DType::f32, {3, 0})},
                                     {"b", Tensor(DType::f32, {0, 2})}}) ==
        std::vector<double>(6, 0.0));
  Value c = g.input("c", {3, 4});
  Value d = g.input("d", {4, 0});
  CHECK(matmul(c, d).shape() == Shape{3, 0});
  CHECK(run_values(g, matmul(c, d), {{"c", Tensor(DType::f32, {3, 4})},
                                     {"d", Tensor(DType::f32, {4, 0})}}).empty());
}

TEST_CASE("matmul refuses non-2-D inputs and mismatched inner dimensions", "[ops][matmul]") {
  Graph g;
  Value a = g.input("a", {2, 3});
  CHECK_THROWS_WITH(matmul(a, g.input("v", {3})), Catch::Contains("2-D"));
  CHECK_THROWS_WITH(matmul(a, a), Catch::Contains("inner dimensions differ: 3 vs 2"));
  CHECK(matmul(a, a, false, true).shape() == Shape{2, 2});
  CHECK(matmul(a, a, true, false).shape() == Shape{3, 3});
}

}  // namespace
}  // namespace graphrun
