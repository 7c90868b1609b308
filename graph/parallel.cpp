#include <graphrun/graph/parallel.hpp>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>

#if defined(__x86_64__) || defined(__SSE2__)
#include <xmmintrin.h>
#define GRAPHRUN_MXCSR 1
#endif

namespace graphrun {
namespace {

// The floating-point control bits that decide results: MXCSR's DAZ, exception masks, rounding
// and FTZ (bits 6-15), not its sticky exception flags (bits 0-5), which every computation sets.
#ifdef GRAPHRUN_MXCSR
constexpr unsigned kControlBits = 0xffc0u;
constexpr unsigned kFlushBits = 0x8040u;  // FTZ | DAZ
unsigned fp_control() { return _mm_getcsr() & kControlBits; }
void set_fp_control(unsigned control) { _mm_setcsr((_mm_getcsr() & ~kControlBits) | control); }
#else
constexpr unsigned kFlushBits = 0;
unsigned fp_control() { return 0; }
void set_fp_control(unsigned) {}
#endif

// Runs a task under the control bits of the thread that started its parallel region: TBB's
// workers otherwise keep the bits their arena captured when it started.
class FpScope {
 public:
  explicit FpScope(unsigned control) : saved_(fp_control()) {
    if (saved_ != control) set_fp_control(control);
  }
  ~FpScope() {
    if (fp_control() != saved_) set_fp_control(saved_);
  }
  FpScope(const FpScope&) = delete;
  FpScope& operator=(const FpScope&) = delete;

 private:
  unsigned saved_;
};

// The block trace and label of the work running on this thread (BlockTrace::Scope).
struct TraceContext {
  BlockTrace* trace = nullptr;
  int label = 0;
};
thread_local TraceContext current_trace;

// Runs one block of a parallel loop, recording it when the loop's starter was tracing; the block
// carries the label on, so parallel work nested inside it is recorded too.
template <class F>
void traced_block(const TraceContext& trace, F&& run) {
  if (!trace.trace) return run();
  BlockTrace::Scope scope(trace.trace, trace.label);
  WorkSpan span{clock_seconds(), 0, worker_index()};
  run();
  span.end = clock_seconds();
  trace.trace->record(trace.label, span);
}

std::mutex control_mutex;
std::unique_ptr<tbb::global_control> control;
int current_threads = 0;

}  // namespace

FlushDenormals::FlushDenormals(bool enable) : saved_(fp_control()), active_(enable) {
  if (active_) set_fp_control(saved_ | kFlushBits);
}

FlushDenormals::~FlushDenormals() {
  if (active_) set_fp_control(saved_);
}

void set_num_threads(int threads) {
  std::lock_guard lock(control_mutex);
  int cores = tbb::info::default_concurrency();
  current_threads = threads <= 0 ? cores : threads;
  control.reset();
  control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                  static_cast<std::size_t>(current_threads));
}

int num_threads() {
  return static_cast<int>(
      tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
}

int worker_index() { return std::max(0, tbb::this_task_arena::current_thread_index()); }

double clock_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::span<const BlockTrace::Block> BlockTrace::blocks() const {
  return storage_.first(std::min(next_.load(std::memory_order_relaxed), storage_.size()));
}

std::size_t BlockTrace::dropped() const {
  std::size_t n = next_.load(std::memory_order_relaxed);
  return n > storage_.size() ? n - storage_.size() : 0;
}

void BlockTrace::record(int label, const WorkSpan& span) {
  std::size_t i = next_.fetch_add(1, std::memory_order_relaxed);
  if (i < storage_.size()) storage_[i] = {span, label};
}

BlockTrace::Scope::Scope(BlockTrace* trace, int label)
    : saved_trace_(current_trace.trace), saved_label_(current_trace.label) {
  current_trace = {trace, label};
}

BlockTrace::Scope::~Scope() { current_trace = {saved_trace_, saved_label_}; }

void parallel_for(std::int64_t n, std::int64_t grain,
                  FunctionRef<void(std::int64_t, std::int64_t)> body) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (n <= grain) {
    body(0, n);
    return;
  }
  unsigned control = fp_control();
  TraceContext trace = current_trace;
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n, grain),
                    [&](const tbb::blocked_range<std::int64_t>& r) {
                      FpScope fp(control);
                      traced_block(trace, [&] { body(r.begin(), r.end()); });
                    });
}

void run_dag(std::span<const std::vector<int>> successors, std::span<const int> predecessors,
             std::atomic<int>* pending, FunctionRef<void(int)> body) {
  for (std::size_t i = 0; i < predecessors.size(); ++i)
    pending[i].store(predecessors[i], std::memory_order_relaxed);
  tbb::task_group group;
  // Runs node i, then the successors it made ready: all but one as new tasks, the last one in
  // this task, so a chain of dependent nodes runs without spawning.
  struct Runner {
    std::span<const std::vector<int>> successors;
    std::atomic<int>* pending;
    FunctionRef<void(int)> body;
    tbb::task_group* group;
    unsigned control;
    void operator()(int i) const {
      FpScope fp(control);
      while (i >= 0) {
        body(i);
        int next = -1;
        for (int s : successors[static_cast<std::size_t>(i)]) {
          if (pending[s].fetch_sub(1, std::memory_order_acq_rel) != 1) continue;
          if (next >= 0) group->run([this, next] { (*this)(next); });
          next = s;
        }
        i = next;
      }
    }
  } runner{successors, pending, body, &group, fp_control()};
  for (std::size_t i = 0; i < predecessors.size(); ++i)
    if (predecessors[i] == 0) group.run([&runner, i] { runner(static_cast<int>(i)); });
  group.wait();
}

double deterministic_sum(std::int64_t n,
                         FunctionRef<double(std::int64_t, std::int64_t)> chunk_sum,
                         std::int64_t chunk) {
  if (n <= 0) return 0.0;
  // Partial sums live on the stack: no allocation, and nothing shared with other sums that run
  // at the same time (run_dag) or that a waiting thread picks up. Very large inputs take larger
  // chunks; the partition still depends on n only.
  constexpr std::int64_t kMaxChunks = 256;
  chunk = std::max(chunk, (n + kMaxChunks - 1) / kMaxChunks);
  std::int64_t chunks = (n + chunk - 1) / chunk;
  if (chunks == 1) return chunk_sum(0, n);
  double partial[kMaxChunks];
  unsigned control = fp_control();
  TraceContext trace = current_trace;
  tbb::parallel_for(std::int64_t{0}, chunks, [&](std::int64_t c) {
    FpScope fp(control);
    std::int64_t b = c * chunk;
    traced_block(trace, [&] { partial[c] = chunk_sum(b, std::min(n, b + chunk)); });
  });
  double total = 0.0;
  for (std::int64_t c = 0; c < chunks; ++c) total += partial[c];
  return total;
}

}  // namespace graphrun
