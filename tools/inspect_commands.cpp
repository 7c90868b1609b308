// The verbs that look at a model without training it: graph, info, gradcheck, profile (which
// trains a few steps from a fresh start and saves no parameters).
#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/dot.hpp>
#include <graphrun/graph/gradcheck.hpp>
#include <graphrun/graph/parameters.hpp>
#include <graphrun/graph/program.hpp>
#include <graphrun/tools/commands.hpp>
#include <graphrun/tools/spawn.hpp>
#include <graphrun/train/atomic_file.hpp>
#include <graphrun/train/trainer.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

namespace graphrun::cli {
namespace fs = std::filesystem;
namespace {

std::unique_ptr<Model> model_for_inspection(const Run& run, std::int64_t batch) {
  return build(run.settings, run.settings.model_options, batch, sample_shape(run.settings));
}

// Renders `dot_file` to SVG and PNG beside it; returns the files made, or a note why not.
std::vector<fs::path> render(const fs::path& dot_file, std::string& note) {
  std::vector<fs::path> made;
  for (const char* format : {"svg", "png"}) {
    fs::path target = fs::path(dot_file).replace_extension(format);
    fs::path partial = target;
    partial += fmt::format(".part-{}", ::getpid());
    auto r = run_program({"dot", fmt::format("-T{}", format), dot_file.string(), "-o", partial.string()});
    std::error_code ec;
    if (!r.found) {
      note = fmt::format("Graphviz 'dot' could not run ({}); install graphviz for SVG and PNG", r.error);
      return made;
    }
    if (r.exit_code != 0) {
      fs::remove(partial, ec);
      note = fmt::format("dot -T{} failed with exit code {}", format, r.exit_code);
      continue;
    }
    fs::rename(partial, target);
    made.push_back(target);
  }
  return made;
}

std::vector<Value> training_outputs(Model& m, const std::vector<Value>& grads) {
  std::vector<Value> outs{m.loss};
  for (auto& [name, v] : m.terms) outs.push_back(v);
  outs.insert(outs.end(), grads.begin(), grads.end());
  for (const auto& u : m.updates) outs.push_back(u.value);
  return outs;
}

std::string mib(std::size_t bytes) { return fmt::format("{:.2f} MiB", static_cast<double>(bytes) / (1 << 20)); }

// The profile's timeline in the Chrome trace event format, which Perfetto (ui.perfetto.dev) and
// chrome://tracing open: one row per thread; on it a bar per kernel (or batch, or optimizer) the
// thread started, and below, the blocks of split work it ran, its own and other threads'.
// Times in microseconds from the first span.
std::string trace_json(const StepProfile& p, const std::string& title, const std::string& optimizer) {
  using Json = nlohmann::ordered_json;
  Json events = Json::array();
  if (p.timeline.empty()) return Json{{"traceEvents", events}}.dump();
  double origin = p.timeline.front().span.start;
  auto micros = [](double seconds) { return std::round(seconds * 1e9) / 1e3; };  // to the ns
  int threads = 0;
  for (const auto* spans : {&p.timeline, &p.blocks})
    for (const auto& s : *spans) threads = std::max(threads, s.span.thread + 1);
  events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", 0}, {"args", {{"name", title}}}});
  for (int t = 0; t < threads; ++t)
    events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 0}, {"tid", t},
                      {"args", {{"name", fmt::format("thread {}", t)}}}});
  auto add = [&](const StepProfile::Span& s, bool block) {
    std::string name, what;
    if (s.kernel == StepProfile::kBatch) {
      name = "batch";
      what = "assemble the batch";
    } else if (s.kernel == StepProfile::kOptimizer) {
      name = optimizer;
      what = "update every parameter";
    } else {
      what = p.kernels[static_cast<std::size_t>(s.kernel)];
      name = what.substr(0, what.find(' '));
    }
    Json args = {{"step", s.step}, {"what", block ? "a block of: " + what : what}};
    if (s.kernel >= 0) args["kernel"] = s.kernel;
    events.push_back({{"name", name},
                      {"cat", block ? "block" : s.kernel >= 0 ? "kernel" : "step"},
                      {"ph", "X"},
                      {"ts", micros(s.span.start - origin)},
                      {"dur", micros(s.span.end - s.span.start)},
                      {"pid", 0},
                      {"tid", s.span.thread},
                      {"args", args}});
  };
  for (const auto& s : p.timeline) add(s, false);
  for (const auto& s : p.blocks) add(s, true);
  return Json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump(1);
}

}  // namespace

int graph_command(const Run& run) {
  auto model = model_for_inspection(run, run.settings.train.batch);
  Graph& g = *model->graph;
  const std::string forward = to_dot(g, {model->loss});
  auto grads = grad(model->loss, g.parameters());
  std::vector<Value> outs{model->loss};
  outs.insert(outs.end(), grads.begin(), grads.end());
  const std::string backward = to_dot(g, outs);
  std::vector<fs::path> files{run.dir / "graph_forward.dot", run.dir / "graph_backward.dot"};
  write_file_atomic(files[0], forward);
  write_file_atomic(files[1], backward);
  std::string note;
  std::vector<fs::path> pictures;
  for (const auto& f : {files[0], files[1]}) {
    auto made = render(f, note);
    pictures.insert(pictures.end(), made.begin(), made.end());
  }
  files.insert(files.end(), pictures.begin(), pictures.end());
  fmt::print("{} graph: forward (loss) and backward (loss and {} gradients)\n", model->name,
             grads.size());
  for (const auto& f : files) fmt::print("  wrote {}\n", f.string());
  if (!note.empty()) fmt::print(stderr, "graphrun: note: {}\n", note);
  return 0;
}

int info_command(const Run& run) {
  const Settings& s = run.settings;
  auto model = model_for_inspection(run, s.train.batch);
  Graph& g = *model->graph;
  const int forward_nodes = g.size();
  auto params = g.parameters();
  auto grads = grad(model->loss, params);
  const int backward_nodes = g.size() - forward_nodes;
  const Shape x_shape = model->x.shape();
  Program program = compile_program(g, training_outputs(*model, grads), {{model->x.node().name, x_shape}});
  fmt::print("model {} ({}) from {}\n", model->name, options_text(s.model_options), s.file.string());
  fmt::print("graph: {} nodes, {} forward and {} backward (from grad)\n", g.size(), forward_nodes,
             backward_nodes);
  fmt::print("\nparameters:\n  {:<16} {:<14} {:>12}\n", "name", "shape", "count");
  std::int64_t total = 0;
  for (const auto& p : params) {
    total += numel(p.shape());
    fmt::print("  {:<16} {:<14} {:>12}\n", p.node().name, to_string(p.shape()), numel(p.shape()));
  }
  fmt::print("  {:<16} {:<14} {:>12}  ({})\n", "total", "", total,
             mib(static_cast<std::size_t>(total) * sizeof(float)));
  if (!model->updates.empty()) {
    fmt::print("\nbuffers (not trained; each training step updates them, evaluation reads them):\n");
    for (const auto& u : model->updates)
      fmt::print("  {:<16} {:<14} {:>12}\n", u.buffer.node().name, to_string(u.buffer.shape()),
                 numel(u.buffer.shape()));
  }
  const MemoryPlan& plan = program.memory_plan();
  fmt::print("\ntraining program for x {} (float32): {} kernels{}\n", to_string(x_shape),
             program.num_steps(),
             plan.shared_steps > 0 ? fmt::format(" ({} duplicate nodes computed once)", plan.shared_steps) : "");
  fmt::print("  arena      {:>12} bytes  {}  (planned; buffers share space)\n", plan.arena_bytes,
             mib(plan.arena_bytes));
  fmt::print("  buffers    {:>12} bytes  {}  ({} buffers, were none shared)\n", plan.buffer_bytes,
             mib(plan.buffer_bytes), plan.buffers);
  fmt::print("  constants  {:>12} bytes\n", plan.constant_bytes);
  if (plan.buffer_bytes > 0)
    fmt::print("  the plan needs {:.0f}% of the unshared size\n",
               100.0 * static_cast<double>(plan.arena_bytes) / static_cast<double>(plan.buffer_bytes));
  return 0;
}

int gradcheck_command(const Run& run) {
  const Settings& s = run.settings;
  std::int64_t batch = run.cli.count > 0 ? run.cli.count : 4;
  Dataset data = load_dataset(s.data, batch, batch);
  batch = std::min(batch, data.train.count);
  auto model = build(s, s.model_options, batch, data.train.shape);
  Graph& g = *model->graph;
  ParameterStore values = init_parameters(g, s.train.seed, DType::f64);
  // Parameters that start at exactly zero (biases) are checked at a random offset of at most
  // 0.01: at zero, a conv bias puts every ReLU over the images' zero background exactly at its
  // kink, where no difference can check it (every element of the conv VAE's conv biases was
  // skipped as a kink, and the check failed with nothing checked).
  std::mt19937_64 jitter(s.train.seed);
  std::uniform_real_distribution<double> offset(-0.01, 0.01);
  int moved = 0;
  for (auto& [name, t] : values) {
    double* v = t.data<double>();
    if (t.numel() == 0 || std::any_of(v, v + t.numel(), [](double e) { return e != 0.0; })) continue;
    for (std::int64_t i = 0; i < t.numel(); ++i) v[i] = offset(jitter);
    ++moved;
  }
  std::vector<std::int64_t> idx(static_cast<std::size_t>(batch));
  std::iota(idx.begin(), idx.end(), 0);
  Tensor x(DType::f64, {batch, data.train.features()});
  data.train.fill_batch<double>(idx, x.data<double>());
  values.emplace(model->x.node().name, x);
  if (model->y.valid()) {  // a conditional model: the images' own labels
    require_labels(*model, data.train, "the images checked");
    Tensor y(DType::f32, label_shape(model->y, batch));
    fill_labels(data.train, idx, model->y.shape(), y.data<float>());
    values.emplace(model->y.node().name, y.to(DType::f64));
  }
  for (const auto& schedule : model->schedules) {
    Tensor t(DType::f64, {});  // a scheduled scalar at its final value
    t.data<double>()[0] = schedule.value(std::numeric_limits<std::int64_t>::max() / 2);
    values.emplace(schedule.input, t);
  }
  std::vector<std::string> wrt;
  for (auto& p : g.parameters()) wrt.push_back(p.node().name);
  // A loss of ~500 nats per image loses ~1e-16 * 500 / eps to rounding in each difference, which
  // at the default eps of 1e-6 is as large as the smallest gradients; eps 1e-4 balances rounding
  // against truncation, and errors of 1e-5 remain noise (a wrong rule gives errors near 1).
  GradCheckOptions options;
  options.eps = 1e-4;
  options.tolerance = 1e-4;
  options.run.seed = s.train.seed;
  GradCheckReport report = check_gradients(g, model->loss, wrt, values, options);
  fmt::print("gradient check of {} ({}) in float64 on {} {} images, central differences, eps {}, "
             "tolerance {}{}\n\n{}",
             model->name, options_text(s.model_options), batch, data.name, options.eps,
             options.tolerance,
             moved > 0 ? fmt::format("; {} zero-initialised parameter{} at random offsets within 0.01",
                                     moved, moved == 1 ? "" : "s")
                       : "",
             report.to_string());
  fmt::print("\n{}: worst relative error {:.3e}\n", report.ok() ? "ok" : "FAILED", report.worst());
  return report.ok() ? 0 : 1;
}

int profile_command(const Run& run) {
  const Settings& s = run.settings;
  const std::int64_t steps = run.cli.count > 0 ? run.cli.count : 50, warmup = 5;
  // Enough images for every step to see a different batch, up to the settings' limit.
  std::int64_t images = (steps + warmup) * s.train.batch;
  if (s.load_limit() > 0) images = std::min(images, s.load_limit());
  Dataset data = load_dataset(s.data, images, 1);
  auto model = build(s, s.model_options, std::min(s.train.batch, data.train.count), data.train.shape);
  Trainer trainer(*model, s.train);
  StepProfile p = trainer.profile(data.train, steps, warmup);
  const double per_step = 1e3 / static_cast<double>(p.steps);
  const double total = p.data_seconds + p.program_seconds + p.optimizer_seconds;
  fmt::print("profile of {} ({}) on {}: {} training steps of {} images at {} thread{}, sgemm from "
             "{}, after {} warm-up steps\n",
             model->name, options_text(s.model_options), data.name, p.steps,
             std::min(s.train.batch, data.train.count), num_threads(), num_threads() == 1 ? "" : "s",
             sgemm_library_name(sgemm_library()), warmup);
  fmt::print("step {:.3f} ms = batch {:.3f} + program {:.3f} + optimizer {:.3f} ({})\n\n",
             total * per_step, p.data_seconds * per_step, p.program_seconds * per_step,
             p.optimizer_seconds * per_step, s.train.optimizer.kind);
  std::vector<std::size_t> order(p.kernels.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return p.kernel_seconds[a] > p.kernel_seconds[b]; });
  fmt::print("kernels, slowest first: ms per step, share of the step, schedule position{}\n",
             num_threads() > 1 ? " (kernels that run at the same time overlap)" : "");
  for (std::size_t k : order)
    fmt::print("{:9.3f} {:6.1f}%  {:>3}  {}\n", p.kernel_seconds[k] * per_step,
               100 * p.kernel_seconds[k] / total, k, p.kernels[k]);
  if (!run.cli.trace.empty()) {
    std::string title = fmt::format("graphrun profile {} at {} thread{}", model->name, num_threads(),
                                    num_threads() == 1 ? "" : "s");
    write_file_atomic(run.cli.trace, trace_json(p, title, s.train.optimizer.kind));
    fmt::print("\ntimeline of the last {} steps written to {} (open it in Perfetto, "
               "ui.perfetto.dev, or chrome://tracing)\n",
               std::min(p.steps, StepProfile::kTimelineSteps), run.cli.trace.string());
    if (p.blocks_dropped > 0)
      fmt::print("note: {} blocks of split work did not fit in the trace and are missing from it\n",
                 p.blocks_dropped);
  }
  return 0;
}

}  // namespace graphrun::cli
