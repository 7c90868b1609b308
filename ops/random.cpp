// Random ops. Draws come from the counter-based generator keyed by (seed, node, step, index), so
// they are the same at any thread count and replay exactly in a gradient check or a resumed run.
// Their input only gives the shape: no gradient flows through it.
#include <graphrun/graph/random.hpp>
#include <graphrun/ops/kernel_util.hpp>
#include <graphrun/ops/ops.hpp>

namespace graphrun {
namespace ops {
namespace {

using R = std::vector<Value>;

template <class T>
void normal_kernel(const KernelArgs<T>& a) {
  T* y = a.out;
  if (!a.training && a.attrs->i("train_only")) {
    std::fill(y, y + a.out_numel(), T(0));
    return;
  }
  const std::int64_t n = a.out_numel();
  // y[i] is the normal at index o + i (o = key.offset, 0 unless this run is a slice of a batch).
  // Over pairs: one draw gives two normals, and costs tens of ns, so small grains pay.
  const auto o = static_cast<std::int64_t>(a.key.offset);
  const std::int64_t first_pair = o / 2;
  constexpr std::int64_t kPairs = 128;  // per batch of normals on the stack
  parallel_for((o + n + 1) / 2 - first_pair, 256, [&](std::int64_t b, std::int64_t e) {
    double z[2 * kPairs];
    for (std::int64_t k = b; k < e; k += kPairs) {
      std::int64_t pairs = std::min(kPairs, e - k);
      random_normal_pairs(a.key, static_cast<std::uint64_t>(first_pair + k), pairs, z);
      const std::int64_t g0 = 2 * (first_pair + k);  // the index of z[0]
      const std::int64_t last = std::min(o + n, g0 + 2 * pairs);
      for (std::int64_t g = std::max(g0, o); g < last; ++g) y[g - o] = static_cast<T>(z[g - g0]);
    }
  });
}

template <class T>
void bernoulli_kernel(const KernelArgs<T>& a) {
  T* y = a.out;
  if (!a.training && a.attrs->i("train_only")) {
    std::fill(y, y + a.out_numel(), T(1));
    return;
  }
  // Element i is kept when word i % 4 of draw i / 4 is below keep * 2^32: probability `keep` to
  // within 2^-32, at a quarter of the draws.
  const double keep = a.attrs->f("keep");
  const std::uint64_t below = static_cast<std::uint64_t>(keep * 4294967296.0);
  const std::int64_t n = a.out_numel();
  const auto o = static_cast<std::int64_t>(a.key.offset);  // y[i] is element o + i
  const std::int64_t first_draw = o / 4;
  constexpr std::int64_t kDraws = 256;  // per batch of words on the stack
  parallel_for((o + n + 3) / 4 - first_draw, 1024, [&](std::int64_t b, std::int64_t e) {
    std::uint32_t words[4 * kDraws];
    for (std::int64_t k = b; k < e; k += kDraws) {
      std::int64_t draws = std::min(kDraws, e - k);
      random_words(a.key, static_cast<std::uint64_t>(first_draw + k), draws, words);
      const std::int64_t g0 = 4 * (first_draw + k);  // the element of words[0]
      const std::int64_t last = std::min(o + n, g0 + 4 * draws);
      for (std::int64_t g = std::max(g0, o); g < last; ++g)
        y[g - o] = words[g - g0] < below ? T(1) : T(0);
    }
  });
}

OpDef random_op(std::string name, std::string summary, Kernel<float> f, Kernel<double> d,
                Attrs sample_attrs, ShapeRule shape) {
  OpDef op;
  op.name = std::move(name);
  op.summary = std::move(summary);
  op.arity = 1;
  op.shape = std::move(shape);
  op.f32 = f;
  op.f64 = d;
  op.random = true;
  op.differentiable = {false};
  op.shape_only = {true};  // the input gives the shape only
  op.grad = [](const GradContext&) { return R{Value()}; };
  op.samples = {{{{3, 4}}, std::move(sample_attrs)}};
  return op;
}

const OpRegistration registrations[] = {
    OpRegistration(with_attributes(random_op(
        "random_normal_like",
        "y ~ N(0, 1) iid, shaped like x; zeros outside training when train_only=1", normal_kernel<float>,
        normal_kernel<double>, {{"train_only", std::int64_t{0}}},
        [](std::span<const Shape> in, const Attrs&) { return in[0]; }),
        {{"train_only", std::int64_t{0}}})),
    OpRegistration(with_attributes(random_op(
        "bernoulli_mask_like",
        "y = 1 with probability `keep`, else 0, shaped like x; ones outside training when "
        "train_only=1",
        bernoulli_kernel<float>, bernoulli_kernel<double>,
        {{"keep", 0.7}, {"train_only", std::int64_t{1}}},
        [](std::span<const Shape> in, const Attrs& attrs) {
          double keep = attrs.f("keep");
          if (!(keep >= 0 && keep <= 1)) throw ShapeError(fmt::format("keep must be in [0, 1], got {}", keep));
          return in[0];
        }),
        {{"keep", std::nullopt}, {"train_only", std::int64_t{1}}})),
};

}  // namespace
}  // namespace ops

Value random_normal_like(Value like, bool train_only, Loc at) {
  return like.graph().apply(ops::op("random_normal_like"), {like},
                            {{"train_only", std::int64_t{train_only}}}, at);
}
Value bernoulli_mask_like(Value like, double keep, bool train_only, Loc at) {
  return like.graph().apply(ops::op("bernoulli_mask_like"), {like},
                            {{"keep", keep}, {"train_only", std::int64_t{train_only}}}, at);
}

}  // namespace graphrun
