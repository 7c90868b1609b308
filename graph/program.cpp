// The executor: runs a compiled schedule over its arena.
#include <graphrun/graph/parallel.hpp>
#include <graphrun/graph/program.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <limits>
#include <optional>

namespace graphrun {

void Program::bind(std::string_view name, const Tensor& tensor) {
  auto expected = binding_shapes_.find(name);
  if (expected == binding_shapes_.end()) {
    std::vector<std::string> names;
    for (const auto& [k, v] : binding_shapes_) names.push_back(k);
    throw std::invalid_argument(fmt::format("bind: the program reads no input or parameter '{}'; "
                                            "it reads: {}", name, fmt::join(names, ", ")));
  }
  if (tensor.shape() != expected->second || tensor.dtype() != dtype_)
    throw ShapeError(fmt::format("bind '{}': the program was compiled for {} {}, got {} {}", name,
                                 dtype_name(dtype_), to_string(expected->second),
                                 dtype_name(tensor.dtype()), to_string(tensor.shape())));
  for (auto& slot : slots_)
    if (slot.kind == Slot::Kind::external && slot.name == name)
      slot.ptr = const_cast<void*>(tensor.raw());
  resolved_ = false;
}

void Program::bind_parameters(ParameterStore& params) {
  for (auto& slot : slots_) {
    if (slot.kind != Slot::Kind::external) continue;
    auto it = params.find(slot.name);
    if (it != params.end()) bind(slot.name, it->second);
  }
}

// Points the arena's slots at where the arena is now: once when compiled, and again after a
// shared arena grew for another program.
void Program::follow_shared_arena() {
  const void* base = arena_memory();
  if (base == arena_based_) return;
  for (auto& slot : slots_)
    if (slot.kind == Slot::Kind::arena) slot.ptr = static_cast<char*>(const_cast<void*>(base)) + slot.offset;
  arena_based_ = base;
  resolved_ = false;
}

void Program::resolve() {
  for (const auto& slot : slots_)
    if (!slot.ptr && slot.kind != Slot::Kind::fused)
      throw std::invalid_argument(fmt::format("run: '{}' ({}) is not bound", slot.name,
                                              to_string(slot.shape)));
  auto point = [&](Step& step) {
    for (std::size_t i = 0; i < step.in_slots.size(); ++i)
      step.in_ptrs[i] = step.in_slots[i] < 0 ? nullptr  // shape-only: never read
                                             : slots_[static_cast<std::size_t>(step.in_slots[i])].ptr;
  };
  for (auto& step : steps_) {
    point(step);
    for (auto& e : step.epilogue) point(e);
    for (auto& r : step.reductions) point(r);
  }
  resolved_ = true;
}

void Program::check_step(const Step& step) const {
  const auto& out = slots_[static_cast<std::size_t>(step.out_slots.front())];
  auto n = numel(out.shape);
  auto finite = [&](const void* p, std::int64_t count, double& lo, double& hi) {
    bool ok = true;
    lo = std::numeric_limits<double>::infinity();
    hi = -lo;
    for (std::int64_t i = 0; i < count; ++i) {
      double v = dtype_ == DType::f32 ? static_cast<const float*>(p)[i] : static_cast<const double*>(p)[i];
      if (!std::isfinite(v)) ok = false;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    return ok;
  };
  double lo, hi;
  if (finite(out.ptr, n, lo, hi)) return;
  std::vector<std::string> ranges;
  for (std::size_t i = 0; i < step.in_ptrs.size(); ++i) {
    if (!step.in_ptrs[i]) continue;  // a shape-only input has no values
    double a, b;
    finite(step.in_ptrs[i], numel(step.in_shapes[i]), a, b);
    ranges.push_back(fmt::format("input {} {} in [{:g}, {:g}]", i, to_string(step.in_shapes[i]), a, b));
  }
  throw NumericsError(fmt::format("non-finite value (NaN or Inf) produced by {}, op '{}'; {}",
                                  step.label, step.op->name, fmt::join(ranges, "; ")));
}

template <class T>
KernelArgs<T> Program::kernel_args(const Step& step) const {
  const auto& out = slots_[static_cast<std::size_t>(step.out_slots.front())];
  KernelArgs<T> args;
  args.in = {reinterpret_cast<const T* const*>(step.in_ptrs.data()), step.in_ptrs.size()};
  args.in_shapes = step.in_shapes;
  args.out = static_cast<T*>(out.ptr);
  args.out_shape = &out.shape;
  args.attrs = &step.attrs;
  return args;
}
template KernelArgs<float> Program::kernel_args<float>(const Step&) const;
template KernelArgs<double> Program::kernel_args<double>(const Step&) const;

template <class T>
void Program::run_step(const Step& step, const RunOptions& options) {
  if (!step.op) {
    run_fused<T>(step);
    return;
  }
  KernelArgs<T> args = kernel_args<T>(step);
  const Shape& out = *args.out_shape;
  args.key = {options.seed, options.step, step.stream, 0};
  if (options.batch_offset > 0 && !out.empty() && out[0] > 0)
    args.key.offset = static_cast<std::uint64_t>(options.batch_offset * (numel(out) / out[0]));
  args.training = options.training;
  EpilogueRun epilogue{this, &step};
  if (!step.epilogue.empty() || !step.reductions.empty()) args.ready = {&Program::run_epilogue<T>, &epilogue};
  if constexpr (std::is_same_v<T, float>) step.op->f32(args);
  else step.op->f64(args);
  for (const Step& r : step.reductions) {
    if constexpr (std::is_same_v<T, float>) r.op->blockwise.f32_finish(kernel_args<T>(r), r.partials.data());
    else r.op->blockwise.f64_finish(kernel_args<T>(r), r.partials.data());
  }
  if (check_numerics_) check_step(step);
}

void Program::plan_dependencies() {
  // Byte ranges in the arena; other slots are never written by the program, or (fused) have no
  // memory of their own.
  struct Range {
    std::size_t begin, end;
    bool overlaps(const Range& o) const { return begin < o.end && o.begin < end; }
  };
  std::size_t esize = dtype_size(dtype_);
  auto ranges = [&](const std::vector<int>& slots) {
    std::vector<Range> out;
    for (int s : slots) {
      if (s < 0) continue;
      const Slot& slot = slots_[static_cast<std::size_t>(s)];
      if (slot.kind != Slot::Kind::arena) continue;
      out.push_back({slot.offset, slot.offset + static_cast<std::size_t>(numel(slot.shape)) * esize});
    }
    return out;
  };
  auto any_overlap = [](const std::vector<Range>& a, const std::vector<Range>& b) {
    for (const auto& x : a)
      for (const auto& y : b)
        if (x.overlaps(y)) return true;
    return false;
  };
  std::size_t n = steps_.size();
  std::vector<std::vector<Range>> reads(n), writes(n);
  for (std::size_t s = 0; s < n; ++s) {
    reads[s] = ranges(Program::reads(steps_[s]));
    writes[s] = ranges(Program::writes(steps_[s]));
  }
  successors_.assign(n, {});
  predecessors_.assign(n, 0);
  // A wait that others already imply is left out: the nearest earlier steps first, and a step
  // already waited for through them is passed over. Buffers that share bytes would otherwise add
  // a wait for every earlier user of those bytes (millions on a graph of thousands of layers).
  const std::size_t words = (n + 63) / 64;
  std::vector<std::uint64_t> before(n * words);  // row s: the steps s waits for, directly or not
  for (std::size_t s = 0; s < n; ++s) {
    std::uint64_t* mine = before.data() + s * words;
    for (std::size_t j = s; j-- > 0;) {
      if ((mine[j / 64] >> (j % 64)) & 1u) continue;
      if (!any_overlap(writes[j], reads[s]) && !any_overlap(writes[j], writes[s]) &&
          !any_overlap(reads[j], writes[s]))
        continue;
      successors_[j].push_back(static_cast<int>(s));
      ++predecessors_[s];
      const std::uint64_t* theirs = before.data() + j * words;
      for (std::size_t w = 0; w <= j / 64; ++w) mine[w] |= theirs[w];
      mine[j / 64] |= std::uint64_t{1} << (j % 64);
    }
  }
  pending_ = std::make_unique<std::atomic<int>[]>(n);
}

void Program::run(const RunOptions& options) {
  follow_shared_arena();
  if (!resolved_) resolve();
  FlushDenormals flush(options.flush_denormals);
  auto run_all = [&]<class T>() {
    auto one = [&](int i) {
      const Step& step = steps_[static_cast<std::size_t>(i)];
      std::optional<BlockTrace::Scope> blocks;  // none: an outer scope, if any, stays in force
      if (options.block_trace) blocks.emplace(options.block_trace, i);
      if (!options.step_spans) return run_step<T>(step, options);
      WorkSpan& span = options.step_spans[i];
      span.thread = worker_index();
      span.start = clock_seconds();
      run_step<T>(step, options);
      span.end = clock_seconds();
    };
    // check_numerics names the first bad step, which needs the schedule's order.
    if (options.concurrent && num_threads() > 1 && !check_numerics_ && steps_.size() > 1) {
      run_dag(successors_, predecessors_, pending_.get(), one);
      return;
    }
    for (int i = 0; i < num_steps(); ++i) one(i);
  };
  if (dtype_ == DType::f32) run_all.template operator()<float>();
  else run_all.template operator()<double>();
}

Tensor Program::output(std::size_t i) const {
  const auto& slot = slots_.at(static_cast<std::size_t>(outputs_.at(i)));
  if (slot.kind == Slot::Kind::arena)  // where the arena is now, should it have moved since
    return Tensor::view(dtype_, slot.shape, static_cast<char*>(const_cast<void*>(arena_memory())) + slot.offset);
  return Tensor::view(dtype_, slot.shape, slot.ptr);
}

const Shape& Program::output_shape(std::size_t i) const {
  return slots_.at(static_cast<std::size_t>(outputs_.at(i))).shape;
}

std::string Program::step_summary(int i) const {
  const Step& step = steps_.at(static_cast<std::size_t>(i));
  std::vector<std::string> shapes;
  for (const auto& s : step.in_shapes) shapes.push_back(to_string(s));
  std::string op = step.op ? std::string(step.op->name) : "fused";
  if (!step.op) {
    std::vector<std::string_view> members;
    for (const auto& f : step.fused) members.push_back(f.op->name);
    op += fmt::format("({})", fmt::join(members, "+"));
  }
  std::string label = step.label;
  for (const Step& e : step.epilogue) {
    std::vector<std::string_view> members;
    for (const auto& f : e.fused) members.push_back(f.op->name);
    op += fmt::format(" then {}", fmt::join(members, "+"));
    label += "; " + e.label;
  }
  for (const Step& r : step.reductions) {
    op += fmt::format(" then {}", r.op->name);
    label += fmt::format("; then {} over its ranges, {}", r.op->name, r.label);
  }
  return fmt::format("{} {} -> {} [{}]", op, fmt::join(shapes, " "),
                     to_string(slots_[static_cast<std::size_t>(step.out_slots.front())].shape), label);
}

std::string Program::describe() const {
  std::string out = fmt::format("{} kernels, {} arena (buffers would take {} unshared)\n",
                                steps_.size(), plan_.arena_bytes, plan_.buffer_bytes);
  // Only the direct waits that no other wait implies, so the list reads as the DAG's edges.
  std::vector<std::vector<int>> after(steps_.size());
  std::vector<std::vector<bool>> reaches(steps_.size(), std::vector<bool>(steps_.size()));
  for (std::size_t j = steps_.size(); j-- > 0;)
    for (int s : successors_[j]) {
      reaches[j][static_cast<std::size_t>(s)] = true;
      for (std::size_t k = 0; k < steps_.size(); ++k)
        if (reaches[static_cast<std::size_t>(s)][k]) reaches[j][k] = true;
    }
  for (std::size_t j = 0; j < steps_.size(); ++j)
    for (int s : successors_[j]) {
      bool implied = false;
      for (int t : successors_[j])
        if (t != s && reaches[static_cast<std::size_t>(t)][static_cast<std::size_t>(s)]) implied = true;
      if (!implied) after[static_cast<std::size_t>(s)].push_back(static_cast<int>(j));
    }
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const Step& step = steps_[i];
    std::vector<std::string> shapes, results;
    for (const auto& s : step.in_shapes) shapes.push_back(to_string(s));
    for (int o : step.out_slots) results.push_back(to_string(slots_[static_cast<std::size_t>(o)].shape));
    std::string label = step.label;
    for (const Step& e : step.epilogue) label += "; " + e.label;
    for (const Step& r : step.reductions) label += fmt::format("; then {} over its ranges, {}", r.op->name, r.label);
    out += fmt::format("  {:>3} {:<14} {} -> {}   [{}]{}\n", i, step.op ? step.op->name : "fused",
                       fmt::join(shapes, " "), fmt::join(results, " "), label,
                       after[i].empty() ? "" : fmt::format("  after {}", fmt::join(after[i], " ")));
  }
  return out;
}

}  // namespace graphrun
