// Per-thread scratch for kernels that need working memory inside a training step. Internal to
// ops/, installed like kernel_util.hpp.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <new>

namespace graphrun::ops {

// A thread_local buffer of at least n elements, 64-byte aligned, one per T and Tag (so a kernel
// and a helper it calls never share one). Every thread grows to the largest size any thread has
// asked for, not only to its own: which thread runs which block changes from step to step, and a
// thread that first meets a layer's largest block late would allocate mid-training. A task must
// not wait on TBB while it uses the buffer, or another task on its thread could reuse it.
template <class T, class Tag = void>
T* scratch(std::int64_t n) {
  constexpr std::align_val_t kAlign{64};
  struct Buffer {
    T* data = nullptr;
    std::int64_t size = 0;
    ~Buffer() { ::operator delete[](data, kAlign); }
  };
  static std::atomic<std::int64_t> largest{0};
  thread_local Buffer buffer;
  if (buffer.size < n || buffer.size < largest.load(std::memory_order_relaxed)) {
    std::int64_t before = largest.load(std::memory_order_relaxed);
    while (before < n && !largest.compare_exchange_weak(before, n, std::memory_order_relaxed)) {
    }
    n = std::max(n, before);
    ::operator delete[](buffer.data, kAlign);
    buffer.data = nullptr;
    buffer.size = 0;
    buffer.data = static_cast<T*>(::operator new[](static_cast<std::size_t>(n) * sizeof(T), kAlign));
    buffer.size = n;
  }
  return buffer.data;
}

}  // namespace graphrun::ops
