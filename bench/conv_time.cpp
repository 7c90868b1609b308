// The conv VAE's convolutions (issue 22) at batch 128, float32, kernel by kernel: each layer's
// forward and its two backward products, and im2col / col2im on their own, at 1 and 2 threads,
// on im2col + sgemm and on tap products.
// Medians of --reps runs after one warm-up, with the rate in GFLOP/s (2 multiply-adds per
// product term, the padding's zeros included as im2col computes them).
//
// Then the conv FLOP limit of a training step, as gemm_limit gives the MLP's: each kernel the
// step runs at its best of the --reps runs (the first conv's input gradient is not run: its input
// is the data), plus the dense layers' products (3136 -> 256, the heads, 20 -> 3136: forward,
// weight and input gradients) at their best cblas_sgemm time, split over the threads by rows
// as graphrun does or as one call on OpenBLAS's own threads, whichever is faster. No step can be
// faster; epoch_limit_seconds is that step times 469 (60k images in batches of 128), and
// limit_share_of_peak its FLOP rate over the FMA peak of the cores (bench/fma_rate.hpp).
//
//   build/bench/conv_time [--reps 21] [--threads 1,2]
#include <graphrun/graph/parallel.hpp>
#include <graphrun/ops/conv_kernels.hpp>

#include <cblas.h>

#include "args.hpp"
#include "fma_rate.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

using graphrun::ops::ConvGeometry;

struct Layer {
  const char* name;
  bool transposed;  // runs the conv2d below backwards: its forward is conv2d's input gradient
  ConvGeometry g;   // the conv2d seen from its image side
};

// conv2d over `c` x h x w images with f filters of 3x3; stride s, padding 1.
ConvGeometry conv(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t f, std::int64_t s) {
  ConvGeometry g;
  g.n = n, g.c = c, g.h = h, g.w = h, g.f = f, g.kh = 3, g.kw = 3;
  g.stride = {s, s}, g.padding = {1, 1}, g.dilation = {1, 1};
  g.oh = graphrun::ops::window_count(h, 3, s, 1, 1);
  g.ow = g.oh;
  return g;
}

std::vector<Layer> vae_layers(std::int64_t n) {
  // A transposed conv from F to C channels is the input gradient of a conv2d from C to F over
  // its output: 64x7x7 -> 64x14x14 is conv2d(64 -> 64) on 14x14 with stride 2.
  return {{"conv 1->32 28x28 s2", false, conv(n, 1, 28, 32, 2)},
          {"conv 32->64 14x14 s2", false, conv(n, 32, 14, 64, 2)},
          {"tconv 64->64 7x7 s2", true, conv(n, 64, 14, 64, 2)},
          {"tconv 64->32 14x14 s2", true, conv(n, 32, 28, 64, 2)},
          {"tconv 32->1 28x28 s1", true, conv(n, 1, 28, 32, 1)}};
}

std::vector<float> filled(std::int64_t n, float phase) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.37f * static_cast<float>(i) + phase);
  return v;
}

struct Gemm {
  bool ta, tb;
  int m, n, k;
};

// The dense layers' products in one step at batch n: 3136 -> 256 (its input gradient feeds the
// convolutions), the mu and log-variance heads 256 -> 20, and 20 -> 3136 of the decoder.
std::vector<Gemm> dense_products(int n) {
  std::vector<Gemm> out;
  auto layer = [&](int in, int o, bool input_grad) {
    out.push_back({false, false, n, o, in});  // y = x W
    out.push_back({true, false, in, o, n});   // dW = x^T dy
    if (input_grad) out.push_back({false, true, n, in, o});  // dx = dy W^T
  };
  layer(3136, 256, true);
  layer(256, 20, true);
  layer(256, 20, true);
  layer(20, 3136, true);
  return out;
}

// The best time of one product, split over `threads` tasks by blocks of rows (each a
// single-threaded OpenBLAS call) or one call on OpenBLAS's own threads.
double best_gemm_ms(const Gemm& g, int threads, int reps) {
  auto a = filled(static_cast<std::int64_t>(g.m) * g.k, 0.1f), b = filled(static_cast<std::int64_t>(g.k) * g.n, 0.2f);
  std::vector<float> c(static_cast<std::size_t>(g.m) * g.n);
  int lda = g.ta ? g.m : g.k, ldb = g.tb ? g.k : g.n;
  auto call = [&](int row0, int rows) {
    const float* pa = g.ta ? a.data() + row0 : a.data() + static_cast<std::size_t>(row0) * lda;
    cblas_sgemm(CblasRowMajor, g.ta ? CblasTrans : CblasNoTrans, g.tb ? CblasTrans : CblasNoTrans, rows,
                g.n, g.k, 1.0f, pa, lda, b.data(), ldb, 0.0f, c.data() + static_cast<std::size_t>(row0) * g.n, g.n);
  };
  openblas_set_num_threads(1);
  double split = times_ms(reps, [&] {
    int parts = std::max(1, std::min(threads, g.m / 64));
    graphrun::parallel_for(parts, 1, [&](std::int64_t first, std::int64_t last) {
      for (auto p = static_cast<int>(first); p < last; ++p) {
        int r0 = g.m * p / parts, r1 = g.m * (p + 1) / parts;
        call(r0, r1 - r0);
      }
    });
  }).best;
  openblas_set_num_threads(threads);
  double single = times_ms(reps, [&] { call(0, g.m); }).best;
  openblas_set_num_threads(1);
  return std::min(split, single);
}

void run(const std::vector<Layer>& layers, int threads, int reps) {
  graphrun::set_num_threads(threads);
  fmt::print("{} thread{}: median ms (GFLOP/s)\n", threads, threads > 1 ? "s" : "");
  fmt::print("{:<24}{:>17}{:>17}{:>17}{:>10}{:>10}{:>9}\n", "layer", "forward", "backward in",
             "backward w", "im2col", "col2im", "step");
  double total = 0, best_total = 0, flops = 0;
  bool first = true;
  for (const Layer& l : layers) {
    const ConvGeometry& g = l.g;
    auto x = filled(g.n * g.image(), 0.1f), w = filled(g.f * g.k(), 0.2f);
    auto y = filled(g.n * g.f * g.p(), 0.3f), dx = x, dw = w;
    double gflop = 2.0 * static_cast<double>(g.n * g.f * g.k() * g.p()) * 1e-9;
    Times conv_t = times_ms(reps, [&] { graphrun::ops::conv2d_forward(g, x.data(), w.data(), y.data()); });
    Times data_t = times_ms(reps, [&] { graphrun::ops::conv2d_backward_data(g, y.data(), w.data(), dx.data()); });
    Times weight_t = times_ms(reps, [&] { graphrun::ops::conv2d_backward_weight(g, x.data(), y.data(), dw.data()); });
    double conv_ms = conv_t.median, data_ms = data_t.median, weight_ms = weight_t.median;
    // The step's kernels at their best; the data's own gradient is never computed.
    bool data_grad = l.transposed || !first;
    best_total += conv_t.best + weight_t.best + (data_grad ? data_t.best : 0);
    flops += gflop * 1e9 * (data_grad ? 3 : 2);
    first = false;
    // On their own, one thread, the whole batch in blocks of 8 images.
    std::int64_t block = 8;
    std::vector<float> col(static_cast<std::size_t>(g.k() * block * g.p()));
    double im2col_ms = median_ms(reps, [&] {
      for (std::int64_t m = 0; m < g.n; m += block)
        graphrun::ops::im2col(g, x.data() + m * g.image(), std::min(block, g.n - m), 0, g.c, col.data());
    });
    double col2im_ms = median_ms(reps, [&] {
      for (std::int64_t m = 0; m < g.n; m += block)
        graphrun::ops::col2im(g, col.data(), std::min(block, g.n - m), dx.data() + m * g.image());
    });
    // A transposed layer's forward is conv2d's input gradient, its input gradient conv2d.
    double fwd = l.transposed ? data_ms : conv_ms, bwd_in = l.transposed ? conv_ms : data_ms;
    auto cell = [&](double ms) { return fmt::format("{:.2f} ({:.0f})", ms, gflop / ms * 1e3); };
    double step = fwd + bwd_in + weight_ms;
    total += step;
    fmt::print("{:<24}{:>17}{:>17}{:>17}{:>10.2f}{:>10.2f}{:>9.2f}\n", l.name, cell(fwd),
               cell(bwd_in), cell(weight_ms), im2col_ms, col2im_ms, step);
  }
  fmt::print("{:<24}{:>96.2f}\n", "all five layers", total);
  double dense_ms = 0;
  for (const Gemm& p : dense_products(static_cast<int>(layers.front().g.n))) {
    dense_ms += best_gemm_ms(p, threads, reps);
    flops += 2.0 * p.m * p.n * p.k;
  }
  double step_ms = best_total + dense_ms, peak = fma_rate(threads, 3);
  fmt::print("limit at {} thread(s): convolutions {:.2f} ms + dense products {:.2f} ms = {:.2f} ms a step, "
             "{:.1f} GFLOP\n", threads, best_total, dense_ms, step_ms, flops * 1e-9);
  fmt::print("epoch_limit_seconds {} {:.3f}\n", threads, step_ms * 469 * 1e-3);
  if (peak > 0)
    fmt::print("limit_share_of_peak {} {:.3f} (FMA peak {:.1f} GFLOP/s, {})\n", threads,
               flops / (step_ms * 1e-3) / peak, peak * 1e-9, fma_probe::isa());
  fmt::print("\n");
}

}  // namespace

int main(int argc, char** argv) {
  const BenchArgs args = parse_bench_args(argc, argv, "conv_time");
  const int reps = args.reps;
  const std::vector<int>& threads = args.threads;
  // How much of a core this run gets: a plain 512^3 product on one thread, the rate the
  // convolutions' products could at best approach (the machine may be shared).
  graphrun::set_num_threads(1);
  auto a = filled(512 * 512, 0.5f), b = filled(512 * 512, 0.6f), c = a;
  double gemm_ms = median_ms(reps, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 512, 512, 512, 1.0f, a.data(), 512,
                b.data(), 512, 0.0f, c.data(), 512);
  });
  fmt::print("sgemm 512^3 on one thread: {:.2f} ms, {:.0f} GFLOP/s\n\n", gemm_ms,
             2.0 * 512 * 512 * 512 / gemm_ms * 1e-6);
  auto layers = vae_layers(128);
  // The kernels float32 convolutions ran on before tap products, then the ones they run on now:
  // the last limit printed is graphrun's (bench/compare.sh reads it).
  for (int t : threads)
    for (bool taps : {false, true}) {
      graphrun::ops::set_conv_tap_products(taps);
      fmt::print("{}\n", taps ? "tap products (ops/tap_product.hpp, graphrun's default)" : "im2col + sgemm");
      run(layers, t, reps);
    }
  return 0;
}
