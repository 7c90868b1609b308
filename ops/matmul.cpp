// matmul through CBLAS, or oneDNN's sgemm for float32 when chosen. The library runs
// single-threaded; the output is split into fixed blocks of rows or columns run as TBB tasks, so
// TBB alone owns the cores and the result does not depend on the thread count.
#include <graphrun/ops/gemm.hpp>
#include <graphrun/ops/kernel_util.hpp>
#include <graphrun/ops/ops.hpp>

#include <cblas.h>
#include <dlfcn.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <numeric>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace graphrun {
namespace ops {
namespace {

using R = std::vector<Value>;

// C is split into blocks of at least kMinSide rows or columns: two, or more when each block still
// does at least kMinBlockFlops of work (about 0.3 ms for one core here). The split depends on the
// shape alone, so the same gemm calls happen at any thread count. Splitting has a price: each
// gemm call packs all of the operand it is not split along, and runs on a narrower block. On the
// VAE's 80 MFLOP products at one thread, 4 blocks cost 5 to 14% over one call, 2 blocks 0.5 to
// 11%. Small products still take two blocks: in an autoencoder's narrow middle nothing else can
// run beside them. The split runs along the side whose repeated packing is cheaper: rows of C
// repack op(B) (K x N), columns repack op(A) (M x K).
//
// Each block of C starts on a cache line of its own (the arena aligns every buffer to 64 bytes).
// When two threads write the two halves of one line, the line moves between their caches on every
// store: splitting 400 columns at 200 (mid-line) made the VAE's products of depth 20 and 128 with
// 400 columns 27 to 64% slower at 2 threads than splitting them at 208.
constexpr std::int64_t kMinSide = 64;
constexpr double kMinBlockFlops = 32e6;
constexpr std::int64_t kMaxBlocks = 64;

struct Split {
  bool by_rows;
  std::int64_t block, blocks;
};

// `line` is the number of elements in one cache line.
Split split_of(std::int64_t m, std::int64_t n, std::int64_t k, std::int64_t line) {
  bool by_rows = n <= m;
  std::int64_t side = by_rows ? m : n;
  auto by_work = static_cast<std::int64_t>(2.0 * static_cast<double>(m) * static_cast<double>(n) *
                                           static_cast<double>(k) / kMinBlockFlops);
  std::int64_t most = std::clamp<std::int64_t>(by_work, 2, kMaxBlocks);
  std::int64_t blocks = std::clamp<std::int64_t>(side / kMinSide, 1, most);
  // A block of rows starts on a line when its first element, first * n, is a multiple of `line`.
  std::int64_t step = by_rows ? line / std::gcd(n, line) : line;
  std::int64_t block = ((side + blocks - 1) / blocks + step - 1) / step * step;
  return {by_rows, block, (side + block - 1) / block};
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

std::atomic<SgemmLibrary> chosen_sgemm{SgemmLibrary::openblas};

// oneDNN is opened when first asked for, not linked: linking it loads its OpenMP runtime
// (libgomp) into every process, which then pins the main thread to one CPU at start-up when
// OMP_PROC_BIND or OMP_PLACES is set (so TBB sees one core), and adds about 3 MiB to runs that
// never use it. Its C API has kept dnnl_sgemm's signature from version 2 to 3.
struct OneDnn {
  int (*sgemm)(char, char, std::int64_t, std::int64_t, std::int64_t, float, const float*,
               std::int64_t, const float*, std::int64_t, float, float*, std::int64_t) = nullptr;
  // Debian builds oneDNN on OpenMP; a build on another runtime lacks these, and needs neither.
  int (*omp_get_max_threads)() = nullptr;
  void (*omp_set_num_threads)(int) = nullptr;
  std::string error;  // why it is unavailable
};

const OneDnn& onednn() {
  static const OneDnn loaded = [] {
    OneDnn d;
    cpu_set_t cpus;
    bool pinned = sched_getaffinity(0, sizeof cpus, &cpus) == 0;
    void* lib = nullptr;
    for (const char* name : {"libdnnl.so.3", "libdnnl.so.2"})
      if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
    if (pinned) sched_setaffinity(0, sizeof cpus, &cpus);  // undo OMP_PROC_BIND's pinning
    if (!lib) {
      d.error = fmt::format("oneDNN could not be loaded ({}); install Debian's libdnnl2", dlerror());
      return d;
    }
    // dlsym on the handle also searches what it loaded: the OpenMP runtime.
    auto find = [&](auto& f, const char* name) {
      f = reinterpret_cast<std::remove_reference_t<decltype(f)>>(dlsym(lib, name));
    };
    find(d.sgemm, "dnnl_sgemm");
    find(d.omp_get_max_threads, "omp_get_max_threads");
    find(d.omp_set_num_threads, "omp_set_num_threads");
    if (!d.sgemm) d.error = "the oneDNN library found has no dnnl_sgemm";
    return d;
  }();
  return loaded;
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
  Split split = split_of(m, n, k, static_cast<std::int64_t>(kAlignment / sizeof(T)));
  parallel_for(split.blocks, 1, [&](std::int64_t lo, std::int64_t hi) {
    for (std::int64_t blk = lo; blk < hi; ++blk) {
      std::int64_t first = blk * split.block;
      if (split.by_rows) {
        // Row r of op(A) starts at A + r*lda untransposed, or at column r (A + r) transposed.
        std::int64_t rows = std::min(split.block, m - first);
        gemm(ta, tb, rows, n, k, ta ? a + first : a + first * lda, lda, b, ldb, T(0), c + first * n, n);
      } else {
        // Column j of op(B) starts at B + j untransposed, or at row j (B + j*ldb) transposed.
        std::int64_t cols = std::min(split.block, n - first);
        gemm(ta, tb, m, cols, k, a, lda, tb ? b + first * ldb : b + first, ldb, T(0), c + first, n);
      }
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
              "[M, K] x [K, N] -> [M, N]; BLAS gemm";
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
  // More rows, or more columns, than one block of 64, so both splits are checked at every
  // transpose.
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      Attrs t{{"transpose_a", std::int64_t{ta}}, {"transpose_b", std::int64_t{tb}}};
      d.samples.push_back({{ta ? Shape{3, 130} : Shape{130, 3}, tb ? Shape{2, 3} : Shape{3, 2}}, t});
      d.samples.push_back({{ta ? Shape{3, 2} : Shape{2, 3}, tb ? Shape{130, 3} : Shape{3, 130}}, t});
    }
  return d;
}

}  // namespace

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
          std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  if (chosen_sgemm.load(std::memory_order_relaxed) == SgemmLibrary::onednn) {
    const OneDnn& d = onednn();
    // oneDNN sizes its OpenMP team by the calling thread's setting, which defaults to one thread
    // per core: from two TBB workers that would be four threads on two cores. The setting is
    // per thread, so it is lowered for this call only and the caller's own OpenMP is untouched.
    int threads = d.omp_get_max_threads && d.omp_set_num_threads ? d.omp_get_max_threads() : 1;
    if (threads != 1) d.omp_set_num_threads(1);
    int status = d.sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
    if (threads != 1) d.omp_set_num_threads(threads);
    if (status != 0)  // dnnl_success
      throw std::runtime_error(fmt::format("oneDNN's sgemm failed with status {} on a [{}, {}] x "
                                           "[{}, {}] block of a product",
                                           status, m, k, k, n));
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, const double* a,
          std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c,
          std::int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), 1.0, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

}  // namespace ops
}  // namespace graphrun

// OpenBLAS's pthread build (Debian's default) stops its worker threads here; its other builds
// lack the symbol, hence weak.
extern "C" void blas_thread_shutdown_() __attribute__((weak));

namespace graphrun {
namespace ops {
namespace {

// The BLAS must not start threads of its own behind TBB's back. Limiting it to one thread is not
// enough: the pool it started when it loaded keeps spinning on sched_yield (4% of a 1-thread
// VAE epoch in perf, and a core's worth of competition for TBB's second worker), so it is shut
// down. The pool is restarted only for multi-threaded calls, which never happen after this.
struct SingleThreadedBlas {
  SingleThreadedBlas() {
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_) blas_thread_shutdown_();
  }
};
const SingleThreadedBlas single_threaded_blas;
const OpRegistration registration(with_attributes(
    matmul_def(), {{"transpose_a", std::int64_t{0}}, {"transpose_b", std::int64_t{0}}}));

}  // namespace
}  // namespace ops

bool sgemm_library_available(SgemmLibrary library) {
  return library == SgemmLibrary::openblas || ops::onednn().error.empty();
}

void set_sgemm_library(SgemmLibrary library) {
  if (!sgemm_library_available(library)) throw std::invalid_argument(ops::onednn().error);
  ops::chosen_sgemm.store(library);
}

SgemmLibrary sgemm_library() { return ops::chosen_sgemm.load(); }

const char* sgemm_library_name(SgemmLibrary library) {
  return library == SgemmLibrary::onednn ? "onednn" : "openblas";
}

Value matmul(Value a, Value b, bool transpose_a, bool transpose_b, Loc at) {
  return a.graph().apply(ops::op("matmul"), {a, b},
                         {{"transpose_a", std::int64_t{transpose_a}},
                          {"transpose_b", std::int64_t{transpose_b}}},
                         at);
}

}  // namespace graphrun
