// How long compiling a model's training graph takes: autodiff (grad) and compile (DCE,
// topological order, shape inference, fusion, memory plan) of forward + backward, for each
// built-in model at batch 128. `--schedule MODEL` prints the compiled training program instead.
//
//   compile_time [--benchmark_filter=vae] [--schedule vae]
#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/program.hpp>
#include <graphrun/models/model.hpp>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cstring>

namespace {

using namespace graphrun;

std::vector<Value> training_outputs(Model& m) {
  std::vector<Value> outs{m.loss};
  for (auto& [name, v] : m.terms) outs.push_back(v);
  auto grads = grad(m.loss, m.graph->parameters());
  outs.insert(outs.end(), grads.begin(), grads.end());
  return outs;
}

// Build, differentiate and compile from scratch, as a Trainer does once per model.
void BM_build_grad_compile(benchmark::State& state, const std::string& name) {
  for (auto _ : state) {
    Model m = build_model(name, {}, 128, 784);
    auto outs = training_outputs(m);
    Program p = compile_program(*m.graph, outs);
    benchmark::DoNotOptimize(p.num_steps());
  }
}

// compile alone, on a graph already built and differentiated.
void BM_compile(benchmark::State& state, const std::string& name) {
  Model m = build_model(name, {}, 128, 784);
  auto outs = training_outputs(m);
  for (auto _ : state) {
    Program p = compile_program(*m.graph, outs);
    benchmark::DoNotOptimize(p.num_steps());
  }
  state.counters["nodes"] = m.graph->size();
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--schedule") == 0) {
      Model m = build_model(argv[i + 1], {}, 128, 784);
      auto outs = training_outputs(m);
      fmt::print("{}", compile_program(*m.graph, outs).describe());
      return 0;
    }
  }
  for (const char* name : {"ae", "dae", "sae", "vae"}) {
    benchmark::RegisterBenchmark(fmt::format("compile/{}", name).c_str(), BM_compile, std::string(name))
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(fmt::format("build+grad+compile/{}", name).c_str(), BM_build_grad_compile,
                                 std::string(name))
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
