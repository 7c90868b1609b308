// Time of one training-graph run (forward + backward, no optimizer) of a built-in model at batch
// 128, with independent steps run concurrently and in schedule order, interleaved in blocks within
// one process so that this machine's minute-to-minute drift hits both alike. Prints the median
// block time of each and their ratio.
//
//   step_time [--model vae] [--threads 2] [--blocks 30] [--runs 40]
#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/parallel.hpp>
#include <graphrun/graph/parameters.hpp>
#include <graphrun/graph/program.hpp>
#include <graphrun/models/model.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

using namespace graphrun;

int main(int argc, char** argv) {
  std::string model = "vae";
  int threads = 2, blocks = 30, runs = 40;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--model")) model = argv[i + 1];
    else if (!std::strcmp(argv[i], "--threads")) threads = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--blocks")) blocks = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--runs")) runs = std::stoi(argv[i + 1]);
    else {
      fmt::print(stderr, "unknown option {}\n", argv[i]);
      return 2;
    }
  }
  set_num_threads(threads);
  Model m = build_model(model, {}, 128, 784);
  std::vector<Value> outs{m.loss};
  auto grads = grad(m.loss, m.graph->parameters());
  outs.insert(outs.end(), grads.begin(), grads.end());
  Program p = compile_program(*m.graph, outs);
  ParameterStore params = init_parameters(*m.graph, 1);
  Tensor x(DType::f32, {128, 784});
  auto xv = x.values<float>();
  for (std::size_t i = 0; i < xv.size(); ++i) xv[i] = static_cast<float>((i * 7919) % 256) / 255.0f;
  p.bind_parameters(params);
  p.bind("x", x);
  for (const auto& s : m.schedules) {
    static Tensor one = [] {
      Tensor t(DType::f32, {});
      t.data<float>()[0] = 1.0f;
      return t;
    }();
    p.bind(s.input, one);
  }
  std::vector<double> times[2];
  std::uint64_t step = 0;
  for (int b = 0; b < blocks + 1; ++b)
    for (int concurrent = 0; concurrent < 2; ++concurrent) {
      auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < runs; ++r) p.run({true, 1, step++, concurrent == 1});
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / runs;
      if (b > 0) times[concurrent].push_back(ms);  // block 0 warms up
    }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  double seq = median(times[0]), dag = median(times[1]);
  fmt::print("model {} threads {} kernels {} arena {:.2f} MB\n", model, threads, p.num_steps(),
             p.memory_plan().arena_bytes / 1e6);
  fmt::print("schedule_order_ms {:.3f}\nconcurrent_ms {:.3f}\nconcurrent/schedule_order {:.3f}\n", seq, dag, dag / seq);
}
