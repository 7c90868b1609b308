// oneDNN's convolution primitives (Debian's libdnnl, the library PyTorch's CPU convolutions run
// on) at the conv VAE's five layers, batch 128, float32: the bar issue 22 names for graphrun's own
// im2col + sgemm kernels. The same columns as bench/conv_time, so the two print side by side:
// each layer seen as a conv2d from its image side, its forward, input gradient and weight
// gradient, median ms (GFLOP/s) of --reps runs after a warm-up.
//
// Two layouts: `nchw`, the plain layout graphrun's tensors have (what a drop-in kernel would get),
// and `any`, oneDNN's own blocked layouts with the reorders to and from them left out (its best
// case, which a framework gets only by keeping every tensor blocked). Threads are OpenMP's.
//
//   build/bench/conv_onednn [--reps 21] [--threads 1,2]
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include "args.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

void check(dnnl_status_t s, const char* what) {
  if (s != dnnl_success) throw std::runtime_error(fmt::format("oneDNN: {} failed ({})", what, static_cast<int>(s)));
}

struct Layer {
  const char* name;
  bool transposed;  // its forward is the conv2d's input gradient
  dnnl_dim_t c, h, f, stride;  // conv2d over c x h x h images, f filters of 3x3, padding 1
};

// One primitive with its memories, created from the descriptor the primitive chose.
struct Bound {
  dnnl_primitive_t prim = nullptr;
  std::vector<dnnl_exec_arg_t> args;
  std::vector<dnnl_memory_t> mems;
  std::string impl;
};

Bound bind(dnnl_engine_t eng, dnnl_primitive_desc_t pd, const std::vector<std::pair<int, dnnl_query_t>>& roles) {
  Bound b;
  check(dnnl_primitive_create(&b.prim, pd), "primitive_create");
  const char* impl = nullptr;
  dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
  b.impl = impl ? impl : "?";
  for (auto [arg, query] : roles) {
    const dnnl_memory_desc_t* md = dnnl_primitive_desc_query_md(pd, query, 0);
    dnnl_memory_t m;
    check(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE), "memory_create");
    // Fill with something that is not zero (denormal-free, bounded).
    void* p = nullptr;
    dnnl_memory_get_data_handle(m, &p);
    auto* fp = static_cast<float*>(p);
    std::size_t n = dnnl_memory_desc_get_size(md) / sizeof(float);
    for (std::size_t i = 0; i < n; ++i) fp[i] = std::sin(0.37f * static_cast<float>(i));
    b.mems.push_back(m);
    b.args.push_back({arg, m});
  }
  const dnnl_memory_desc_t* scratch = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  if (scratch && dnnl_memory_desc_get_size(scratch) > 0) {
    dnnl_memory_t m;
    check(dnnl_memory_create(&m, scratch, eng, DNNL_MEMORY_ALLOCATE), "memory_create");
    b.mems.push_back(m);
    b.args.push_back({DNNL_ARG_SCRATCHPAD, m});
  }
  return b;
}

void release(Bound& b) {
  for (auto m : b.mems) dnnl_memory_destroy(m);
  dnnl_primitive_destroy(b.prim);
}

void run(dnnl_engine_t eng, dnnl_stream_t stream, const std::vector<Layer>& layers, bool any, int threads, int reps) {
  omp_set_num_threads(threads);
  fmt::print("oneDNN {} layouts, {} thread{}: median ms (GFLOP/s)\n", any ? "own (any)" : "nchw", threads,
             threads > 1 ? "s" : "");
  fmt::print("{:<24}{:>17}{:>17}{:>17}{:>9}   forward kernel\n", "layer", "forward", "backward in", "backward w", "step");
  double total = 0;
  const dnnl_dim_t n = 128;
  for (const Layer& l : layers) {
    dnnl_dim_t oh = (l.h + 2 - 3) / l.stride + 1;
    dnnl_dims_t src_dims = {n, l.c, l.h, l.h}, w_dims = {l.f, l.c, 3, 3}, dst_dims = {n, l.f, oh, oh};
    dnnl_dims_t strides = {l.stride, l.stride}, pad = {1, 1};
    // Padding on the right so the output size matches the formula exactly.
    dnnl_dims_t pad_r = {(oh - 1) * l.stride + 3 - l.h - 1, (oh - 1) * l.stride + 3 - l.h - 1};
    dnnl_memory_desc_t src, w, dst;
    check(dnnl_memory_desc_init_by_tag(&src, 4, src_dims, dnnl_f32, any ? dnnl_format_tag_any : dnnl_nchw), "md");
    check(dnnl_memory_desc_init_by_tag(&w, 4, w_dims, dnnl_f32, any ? dnnl_format_tag_any : dnnl_oihw), "md");
    check(dnnl_memory_desc_init_by_tag(&dst, 4, dst_dims, dnnl_f32, any ? dnnl_format_tag_any : dnnl_nchw), "md");

    dnnl_convolution_desc_t fd, bd, wd;
    check(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, &src, &w, nullptr,
                                             &dst, strides, pad, pad_r), "forward desc");
    dnnl_primitive_desc_t fpd, bpd, wpd;
    check(dnnl_primitive_desc_create(&fpd, &fd, nullptr, eng, nullptr), "forward pd");
    check(dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &src, &w, &dst, strides, pad, pad_r),
          "backward data desc");
    check(dnnl_primitive_desc_create(&bpd, &bd, nullptr, eng, fpd), "backward data pd");
    check(dnnl_convolution_backward_weights_desc_init(&wd, dnnl_convolution_direct, &src, &w, nullptr, &dst, strides,
                                                      pad, pad_r), "backward weights desc");
    check(dnnl_primitive_desc_create(&wpd, &wd, nullptr, eng, fpd), "backward weights pd");

    Bound fwd = bind(eng, fpd, {{DNNL_ARG_SRC, dnnl_query_src_md}, {DNNL_ARG_WEIGHTS, dnnl_query_weights_md},
                                {DNNL_ARG_DST, dnnl_query_dst_md}});
    Bound bwd = bind(eng, bpd, {{DNNL_ARG_DIFF_SRC, dnnl_query_diff_src_md}, {DNNL_ARG_WEIGHTS, dnnl_query_weights_md},
                                {DNNL_ARG_DIFF_DST, dnnl_query_diff_dst_md}});
    Bound wgt = bind(eng, wpd, {{DNNL_ARG_SRC, dnnl_query_src_md}, {DNNL_ARG_DIFF_WEIGHTS, dnnl_query_diff_weights_md},
                                {DNNL_ARG_DIFF_DST, dnnl_query_diff_dst_md}});
    auto exec = [&](Bound& b) {
      check(dnnl_primitive_execute(b.prim, stream, static_cast<int>(b.args.size()), b.args.data()), "execute");
      check(dnnl_stream_wait(stream), "wait");
    };
    double f_ms = median_ms(reps, [&] { exec(fwd); });
    double b_ms = median_ms(reps, [&] { exec(bwd); });
    double w_ms = median_ms(reps, [&] { exec(wgt); });
    double gflop = 2.0 * static_cast<double>(n * l.f * l.c * 9 * oh * oh) * 1e-9;
    double fwd_ms = l.transposed ? b_ms : f_ms, in_ms = l.transposed ? f_ms : b_ms;
    auto cell = [&](double ms) { return fmt::format("{:.2f} ({:.0f})", ms, gflop / ms * 1e3); };
    total += fwd_ms + in_ms + w_ms;
    fmt::print("{:<24}{:>17}{:>17}{:>17}{:>9.2f}   {}\n", l.name, cell(fwd_ms), cell(in_ms), cell(w_ms),
               fwd_ms + in_ms + w_ms, (l.transposed ? bwd : fwd).impl);
    release(fwd), release(bwd), release(wgt);
    dnnl_primitive_desc_destroy(fpd), dnnl_primitive_desc_destroy(bpd), dnnl_primitive_desc_destroy(wpd);
  }
  fmt::print("{:<24}{:>60.2f}\n\n", "all five layers", total);
}

}  // namespace

int main(int argc, char** argv) {
  const BenchArgs args = parse_bench_args(argc, argv, "conv_onednn");
  const int reps = args.reps;
  const std::vector<int>& threads = args.threads;
  const dnnl_version_t* v = dnnl_version();
  fmt::print("oneDNN {}.{}.{}, CPU ISA {}\n\n", v->major, v->minor, v->patch, static_cast<int>(dnnl_get_effective_cpu_isa()));
  // The layers as bench/conv_time names them.
  std::vector<Layer> layers{{"conv 1->32 28x28 s2", false, 1, 28, 32, 2},
                            {"conv 32->64 14x14 s2", false, 32, 14, 64, 2},
                            {"tconv 64->64 7x7 s2", true, 64, 14, 64, 2},
                            {"tconv 64->32 14x14 s2", true, 32, 28, 64, 2},
                            {"tconv 32->1 28x28 s1", true, 1, 28, 32, 1}};
  dnnl_engine_t eng;
  dnnl_stream_t stream;
  check(dnnl_engine_create(&eng, dnnl_cpu, 0), "engine");
  check(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags), "stream");
  for (bool any : {false, true})
    for (int t : threads) run(eng, stream, layers, any, t, reps);
  dnnl_stream_destroy(stream);
  dnnl_engine_destroy(eng);
  return 0;
}
