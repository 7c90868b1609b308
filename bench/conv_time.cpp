// The conv VAE's convolutions (issue 22) at batch 128, float32, kernel by kernel: each layer's
// forward and its two backward products, and im2col / col2im on their own, at 1 and 2 threads.
// Medians of --reps runs after one warm-up, with the rate in GFLOP/s (2 multiply-adds per
// product term, the padding's zeros included as im2col computes them).
//
//   build/bench/conv_time [--reps 21] [--threads 1,2]
#include <graphrun/graph/parallel.hpp>
#include <graphrun/ops/conv_kernels.hpp>

#include <cblas.h>

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

double median_ms(int reps, const std::function<void()>& f) {
  f();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    auto start = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  std::nth_element(t.begin(), t.begin() + reps / 2, t.end());
  return t[static_cast<std::size_t>(reps / 2)];
}

std::vector<float> filled(std::int64_t n, float phase) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.37f * static_cast<float>(i) + phase);
  return v;
}

void run(const std::vector<Layer>& layers, int threads, int reps) {
  graphrun::set_num_threads(threads);
  fmt::print("{} thread{}: median ms (GFLOP/s)\n", threads, threads > 1 ? "s" : "");
  fmt::print("{:<24}{:>17}{:>17}{:>17}{:>10}{:>10}{:>9}\n", "layer", "forward", "backward in",
             "backward w", "im2col", "col2im", "step");
  double total = 0;
  for (const Layer& l : layers) {
    const ConvGeometry& g = l.g;
    auto x = filled(g.n * g.image(), 0.1f), w = filled(g.f * g.k(), 0.2f);
    auto y = filled(g.n * g.f * g.p(), 0.3f), dx = x, dw = w;
    double gflop = 2.0 * static_cast<double>(g.n * g.f * g.k() * g.p()) * 1e-9;
    double conv_ms = median_ms(reps, [&] { graphrun::ops::conv2d_forward(g, x.data(), w.data(), y.data()); });
    double data_ms = median_ms(reps, [&] { graphrun::ops::conv2d_backward_data(g, y.data(), w.data(), dx.data()); });
    double weight_ms = median_ms(reps, [&] { graphrun::ops::conv2d_backward_weight(g, x.data(), y.data(), dw.data()); });
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
  fmt::print("{:<24}{:>96.2f}\n\n", "all five layers", total);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 21;
  std::vector<int> threads{1, 2};
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string key = argv[i];
    if (key == "--reps") {
      reps = std::max(1, std::atoi(argv[i + 1]));
    } else if (key == "--threads") {
      threads.clear();
      for (const char* p = argv[i + 1]; *p;) {
        threads.push_back(std::atoi(p));
        while (*p && *p != ',') ++p;
        if (*p == ',') ++p;
      }
    } else {
      fmt::print(stderr, "usage: conv_time [--reps N] [--threads 1,2]\n");
      return 2;
    }
  }
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
  for (int t : threads) run(layers, t, reps);
  return 0;
}
