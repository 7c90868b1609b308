// The GEMM limit of one training step: the FLOPs of its matrix products divided by the best
// cblas_sgemm rate measured at exactly those shapes, on this machine, now. A training step
// cannot be faster than this; the ratio epoch time / limit says how much time goes elsewhere.
//
//   gemm_limit [--threads N] [--hidden 400] [--latent 20] [--batch 128] [--features 784]
//              [--samples 60000] [--model vae|ae]
//
// With N threads the products are split over N TBB tasks by rows of the output, each calling a
// single-threaded OpenBLAS, as graphrun does; with OpenBLAS's own threads instead, set
// --blas-threads N.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <fmt/format.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

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

void run_one(const Gemm& g, const float* a, const float* b, float* c, int threads) {
  // The executor's split (ops/matmul.cpp): at most 4 blocks of at least 64 rows.
  int nblocks = std::clamp(g.m / 64, 1, 4);
  int kRowBlock = (g.m + nblocks - 1) / nblocks;
  int blocks = (g.m + kRowBlock - 1) / kRowBlock;
  int lda = g.ta ? g.m : g.k, ldb = g.tb ? g.k : g.n;
  auto block = [&](int blk) {
    int r0 = blk * kRowBlock, rows = std::min(kRowBlock, g.m - r0);
    const float* ar = g.ta ? a + r0 : a + static_cast<long>(r0) * lda;
    cblas_sgemm(CblasRowMajor, g.ta ? CblasTrans : CblasNoTrans, g.tb ? CblasTrans : CblasNoTrans,
                rows, g.n, g.k, 1.0f, ar, lda, b, ldb, 0.0f, c + static_cast<long>(r0) * g.n, g.n);
  };
  if (threads <= 1) {
    for (int i = 0; i < blocks; ++i) block(i);
  } else {
    tbb::parallel_for(0, blocks, block);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, blas_threads = 1, hidden = 400, latent = 20, batch = 128, features = 784;
  long samples = 60000;
  std::string model = "vae";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    auto v = argv[i + 1];
    if (k == "--threads") threads = std::atoi(v);
    else if (k == "--blas-threads") blas_threads = std::atoi(v);
    else if (k == "--hidden") hidden = std::atoi(v);
    else if (k == "--latent") latent = std::atoi(v);
    else if (k == "--batch") batch = std::atoi(v);
    else if (k == "--features") features = std::atoi(v);
    else if (k == "--samples") samples = std::atol(v);
    else if (k == "--model") model = v;
    else {
      fmt::print(stderr, "unknown option {}\n", k);
      return 2;
    }
  }
  openblas_set_num_threads(blas_threads);
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
  std::vector<float> a(biggest, 0.5f), b(biggest, 0.25f), c(biggest);
  // The best of many repetitions of the whole step's products: the limit, not a typical value.
  double best = 1e30;
  for (int rep = 0; rep < 200; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    for (const auto& g : products) run_one(g, a.data(), b.data(), c.data(), threads);
    benchmark::ClobberMemory();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  long steps = (samples + batch - 1) / batch;
  fmt::print("model {} batch {} threads {} blas_threads {}\n", model, batch, threads, blas_threads);
  fmt::print("gemm_flops_per_step {:.1f}M\n", flops / 1e6);
  fmt::print("best_step_seconds {:.6f}\n", best);
  fmt::print("gflops {:.1f}\n", flops / best / 1e9);
  fmt::print("epoch_limit_seconds {:.3f}\n", best * static_cast<double>(steps));
  return 0;
}
