// matmul through CBLAS. The BLAS runs single-threaded; rows of the output are split into fixed
// blocks run as TBB tasks, so TBB alone owns the cores and the result does not depend on the
// thread count.
#include <graphrun/ops/kernel_util.hpp>
#include <graphrun/ops/ops.hpp>

#include <cblas.h>

#include <algorithm>

namespace graphrun {
namespace ops {
namespace {

using R = std::vector<Value>;

// The rows of C are split into at most kMaxBlocks blocks of at least kMinRows rows. The split
// depends on the shape alone, so the same gemm calls happen at any thread count. Few, large
// blocks: each gemm call packs all of op(B), so small blocks repeat that work.
constexpr std::int64_t kMinRows = 64;
constexpr std::int64_t kMaxBlocks = 4;

std::int64_t row_block(std::int64_t m) {
  std::int64_t blocks = std::clamp<std::int64_t>(m / kMinRows, 1, kMaxBlocks);
  return (m + blocks - 1) / blocks;
}

Shape matmul_shape(std::span<const Shape> in, const Attrs& attrs) {
  const Shape& a = in[0];
  const Shape& b = in[1];
  if (a.size() != 2 || b.size() != 2) throw ShapeError("matmul needs 2-D inputs");
  bool ta = attrs.i("transpose_a") != 0, tb = attrs.i("transpose_b") != 0;
  std::int64_t m = ta ? a[1] : a[0], ka = ta ? a[0] : a[1];
  std::int64_t kb = tb ? b[1] : b[0], n = tb ? b[0] : b[1];
  if (ka != kb)
    throw ShapeError(fmt::format("inner dimensions differ: {} vs {}", ka, kb));
  return {m, n};
}

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float* c) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), 0.0f, c,
              static_cast<blasint>(n));
}

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const double* a,
          std::int64_t lda, const double* b, std::int64_t ldb, double* c) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), 1.0, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), 0.0, c,
              static_cast<blasint>(n));
}

template <class T>
void matmul_kernel(const KernelArgs<T>& args) {
  bool ta = args.attrs->i("transpose_a") != 0, tb = args.attrs->i("transpose_b") != 0;
  const Shape& sa = args.in_shapes[0];
  const Shape& sb = args.in_shapes[1];
  std::int64_t m = (*args.out_shape)[0], n = (*args.out_shape)[1];
  std::int64_t k = ta ? sa[0] : sa[1];
  const T* a = args.in[0];
  const T* b = args.in[1];
  T* c = args.out;
  if (m == 0 || n == 0) return;  // nothing to write; BLAS would reject ldc = 0
  if (k == 0) {
    std::fill(c, c + m * n, T(0));
    return;
  }
  std::int64_t lda = sa[1], ldb = sb[1];
  std::int64_t block = row_block(m);
  std::int64_t blocks = (m + block - 1) / block;
  parallel_for(blocks, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t blk = lo; blk < hi; ++blk) {
      std::int64_t r0 = blk * block, rows = std::min(block, m - r0);
      // Row r of op(A) starts at A + r*lda untransposed, or at column r (A + r) transposed.
      const T* a_rows = ta ? a + r0 : a + r0 * lda;
      gemm(ta, tb, rows, n, k, a_rows, lda, b, ldb, c + r0 * n);
    }
  });
}

GradRule matmul_grad = [](const GradContext& c) {
  Value a = c.inputs[0], b = c.inputs[1], g = c.grad;
  bool ta = c.attrs.i("transpose_a") != 0, tb = c.attrs.i("transpose_b") != 0;
  auto at = c.where;
  if (!ta && !tb) return R{matmul(g, b, false, true, at), matmul(a, g, true, false, at)};
  if (ta && !tb) return R{matmul(b, g, false, true, at), matmul(a, g, false, false, at)};
  if (!ta && tb) return R{matmul(g, b, false, false, at), matmul(g, a, true, false, at)};
  return R{matmul(b, g, true, true, at), matmul(g, a, true, true, at)};
};

OpDef matmul_def() {
  OpDef d;
  d.name = "matmul";
  d.summary = "C = op(A) op(B), op = transpose when transpose_a / transpose_b is set; "
              "[M, K] x [K, N] -> [M, N]; CBLAS gemm";
  d.arity = 2;
  d.shape = matmul_shape;
  d.f32 = matmul_kernel<float>;
  d.f64 = matmul_kernel<double>;
  d.grad = matmul_grad;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      Shape a = ta ? Shape{4, 3} : Shape{3, 4};
      Shape b = tb ? Shape{5, 4} : Shape{4, 5};
      d.samples.push_back({{a, b}, {{"transpose_a", std::int64_t{ta}}, {"transpose_b", std::int64_t{tb}}}});
    }
  // More rows than one block, so the split into row blocks is checked too.
  d.samples.push_back({{{70, 3}, {3, 2}}, {{"transpose_a", std::int64_t{0}}, {"transpose_b", std::int64_t{0}}}});
  d.samples.push_back({{{3, 70}, {3, 2}}, {{"transpose_a", std::int64_t{1}}, {"transpose_b", std::int64_t{0}}}});
  return d;
}

// The BLAS must not start threads of its own behind TBB's back.
struct SingleThreadedBlas {
  SingleThreadedBlas() { openblas_set_num_threads(1); }
};
const SingleThreadedBlas single_threaded_blas;
const OpRegistration registration(matmul_def());

}  // namespace
}  // namespace ops

Value matmul(Value a, Value b, bool transpose_a, bool transpose_b, Loc at) {
  return a.graph().apply(ops::op("matmul"), {a, b},
                         {{"transpose_a", std::int64_t{transpose_a}},
                          {"transpose_b", std::int64_t{transpose_b}}},
                         at);
}

}  // namespace graphrun
