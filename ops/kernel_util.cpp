#include <graphrun/ops/kernel_util.hpp>

#include <algorithm>

namespace graphrun::ops {

const OpDef& op(std::string_view name) { return op_registry().at(name); }

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    std::int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    std::int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      throw ShapeError(fmt::format("cannot broadcast {} with {} (dimension {}: {} vs {})",
                                   to_string(a), to_string(b), i, da, db));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

bool broadcasts_to(const Shape& from, const Shape& to) {
  if (from.size() > to.size()) return false;
  std::size_t off = to.size() - from.size();
  for (std::size_t i = 0; i < from.size(); ++i)
    if (from[i] != 1 && from[i] != to[off + i]) return false;
  return true;
}

std::vector<std::int64_t> normalize_axes(const std::vector<std::int64_t>& axes, std::int64_t rank) {
  std::vector<std::int64_t> out;
  if (axes.empty()) {
    for (std::int64_t i = 0; i < rank; ++i) out.push_back(i);
    return out;
  }
  for (auto a : axes) out.push_back(normalize_axis(a, rank));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::int64_t normalize_axis(std::int64_t axis, std::int64_t rank) {
  std::int64_t n = axis < 0 ? axis + rank : axis;
  if (n < 0 || n >= rank)
    throw ShapeError(fmt::format("axis {} is out of range for rank {}", axis, rank));
  return n;
}

std::int64_t trailing_numel(const Shape& s, std::size_t count) {
  std::int64_t n = 1;
  for (std::size_t i = s.size() - std::min(count, s.size()); i < s.size(); ++i) n *= s[i];
  return n;
}

Shape reduced_shape(const Shape& in, const std::vector<std::int64_t>& axes, bool keepdims) {
  auto ax = normalize_axes(axes, static_cast<std::int64_t>(in.size()));
  Shape out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    bool reduced = std::binary_search(ax.begin(), ax.end(), static_cast<std::int64_t>(i));
    if (!reduced) out.push_back(in[i]);
    else if (keepdims) out.push_back(1);
  }
  return out;
}

std::array<std::int64_t, kMaxRank> padded_dims(const Shape& s) {
  std::array<std::int64_t, kMaxRank> d{1, 1, 1, 1};
  std::size_t off = kMaxRank - s.size();
  for (std::size_t i = 0; i < s.size(); ++i) d[off + i] = s[i];
  return d;
}

std::array<std::int64_t, kMaxRank> broadcast_strides(const Shape& from, const Shape& to) {
  auto df = padded_dims(from);
  auto dt = padded_dims(to);
  std::array<std::int64_t, kMaxRank> strides{};
  std::int64_t s = 1;
  for (int d = kMaxRank - 1; d >= 0; --d) {
    strides[d] = (df[d] == 1 && dt[d] != 1) ? 0 : s;
    s *= df[d];
  }
  return strides;
}

OpDef make_op(std::string name, std::string summary, int arity, ShapeRule shape, Kernel<float> f,
              Kernel<double> d, GradRule grad, std::vector<GradSample> samples,
              std::vector<bool> differentiable) {
  OpDef op;
  op.name = std::move(name);
  op.summary = std::move(summary);
  op.arity = arity;
  op.shape = std::move(shape);
  op.f32 = f;
  op.f64 = d;
  op.grad = std::move(grad);
  op.samples = std::move(samples);
  op.differentiable = std::move(differentiable);
  return op;
}

Shape same_shape(std::span<const Shape> in, const Attrs&) {
  for (std::size_t i = 1; i < in.size(); ++i)
    if (in[i] != in[0])
      throw ShapeError(fmt::format("inputs must have the same shape, got {} and {}",
                                   to_string(in[0]), to_string(in[i])));
  return in[0];
}

Shape shape_of_second(std::span<const Shape> in, const Attrs&) { return in[1]; }

}  // namespace graphrun::ops
