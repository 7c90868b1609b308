// A compiled program: a flat schedule of kernels over one memory arena, specialised to concrete
// input shapes and one scalar type. Built by compile(); runs with no allocation after binding.
#pragma once

#include <graphrun/graph/graph.hpp>
#include <graphrun/graph/op.hpp>
#include <graphrun/graph/parallel.hpp>
#include <graphrun/graph/tensor.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace graphrun {

using ShapeMap = std::map<std::string, Shape, std::less<>>;
using ParameterStore = std::map<std::string, Tensor, std::less<>>;

// Memory that several programs run in, one at a time: each takes its buffers from here instead of
// an arena of its own, so programs for several batch sizes, or a trainer's training and
// evaluation programs, hold the memory of the largest alone. The price: an output of one of them
// is valid only until any program sharing the arena runs or is compiled, and no two of them may
// run at the same time. Grows when a larger program is compiled; the others move to the new
// memory on their next run.
class SharedArena {
 public:
  std::size_t bytes() const { return bytes_; }
  const void* memory() const { return memory_.get(); }
  // At least `bytes` of memory, which is new when it grew (the old contents are not kept).
  void reserve(std::size_t bytes);

 private:
  std::shared_ptr<void> memory_;
  std::size_t bytes_ = 0;
};

struct CompileOptions {
  DType dtype = DType::f32;
  // After every kernel, scan its output and stop at the first NaN or Inf (NumericsError). Turns
  // fusion off, so the error names the op that made the value.
  bool check_numerics = false;
  // Runs neighbouring elementwise ops as one loop over cache-sized chunks (graph/fuse.cpp). The
  // results are the same bits either way.
  bool fuse = true;
  // Null: the program has an arena of its own. Else its buffers live in this one (SharedArena
  // says what that asks of the caller).
  std::shared_ptr<SharedArena> arena = nullptr;
  // Computes an op once where several nodes apply it to the same buffers with the same
  // attributes: a graph file's function called twice on one value (a decoder serving a loss and
  // a role, a penalty re-reading a network's output) builds its nodes twice. Random ops are
  // never shared, their draws are keyed by node. The results are the same bits either way.
  bool share_duplicates = true;
  // Plans memory so that steps with no data path between them can still run at the same time
  // (RunOptions::concurrent). false lets a buffer take the bytes of any buffer whose users all
  // come earlier in the schedule, which orders such steps: less memory where one thread runs
  // them anyway (the conv VAE's training step: 40.8 MiB of arena against 55.5). Unset: true
  // when more than one thread is set (set_num_threads) at compile time. The results are the same
  // bits either way.
  std::optional<bool> concurrent_plan = std::nullopt;
};

struct RunOptions {
  bool training = true;  // random ops with train_only=1 (corruption) are identities when false
  std::uint64_t seed = 0;
  std::uint64_t step = 0;
  // With more than one thread, steps that do not depend on each other run at the same time.
  // false keeps the schedule's order (one kernel at a time, each still split across threads),
  // e.g. to time kernels one by one. The results are the same bits either way.
  bool concurrent = true;
  // Denormal floats are flushed to zero on every thread of the run (FlushDenormals, which says
  // why); false computes them as IEEE 754 says, slowly.
  bool flush_denormals = true;
  // When set, run() writes when each step ran, and on which thread it started, to step_spans[i]
  // (num_steps() entries, caller-owned): a profile per kernel, and a timeline. Concurrent steps
  // overlap in time.
  WorkSpan* step_spans = nullptr;
  // When set, the blocks that steps split their work into are recorded here with the step's
  // index as label, on whichever thread runs them.
  BlockTrace* block_trace = nullptr;
  // This run computes rows [batch_offset, batch_offset + rows) of a larger batch (a part of a
  // data-parallel step): random ops draw, for each row, what that row draws in a run over the
  // whole batch. Random ops are taken to have the batch as their first dimension.
  std::int64_t batch_offset = 0;
};

// Raised by check_numerics: names the node, its op and the range of each input.
class NumericsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct MemoryPlan {
  std::size_t arena_bytes = 0;     // what the plan allocates
  std::size_t buffer_bytes = 0;    // the sum of every intermediate buffer, were none shared
  std::size_t constant_bytes = 0;
  int buffers = 0;
  int shared_steps = 0;  // op nodes that read the result of an identical one (share_duplicates)
};

class Program {
 public:
  // Move-only: a copy would share the arena, so two programs would write each other's results.
  Program() = default;
  Program(Program&&) noexcept = default;
  Program& operator=(Program&&) noexcept = default;
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  // Binds an input or parameter by name to caller-owned memory (no copy); the tensor must have
  // the compiled shape and dtype and stay alive while the program runs.
  void bind(std::string_view name, const Tensor& tensor);
  // Binds every parameter the program reads from the store.
  void bind_parameters(ParameterStore& params);
  void run(const RunOptions& options = {});

  // Output i of the compile() call: a view into program memory, valid until the next run (of any
  // program sharing its arena).
  Tensor output(std::size_t i) const;
  // Where the arena is now: it moves when a shared arena grows, and with it every output.
  const void* arena_memory() const { return shared_arena_ ? shared_arena_->memory() : arena_.get(); }
  std::size_t num_outputs() const { return outputs_.size(); }
  const Shape& output_shape(std::size_t i) const;

  DType dtype() const { return dtype_; }
  const MemoryPlan& memory_plan() const { return plan_; }
  int num_steps() const { return static_cast<int>(steps_.size()); }  // a fused chain is one
  // Names of the inputs and parameters the schedule reads, with their compiled shapes.
  const std::map<std::string, Shape, std::less<>>& bindings() const { return binding_shapes_; }
  std::string describe() const;  // the schedule, one kernel per line
  // Step i in a few words: its op ("fused" plus member ops for a fused step), shapes and node.
  std::string step_summary(int i) const;

 private:
  friend Program compile_program(const Graph&, const std::vector<Value>&, const ShapeMap&,
                                 const CompileOptions&);
  struct Slot {
    // fused: a value that lives only in a fused step's chunk buffer, never in memory of its own
    enum class Kind { arena, external, constant, fused } kind = Kind::arena;
    std::size_t offset = 0;  // arena
    std::string name;        // external
    void* ptr = nullptr;     // resolved address
    Shape shape;
  };
  // An argument of an op inside a fused step: the result of an earlier member, or one of the
  // step's inputs taken whole, as one value, or as a row repeated along the output (a bias).
  struct FusedArg {
    // none: an input read only for its shape. column: one value per block of fused_column
    // consecutive elements, the blocks cycling through the input's values.
    enum class Kind { member, whole, scalar, row, column, none } kind = Kind::whole;
    int index = 0;  // member index, or index into the step's inputs
    std::int64_t period = 1;  // the input's numel
  };
  struct FusedOp {
    const OpDef* op = nullptr;
    int node = -1;
    std::array<FusedArg, 2> args{};
    int out_slot = -1;  // where the result is stored, or -1: only in chunk buffer `scratch`
    int scratch = -1;
    // The result overwrites an input in place (an epilogue's over its producer's output): it is
    // computed into a chunk buffer, then copied, as the run kernels do not expect aliasing.
    bool in_place = false;
  };
  struct Step {
    int node = -1;
    std::uint32_t stream = 0;   // the node's random stream (Node::stream)
    const OpDef* op = nullptr;  // nullptr for a fused step
    Attrs attrs;  // a copy: the graph may grow (and move its nodes) after compiling
    std::vector<int> in_slots;  // -1 for an input the op reads only the shape of
    std::vector<int> out_slots;  // one, or the results of a fused step that are read elsewhere
    std::vector<Shape> in_shapes;
    std::vector<const void*> in_ptrs;  // resolved from in_slots before a run
    std::string label;                 // node description for errors
    std::vector<FusedOp> fused;        // a fused step's ops, in order
    std::int64_t fused_numel = 0;      // elements of each fused op's output
    std::int64_t fused_row = 0;        // length of the repeated row of `row` arguments
    std::int64_t fused_column = 0;     // elements sharing one value of a `column` argument
    std::int64_t fused_block = 0;      // chunks never straddle a block of this many elements
    bool fused_whole_rows = false;     // chunks take several short rows (row arguments repeated)
    // A fused step run by this step's kernel on each range of its output it reports ready
    // (OpDef::reports_ready); it reads and overwrites that output. At most one.
    std::vector<Step> epilogue;
    // Reductions (OpDef::blockwise) of this step's output run on each range it reports ready,
    // after the epilogue, and finished after the kernel; `partials` holds a reduction's partial
    // results between the two.
    std::vector<Step> reductions;
    mutable std::vector<double> partials;
  };
  // The slots a step reads and writes, its epilogue's and reductions' included.
  static std::vector<int> reads(const Step& step);
  static std::vector<int> writes(const Step& step);
  template <class T>
  void run_step(const Step& step, const RunOptions& options);
  template <class T>
  void run_fused(const Step& step);
  template <class T>
  void run_fused_chunks(const Step& step, std::int64_t begin, std::int64_t end);
  // How a fused step walks its elements (graph/fuse.cpp).
  struct ChunkLayout {
    std::int64_t block = 0, chunk = 0, per_block = 0, count = 0;
  };
  static ChunkLayout chunk_layout(const Step& step);
  struct EpilogueRun {
    Program* program = nullptr;
    const Step* step = nullptr;  // the producer
  };
  template <class T>
  KernelArgs<T> kernel_args(const Step& step) const;
  // A ReadyCallback: runs a step's epilogue, then its reductions' partials (an EpilogueRun), on a
  // range the step's kernel finished.
  template <class T>
  static void run_epilogue(const void* context, std::int64_t first, std::int64_t count);
  void fuse_elementwise();
  void attach_blockwise_reductions();
  void resolve();
  void follow_shared_arena();
  void plan_dependencies();
  void check_step(const Step& step) const;

  const Graph* graph_ = nullptr;
  DType dtype_ = DType::f32;
  bool check_numerics_ = false;
  std::vector<Slot> slots_;
  std::vector<Step> steps_;
  std::vector<int> outputs_;  // slot per output
  std::shared_ptr<void> arena_;  // or, when shared, shared_arena_ (arena_based_ is where the
                                 // slots point now)
  std::shared_ptr<SharedArena> shared_arena_;
  const void* arena_based_ = nullptr;
  std::vector<Tensor> constants_;
  std::map<std::string, Shape, std::less<>> binding_shapes_;
  MemoryPlan plan_;
  // With more than one thread, steps run as a DAG: each waits for the earlier steps that write
  // memory it reads or writes, or read memory it writes (the arena reuses buffers).
  std::vector<std::vector<int>> successors_;
  std::vector<int> predecessors_;
  std::unique_ptr<std::atomic<int>[]> pending_;
  bool resolved_ = false;
};

// Compiles the part of `graph` that `outputs` need (dead code is dropped), with concrete shapes
// for the inputs (missing ones keep their declared shapes). Throws ShapeError naming the node
// whose shapes disagree, std::logic_error on a cycle.
Program compile_program(const Graph& graph, const std::vector<Value>& outputs,
                        const ShapeMap& input_shapes = {}, const CompileOptions& options = {});

// Programs specialised per input shapes and cached, so a smaller last batch compiles once more
// and then reuses its program. They share one arena (the options' or one of the cache's own), so
// they must run one at a time.
class ProgramCache {
 public:
  ProgramCache(const Graph& graph, std::vector<Value> outputs, CompileOptions options = {});
  Program& get(const ShapeMap& input_shapes);
  std::size_t size() const { return programs_.size(); }

 private:
  const Graph* graph_;
  std::vector<Value> outputs_;
  CompileOptions options_;
  std::map<std::string, std::unique_ptr<Program>> programs_;
};

}  // namespace graphrun
