// Research ops that move rows or draw noise: uniform noise (Gumbel-softmax), a random permutation
// of the rows (FactorVAE), gathering rows by index and its gradient, K copies of a batch
// (importance samples), and sorting along the batch (sliced Wasserstein distances). Draws come
// from the counter-based generator: a pure function of (seed, node, step, index), so the same
// bits at any thread count.
#include <graphrun/graph/random.hpp>
#include <graphrun/ops/kernel_util.hpp>
#include <graphrun/ops/ops.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace graphrun {
namespace ops {
namespace {

using R = std::vector<Value>;

// 53 bits of two words mapped to the open interval (0, 1), as graph/random.cpp maps them.
double unit_of(std::uint32_t hi, std::uint32_t lo) {
  std::uint64_t bits = (static_cast<std::uint64_t>(hi) << 21) ^ (lo >> 11);
  return (static_cast<double>(bits) + 0.5) * 0x1p-53;
}

// Element i takes words 2 (i % 2) and 2 (i % 2) + 1 of draw i / 2: one draw serves two elements.
// float32 keeps the open interval: a double just below 1 would round up to 1.0f, and the ln(-ln u)
// of Gumbel noise would be infinite.
template <class T>
void uniform_kernel(const KernelArgs<T>& a) {
  T* y = a.out;
  const std::int64_t n = a.out_numel();
  if (!a.training && a.attrs->i("train_only")) {
    std::fill(y, y + n, T(0.5));
    return;
  }
  constexpr std::int64_t kDraws = 256;  // per batch of words on the stack
  constexpr T kBelowOne = T(1) - std::numeric_limits<T>::epsilon() / 2;
  const auto o = static_cast<std::int64_t>(a.key.offset);  // y[i] is element o + i
  const std::int64_t first_draw = o / 2;
  parallel_for((o + n + 1) / 2 - first_draw, 512, [&](std::int64_t b, std::int64_t e) {
    std::uint32_t words[4 * kDraws];
    for (std::int64_t k = b; k < e; k += kDraws) {
      std::int64_t draws = std::min(kDraws, e - k);
      random_words(a.key, static_cast<std::uint64_t>(first_draw + k), draws, words);
      const std::int64_t g0 = 2 * (first_draw + k);  // the element of words[0]
      const std::int64_t last = std::min(o + n, g0 + 2 * draws);
      for (std::int64_t g = std::max(g0, o); g < last; ++g) {
        const std::uint32_t* w = words + 2 * (g - g0);
        y[g - o] = std::min(static_cast<T>(unit_of(w[0], w[1])), kBelowOne);
      }
    }
  });
}

// Fisher-Yates over 0 .. n-1: step i swaps element i with element j, uniform in [0, i], from the
// 64 bits of words 0-1 of draw i scaled by multiplication (Lemire's method without its rejection
// step, so each j's chance is off by at most (i + 1) / 2^64). One pass in a fixed order, so the
// permutation depends on the key only; n is a batch, so one thread suffices.
template <class T>
void permutation_kernel(const KernelArgs<T>& a) {
  T* y = a.out;
  const std::int64_t n = a.out_numel();
  for (std::int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(i);
  constexpr std::int64_t kDraws = 64;
  std::uint32_t words[4 * kDraws];
  for (std::int64_t first = 1; first < n; first += kDraws) {
    std::int64_t draws = std::min(kDraws, n - first);
    random_words(a.key, static_cast<std::uint64_t>(first), draws, words);
    for (std::int64_t d = 0; d < draws; ++d) {
      std::int64_t i = first + d;
      // floor(r (i + 1) / 2^64) for r = hi 2^32 + lo, exact in 64 bits as i + 1 <= 2^24.
      auto m = static_cast<std::uint64_t>(i + 1);
      std::uint64_t hi = words[4 * d], lo = words[4 * d + 1];
      auto j = static_cast<std::int64_t>((hi * m + ((lo * m) >> 32)) >> 32);
      std::swap(y[i], y[j]);
    }
  }
}

// The row index held in idx[i]: the nearest whole number, which must lie in [0, rows).
template <class T>
std::int64_t row_index(const T* idx, std::int64_t i, std::int64_t rows, const char* op) {
  T v = std::floor(idx[i] + T(0.5));
  if (!(v >= 0 && v < static_cast<T>(rows)))
    throw std::out_of_range(fmt::format("{}: index {} at position {} is outside [0, {})", op,
                                        static_cast<double>(idx[i]), i, rows));
  return static_cast<std::int64_t>(v);
}

// y[i, ...] = x[idx[i], ...].
template <class T>
void gather_kernel(const KernelArgs<T>& a) {
  const std::int64_t rows = a.in_shapes[0][0], m = a.in_shapes[1][0];
  const std::int64_t width = rows > 0 ? numel(a.in_shapes[0]) / rows : 0;
  for (std::int64_t i = 0; i < m; ++i) row_index(a.in[1], i, rows, "gather_rows");
  parallel_for(m, std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(width, 1)),
               [&](std::int64_t b, std::int64_t e) {
                 for (std::int64_t i = b; i < e; ++i)
                   std::memcpy(a.out + i * width,
                               a.in[0] + row_index(a.in[1], i, rows, "gather_rows") * width,
                               static_cast<std::size_t>(width) * sizeof(T));
               });
}

// y = zeros like `like`; y[idx[i], ...] += g[i, ...]. Split over columns, each walking i in order:
// a repeated index adds in the same order at any thread count.
template <class T>
void scatter_kernel(const KernelArgs<T>& a) {
  const std::int64_t rows = a.out_shape->at(0), m = a.in_shapes[1][0];
  const std::int64_t width = rows > 0 ? a.out_numel() / rows : 0;
  for (std::int64_t i = 0; i < m; ++i) row_index(a.in[1], i, rows, "scatter_rows_add");
  std::fill(a.out, a.out + a.out_numel(), T(0));
  parallel_for(width, std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(m, 1)),
               [&](std::int64_t b, std::int64_t e) {
                 for (std::int64_t i = 0; i < m; ++i) {
                   T* out = a.out + row_index(a.in[1], i, rows, "scatter_rows_add") * width;
                   const T* g = a.in[0] + i * width;
                   for (std::int64_t j = b; j < e; ++j) out[j] += g[j];
                 }
               });
}

// K copies of x one after another along axis 0.
template <class T>
void tile_kernel(const KernelArgs<T>& a) {
  const std::int64_t n = numel(a.in_shapes[0]), times = a.attrs->i("times");
  parallel_for(times, std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(n, 1)),
               [&](std::int64_t b, std::int64_t e) {
                 for (std::int64_t k = b; k < e; ++k)
                   std::memcpy(a.out + k * n, a.in[0], static_cast<std::size_t>(n) * sizeof(T));
               });
}

// Sorting along axis 0, column by column. Mode kSort sorts x; kSortBy reorders v's rows in each
// column as sorting key's column would; kUnsortBy puts them back (the adjoint of kSortBy).
enum SortMode { kSort, kSortBy, kUnsortBy };

// perm[i] = the row of key's column j that comes i-th in ascending order. Ties keep their row
// order and NaN goes last, so the order is total and the same on every run.
template <class T>
void sort_permutation(const T* key, std::int64_t n, std::int64_t width, std::int64_t j,
                      std::int64_t* perm) {
  for (std::int64_t i = 0; i < n; ++i) perm[i] = i;
  std::sort(perm, perm + n, [&](std::int64_t a, std::int64_t b) {
    const T x = key[a * width + j], y = key[b * width + j];
    if (std::isnan(x)) return std::isnan(y) && a < b;
    if (std::isnan(y)) return true;
    return x < y || (!(y < x) && a < b);
  });
}

template <class T, SortMode kMode>
void sort_kernel(const KernelArgs<T>& a) {
  const std::int64_t n = a.in_shapes[0][0];
  const std::int64_t width = n > 0 ? numel(a.in_shapes[0]) / n : 0;
  const T* key = a.in[0];
  const T* v = kMode == kSort ? a.in[0] : a.in[1];
  parallel_for(width, std::max<std::int64_t>(1, kGrain / std::max<std::int64_t>(n * 8, 1)),
               [&](std::int64_t b, std::int64_t e) {
                 // Grown once per thread to the largest batch: no allocation in later steps.
                 thread_local std::vector<std::int64_t> perm;
                 if (static_cast<std::int64_t>(perm.size()) < n) perm.resize(static_cast<std::size_t>(n));
                 for (std::int64_t j = b; j < e; ++j) {
                   sort_permutation(key, n, width, j, perm.data());
                   for (std::int64_t i = 0; i < n; ++i) {
                     if (kMode == kUnsortBy) a.out[perm[i] * width + j] = v[i * width + j];
                     else a.out[i * width + j] = v[perm[i] * width + j];
                   }
                 }
               });
}

void need_rows(const Shape& s, const char* what) {
  if (s.empty()) throw ShapeError(fmt::format("{} needs rows: rank >= 1, got a scalar", what));
}

void need_index(const Shape& idx) {
  if (idx.size() != 1)
    throw ShapeError(
        fmt::format("idx must be a vector [M] of row numbers, got {}", to_string(idx)));
}

Shape gather_shape(std::span<const Shape> in, const Attrs&) {
  need_rows(in[0], "x");
  need_index(in[1]);
  Shape out = in[0];
  out[0] = in[1][0];
  return out;
}

Shape scatter_shape(std::span<const Shape> in, const Attrs&) {
  need_rows(in[0], "g");
  need_index(in[1]);
  need_rows(in[2], "like");
  bool rows_match =
      in[0].size() == in[2].size() && std::equal(in[0].begin() + 1, in[0].end(), in[2].begin() + 1);
  if (in[0][0] != in[1][0] || !rows_match)
    throw ShapeError(
        fmt::format("g {} needs one row per index of idx {} and rows shaped like those of {}",
                    to_string(in[0]), to_string(in[1]), to_string(in[2])));
  return in[2];
}

Shape tile_shape(std::span<const Shape> in, const Attrs& attrs) {
  need_rows(in[0], "tile");
  auto times = attrs.i("times");
  if (times < 1) throw ShapeError(fmt::format("times must be >= 1, got {}", times));
  Shape out = in[0];
  out[0] *= times;
  return out;
}

Shape sort_by_shape(std::span<const Shape> in, const Attrs&) {
  need_rows(in[0], "key");
  if (in[0] != in[1])
    throw ShapeError(fmt::format("key {} and v {} must have the same shape", to_string(in[0]),
                                 to_string(in[1])));
  return in[1];
}

OpDef random_like(std::string name, std::string summary, Kernel<float> f, Kernel<double> d,
                  Attrs sample_attrs, ShapeRule shape) {
  OpDef op = make_op(std::move(name), std::move(summary), 1, std::move(shape), f, d,
                     [](const GradContext&) { return R{Value()}; },
                     {{{{3, 4}}, std::move(sample_attrs)}}, {false});
  op.random = true;
  op.shape_only = {true};
  return op;
}

// Index inputs hold whole row numbers; drawn from these ranges they round to 0 .. rows - 1, with
// repeats, so the gradient check also sees rows gathered twice and gradients added. gather_rows
// samples index row 0 only: the batch-size test compiles x with a single row, with the same
// index values (tests/ops/research_rows_test.cpp gathers other rows).
std::pair<double, double> rows_of(int rows) { return {-0.49, rows - 0.51}; }

const OpRegistration registrations[] = {
    OpRegistration(with_attributes(random_like(
        "random_uniform_like",
        "y ~ U(0, 1) iid, never 0 or 1, shaped like x; 0.5 outside training when train_only=1",
        uniform_kernel<float>, uniform_kernel<double>, {{"train_only", std::int64_t{0}}},
        [](std::span<const Shape> in, const Attrs&) { return in[0]; }), {{"train_only", std::int64_t{0}}})),
    OpRegistration(random_like(
        "random_permutation_like",
        "y = a uniformly random permutation of 0 .. n-1 (as numbers) for x [n, ...]; y: [n]",
        permutation_kernel<float>, permutation_kernel<double>, {},
        [](std::span<const Shape> in, const Attrs&) {
          need_rows(in[0], "random_permutation_like");
          if (in[0][0] > (std::int64_t{1} << 24))
            throw ShapeError(fmt::format(
                "{} rows: float32 holds whole numbers exactly only up to 2^24", in[0][0]));
          return Shape{in[0][0]};
        })),
    OpRegistration(make_op(
        "gather_rows",
        "y[i, ...] = x[idx[i], ...]; x [N, ...], idx [M] whole numbers in [0, N) -> [M, ...]; no "
        "gradient to idx",
        2, gather_shape, gather_kernel<float>, gather_kernel<double>,
        [](const GradContext& c) {
          return R{scatter_rows_add(c.grad, c.inputs[1], c.inputs[0], c.where), Value()};
        },
        {{{{4, 3}, {5}}, {}, {{-1.0, 1.0}, rows_of(1)}},
         {{{3}, {6}}, {}, {{-1.0, 1.0}, rows_of(1)}},
         {{{3, 2, 2}, {2}}, {}, {{-1.0, 1.0}, rows_of(1)}}},
        {true, false})),
    OpRegistration([] {
      OpDef d = make_op(
          "scatter_rows_add",
          "y = zeros like `like`, then y[idx[i], ...] += g[i, ...]: the gradient of gather_rows; "
          "g [M, ...], idx [M], like [N, ...] -> [N, ...]",
          3, scatter_shape, scatter_kernel<float>, scatter_kernel<double>,
          [](const GradContext& c) {
            return R{gather_rows(c.grad, c.inputs[1], c.where), Value(), Value()};
          },
          {{{{5, 3}, {5}, {4, 3}}, {}, {{-1.0, 1.0}, rows_of(4), {-1.0, 1.0}}},
           {{{6}, {6}, {3}}, {}, {{-1.0, 1.0}, rows_of(3), {-1.0, 1.0}}}},
          {true, false, false});
      d.shape_only = {false, false, true};
      return d;
    }()),
    OpRegistration(with_attributes(make_op(
        "tile", "y = `times` copies of x along axis 0; [B, ...] -> [times * B, ...]", 1,
        tile_shape, tile_kernel<float>, tile_kernel<double>,
        [](const GradContext& c) {
          // The copies summed: [K * B, ...] -> [K, rest] -> sum over K -> x's shape. Only K is
          // fixed here; B comes from the shapes compile sees.
          Value g = reshape(c.grad, {c.attrs.i("times"), -1}, c.where);
          return R{reshape_like(sum(g, {0}, false, c.where), c.inputs[0], c.where)};
        },
        {{{{2, 3}}, {{"times", std::int64_t{3}}}},
         {{{3}}, {{"times", std::int64_t{2}}}},
         {{{2, 2, 2}}, {{"times", std::int64_t{1}}}}}), {{"times", std::nullopt}})),
    OpRegistration(make_op(
        "sort",
        "each column of x [N, ...] sorted ascending along axis 0 (NaN last, ties in row order); "
        "same shape",
        1,
        [](std::span<const Shape> in, const Attrs&) {
          need_rows(in[0], "sort");
          return in[0];
        },
        sort_kernel<float, kSort>, sort_kernel<double, kSort>,
        [](const GradContext& c) { return R{unsort_by(c.inputs[0], c.grad, c.where)}; },
        {{{{5, 3}}}, {{{6}}}, {{{4, 2, 2}}}})),
    OpRegistration(make_op(
        "sort_by",
        "key a and v b [N, ...] of one shape: v's rows reordered, column by column, as sorting "
        "key's column orders them; sort(x) = sort_by(x, x); no gradient to key",
        2, sort_by_shape, sort_kernel<float, kSortBy>, sort_kernel<double, kSortBy>,
        [](const GradContext& c) {
          return R{Value(), unsort_by(c.inputs[0], c.grad, c.where)};
        },
        {{{{5, 3}, {5, 3}}}, {{{6}, {6}}}}, {false, true})),
    OpRegistration(make_op(
        "unsort_by",
        "key a and v b as for sort_by, the inverse permutation: unsort_by(key, sort_by(key, v)) = "
        "v; the gradient of sort; no gradient to key",
        2, sort_by_shape, sort_kernel<float, kUnsortBy>, sort_kernel<double, kUnsortBy>,
        [](const GradContext& c) { return R{Value(), sort_by(c.inputs[0], c.grad, c.where)}; },
        {{{{5, 3}, {5, 3}}}, {{{6}, {6}}}}, {false, true})),
};
}  // namespace
}  // namespace ops

Value random_uniform_like(Value like, bool train_only, Loc at) {
  return like.graph().apply(ops::op("random_uniform_like"), {like},
                            {{"train_only", std::int64_t{train_only}}}, at);
}
Value random_permutation_like(Value like, Loc at) {
  return like.graph().apply(ops::op("random_permutation_like"), {like}, {}, at);
}
Value gather_rows(Value x, Value idx, Loc at) {
  return x.graph().apply(ops::op("gather_rows"), {x, idx}, {}, at);
}
Value scatter_rows_add(Value g, Value idx, Value like, Loc at) {
  return g.graph().apply(ops::op("scatter_rows_add"), {g, idx, like}, {}, at);
}
Value sort(Value x, Loc at) { return x.graph().apply(ops::op("sort"), {x}, {}, at); }
Value sort_by(Value key, Value v, Loc at) {
  return key.graph().apply(ops::op("sort_by"), {key, v}, {}, at);
}
Value unsort_by(Value key, Value v, Loc at) {
  return key.graph().apply(ops::op("unsort_by"), {key, v}, {}, at);
}
Value tile(Value x, std::int64_t times, Loc at) {
  return x.graph().apply(ops::op("tile"), {x}, {{"times", times}}, at);
}

}  // namespace graphrun
