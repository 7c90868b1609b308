// Dense tensors: float32 or float64, row-major, contiguous, 64-byte aligned, rank 0 to 4.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace graphrun {

enum class DType { f32, f64 };

std::string_view dtype_name(DType dtype);
std::size_t dtype_size(DType dtype);

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::f32; }
template <>
constexpr DType dtype_of<double>() { return DType::f64; }

// Raised for any shape disagreement. Messages name the op, the shapes and the attributes.
class ShapeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

inline constexpr int kMaxRank = 4;

// Dimensions of a tensor; rank 0 is a scalar.
using Shape = std::vector<std::int64_t>;

std::int64_t numel(const Shape& shape);
std::string to_string(const Shape& shape);  // "[128, 784]", "[]" for a scalar
// Throws ShapeError when the rank is over kMaxRank or a dimension is negative.
void check_shape(const Shape& shape);

// Owning or viewing tensor. Copies share storage (like a shared_ptr); use clone() to copy data.
class Tensor {
 public:
  Tensor() = default;
  Tensor(DType dtype, Shape shape);  // zero-filled, owning
  // A view of memory owned elsewhere; the caller keeps it alive.
  static Tensor view(DType dtype, Shape shape, void* data);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  std::int64_t numel() const { return graphrun::numel(shape_); }
  std::size_t bytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  bool empty() const { return data_ == nullptr; }

  void* raw() { return data_; }
  const void* raw() const { return data_; }

  template <class T>
  T* data() {
    check_dtype(dtype_of<T>());
    return static_cast<T*>(data_);
  }
  template <class T>
  const T* data() const {
    check_dtype(dtype_of<T>());
    return static_cast<const T*>(data_);
  }
  template <class T>
  std::span<T> values() {
    return {data<T>(), static_cast<std::size_t>(numel())};
  }
  template <class T>
  std::span<const T> values() const {
    return {data<T>(), static_cast<std::size_t>(numel())};
  }

  Tensor clone() const;
  Tensor to(DType dtype) const;  // converted copy
  double item(std::int64_t i = 0) const;  // element i as double, any dtype
  // Same data, another shape with the same number of elements.
  Tensor reshaped(Shape shape) const;

 private:
  void check_dtype(DType want) const;

  DType dtype_ = DType::f32;
  Shape shape_;
  std::shared_ptr<void> owner_;
  void* data_ = nullptr;
};

// Aligned allocation used for tensors (zeroed) and arenas (as the allocator hands it over).
inline constexpr std::size_t kAlignment = 64;
std::shared_ptr<void> aligned_alloc_shared(std::size_t bytes);
std::shared_ptr<void> aligned_alloc_uninitialized(std::size_t bytes);

}  // namespace graphrun
