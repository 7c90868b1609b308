#include <graphrun/graph/parallel.hpp>

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/parallel_for.h>

#include <memory>
#include <mutex>
#include <vector>

namespace graphrun {
namespace {

std::mutex control_mutex;
std::unique_ptr<tbb::global_control> control;
int current_threads = 0;

}  // namespace

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

void parallel_for(std::int64_t n, std::int64_t grain,
                  FunctionRef<void(std::int64_t, std::int64_t)> body) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (n <= grain) {
    body(0, n);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n, grain),
                    [&](const tbb::blocked_range<std::int64_t>& r) { body(r.begin(), r.end()); });
}

double deterministic_sum(std::int64_t n,
                         FunctionRef<double(std::int64_t, std::int64_t)> chunk_sum,
                         std::int64_t chunk) {
  if (n <= 0) return 0.0;
  std::int64_t chunks = (n + chunk - 1) / chunk;
  if (chunks == 1) return chunk_sum(0, n);
  // Reused across calls so a training step does not allocate.
  thread_local std::vector<double> partial;
  auto& parts = partial;
  if (static_cast<std::int64_t>(parts.size()) < chunks) parts.resize(static_cast<std::size_t>(chunks));
  double* p = parts.data();
  tbb::parallel_for(std::int64_t{0}, chunks, [&](std::int64_t c) {
    std::int64_t b = c * chunk;
    p[c] = chunk_sum(b, std::min(n, b + chunk));
  });
  double total = 0.0;
  for (std::int64_t c = 0; c < chunks; ++c) total += p[c];
  return total;
}

}  // namespace graphrun
