// Time of one training step (the forward + backward program, then Adam) of a built-in model at
// batch 128, comparing two settings in blocks interleaved within one process, so that this
// machine's minute-to-minute drift hits both alike. Prints the median block time of each setting
// and their ratio.
//
//   step_time [--model vae] [--compare threads|order] [--threads 2] [--blocks 30] [--runs 20]
//
// --compare threads: 1 thread against --threads N (default 2), concurrent steps as in training.
// --compare order:   at --threads N, independent steps run concurrently against schedule order.
// Where a step's time goes, kernel by kernel: `graphrun profile MODEL`.
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
  std::string model = "vae", compare = "threads";
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
    else {
      fmt::print(stderr, "unknown option {}\n", argv[i]);
      return 2;
    }
  }
  if (compare != "threads" && compare != "order") {
    fmt::print(stderr, "--compare takes threads or order, not {}\n", compare);
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

  // Setting 0 and 1: (threads, concurrent).
  std::pair<int, bool> setting[2] = {{1, true}, {threads, true}};
  if (compare == "order") setting[0] = {threads, false};
  const char* label[2] = {compare == "threads" ? "1_thread_ms" : "schedule_order_ms",
                          compare == "threads" ? "n_threads_ms" : "concurrent_ms"};
  std::vector<double> times[2], optimizer[2];
  std::uint64_t step = 0;
  for (int b = 0; b < blocks + 1; ++b)
    for (int s = 0; s < 2; ++s) {
      set_num_threads(setting[s].first);
      double in_optimizer = 0;
      auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < runs; ++r) {
        p.run({true, 1, step++, setting[s].second});
        auto t1 = std::chrono::steady_clock::now();
        optimizer_step();
        in_optimizer += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
      }
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / runs;
      if (b > 0) {  // block 0 warms up
        times[s].push_back(ms);
        optimizer[s].push_back(in_optimizer / runs);
      }
    }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  double a = median(times[0]), c = median(times[1]);
  fmt::print("model {} threads {} kernels {} arena {:.2f} MB; medians of {} blocks of {} steps\n", model,
             threads, p.num_steps(), p.memory_plan().arena_bytes / 1e6, blocks, runs);
  fmt::print("{} {:.3f} (optimizer {:.3f})\n{} {:.3f} (optimizer {:.3f})\nspeedup {:.3f}\n", label[0], a,
             median(optimizer[0]), label[1], c, median(optimizer[1]), a / c);
}
