// Time of one training step (the forward + backward program, then Adam) of a built-in model at
// batch 128, comparing two settings in blocks interleaved within one process, so that this
// machine's minute-to-minute drift hits both alike. Prints the median block time of each setting
// and their ratio.
//
//   step_time [--model vae] [--compare threads|order|gemm|sgemm] [--threads 2] [--blocks 30]
//             [--runs 20] [--sgemm openblas|onednn]
//
// --compare threads: 1 thread against --threads N (default 2), concurrent steps as in training.
//                    Each block is bracketed by two 2 ms probes of the FMA rate the machine gives
//                    that many threads (bench/fma_rate.hpp), the lower one counting: the host of
//                    these virtual machines sometimes slows the second core for tenths of a
//                    second, and machine_speedup says how far the machine itself scaled.
// --compare order:   at --threads N, independent steps run concurrently against schedule order.
// --compare gemm:    at --threads N, the whole step against its matrix products alone: the
//                    same matmul kernels at the same shapes, one after another on hot caches.
//                    The GEMM limit (bench/gemm_limit) takes each product's best time from
//                    separate runs; this ratio holds both sides to the same minutes.
// --compare sgemm:   at --threads N, float32 products from OpenBLAS against oneDNN.
// --sgemm:           the library for the other comparisons (default openblas).
// Where a step's time goes, kernel by kernel: `graphrun profile MODEL`.
#include "fma_rate.hpp"

#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/parallel.hpp>
#include <graphrun/graph/parameters.hpp>
#include <graphrun/graph/program.hpp>
#include <graphrun/models/model.hpp>
#include <graphrun/ops/ops.hpp>
#include <graphrun/train/optimizer.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

using namespace graphrun;

int main(int argc, char** argv) {
  std::string model = "vae", compare = "threads", sgemm = "openblas";
  int threads = 2, blocks = 30, runs = 20;
  for (int i = 1; i < argc; i += 2) {
    if (i + 1 == argc) {
      fmt::print(stderr, "{} needs a value\n", argv[i]);
      return 2;
    } else if (!std::strcmp(argv[i], "--model")) model = argv[i + 1];
    else if (!std::strcmp(argv[i], "--compare")) compare = argv[i + 1];
    else if (!std::strcmp(argv[i], "--threads")) threads = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--blocks")) blocks = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--runs")) runs = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--sgemm")) sgemm = argv[i + 1];
    else {
      fmt::print(stderr, "unknown option {}\n", argv[i]);
      return 2;
    }
  }
  if (compare != "threads" && compare != "order" && compare != "gemm" && compare != "sgemm") {
    fmt::print(stderr, "--compare takes threads, order, gemm or sgemm, not {}\n", compare);
    return 2;
  }
  if (sgemm != "openblas" && sgemm != "onednn") {
    fmt::print(stderr, "--sgemm takes openblas or onednn, not {}\n", sgemm);
    return 2;
  }
  SgemmLibrary library[2];
  library[0] = library[1] = sgemm == "onednn" ? SgemmLibrary::onednn : SgemmLibrary::openblas;
  if (compare == "sgemm") {
    library[0] = SgemmLibrary::openblas;
    library[1] = SgemmLibrary::onednn;
  }
  if (!sgemm_library_available(library[0]) || !sgemm_library_available(library[1])) {
    fmt::print(stderr, "oneDNN could not be loaded: install Debian's libdnnl2\n");
    return 2;
  }
  Model m = build_model(model, {}, 128, 784);
  std::vector<Value> outs{m.loss};
  auto params_v = m.graph->parameters();
  auto grads = grad(m.loss, params_v);
  outs.insert(outs.end(), grads.begin(), grads.end());
  for (const auto& g : grads) outs.push_back(norm2(g));  // as the trainer does
  Program p = compile_program(*m.graph, outs);
  ParameterStore params = init_parameters(*m.graph, 1);
  Tensor x(DType::f32, {128, 784});
  auto xv = x.values<float>();
  for (std::size_t i = 0; i < xv.size(); ++i) xv[i] = static_cast<float>((i * 7919) % 256) / 255.0f;
  p.bind_parameters(params);
  p.bind("x", x);
  Tensor one(DType::f32, {});
  one.data<float>()[0] = 1.0f;
  for (const auto& s : m.schedules) p.bind(s.input, one);
  std::vector<GradRef> grad_refs;
  for (std::size_t i = 0; i < params_v.size(); ++i)
    grad_refs.push_back({params_v[i].node().name, p.output(i + 1).data<float>()});
  Optimizer adam(OptimizerConfig{});
  auto optimizer_step = [&] {
    double squares = 0;
    for (std::size_t i = 0; i < grads.size(); ++i) {
      double n = p.output(1 + grads.size() + i).item();
      squares += n * n;
    }
    adam.step(params, grad_refs, std::sqrt(squares));
  };

  // The step's matrix products as a program of their own: every matmul the training program
  // runs (found from its outputs), on inputs of the same shapes.
  Graph gemm_graph;
  std::vector<Value> products;
  double flops = 0;
  std::vector<int> roots;
  for (const auto& v : outs) roots.push_back(v.id());
  for (int id : topological_order(*m.graph, roots)) {
    const Node& node = m.graph->node(id);
    if (!node.op || node.op->name != "matmul") continue;
    std::string k = std::to_string(products.size());
    Value a = gemm_graph.input("a" + k, m.graph->node(node.inputs[0]).shape);
    Value b = gemm_graph.input("b" + k, m.graph->node(node.inputs[1]).shape);
    bool ta = node.attrs.i("transpose_a") != 0;
    products.push_back(matmul(a, b, ta, node.attrs.i("transpose_b") != 0));
    flops += 2.0 * static_cast<double>(numel(node.shape)) * static_cast<double>(a.shape()[ta ? 0 : 1]);
  }
  Program gemms = compile_program(gemm_graph, products);
  std::vector<Tensor> gemm_inputs;
  for (const auto& [name, shape] : gemms.bindings()) {
    gemm_inputs.emplace_back(DType::f32, shape);
    for (float& v : gemm_inputs.back().values<float>()) v = 0.5f;
    gemms.bind(name, gemm_inputs.back());
  }

  // Setting 0 and 1: (threads, concurrent).
  std::pair<int, bool> setting[2] = {{1, true}, {threads, true}};
  if (compare == "order") setting[0] = {threads, false};
  if (compare == "gemm" || compare == "sgemm") setting[0] = {threads, true};
  const char* label[2] = {compare == "threads" ? "1_thread_ms" : compare == "order" ? "schedule_order_ms"
                          : compare == "sgemm" ? "openblas_ms" : "step_ms",
                          compare == "threads" ? "n_threads_ms" : compare == "order" ? "concurrent_ms"
                          : compare == "sgemm" ? "onednn_ms" : "gemm_ms"};
  std::vector<double> times[2], optimizer[2], capacity[2];  // capacity: FMA rate
  std::uint64_t step = 0;
  for (int b = 0; b < blocks + 1; ++b)
    for (int s = 0; s < 2; ++s) {
      set_num_threads(setting[s].first);
      set_sgemm_library(library[s]);
      bool probe = compare == "threads";
      double before = probe ? fma_rate(setting[s].first, 1) : 0;
      double in_optimizer = 0;
      auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < runs; ++r) {
        if (compare == "gemm" && s == 1) {
          gemms.run({true, 1, 0, false});
          continue;
        }
        p.run({true, 1, step++, setting[s].second});
        auto t1 = std::chrono::steady_clock::now();
        optimizer_step();
        in_optimizer += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
      }
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / runs;
      double after = probe ? fma_rate(setting[s].first, 1) : 0;
      if (b > 0) {  // block 0 warms up
        times[s].push_back(ms);
        optimizer[s].push_back(in_optimizer / runs);
        capacity[s].push_back(std::min(before, after));
      }
    }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  double a = median(times[0]), c = median(times[1]);
  fmt::print("model {} threads {} sgemm {} kernels {} arena {:.2f} MB; medians of {} blocks of {} steps\n",
             model, threads, compare == "sgemm" ? "both" : sgemm, p.num_steps(),
             p.memory_plan().arena_bytes / 1e6, blocks, runs);
  if (compare == "gemm") {
    fmt::print("{} {:.3f} (optimizer {:.3f})\n{} {:.3f} ({} products, {:.1f} MFLOP, {:.1f} GFLOPS)\nstep_over_gemm {:.3f}\n",
               label[0], a, median(optimizer[0]), label[1], c, products.size(), flops / 1e6, flops / c / 1e6, a / c);
    return 0;
  }
  fmt::print("{} {:.3f} (optimizer {:.3f})\n{} {:.3f} (optimizer {:.3f})\nspeedup {:.3f}\n", label[0], a,
             median(optimizer[0]), label[1], c, median(optimizer[1]), a / c);
  if (compare != "threads" || capacity[0].empty() || capacity[0].front() <= 0) return 0;
  std::vector<double> machine;
  for (std::size_t r = 0; r < capacity[0].size(); ++r) machine.push_back(capacity[1][r] / capacity[0][r]);
  fmt::print("machine_speedup {:.3f} (FMA rate at {} threads over 1 thread, median of the blocks' probes)\n",
             median(machine), threads);
}
