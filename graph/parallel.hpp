// Parallelism is owned by TBB: one switch sets the thread count for everything. Kernels split
// work into fixed-size chunks that do not depend on the thread count, so results are
// bit-identical at any number of threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>
#include <type_traits>
#include <utility>

namespace graphrun {

// A non-owning reference to a callable: unlike std::function it never allocates, which keeps a
// training step free of heap allocation.
template <class Signature>
class FunctionRef;
template <class R, class... Args>
class FunctionRef<R(Args...)> {
 public:
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, FunctionRef>)
  FunctionRef(F&& f)  // NOLINT: implicit by design, like std::function
      : object_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* o, Args... args) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<Args>(args)...);
        }) {}
  R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

 private:
  void* object_;
  R (*call_)(void*, Args...);
};

// While alive, the calling thread flushes denormal floats to zero (x86 FTZ and DAZ), and every
// task that parallel_for, run_dag and deterministic_sum start from it does the same; the caller's
// setting comes back at the end. Each operation on a denormal costs a microcode assist of 100+
// cycles: an Adam moment of a dead ReLU unit decays through that range for about 150 steps, and
// after 3 VAE epochs a tenth of the encoder's first moments sit there, which made the third epoch
// a third slower than the first. With enable = false it changes nothing.
class FlushDenormals {
 public:
  explicit FlushDenormals(bool enable = true);
  ~FlushDenormals();
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  unsigned saved_ = 0;
  bool active_ = false;
};

// Sets the number of worker threads for all kernels (0 = one per core). The BLAS is kept
// single-threaded and called from TBB tasks, so the two never oversubscribe the cores.
void set_num_threads(int threads);
int num_threads();
// The calling thread's slot among TBB's workers, 0 .. num_threads() - 1 (0 outside any task):
// which thread ran what, for timelines.
int worker_index();

// When and where a piece of work ran, for profiles and timelines.
struct WorkSpan {
  double start = 0, end = 0;  // seconds on std::chrono::steady_clock (clock_seconds())
  int thread = 0;             // worker_index() of the thread that ran it
};
double clock_seconds();

// Records the blocks that parallel_for and deterministic_sum hand out, on whichever thread runs
// them, labelled with what they belong to (a kernel's index, say): what every thread did, where
// a span per kernel shows only the thread that started it. The storage is the caller's and is
// filled without locks or allocation; blocks past its end are counted in dropped(). A loop too
// small to split runs whole on its caller and records nothing.
class BlockTrace {
 public:
  struct Block {
    WorkSpan span;
    int label = 0;
  };
  explicit BlockTrace(std::span<Block> storage) : storage_(storage) {}
  BlockTrace(const BlockTrace&) = delete;
  BlockTrace& operator=(const BlockTrace&) = delete;
  // What the finished parallel work recorded, in the order blocks ended.
  std::span<const Block> blocks() const;
  std::size_t dropped() const;
  void clear() { next_.store(0, std::memory_order_relaxed); }
  void record(int label, const WorkSpan& span);

  // While alive, the parallel work this thread starts is recorded in `trace` under `label`; a
  // null trace records nothing. Nests: the previous trace and label come back at the end.
  class Scope {
   public:
    Scope(BlockTrace* trace, int label);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    BlockTrace* saved_trace_;
    int saved_label_;
  };

 private:
  std::span<Block> storage_;
  std::atomic<std::size_t> next_{0};
};

// Elements per parallel chunk of elementwise work: kernels, fused chains and the optimizer. At
// 16384, a bias + relu over [128, 400] went to four tasks and took longer at 2 threads than at
// 1 (30 against 20 us in a traced step): its rows moved between the cores' caches for a few
// microseconds of arithmetic each.
inline constexpr std::int64_t kGrain = 32768;

// Calls body(begin, end) over [0, n) in chunks of `grain` elements, in parallel.
void parallel_for(std::int64_t n, std::int64_t grain,
                  FunctionRef<void(std::int64_t, std::int64_t)> body);

// Runs body(i) for each node of a DAG once all its predecessors have finished; nodes that do not
// depend on each other run concurrently, and each may still split its own work with
// parallel_for. predecessors[i] counts the edges into i; `pending` is caller-owned scratch of one
// counter per node, so a run does not allocate. An exception from body stops the run and is
// rethrown.
void run_dag(std::span<const std::vector<int>> successors, std::span<const int> predecessors,
             std::atomic<int>* pending, FunctionRef<void(int)> body);

// Sum of f(i) for i in [0, n) with a fixed partition into chunks of `chunk` and the partial sums
// added in chunk order: the same bits at any thread count. Inputs of more than 256 chunks take
// larger chunks.
double deterministic_sum(std::int64_t n, FunctionRef<double(std::int64_t, std::int64_t)> chunk_sum,
                         std::int64_t chunk = 16384);

}  // namespace graphrun
