// The training runtime: batches, the compiled training step, the optimizer, metrics and
// checkpoints. A library, not the CLI: research code can drive it from its own loop.
#pragma once

#include <graphrun/graph/parallel.hpp>
#include <graphrun/graph/program.hpp>
#include <graphrun/models/model.hpp>
#include <graphrun/train/communicator.hpp>
#include <graphrun/train/dataset.hpp>
#include <graphrun/train/optimizer.hpp>
#include <graphrun/train/safetensors.hpp>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <stdexcept>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace graphrun {

struct TrainConfig {
  std::int64_t epochs = 10;
  std::int64_t batch = 128;
  OptimizerConfig optimizer;
  std::uint64_t seed = 1;       // init, data order, noise: the whole run follows from it
  bool check_numerics = false;  // stop at the first node producing NaN or Inf
  // Data parallel (a Communicator of several ranks): 0 splits each batch into one part per rank
  // and sums the parts' gradients in a ring (the same bits for the same number of ranks).
  // K > 0 splits it into K fixed shards, each with its own gradient, summed in shard order on
  // every rank: the same bits for any number of ranks up to K, at the cost of K gradients in
  // memory and on the wire. In one process, K > 0 computes the K shards one after the other.
  std::int64_t shards = 0;
};

// Mean loss and terms per sample over a pass.
struct LossReport {
  double loss = 0;
  std::map<std::string, double> terms;
  std::int64_t samples = 0;
};

struct EpochReport {
  std::int64_t epoch = 0;  // 1-based number of the epoch just finished
  std::int64_t step = 0;   // optimizer steps so far
  LossReport train;
  LossReport test;
  bool has_test = false;
  double seconds = 0;  // the training pass alone
  double samples_per_second = 0;
  bool interrupted = false;  // stopped early by the stop flag; the epoch is not complete
  int ranks = 1;             // processes that trained it (Communicator::size)
};

// Time and traffic of the data-parallel steps so far (Trainer::parallel_stats).
struct ParallelStats {
  std::int64_t steps = 0;
  double reduce_seconds = 0;   // in the gradient sum (all-reduce or gather, and the shard sum)
  double compute_seconds = 0;  // running this rank's part(s) of the batch
  std::int64_t gradient_floats = 0;  // one gradient: the parameters' total size
};

struct Progress {
  std::int64_t batch = 0, batches = 0, samples = 0;
  double running_loss = 0, seconds = 0;
};

// Where a training step's time goes, summed over `steps` steps: converting the batch, the
// compiled program (and inside it each kernel), and the optimizer.
struct StepProfile {
  std::int64_t steps = 0;
  double data_seconds = 0, program_seconds = 0, optimizer_seconds = 0;
  std::vector<std::string> kernels;    // Program::step_summary of each kernel, in schedule order
  std::vector<double> kernel_seconds;  // concurrent kernels overlap, so these can sum to more
                                       // than program_seconds
  // The last kTimelineSteps steps as a timeline. `timeline`: span by span in the order they ran,
  // the batch, each kernel (on the thread that started it), the optimizer. `blocks`: the blocks
  // that these split their work into, on the threads that ran them (BlockTrace); blocks_dropped
  // counts those that did not fit in the trace's storage.
  static constexpr std::int64_t kTimelineSteps = 10;
  static constexpr int kBatch = -1, kOptimizer = -2;
  struct Span {
    int kernel = 0;          // index into `kernels`, or kBatch or kOptimizer
    std::int64_t step = 0;   // among the timed steps, from 0
    WorkSpan span;
  };
  std::vector<Span> timeline;
  std::vector<Span> blocks;
  std::int64_t blocks_dropped = 0;
};

// A model that takes labels (Model::y) met data without them, or a class it does not have.
class LabelError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Labels as a model's input y takes them, for the images `rows` of `data`: one-hot rows of C
// values when y is [B, C], one class index per row (as a number) when y is [B]. Writes
// rows.size() * C (or rows.size()) floats; allocates nothing. Throws LabelError when `data` has
// no labels or a label is not below C.
void fill_labels(const Split& data, std::span<const std::int64_t> rows, const Shape& y_shape,
                 float* out);
// The same for `classes`, one class per row (decoding a chosen class).
void fill_classes(std::span<const std::int64_t> classes, const Shape& y_shape, float* out);
// y's shape for a batch of `rows`.
Shape label_shape(Value y, std::int64_t rows);
// Throws LabelError naming the model and `what` ("the training images") when the model takes
// labels and `data` has none.
void require_labels(const Model& model, const Split& data, const std::string& what);

// One pass of `outputs` over `data` in batches, evaluation mode, for inference and test losses.
// `each` gets the program after each batch run and the number of rows in it. `y`, when valid, is
// bound to the labels of each batch (fill_labels).
void for_each_batch(ProgramCache& cache, Value x, const Split& data, std::int64_t batch,
                    ParameterStore& params, const RunOptions& run,
                    const std::function<void(Program&, std::int64_t first, std::int64_t rows)>& each,
                    std::int64_t limit = -1, const std::map<std::string, Tensor>& extra_inputs = {},
                    Value y = {});

class Trainer {
 public:
  // Initialises the parameters from config.seed (He/Xavier as the builder chose), the same on
  // every rank of `comm`. With several ranks (or config.shards > 0), each step trains the
  // rank's part of the batch and sums the gradients through `comm` before the optimizer step,
  // so every rank applies the same update; the loss reported is the whole batch's.
  Trainer(Model& model, TrainConfig config, Communicator& comm = single_process());

  // Trains up to the end of the current epoch (from where a checkpoint left it). Evaluates on
  // `test` when given. Throws NumericsError on a NaN or Inf loss before applying that update, so
  // the parameters stay the last good ones.
  EpochReport train_epoch(const Split& train, const Split* test,
                          const std::function<void(const Progress&)>& on_batch = {},
                          const std::atomic<bool>* stop = nullptr);
  LossReport evaluate(const Split& data, std::int64_t limit = -1);
  // Trains `warmup` + `steps` steps on the first batches of the current epoch's order and times
  // the last `steps`, keeping the last few as a timeline. Parameters and optimizer state move as
  // in training; the epoch and step counters do not.
  StepProfile profile(const Split& train, std::int64_t steps, std::int64_t warmup = 5);

  ParameterStore& parameters() { return params_; }
  // The memory the training and evaluation programs run in, to share with other programs that
  // run between steps (Inference's), never during one.
  const std::shared_ptr<SharedArena>& arena() const { return arena_; }
  Model& model() { return model_; }
  const TrainConfig& config() const { return config_; }
  std::int64_t epoch() const { return epoch_; }  // completed epochs
  std::int64_t step() const { return step_; }
  std::int64_t batch_in_epoch() const { return batch_in_epoch_; }
  Communicator& communicator() const { return *comm_; }
  const ParallelStats& parallel_stats() const { return parallel_stats_; }
  // Collective: whether every rank holds the same parameter bits as rank 0 (a 64-bit hash of
  // each rank's, compared). Always true in one process.
  bool parameters_agree();

  // Checkpoint: every parameter, the optimizer state, and in the metadata the epoch, step,
  // position in the epoch, seed and `extra` (model name and options). Written atomically.
  // Data parallel on one host, each rank keeps its chunk of the optimizer state until
  // train_epoch returns, which gathers it: save between epochs, as graphrun does.
  void save(const std::filesystem::path& path, const std::map<std::string, std::string>& extra) const;
  // Restores a checkpoint written by save(); refuses one whose tensors disagree with the model
  // (missing, unexpected, wrong shape or dtype), naming the tensor. Returns its metadata.
  std::map<std::string, std::string> load(const std::filesystem::path& path);
  // The same from a checkpoint already read (e.g. broadcast by rank 0); `file` names it in errors.
  std::map<std::string, std::string> load(const SafetensorsFile& checkpoint, const std::string& file);

 private:
  std::vector<std::int64_t> epoch_order(std::int64_t count, std::int64_t epoch) const;
  // One optimizer step on the images `rows` of `data`, as step number `step`; returns the
  // program, whose outputs hold the loss and its terms. `where` names the step in an error (only
  // then called: a step allocates nothing). Times its parts into `profile` when given.
  Program& train_step(const Split& data, std::span<const std::int64_t> rows, std::int64_t step,
                      FunctionRef<std::string()> where, StepProfile* profile = nullptr);
  struct TrainProgram {
    Program& program;
    std::vector<GradRef> grads;  // its gradient outputs, by parameter name
    std::vector<const float*> norms;  // the norm of each gradient (scalar outputs)
    std::vector<const float*> updates;  // each buffer's new value (Model::updates)
    const void* arena = nullptr;      // where the pointers above were taken
  };
  TrainProgram& train_program(std::int64_t rows, const std::string& x_name, const Shape& shape);
  // The training program for the images `rows` of `data` at step `step`, with the batch, its
  // labels, the parameters and the scheduled scalars bound. The batch fill is traced into
  // `blocks` when given.
  TrainProgram& bind_batch(const Split& data, std::span<const std::int64_t> rows, std::int64_t step,
                           BlockTrace* blocks = nullptr);
  // The loss and its terms of a step (one program's outputs, or the summed parts'), in
  // step_losses_.
  const std::vector<double>& program_losses(Program& p);
  // Data parallel (train/data_parallel.cpp): whether steps go through parallel_step, which
  // trains this rank's part(s) of the batch, sums the gradients through comm_, agrees on
  // `stop` (into agreed_stop_) and applies the update.
  bool parallel() const { return comm_->size() > 1 || config_.shards > 0; }
  const std::vector<double>& parallel_step(const Split& data, std::span<const std::int64_t> rows,
                                           std::int64_t step, FunctionRef<std::string()> where,
                                           bool stop);
  // Runs rows [offset, offset + rows.size()) of the batch (of `total` rows) and writes its
  // gradient times rows / total, then the loss and terms times the same, to `out`.
  void run_part(const Split& data, std::span<const std::int64_t> rows, std::int64_t offset,
                std::int64_t total, std::int64_t step, float* out);
  // Default mode where the ranks share memory (MPI on one host): each rank updates its own
  // chunk of the parameters, held once for all ranks.
  const std::vector<double>& shared_update(std::span<float> in, FunctionRef<std::string()> where,
                                           double t1);
  // The squared norm of chunk c (of `ranks`) of a fused buffer's gradients, in float: both
  // ways of summing add up a step's norm from these, so they give the same bits.
  float chunk_squares(const float* sum, std::size_t slot, int ranks, int c) const;
  void check_norm(double norm, double loss, FunctionRef<std::string()> where) const;
  // Writes the buffers' new values, laid end to end in Model::updates order, into params_.
  void apply_updates(const float* values);
  // Collective, after shared_update steps: each rank's chunk of the optimizer's state to every
  // rank, so the state is whole again (for a checkpoint). train_epoch calls it as it returns.
  void shared_state();
  // First data-parallel step: moves the parameters into memory all ranks share, when the
  // communicator has it (shared_params_), and makes params_ views of it.
  void share_parameters();

  Model& model_;
  TrainConfig config_;
  ParameterStore params_;
  Optimizer optimizer_;
  std::vector<Value> grads_;
  std::vector<std::string> grad_names_;
  std::size_t first_update_ = 0;  // the training program's output of Model::updates[0]
  std::unique_ptr<ProgramCache> train_programs_;
  std::unique_ptr<ProgramCache> eval_programs_;
  std::shared_ptr<SharedArena> arena_;  // both caches' programs run in it
  std::map<std::int64_t, TrainProgram> train_by_rows_;  // into train_programs_, by batch size
  std::map<std::int64_t, Tensor> batches_;  // one input buffer per batch size
  std::map<std::int64_t, Tensor> labels_;   // and one for the labels, when the model takes them
  // The last profiled step's spans and blocks, when profiling.
  std::vector<WorkSpan> kernel_spans_;
  WorkSpan batch_span_, optimizer_span_;
  std::vector<BlockTrace::Block> block_storage_;
  std::unique_ptr<BlockTrace> block_trace_;
  std::map<std::string, Tensor> scalars_;   // schedule inputs
  std::int64_t epoch_ = 0, step_ = 0, batch_in_epoch_ = 0;
  double partial_loss_ = 0;  // the interrupted epoch's running sums, so a resumed epoch reports
  std::map<std::string, double> partial_terms_;  // the whole epoch
  std::int64_t partial_samples_ = 0;
  Communicator* comm_;
  std::vector<double> step_losses_;
  bool agreed_stop_ = false;
  std::vector<float> fused_;   // parts' gradients, losses and stop flags, as the ranks sum them
  std::vector<float> summed_;  // shards mode: the shards' sum
  std::vector<GradRef> parallel_grads_;  // into fused_ or summed_
  std::vector<std::int64_t> gather_offsets_;
  std::vector<float> header_;  // shared_update: each rank's squared norm, losses and stop flag
  std::vector<float> tail_;    // shared_update: the summed losses, new buffer values, stop flag
  std::int64_t update_floats_ = 0;  // the buffers' new values, laid end to end
  std::vector<std::int64_t> header_offsets_, param_offsets_;
  std::vector<float> flat_;    // shared_state: a state laid end to end
  std::span<float> shared_params_;  // the parameters, when all ranks share one copy
  bool shared_state_ = false;  // the optimizer's state is split across the ranks
  ParallelStats parallel_stats_;
};

}  // namespace graphrun
