#include <graphrun/graph/tensor.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdlib>
#include <cstring>
#include <new>

namespace graphrun {

std::string_view dtype_name(DType dtype) { return dtype == DType::f32 ? "float32" : "float64"; }

std::size_t dtype_size(DType dtype) { return dtype == DType::f32 ? 4 : 8; }

std::int64_t numel(const Shape& shape) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::string to_string(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

void check_shape(const Shape& shape) {
  if (shape.size() > static_cast<std::size_t>(kMaxRank))
    throw ShapeError(fmt::format("shape {} has rank {}, more than the supported {}",
                                 to_string(shape), shape.size(), kMaxRank));
  for (auto d : shape)
    if (d < 0) throw ShapeError(fmt::format("shape {} has a negative dimension", to_string(shape)));
}

std::shared_ptr<void> aligned_alloc_uninitialized(std::size_t bytes) {
  std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded == 0) rounded = kAlignment;
  void* p = std::aligned_alloc(kAlignment, rounded);
  if (!p) throw std::bad_alloc();
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

std::shared_ptr<void> aligned_alloc_shared(std::size_t bytes) {
  auto p = aligned_alloc_uninitialized(bytes);
  std::memset(p.get(), 0, bytes);
  return p;
}

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  check_shape(shape_);
  owner_ = aligned_alloc_shared(bytes());
  data_ = owner_.get();
}

Tensor Tensor::view(DType dtype, Shape shape, void* data) {
  check_shape(shape);
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  return t;
}

void Tensor::check_dtype(DType want) const {
  if (want != dtype_)
    throw std::invalid_argument(fmt::format("tensor {} holds {}, accessed as {}",
                                            to_string(shape_), dtype_name(dtype_),
                                            dtype_name(want)));
}

Tensor Tensor::clone() const {
  if (empty()) return {};  // nothing to copy: its shape [] would claim one element
  Tensor t(dtype_, shape_);
  if (bytes()) std::memcpy(t.data_, data_, bytes());
  return t;
}

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_ || empty()) return clone();
  Tensor t(dtype, shape_);
  auto n = static_cast<std::size_t>(numel());
  if (dtype == DType::f64) {
    auto* src = static_cast<const float*>(data_);
    auto* dst = t.data<double>();
    for (std::size_t i = 0; i < n; ++i) dst[i] = src[i];
  } else {
    auto* src = static_cast<const double*>(data_);
    auto* dst = t.data<float>();
    for (std::size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(src[i]);
  }
  return t;
}

double Tensor::item(std::int64_t i) const {
  if (empty() || i < 0 || i >= numel())
    throw std::out_of_range(fmt::format("index {} outside tensor {}", i, to_string(shape_)));
  return dtype_ == DType::f32 ? static_cast<const float*>(data_)[i]
                              : static_cast<const double*>(data_)[i];
}

Tensor Tensor::reshaped(Shape shape) const {
  check_shape(shape);
  if (graphrun::numel(shape) != numel())
    throw ShapeError(fmt::format("cannot reshape {} to {}", to_string(shape_), to_string(shape)));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

}  // namespace graphrun
