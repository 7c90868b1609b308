// The GEMM limit of one training step: the FLOPs of its matrix products divided by the best
// cblas_sgemm rate measured at exactly those shapes, on this machine, now. A training step
// cannot be faster than this; the ratio epoch time / limit says how much time goes elsewhere.
//
//   gemm_limit [--threads N] [--hidden 400] [--latent 20] [--batch 128] [--features 784]
//              [--samples 60000] [--model vae|ae] [--sgemm openblas|onednn]
//
// Each product is timed two ways and the faster counts: split over N TBB tasks by blocks of rows
// or columns, each calling a single-threaded OpenBLAS, as graphrun does (ops/matmul.cpp); and as
// one call with OpenBLAS's own N threads. Both totals are printed too, and the median time of
// all the products run back to back on operands of their own, as in a step (sequence_over_limit:
// that median over the limit). With --sgemm onednn (built when libdnnl-dev is installed),
// oneDNN's sgemm takes OpenBLAS's place, split only, and OpenBLAS never starts its threads.
//
// fma_peak_gflops is the other ceiling: what N threads of independent FMA chains reach on this
// CPU at the widest vectors it has (fma_probe_isa, chosen at run time), with no memory traffic at
// all. limit_share_of_peak says how close the library already runs to it, so how much any GEMM,
// ours or another library's, could still gain.
#include "fma_rate.hpp"

#include <benchmark/benchmark.h>
#include <cblas.h>
#ifdef GRAPHRUN_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.h>
extern "C" void omp_set_num_threads(int);  // oneDNN's OpenMP runtime (see ops/matmul.cpp)
#endif
#include <fmt/format.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace {

bool use_onednn = false;

void sgemm(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb,
           float* c, int ldc) {
#ifdef GRAPHRUN_WITH_ONEDNN
  if (use_onednn) {
    omp_set_num_threads(1);  // per thread, and these threads run nothing else of OpenMP's
    if (dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc) !=
        dnnl_success) {
      fmt::print(stderr, "dnnl_sgemm failed on {}x{}x{}\n", m, n, k);
      std::exit(1);
    }
    return;
  }
#endif
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k,
              1.0f, a, lda, b, ldb, 0.0f, c, ldc);
}

struct Gemm {
  bool ta, tb;
  int m, n, k;
  double flops() const { return 2.0 * m * n * k; }
};

// The products of one step of an MLP layer stack: forward x W for each layer, and backward
// dW = x^T g for each, dx = g W^T for all but the first layer (its input needs no gradient).
std::vector<Gemm> step_products(const std::vector<int>& widths, int batch) {
  std::vector<Gemm> out;
  for (std::size_t i = 0; i + 1 < widths.size(); ++i) {
    int in = widths[i], o = widths[i + 1];
    out.push_back({false, false, batch, o, in});
    out.push_back({true, false, in, o, batch});
    if (i > 0) out.push_back({false, true, batch, in, o});
  }
  return out;
}

// The executor's split (ops/matmul.cpp): blocks of at least 64 rows, or columns when C has more
// columns than rows; two, or more while each still does at least 32 MFLOP; each block of C
// starting on a 64-byte line.
void run_split(const Gemm& g, const float* a, const float* b, float* c, int threads) {
  bool by_rows = g.n <= g.m;
  int side = by_rows ? g.m : g.n;
  int nblocks = std::clamp(side / 64, 1, std::clamp(static_cast<int>(g.flops() / 32e6), 2, 64));
  int step = by_rows ? 16 / std::gcd(g.n, 16) : 16;
  int block = ((side + nblocks - 1) / nblocks + step - 1) / step * step;
  int blocks = (side + block - 1) / block;
  int lda = g.ta ? g.m : g.k, ldb = g.tb ? g.k : g.n;
  auto one = [&](int blk) {
    int first = blk * block, len = std::min(block, side - first);
    if (by_rows)
      sgemm(g.ta, g.tb, len, g.n, g.k, g.ta ? a + first : a + static_cast<long>(first) * lda, lda, b, ldb,
            c + static_cast<long>(first) * g.n, g.n);
    else
      sgemm(g.ta, g.tb, g.m, len, g.k, a, lda, g.tb ? b + static_cast<long>(first) * ldb : b + first, ldb,
            c + first, g.n);
  };
  if (threads <= 1) {
    for (int i = 0; i < blocks; ++i) one(i);
  } else {
    tbb::parallel_for(0, blocks, one);
  }
}

void run_single(const Gemm& g, const float* a, const float* b, float* c) {
  cblas_sgemm(CblasRowMajor, g.ta ? CblasTrans : CblasNoTrans, g.tb ? CblasTrans : CblasNoTrans, g.m,
              g.n, g.k, 1.0f, a, g.ta ? g.m : g.k, b, g.tb ? g.k : g.n, 0.0f, c, g.n);
}

// The best of `reps` consecutive calls: the limit, not a typical value.
template <class F>
double best_seconds(int reps, F&& f) {
  double best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    benchmark::ClobberMemory();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, hidden = 400, latent = 20, batch = 128, features = 784;
  long samples = 60000;
  std::string model = "vae", library = "openblas";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    auto v = argv[i + 1];
    if (k == "--threads") threads = std::atoi(v);
    else if (k == "--hidden") hidden = std::atoi(v);
    else if (k == "--latent") latent = std::atoi(v);
    else if (k == "--batch") batch = std::atoi(v);
    else if (k == "--features") features = std::atoi(v);
    else if (k == "--samples") samples = std::atol(v);
    else if (k == "--model") model = v;
    else if (k == "--sgemm") library = v;
    else {
      fmt::print(stderr, "unknown option {}\n", k);
      return 2;
    }
  }
  if (library != "openblas" && library != "onednn") {
    fmt::print(stderr, "--sgemm takes openblas or onednn, not {}\n", library);
    return 2;
  }
  use_onednn = library == "onednn";
#ifndef GRAPHRUN_WITH_ONEDNN
  if (use_onednn) {
    fmt::print(stderr, "built without oneDNN: install libdnnl-dev and configure again\n");
    return 2;
  }
#endif
  tbb::global_control control(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  std::vector<Gemm> products;
  if (model == "vae") {
    // Encoder 784-400, two heads 400-20 (mu, logvar), decoder 20-400-784.
    products = step_products({features, hidden}, batch);
    for (int head = 0; head < 2; ++head) {
      products.push_back({false, false, batch, latent, hidden});
      products.push_back({true, false, hidden, latent, batch});
      products.push_back({false, true, batch, hidden, latent});
    }
    auto dec = step_products({latent, hidden, features}, batch);
    dec.push_back({false, true, batch, latent, hidden});  // dz: the decoder input needs a gradient
    products.insert(products.end(), dec.begin(), dec.end());
  } else {
    products = step_products({features, hidden, latent, hidden, features}, batch);
  }
  double flops = 0;
  std::size_t biggest = 0;
  for (const auto& g : products) {
    flops += g.flops();
    biggest = std::max<std::size_t>(biggest, static_cast<std::size_t>(std::max({g.m * g.k, g.k * g.n, g.m * g.n})));
  }
  // 64-byte aligned like the executor's arena, so that blocks of C start on lines as there.
  using Buffer = std::unique_ptr<float, decltype(&std::free)>;
  auto buffer = [](std::size_t n, float value) {
    std::size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    Buffer p(static_cast<float*>(std::aligned_alloc(64, bytes)), &std::free);
    std::fill(p.get(), p.get() + n, value);
    return p;
  };
  auto a = buffer(biggest, 0.5f), b = buffer(biggest, 0.25f), c = buffer(biggest, 0.0f);
  // The same products back to back, each once, on operands of their own and split as the
  // executor splits them: what OpenBLAS itself typically takes for a step's products. The limit is
  // kinder in two ways: its operands stay in cache from call to call, and it adds up each
  // product's best of 100 calls, each caught at a fast moment of a machine whose speed drifts.
  struct Operands {
    Buffer a, b, c;
  };
  std::vector<Operands> own;
  for (const auto& g : products)
    own.push_back({buffer(static_cast<std::size_t>(g.m) * g.k, 0.5f), buffer(static_cast<std::size_t>(g.k) * g.n, 0.25f),
                   buffer(static_cast<std::size_t>(g.m) * g.n, 0.0f)});
  // Ten rounds of 10 consecutive calls per product (100 in all) alternate with ten rounds of 10
  // sequences, so that the limit and the sequence see the same minutes.
  constexpr int kRounds = 10, kPerRound = 10;
  std::vector<double> split(products.size(), 1e30), single(products.size(), 1e30), sequences;
  double peak = 0;  // FMA rate, the best of each round's: the limit, too, is each product's best
  for (int round = 0; round < kRounds; ++round) {
    for (std::size_t i = 0; i < products.size(); ++i) {
      const Gemm& g = products[i];
      openblas_set_num_threads(1);
      split[i] = std::min(split[i], best_seconds(kPerRound, [&] { run_split(g, a.get(), b.get(), c.get(), threads); }));
      if (use_onednn) continue;  // OpenBLAS's own threads would spin beside oneDNN's blocks
      openblas_set_num_threads(threads);
      single[i] = std::min(single[i], best_seconds(kPerRound, [&] { run_single(g, a.get(), b.get(), c.get()); }));
    }
    openblas_set_num_threads(1);
    peak = std::max(peak, fma_rate(threads, 3));
    for (int rep = 0; rep < kPerRound; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      for (std::size_t i = 0; i < products.size(); ++i)
        run_split(products[i], own[i].a.get(), own[i].b.get(), own[i].c.get(), threads);
      benchmark::ClobberMemory();
      sequences.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  double split_total = 0, single_total = 0, best = 0;
  for (std::size_t i = 0; i < products.size(); ++i) {
    split_total += split[i];
    single_total += single[i];
    best += std::min(split[i], single[i]);
  }
  std::nth_element(sequences.begin(), sequences.begin() + sequences.size() / 2, sequences.end());
  double sequence = sequences[sequences.size() / 2];
  long steps = (samples + batch - 1) / batch;
  fmt::print("model {} batch {} threads {} sgemm {}\n", model, batch, threads, library);
  fmt::print("gemm_flops_per_step {:.1f}M\n", flops / 1e6);
  fmt::print("split_step_seconds {:.6f}\n", split_total);
  if (!use_onednn) fmt::print("single_call_step_seconds {:.6f}\n", single_total);
  fmt::print("best_step_seconds {:.6f}\n", best);
  fmt::print("gflops {:.1f}\n", flops / best / 1e9);
  fmt::print("sequence_median_step_seconds {:.6f}\n", sequence);
  fmt::print("sequence_over_limit {:.3f}\n", sequence / best);
  fmt::print("epoch_limit_seconds {:.3f}\n", best * static_cast<double>(steps));
  if (peak > 0) {
    fmt::print("fma_peak_gflops {:.1f}\n", peak / 1e9);
    fmt::print("fma_probe_isa {}\n", fma_probe::isa());
    fmt::print("limit_share_of_peak {:.3f}\n", flops / best / peak);
  }
  return 0;
}
