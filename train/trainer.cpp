#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/parameters.hpp>
#include <graphrun/graph/random.hpp>
#include <graphrun/ops/ops.hpp>
#include <graphrun/train/idx.hpp>
#include <graphrun/train/safetensors.hpp>
#include <graphrun/train/trainer.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace graphrun {
namespace {


// Keeps evaluation draws (the VAE's one-sample ELBO) apart from training's.
constexpr std::uint64_t kEvalSeedSalt = 0x5eed0e7a1ull;

std::vector<Value> eval_outputs(Model& m) {
  std::vector<Value> outs{m.loss};
  for (auto& [name, v] : m.terms) outs.push_back(v);
  return outs;
}

std::string exact(double v) { return fmt::format("{:.17g}", v); }

std::int64_t label_width(const Shape& y_shape) { return y_shape.size() == 2 ? y_shape[1] : 1; }

}  // namespace

Shape label_shape(Value y, std::int64_t rows) {
  Shape s = y.shape();
  s[0] = rows;
  return s;
}

void fill_classes(std::span<const std::int64_t> classes, const Shape& y_shape, float* out) {
  const std::int64_t width = label_width(y_shape);
  const bool one_hot = y_shape.size() == 2;
  if (one_hot) std::fill(out, out + static_cast<std::ptrdiff_t>(classes.size()) * width, 0.0f);
  for (std::size_t r = 0; r < classes.size(); ++r) {
    const std::int64_t c = classes[r];
    if (one_hot && (c < 0 || c >= width))
      throw LabelError(fmt::format("class {} is outside the model's {} classes (0 to {})", c, width, width - 1));
    if (one_hot) out[static_cast<std::int64_t>(r) * width + c] = 1.0f;
    else out[r] = static_cast<float>(c);
  }
}

void fill_labels(const Split& data, std::span<const std::int64_t> rows, const Shape& y_shape,
                 float* out) {
  if (data.labels.empty()) throw LabelError("the model takes labels (input y), and the data set has none");
  const std::int64_t width = label_width(y_shape);
  const bool one_hot = y_shape.size() == 2;
  if (one_hot) std::fill(out, out + static_cast<std::ptrdiff_t>(rows.size()) * width, 0.0f);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const std::int64_t i = rows[r];
    if (i < 0 || i >= static_cast<std::int64_t>(data.labels.size()))
      throw std::out_of_range(fmt::format("label index {} is outside the {} labels", i, data.labels.size()));
    const std::int64_t c = data.labels[static_cast<std::size_t>(i)];
    if (one_hot && c >= width)
      throw LabelError(fmt::format("image {} has label {}, but the model's y has {} classes (set "
                                   "the number of classes to at least {})", i, c, width, c + 1));
    if (one_hot) out[static_cast<std::int64_t>(r) * width + c] = 1.0f;
    else out[r] = static_cast<float>(c);
  }
}

void require_labels(const Model& model, const Split& data, const std::string& what) {
  if (model.y.valid() && data.labels.empty() && data.count > 0)
    throw LabelError(fmt::format("model '{}' takes labels (input y {}), but {} have none; use a "
                                 "data set with label files", model.name, to_string(model.y.shape()), what));
}

void for_each_batch(ProgramCache& cache, Value x, const Split& data, std::int64_t batch,
                    ParameterStore& params, const RunOptions& run,
                    const std::function<void(Program&, std::int64_t, std::int64_t)>& each,
                    std::int64_t limit, const std::map<std::string, Tensor>& extra_inputs, Value y) {
  std::int64_t n = limit < 0 ? data.count : std::min(limit, data.count);
  const std::string& name = x.node().name;
  std::map<std::int64_t, Tensor> buffers, label_buffers;
  std::vector<std::int64_t> idx;
  for (std::int64_t first = 0, k = 0; first < n; first += batch, ++k) {
    std::int64_t rows = std::min(batch, n - first);
    auto& buf = buffers[rows];
    if (buf.empty()) buf = Tensor(DType::f32, {rows, data.features()});
    idx.resize(static_cast<std::size_t>(rows));
    std::iota(idx.begin(), idx.end(), first);
    data.fill_batch<float>(idx, buf.data<float>());
    ShapeMap shapes{{name, buf.shape()}};
    if (y.valid()) {
      auto& labels = label_buffers[rows];
      if (labels.empty()) labels = Tensor(DType::f32, label_shape(y, rows));
      fill_labels(data, idx, y.shape(), labels.data<float>());
      shapes.emplace(y.node().name, labels.shape());
    }
    Program& p = cache.get(shapes);
    p.bind_parameters(params);
    p.bind(name, buf);
    if (y.valid()) p.bind(y.node().name, label_buffers[rows]);
    for (const auto& [input, t] : extra_inputs)
      if (p.bindings().count(input)) p.bind(input, t);
    RunOptions r = run;
    r.step = static_cast<std::uint64_t>(k);
    p.run(r);
    each(p, first, rows);
  }
}

Trainer::Trainer(Model& model, TrainConfig config, Communicator& comm)
    : model_(model), config_(std::move(config)), optimizer_(config_.optimizer), comm_(&comm) {
  if (config_.batch < 1) throw std::invalid_argument("batch size must be at least 1");
  if (config_.shards < 0) throw std::invalid_argument("shards must be 0 (off) or more");
  Graph& g = *model_.graph;
  params_ = init_parameters(g, config_.seed);
  auto params = g.parameters();
  grads_ = grad(model_.loss, params);
  for (auto& p : params) grad_names_.push_back(p.node().name);
  std::vector<Value> train_outs = eval_outputs(model_);
  train_outs.insert(train_outs.end(), grads_.begin(), grads_.end());
  // The norm of each gradient, computed in the program as soon as that gradient exists (still
  // in cache, and alongside the rest of the backward pass) instead of in a separate pass over
  // all of them before the update. Data parallel steps need the norm of the summed gradient,
  // which the optimizer computes.
  if (!parallel())
    for (const auto& gr : grads_) train_outs.push_back(norm2(gr));
  first_update_ = train_outs.size();
  for (const auto& u : model_.updates) {
    if (u.buffer.node().kind != NodeKind::parameter || u.buffer.node().trainable)
      throw std::invalid_argument(fmt::format("a model's update writes {}, which is not a buffer", u.buffer.node().describe()));
    if (u.value.shape() != u.buffer.shape())
      throw std::invalid_argument(fmt::format("the update of buffer '{}' {} computes {}", u.buffer.node().name,
                                              to_string(u.buffer.shape()), to_string(u.value.shape())));
    train_outs.push_back(u.value);
    update_floats_ += numel(u.value.shape());
  }
  // Training and evaluation never run at once: one arena serves both, and each batch size.
  arena_ = std::make_shared<SharedArena>();
  CompileOptions opts{DType::f32, config_.check_numerics, true, arena_};
  train_programs_ = std::make_unique<ProgramCache>(g, train_outs, opts);
  eval_programs_ = std::make_unique<ProgramCache>(g, eval_outputs(model_), opts);
  for (const auto& s : model_.schedules) scalars_.emplace(s.input, Tensor(DType::f32, {}));
}

std::vector<std::int64_t> Trainer::epoch_order(std::int64_t count, std::int64_t epoch) const {
  // Fisher-Yates driven by the counter-based generator: the order is a function of (seed,
  // epoch) alone, which is what lets a resumed run see the same batches.
  std::vector<std::int64_t> order(static_cast<std::size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  RandomKey key{config_.seed, static_cast<std::uint64_t>(epoch), 0xda7au};
  for (std::int64_t i = count - 1; i > 0; --i) {
    auto j = static_cast<std::int64_t>(random_uniform(key, static_cast<std::uint64_t>(i)) * static_cast<double>(i + 1));
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(std::min(j, i))]);
  }
  return order;
}

EpochReport Trainer::train_epoch(const Split& train, const Split* test,
                                 const std::function<void(const Progress&)>& on_batch,
                                 const std::atomic<bool>* stop) {
  const std::int64_t n = train.count, bs = config_.batch;
  if (n == 0) throw std::invalid_argument("the training set is empty");
  require_labels(model_, train, "the training images");
  const std::int64_t batches = (n + bs - 1) / bs;
  auto order = epoch_order(n, epoch_);
  EpochReport report;
  double start = clock_seconds();
  std::int64_t seen_now = 0;
  for (std::int64_t b = batch_in_epoch_; b < batches; ++b) {
    std::int64_t first = b * bs, rows = std::min(bs, n - first);
    std::span<const std::int64_t> batch{order.data() + first, static_cast<std::size_t>(rows)};
    auto where = [&] {
      return fmt::format("at epoch {}, step {} (batch {} of {})", epoch_ + 1, step_, b + 1, batches);
    };
    const std::vector<double>& losses =
        parallel() ? parallel_step(train, batch, step_, where, stop && stop->load())
                   : program_losses(train_step(train, batch, step_, where));
    double loss = losses[0];
    ++step_;
    batch_in_epoch_ = b + 1;
    partial_loss_ += loss * static_cast<double>(rows);
    std::size_t k = 1;
    for (const auto& [name, v] : model_.terms) partial_terms_[name] += losses[k++] * static_cast<double>(rows);
    partial_samples_ += rows;
    seen_now += rows;
    if (on_batch) {
      double secs = clock_seconds() - start;
      on_batch({b + 1, batches, partial_samples_, partial_loss_ / static_cast<double>(partial_samples_), secs});
    }
    if ((parallel() ? agreed_stop_ : stop && stop->load()) && b + 1 < batches) {
      report.interrupted = true;
      break;
    }
  }
  report.seconds = clock_seconds() - start;
  if (parallel()) shared_state();  // collective: every rank ends the epoch's loop together
  report.samples_per_second = report.seconds > 0 ? static_cast<double>(seen_now) / report.seconds : 0;
  report.step = step_;
  report.ranks = comm_->size();
  report.train.samples = partial_samples_;
  report.train.loss = partial_loss_ / static_cast<double>(std::max<std::int64_t>(partial_samples_, 1));
  for (const auto& [name, v] : partial_terms_) report.train.terms[name] = v / static_cast<double>(std::max<std::int64_t>(partial_samples_, 1));
  if (report.interrupted) {
    report.epoch = epoch_ + 1;
    return report;
  }
  ++epoch_;
  batch_in_epoch_ = 0;
  partial_loss_ = 0;
  partial_terms_.clear();
  partial_samples_ = 0;
  report.epoch = epoch_;
  if (test) {
    report.test = evaluate(*test);
    report.has_test = true;
  }
  return report;
}

Trainer::TrainProgram& Trainer::bind_batch(const Split& data, std::span<const std::int64_t> rows_of,
                                           std::int64_t step, BlockTrace* blocks) {
  const auto rows = static_cast<std::int64_t>(rows_of.size());
  const std::string& x_name = model_.x.node().name;
  auto& buf = batches_[rows];
  if (buf.empty()) buf = Tensor(DType::f32, {rows, data.features()});
  {
    BlockTrace::Scope scope(blocks, StepProfile::kBatch);
    data.fill_batch<float>(rows_of, buf.data<float>());
  }
  Tensor* labels = nullptr;
  if (model_.y.valid()) {
    labels = &labels_[rows];
    if (labels->empty()) *labels = Tensor(DType::f32, label_shape(model_.y, rows));
    fill_labels(data, rows_of, model_.y.shape(), labels->data<float>());
  }
  TrainProgram& tp = train_program(rows, x_name, buf.shape());
  Program& p = tp.program;
  p.bind_parameters(params_);
  p.bind(x_name, buf);
  if (labels) p.bind(model_.y.node().name, *labels);
  for (const auto& s : model_.schedules) {
    Tensor& t = scalars_.at(s.input);
    t.data<float>()[0] = static_cast<float>(s.value(step));
    p.bind(s.input, t);
  }
  return tp;
}

Program& Trainer::train_step(const Split& data, std::span<const std::int64_t> rows_of,
                            std::int64_t step, FunctionRef<std::string()> where,
                            StepProfile* profile) {
  double t0 = clock_seconds();
  BlockTrace* blocks = profile ? block_trace_.get() : nullptr;
  if (blocks) blocks->clear();
  auto& [p, grad_refs, norms, updates, arena] = bind_batch(data, rows_of, step, blocks);
  RunOptions run{true, config_.seed, static_cast<std::uint64_t>(step)};
  if (profile) {
    kernel_spans_.resize(static_cast<std::size_t>(p.num_steps()));
    run.step_spans = kernel_spans_.data();
    run.block_trace = blocks;
  }
  double t1 = clock_seconds();
  p.run(run);
  double t2 = clock_seconds();
  double loss = p.output(0).item();
  if (!std::isfinite(loss))
    throw NumericsError(fmt::format("the loss became {} {}; the parameters are those before this "
                                    "step. Try a lower learning rate, gradient clipping, or "
                                    "--check-numerics to find the node",
                                    std::isnan(loss) ? "nan" : loss > 0 ? "inf" : "-inf", where()));
  double squares = 0;
  for (const float* n : norms) squares += static_cast<double>(*n) * *n;
  double norm;
  {
    BlockTrace::Scope scope(blocks, StepProfile::kOptimizer);
    norm = optimizer_.step(params_, grad_refs, std::sqrt(squares));
  }
  if (!std::isfinite(norm))
    throw NumericsError(fmt::format("the gradient norm is {} {} while the loss is {}; the update "
                                    "was not applied. Try --check-numerics to find the node",
                                    std::isnan(norm) ? "nan" : "inf", where(), loss));
  for (std::size_t k = 0; k < updates.size(); ++k) {
    Tensor& buffer = params_.at(model_.updates[k].buffer.node().name);
    std::copy_n(updates[k], buffer.numel(), buffer.data<float>());
  }
  if (profile) {
    double t3 = clock_seconds();
    ++profile->steps;
    profile->data_seconds += t1 - t0;
    profile->program_seconds += t2 - t1;
    profile->optimizer_seconds += t3 - t2;
    profile->kernel_seconds.resize(kernel_spans_.size());
    for (std::size_t k = 0; k < kernel_spans_.size(); ++k)
      profile->kernel_seconds[k] += kernel_spans_[k].end - kernel_spans_[k].start;
    int thread = worker_index();
    batch_span_ = {t0, t1, thread};
    optimizer_span_ = {t2, t3, thread};
  }
  return p;
}

StepProfile Trainer::profile(const Split& train, std::int64_t steps, std::int64_t warmup) {
  if (train.count == 0) throw std::invalid_argument("the training set is empty");
  require_labels(model_, train, "the training images");
  if (steps < 1 || warmup < 0)
    throw std::invalid_argument(fmt::format("profile needs at least 1 step and no negative warm-up, "
                                            "got {} and {}", steps, warmup));
  const std::int64_t bs = std::min(config_.batch, train.count);
  auto order = epoch_order(train.count, epoch_);
  const std::int64_t batches = train.count / bs;  // whole batches only: one program is timed
  StepProfile result;
  // Room for every block of a step: a few per kernel, many more would mean a tiny grain somewhere.
  block_storage_.resize(16384);
  block_trace_ = std::make_unique<BlockTrace>(block_storage_);
  const std::int64_t timeline_from = warmup + std::max<std::int64_t>(0, steps - StepProfile::kTimelineSteps);
  for (std::int64_t i = 0; i < warmup + steps; ++i) {
    std::int64_t b = i % batches;
    train_step(train, {order.data() + b * bs, static_cast<std::size_t>(bs)}, step_ + i,
               [&] { return fmt::format("while profiling, at step {}", i + 1); },
               i < warmup ? nullptr : &result);
    if (i < timeline_from) continue;
    std::int64_t step = i - warmup;
    result.timeline.push_back({StepProfile::kBatch, step, batch_span_});
    for (std::size_t k = 0; k < kernel_spans_.size(); ++k)
      result.timeline.push_back({static_cast<int>(k), step, kernel_spans_[k]});
    result.timeline.push_back({StepProfile::kOptimizer, step, optimizer_span_});
    for (const auto& b : block_trace_->blocks()) result.blocks.push_back({b.label, step, b.span});
    result.blocks_dropped += static_cast<std::int64_t>(block_trace_->dropped());
  }
  auto& p = train_program(bs, model_.x.node().name, {bs, train.features()}).program;
  for (int k = 0; k < p.num_steps(); ++k) result.kernels.push_back(p.step_summary(k));
  return result;
}

const std::vector<double>& Trainer::program_losses(Program& p) {
  step_losses_.resize(1 + model_.terms.size());
  for (std::size_t k = 0; k < step_losses_.size(); ++k) step_losses_[k] = p.output(k).item();
  return step_losses_;
}

Trainer::TrainProgram& Trainer::train_program(std::int64_t rows, const std::string& x_name,
                                               const Shape& shape) {
  // Looked up by batch size, with its gradient buffers listed once: ProgramCache::get builds a
  // key and Program::output a Tensor, both of which allocate, and a training step allocates
  // nothing after its first.
  auto known = train_by_rows_.find(rows);
  if (known != train_by_rows_.end()) {
    if (known->second.arena == known->second.program.arena_memory()) return known->second;
    train_by_rows_.erase(known);  // the shared arena grew for a larger program since
  }
  ShapeMap shapes{{x_name, shape}};
  if (model_.y.valid()) shapes.emplace(model_.y.node().name, label_shape(model_.y, rows));
  Program& p = train_programs_->get(shapes);
  TrainProgram entry{p, {}, {}, {}, p.arena_memory()};
  const std::size_t first_grad = 1 + model_.terms.size();
  for (std::size_t i = 0; i < grads_.size(); ++i) {
    entry.grads.push_back({grad_names_[i], p.output(first_grad + i).data<float>()});
    if (!parallel()) entry.norms.push_back(p.output(first_grad + grads_.size() + i).data<float>());
  }
  for (std::size_t i = 0; i < model_.updates.size(); ++i)
    entry.updates.push_back(p.output(first_update_ + i).data<float>());
  return train_by_rows_.emplace(rows, std::move(entry)).first->second;
}

LossReport Trainer::evaluate(const Split& data, std::int64_t limit) {
  LossReport r;
  std::map<std::string, double> sums;
  double loss = 0;
  for (const auto& s : model_.schedules) {
    // Evaluation uses the schedule's value at the current step, bound once.
    scalars_.at(s.input).data<float>()[0] = static_cast<float>(s.value(step_));
  }
  require_labels(model_, data, "the evaluation images");
  for_each_batch(*eval_programs_, model_.x, data, config_.batch, params_,
                 {false, config_.seed ^ kEvalSeedSalt, 0},
                 [&](Program& p, std::int64_t, std::int64_t rows) {
                   loss += p.output(0).item() * static_cast<double>(rows);
                   std::size_t k = 1;
                   for (const auto& [name, v] : model_.terms) sums[name] += p.output(k++).item() * static_cast<double>(rows);
                   r.samples += rows;
                 },
                 limit, scalars_, model_.y);
  r.loss = loss / static_cast<double>(std::max<std::int64_t>(r.samples, 1));
  for (const auto& [name, v] : sums) r.terms[name] = v / static_cast<double>(std::max<std::int64_t>(r.samples, 1));
  return r;
}

void Trainer::save(const std::filesystem::path& path, const std::map<std::string, std::string>& extra) const {
  SafetensorsFile f;
  for (const auto& [name, t] : params_) f.tensors.emplace(name, t);
  for (auto& [name, t] : optimizer_.state()) f.tensors.emplace(name, t);
  f.metadata = extra;
  f.metadata["format"] = "graphrun-checkpoint-1";
  f.metadata["epoch"] = std::to_string(epoch_);
  f.metadata["step"] = std::to_string(step_);
  f.metadata["batch_in_epoch"] = std::to_string(batch_in_epoch_);
  f.metadata["optimizer_steps"] = std::to_string(optimizer_.steps());
  f.metadata["seed"] = std::to_string(config_.seed);
  f.metadata["ranks"] = std::to_string(comm_->size());
  f.metadata["shards"] = std::to_string(config_.shards);
  f.metadata["optimizer"] = config_.optimizer.kind;
  f.metadata["partial_loss"] = exact(partial_loss_);
  f.metadata["partial_samples"] = std::to_string(partial_samples_);
  for (const auto& [name, v] : partial_terms_) f.metadata["partial_term/" + name] = exact(v);
  save_safetensors(path, f);
}

}  // namespace graphrun
