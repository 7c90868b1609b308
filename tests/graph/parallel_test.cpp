// run_dag, deterministic_sum and FlushDenormals: the scheduling primitives under Program::run.
#include <graphrun/graph/parallel.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <cfloat>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace graphrun {
namespace {

struct ThreadGuard {
  ~ThreadGuard() { set_num_threads(0); }
};

// A layered DAG: node i depends on some earlier nodes, chosen by a fixed rule.
struct Dag {
  std::vector<std::vector<int>> successors;
  std::vector<int> predecessors;
  std::vector<std::vector<int>> preds;
  explicit Dag(int n) : successors(static_cast<std::size_t>(n)), predecessors(static_cast<std::size_t>(n)), preds(static_cast<std::size_t>(n)) {
    for (int i = 1; i < n; ++i)
      for (int j : {i - 1, i / 2, i - 7})
        if (j >= 0 && (i * 31 + j) % 3 != 0) edge(j, i);
  }
  void edge(int from, int to) {
    for (int p : preds[static_cast<std::size_t>(to)])
      if (p == from) return;
    successors[static_cast<std::size_t>(from)].push_back(to);
    preds[static_cast<std::size_t>(to)].push_back(from);
    ++predecessors[static_cast<std::size_t>(to)];
  }
};

TEST_CASE("run_dag runs every node once, after all its predecessors", "[graph][parallel]") {
  ThreadGuard guard;
  const int n = 200;
  Dag dag(n);
  std::vector<std::atomic<int>> pending(n);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (int round = 0; round < 20; ++round) {
      std::atomic<int> clock{0};
      std::vector<std::atomic<int>> started(n), finished(n);
      for (auto& s : finished) s = -1;
      run_dag(dag.successors, dag.predecessors, pending.data(), [&](int i) {
        started[static_cast<std::size_t>(i)] = clock.fetch_add(1) + 1;
        finished[static_cast<std::size_t>(i)] = clock.fetch_add(1) + 1;
      });
      bool ok = true;
      for (int i = 0; i < n; ++i) {
        if (finished[static_cast<std::size_t>(i)] < 0) ok = false;
        for (int p : dag.preds[static_cast<std::size_t>(i)])
          if (finished[static_cast<std::size_t>(p)] > started[static_cast<std::size_t>(i)]) ok = false;
      }
      CHECK(ok);
      CHECK(clock.load() == 2 * n);  // each node exactly once
    }
  }
}

TEST_CASE("run_dag runs independent nodes at the same time", "[graph][parallel]") {
  ThreadGuard guard;
  set_num_threads(2);
  // Two roots that each wait for the other to start: they finish only if they overlap. The wait
  // is bounded so a failure is reported rather than hung.
  std::vector<std::vector<int>> successors{{2}, {2}, {}};
  std::vector<int> predecessors{0, 0, 2};
  std::vector<std::atomic<int>> pending(3);
  std::atomic<int> arrived{0};
  std::atomic<bool> met[2] = {false, false};
  run_dag(successors, predecessors, pending.data(), [&](int i) {
    if (i == 2) return;
    arrived.fetch_add(1);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (arrived.load() < 2 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    met[i] = arrived.load() == 2;
  });
  CHECK(met[0]);
  CHECK(met[1]);
}

TEST_CASE("run_dag rethrows a node's exception", "[graph][parallel]") {
  ThreadGuard guard;
  Dag dag(50);
  std::vector<std::atomic<int>> pending(50);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    CHECK_THROWS_WITH(run_dag(dag.successors, dag.predecessors, pending.data(),
                              [](int i) {
                                if (i == 17) throw std::runtime_error("node 17 failed");
                              }),
                      "node 17 failed");
  }
}

TEST_CASE("deterministic_sum is the same at any thread count, concurrent sums included",
          "[graph][parallel][determinism]") {
  ThreadGuard guard;
  // 300 chunks of 1024 requested: more than the partial sums kept on the stack, so the chunks
  // grow, by a rule that must not depend on the thread count.
  const std::int64_t n = 300 * 1024 + 5;
  std::vector<double> values(static_cast<std::size_t>(n));
  for (std::int64_t k = 0; k < n; ++k) values[static_cast<std::size_t>(k)] = 1.0 / static_cast<double>(1 + k % 97);
  auto sum_of = [&](int node) {
    return deterministic_sum(
        n,
        [&](std::int64_t b, std::int64_t e) {
          double s = 0;
          for (std::int64_t k = b; k < e; ++k) s += values[static_cast<std::size_t>(k)] * (node + 1);
          return s;
        },
        1024);
  };
  const int nodes = 8;
  std::vector<double> expected(nodes), got(nodes);
  set_num_threads(1);
  for (int i = 0; i < nodes; ++i) expected[static_cast<std::size_t>(i)] = sum_of(i);
  double exact = 0;
  for (double v : values) exact += v;
  CHECK(expected[0] == Approx(exact).epsilon(1e-12));
  // At 2 threads, from DAG nodes that run at the same time.
  set_num_threads(2);
  std::vector<std::vector<int>> successors(nodes);
  std::vector<int> predecessors(nodes, 0);
  std::vector<std::atomic<int>> pending(nodes);
  run_dag(successors, predecessors, pending.data(),
          [&](int i) { got[static_cast<std::size_t>(i)] = sum_of(i); });
  CHECK(got == expected);  // bitwise: == on doubles
}

// A product that underflows to a denormal, and one that reads a denormal: both come out zero
// under FTZ and DAZ. volatile keeps them from being folded at compile time.
bool flushes() {
  volatile float a = 1e-30f, b = 1e-10f, denormal = 1e-40f;
  float underflow = a * b, read = denormal * 1.0f;
  return underflow == 0.0f && read == 0.0f;
}

// Runs two tasks that each wait (bounded) for the other to start, so both of the pool's threads
// take one, and reports whether each flushed.
std::vector<bool> flushes_on_both_threads(const char* primitive) {
  std::atomic<int> arrived{0};
  std::vector<std::atomic<bool>> flushed(2);
  std::mutex m;
  std::set<std::thread::id> threads;
  auto task = [&](int i) {
    arrived.fetch_add(1);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (arrived.load() < 2 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    flushed[static_cast<std::size_t>(i)] = flushes();
    std::lock_guard lock(m);
    threads.insert(std::this_thread::get_id());
  };
  if (std::string(primitive) == "parallel_for") {
    parallel_for(2, 1, [&](std::int64_t b, std::int64_t e) {
      for (auto i = b; i < e; ++i) task(static_cast<int>(i));
    });
  } else if (std::string(primitive) == "run_dag") {
    std::vector<std::vector<int>> successors(2);
    std::vector<int> predecessors{0, 0};
    std::vector<std::atomic<int>> pending(2);
    run_dag(successors, predecessors, pending.data(), task);
  } else {
    deterministic_sum(2, [&](std::int64_t b, std::int64_t) { task(static_cast<int>(b)); return 0.0; }, 1);
  }
  CHECK(threads.size() == 2);
  return {flushed[0].load(), flushed[1].load()};
}

TEST_CASE("FlushDenormals flushes on every thread of its tasks and then restores the caller's",
          "[graph][parallel][numerics]") {
  ThreadGuard guard;
  set_num_threads(2);
  REQUIRE(!flushes());  // IEEE denormals by default: the test below can fail
  for (const char* primitive : {"parallel_for", "run_dag", "deterministic_sum"}) {
    INFO(primitive);
    CHECK(flushes_on_both_threads(primitive) == std::vector<bool>{false, false});
    {
      FlushDenormals flush;
      CHECK(flushes());
      CHECK(flushes_on_both_threads(primitive) == std::vector<bool>{true, true});
      FlushDenormals off(false);
      CHECK(flushes());  // enable = false leaves the setting as it is
    }
    CHECK(!flushes());
    // The workers went back to their own setting too.
    CHECK(flushes_on_both_threads(primitive) == std::vector<bool>{false, false});
  }
}

}  // namespace
}  // namespace graphrun

namespace graphrun {
namespace {

TEST_CASE("BlockTrace records the blocks of parallel work under the starter's label", "[graph][parallel]") {
  ThreadGuard guard;
  set_num_threads(2);
  std::vector<BlockTrace::Block> storage(1024);
  BlockTrace trace(storage);
  std::atomic<std::int64_t> covered{0};
  auto loop = [&] {
    parallel_for(4096, 256, [&](std::int64_t b, std::int64_t e) {
      covered += e - b;
      parallel_for(4096, 1024, [&](std::int64_t, std::int64_t) {});  // nested: the same label
    });
  };

  loop();  // no scope: nothing is recorded
  CHECK(trace.blocks().empty());

  double before = clock_seconds();
  {
    BlockTrace::Scope scope(&trace, 7);
    loop();
    CHECK(deterministic_sum(100000, [](std::int64_t b, std::int64_t e) { return double(e - b); }, 10000) == 100000);
    parallel_for(100, 1000, [](std::int64_t, std::int64_t) {});  // too small to split: whole
    BlockTrace::Scope inner(nullptr, 3);  // a null trace switches recording off
    loop();
  }
  double after = clock_seconds();
  loop();  // the scope ended: nothing more
  CHECK(covered.load() == 4 * 4096);
  auto blocks = trace.blocks();
  // The outer loop's blocks cover its 4096 elements in blocks of at most 256 (so at least 16),
  // each nested loop adds at least 4, the sum 10 chunks.
  CHECK(blocks.size() >= 16 + 16 * 4 + 10);
  for (const auto& b : blocks) {
    CHECK(b.label == 7);
    CHECK(b.span.thread >= 0);
    CHECK(b.span.thread < 2);
    CHECK(before <= b.span.start);
    CHECK(b.span.start <= b.span.end);
    CHECK(b.span.end <= after);
  }
  CHECK(trace.dropped() == 0);

  trace.clear();
  CHECK(trace.blocks().empty());
  std::vector<BlockTrace::Block> small(5);
  BlockTrace full(small);
  {
    BlockTrace::Scope scope(&full, 1);
    parallel_for(64, 1, [](std::int64_t, std::int64_t) {});
  }
  CHECK(full.blocks().size() == 5);
  CHECK(full.blocks().size() + full.dropped() >= 8);  // 64 elements, grain 1: many more blocks
}

}  // namespace
}  // namespace graphrun
