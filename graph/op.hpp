// What an op is: the one record that holds its name, arity, shape rule, kernels, gradient rule and
// gradient-check samples. ops/ defines the built-in ones; research code may register more.
#pragma once

#include <graphrun/graph/attrs.hpp>
#include <graphrun/graph/graph.hpp>
#include <graphrun/graph/tensor.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace graphrun {

// Keys the counter-based generator: a random op's draws are a pure function of
// (seed, node, step, element index), whatever the thread count.
struct RandomKey {
  std::uint64_t seed = 0;
  std::uint64_t step = 0;
  std::uint32_t node = 0;
  // The element index of the op's output element 0: nonzero when a run computes a slice of a
  // larger batch (RunOptions::batch_offset), so that the slice draws what those rows draw in a
  // run over the whole batch.
  std::uint64_t offset = 0;
};

// What a kernel of an op with OpDef::reports_ready calls as it finishes output elements
// [first, first + count): compile() hangs the elementwise ops that follow (a bias and a relu) on
// it, so they run on those elements while they are still in cache.
struct ReadyCallback {
  void (*fn)(const void* context, std::int64_t first, std::int64_t count) = nullptr;
  const void* context = nullptr;
  void operator()(std::int64_t first, std::int64_t count) const {
    if (fn) fn(context, first, count);
  }
};

template <class T>
struct KernelArgs {
  std::span<const T* const> in;
  std::span<const Shape> in_shapes;
  T* out = nullptr;
  const Shape* out_shape = nullptr;
  const Attrs* attrs = nullptr;
  RandomKey key;
  bool training = true;
  ReadyCallback ready;  // set only for ops with OpDef::reports_ready

  std::int64_t out_numel() const { return numel(*out_shape); }
};

template <class T>
using Kernel = void (*)(const KernelArgs<T>&);

// A reduction's kernel split in two (OpDef::blockwise): `partial` reduces input 0's elements
// [first, first + count), whole leading-axis slices, into the op's partial results, each slice
// into its own; `finish` combines all of them into the output.
template <class T>
using PartialKernel = void (*)(const KernelArgs<T>&, double* partials, std::int64_t first, std::int64_t count);
template <class T>
using FinishKernel = void (*)(const KernelArgs<T>&, const double* partials);

// An elementwise op's loop over one chunk of n elements: in[i] points at n values, or at one value
// standing for all n when scalar[i] is set. compile() runs chains of these chunk by chunk, so the
// chain's intermediate results stay in a small buffer instead of going through memory.
template <class T>
using RunKernel = void (*)(const T* const* in, const bool* scalar, T* out, std::int64_t n);

using ShapeRule = std::function<Shape(std::span<const Shape> inputs, const Attrs& attrs)>;

// How an op that repeats input 0 over its output (spread_like) lays the repeats out, for fusion:
// one value for all, a row repeated down the output, or a column (one value per block of
// consecutive elements); none when it is not a plain repeat for these attributes.
enum class Broadcast { none, scalar, row, column };
using BroadcastRule = Broadcast (*)(std::span<const Shape> inputs, const Attrs& attrs);

// A gradient rule gets the forward node's inputs, its output and the gradient flowing into that
// output, and returns one entry per input: the gradient as a new value, or an invalid Value for
// an input the op declares non-differentiable.
struct GradContext {
  std::span<const Value> inputs;
  Value output;
  Value grad;
  const Attrs& attrs;
  std::source_location where;
};
using GradRule = std::function<std::vector<Value>(const GradContext&)>;

// One configuration the registry-driven gradient check runs the op at.
struct GradSample {
  std::vector<Shape> shapes;
  Attrs attrs = {};
  // Range inputs are drawn from, per input (one entry applies to all); keeps log, sqrt, div
  // away from their poles.
  std::vector<std::pair<double, double>> ranges = {{-1.0, 1.0}};
};

// An attribute an op reads: graph files check named arguments against these and fill in the
// defaults; the op reference shows them as the op's call form.
struct AttrSpec {
  std::string name;
  std::optional<AttrValue> default_value;  // none: every call must give it
  // A size a graph file may give as one depending on the batch B: it is passed as -1, which the
  // op infers from its input when compiled (reshape's shape).
  bool batch_inferred = false;
};

struct OpDef {
  std::string name;
  int arity = 1;  // -1: any number >= 1 (concat)
  std::string summary;  // formula and shapes, for the reference table
  ShapeRule shape;
  Kernel<float> f32 = nullptr;
  Kernel<double> f64 = nullptr;
  GradRule grad;  // empty: no rule, autodiff fails loudly
  // Per input: does a gradient flow? Empty means every input is differentiable.
  std::vector<bool> differentiable;
  std::vector<GradSample> samples;
  std::vector<AttrSpec> attributes;  // every attribute the op reads, samples included
  bool random = false;       // reads RandomKey
  bool elementwise = false;  // output[i] depends on input[i] only (same shapes, or broadcast)
  // Set for elementwise ops that compile() may fuse with their neighbours; each computes exactly
  // what f32 / f64 compute, so fusing changes no bit.
  RunKernel<float> f32_run = nullptr;
  RunKernel<double> f64_run = nullptr;
  // Set, with the run kernels, for ops whose output is input 0 repeated: then only input 0 is
  // read, and the run kernels copy it (scalar or not) to their n outputs.
  BroadcastRule broadcast = nullptr;
  // Per input: only its shape is used, never its values (the `like` of sum_to_like, the input of
  // a random op). Empty means every input's values are read. compile() neither computes nor
  // keeps alive a value read only this way, and the kernel gets a null pointer for it.
  // For ops of any arity, the last entry holds for every input after it.
  std::vector<bool> shape_only;
  // The output is input 0 whenever their shapes agree (sum_to_like, expand_like, reshape_like):
  // compile() then lets the node share input 0's buffer and runs nothing. Gradient rules can so
  // undo broadcasting unconditionally, without comparing shapes known only at build time, which
  // a graph compiled for another batch size would not keep.
  bool same_shape_is_identity = false;
  // The output depends smoothly on the inputs, yet by design no gradient flows back through it
  // (stop_gradient): autodiff's derivative is then not the derivative of the loss as written.
  // check_gradients holds such outputs at their values when it takes central differences. Not
  // set for ops whose true derivative is zero almost everywhere (one_hot_argmax, random ops):
  // there a declared-absent gradient is the right one.
  bool stops_gradient = false;
  // The kernels call KernelArgs::ready once for every element of the output, each time for whole
  // leading-axis slices (a range of images), as soon as those are final, from the thread that
  // wrote them.
  bool reports_ready = false;
  // A reduction that can also read input 0 range by range as the step computing it reports each
  // range ready, while it is in cache, and combine the ranges' partial results after that step:
  // compile() then runs it inside that step (a bias gradient's sum after the convolution and
  // relu gradient that compute its input). `partials` gives how many doubles of partial results
  // it keeps for these input shapes, 0 when it cannot run so on them. The kernels f32 / f64 must
  // give the bits that partial over every range, then finish, give.
  struct Blockwise {
    std::int64_t (*partials)(std::span<const Shape> in_shapes, const Attrs& attrs) = nullptr;
    PartialKernel<float> f32_partial = nullptr;
    PartialKernel<double> f64_partial = nullptr;
    FinishKernel<float> f32_finish = nullptr;
    FinishKernel<double> f64_finish = nullptr;
  } blockwise;

  bool input_differentiable(std::size_t i) const {
    return differentiable.empty() || (i < differentiable.size() && differentiable[i]);
  }
  bool input_shape_only(std::size_t i) const {
    return !shape_only.empty() && shape_only[std::min(i, shape_only.size() - 1)];
  }
};

class OpRegistry {
 public:
  // Throws std::invalid_argument on a duplicate name or an incomplete definition.
  const OpDef& add(OpDef def);
  // Throws std::out_of_range naming the op and listing the registered ones.
  const OpDef& at(std::string_view name) const;
  const OpDef* find(std::string_view name) const;
  std::vector<const OpDef*> all() const;  // sorted by name

 private:
  std::map<std::string, std::unique_ptr<OpDef>, std::less<>> ops_;
};

// The process-wide registry. ops/ fills it with the built-in ops when the library loads.
OpRegistry& op_registry();

// Registers an op from a static object in the op's own file.
struct OpRegistration {
  explicit OpRegistration(OpDef def) { op_registry().add(std::move(def)); }
};

}  // namespace graphrun
