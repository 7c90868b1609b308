// Shared machinery for op definitions: parallel elementwise loops, numpy-style broadcasting, and
// small helpers for shape rules. Internal to ops/, but installed so external ops can reuse it.
#pragma once

#include <graphrun/graph/op.hpp>
#include <graphrun/graph/parallel.hpp>

#include <fmt/format.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>

namespace graphrun::ops {

const OpDef& op(std::string_view name);  // a registered op; throws listing the known ones

// numpy broadcasting of two shapes; throws ShapeError("cannot broadcast ...").
Shape broadcast_shapes(const Shape& a, const Shape& b);
// True when `from` broadcasts to exactly `to`.
bool broadcasts_to(const Shape& from, const Shape& to);
// Normalises possibly negative axes against `rank`, sorted and unique; throws on out of range.
std::vector<std::int64_t> normalize_axes(const std::vector<std::int64_t>& axes, std::int64_t rank);
// The shape after reducing `axes` (all axes when empty).
Shape reduced_shape(const Shape& in, const std::vector<std::int64_t>& axes, bool keepdims);
// One possibly negative axis normalised against `rank`; throws ShapeError when out of range.
// Allocates nothing, so kernels may call it on every run.
std::int64_t normalize_axis(std::int64_t axis, std::int64_t rank);
// Product of the last `count` dimensions of `s`.
std::int64_t trailing_numel(const Shape& s, std::size_t count);

// Strides of `from` broadcast against `to`, right-aligned and padded to kMaxRank dims, with 0 for
// broadcast dimensions.
std::array<std::int64_t, kMaxRank> broadcast_strides(const Shape& from, const Shape& to);
std::array<std::int64_t, kMaxRank> padded_dims(const Shape& s);

template <class T, class F>
void unary_map(const KernelArgs<T>& a, F f) {
  const T* x = a.in[0];
  T* y = a.out;
  parallel_for(a.out_numel(), kGrain, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i) y[i] = f(x[i]);
  });
}

// out[i] = f(a[ia], b[ib]) with numpy broadcasting of the two inputs to the output shape.
template <class T, class F>
void binary_map(const KernelArgs<T>& a, F f) {
  const T* x = a.in[0];
  const T* z = a.in[1];
  T* y = a.out;
  const Shape& sx = a.in_shapes[0];
  const Shape& sz = a.in_shapes[1];
  const Shape& so = *a.out_shape;
  std::int64_t n = a.out_numel();
  std::int64_t nx = numel(sx), nz = numel(sz);
  if (nx == n && nz == n) {
    parallel_for(n, kGrain, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) y[i] = f(x[i], z[i]);
    });
  } else if (nz == 1 && nx == n) {
    T c = z[0];
    parallel_for(n, kGrain, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) y[i] = f(x[i], c);
    });
  } else if (nx == 1 && nz == n) {
    T c = x[0];
    parallel_for(n, kGrain, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i) y[i] = f(c, z[i]);
    });
  } else if (nx == n && nz > 0 && n % nz == 0 && broadcasts_to(sz, so) &&
             trailing_numel(so, sz.size()) == nz) {
    // Trailing-block broadcast, e.g. a bias [N] against [B, N].
    std::int64_t rows = n / nz;
    parallel_for(rows, std::max<std::int64_t>(1, kGrain / nz), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t r = b; r < e; ++r)
        for (std::int64_t j = 0; j < nz; ++j) y[r * nz + j] = f(x[r * nz + j], z[j]);
    });
  } else if (nz == n && nx > 0 && n % nx == 0 && broadcasts_to(sx, so) &&
             trailing_numel(so, sx.size()) == nx) {
    // The same with the roles swapped, e.g. [N] - [B, N].
    std::int64_t rows = n / nx;
    parallel_for(rows, std::max<std::int64_t>(1, kGrain / nx), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t r = b; r < e; ++r)
        for (std::int64_t j = 0; j < nx; ++j) y[r * nx + j] = f(x[j], z[r * nx + j]);
    });
  } else if (n > 0) {
    // General broadcasting, one innermost row of the output at a time: the row's start is
    // found with a few divisions, then each operand either runs along it (stride 1) or holds
    // one value (stride 0).
    auto dx = broadcast_strides(sx, so);
    auto dz = broadcast_strides(sz, so);
    auto dims = padded_dims(so);
    std::int64_t inner = dims[kMaxRank - 1], rows = n / inner;
    parallel_for(rows, std::max<std::int64_t>(1, kGrain / inner), [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t r = b; r < e; ++r) {
        std::int64_t rest = r, ox = 0, oz = 0;
        for (int d = kMaxRank - 2; d >= 0; --d) {
          std::int64_t k = rest % dims[d];
          rest /= dims[d];
          ox += k * dx[d];
          oz += k * dz[d];
        }
        const T* xr = x + ox;
        const T* zr = z + oz;
        T* yr = y + r * inner;
        bool runs_x = dx[kMaxRank - 1] != 0, runs_z = dz[kMaxRank - 1] != 0;
        if (runs_x && runs_z) {
          for (std::int64_t j = 0; j < inner; ++j) yr[j] = f(xr[j], zr[j]);
        } else if (runs_x) {
          T c = zr[0];
          for (std::int64_t j = 0; j < inner; ++j) yr[j] = f(xr[j], c);
        } else if (runs_z) {
          T c = xr[0];
          for (std::int64_t j = 0; j < inner; ++j) yr[j] = f(c, zr[j]);
        } else {
          T v = f(xr[0], zr[0]);
          for (std::int64_t j = 0; j < inner; ++j) yr[j] = v;
        }
      }
    });
  }
}

// The sum of f(x[i]) over [b, e) in double, in 32 interleaved accumulators: the loop vectorizes
// into four independent chains of 8 doubles instead of waiting on one add after another (4x the
// rate of 8 lanes here). The order depends on b and e only.
template <class T, class F>
double lane_sum(const T* x, std::int64_t b, std::int64_t e, F f) {
  constexpr int kLanes = 32;
  double lanes[kLanes] = {};
  std::int64_t i = b;
  for (; i + kLanes <= e; i += kLanes)
    for (int l = 0; l < kLanes; ++l) lanes[l] += f(static_cast<double>(x[i + l]));
  for (; i < e; ++i) lanes[0] += f(static_cast<double>(x[i]));
  double acc = 0;
  for (double l : lanes) acc += l;
  return acc;
}

// The sum of x[i]^2 in double, over fixed chunks: the same bits at any thread count. Gradient
// norms, in norm2 and the optimizer.
template <class T>
double sum_of_squares(const T* x, std::int64_t n) {
  return deterministic_sum(n, [&](std::int64_t b, std::int64_t e) {
    return lane_sum(x, b, e, [](double v) { return v * v; });
  });
}

// The fusable forms of unary_map and binary_map (RunKernel): one chunk, each input either n
// values or one.
template <class T, class F>
void unary_run(const T* const* in, const bool*, T* out, std::int64_t n) {
  const T* __restrict x = in[0];
  T* __restrict y = out;
  F f;
  for (std::int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

template <class T, class F>
void binary_run(const T* const* in, const bool* scalar, T* out, std::int64_t n) {
  const T* __restrict x = in[0];
  const T* __restrict z = in[1];
  T* __restrict y = out;
  F f;
  if (scalar[0] && scalar[1]) {
    T v = f(x[0], z[0]);
    for (std::int64_t i = 0; i < n; ++i) y[i] = v;
  } else if (scalar[1]) {
    T c = z[0];
    for (std::int64_t i = 0; i < n; ++i) y[i] = f(x[i], c);
  } else if (scalar[0]) {
    T c = x[0];
    for (std::int64_t i = 0; i < n; ++i) y[i] = f(c, z[i]);
  } else {
    for (std::int64_t i = 0; i < n; ++i) y[i] = f(x[i], z[i]);
  }
}

// An OpDef from its parts, for op files that register several ops of different shapes.
OpDef make_op(std::string name, std::string summary, int arity, ShapeRule shape, Kernel<float> f,
              Kernel<double> d, GradRule grad, std::vector<GradSample> samples,
              std::vector<bool> differentiable = {});
// The op with its attributes declared (OpDef::attributes).
inline OpDef with_attributes(OpDef op, std::vector<AttrSpec> attributes) {
  op.attributes = std::move(attributes);
  return op;
}
// The op marked OpDef::same_shape_is_identity.
inline OpDef identity_when_same_shape(OpDef op) {
  op.same_shape_is_identity = true;
  return op;
}

// Shape rule for ops whose output has the shape of input 0 and all inputs share it.
Shape same_shape(std::span<const Shape> in, const Attrs&);
// Shape rule: the output has the shape of input 1 (the "like" reference).
Shape shape_of_second(std::span<const Shape> in, const Attrs&);

}  // namespace graphrun::ops
