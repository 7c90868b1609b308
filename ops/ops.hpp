// The op builder API: each function adds one node to the graph of its inputs and returns the new
// value. Shapes are checked when the node is built; a ShapeError names the op, the input shapes,
// the attributes and the caller's line. Binary ops broadcast like numpy (right-aligned; a
// dimension of 1 stretches).
//
//   auto h = relu(matmul(x, w1) + b1);       // [B, 784] x [784, 400] + [400] -> [B, 400]
//   auto loss = mean(sum(bce_with_logits(logits, x), {1}));
#pragma once

#include <graphrun/graph/graph.hpp>

#include <cstdint>
#include <source_location>
#include <span>
#include <vector>

namespace graphrun {

using Loc = std::source_location;
using Axes = std::vector<std::int64_t>;

// ---- elementwise, same shape in and out -------------------------------------------------------
Value neg(Value x, Loc at = Loc::current());       // -x
Value exp(Value x, Loc at = Loc::current());       // e^x
Value log(Value x, Loc at = Loc::current());       // ln x, x > 0
Value log1p(Value x, Loc at = Loc::current());     // ln(1 + x), accurate near 0
Value expm1(Value x, Loc at = Loc::current());     // e^x - 1, accurate near 0
Value sinh(Value x, Loc at = Loc::current());
Value cosh(Value x, Loc at = Loc::current());
Value atanh(Value x, Loc at = Loc::current());     // -1 < x < 1
Value asinh(Value x, Loc at = Loc::current());
Value acosh(Value x, Loc at = Loc::current());     // x >= 1
Value sqrt(Value x, Loc at = Loc::current());      // sqrt(x), x > 0
Value square(Value x, Loc at = Loc::current());    // x^2
Value abs(Value x, Loc at = Loc::current());       // |x|; gradient sign(x), 0 at 0
Value sign(Value x, Loc at = Loc::current());      // -1, 0, 1; gradient 0 almost everywhere
Value relu(Value x, Loc at = Loc::current());      // max(x, 0)
Value sigmoid(Value x, Loc at = Loc::current());   // 1 / (1 + e^-x)
Value tanh(Value x, Loc at = Loc::current());      // tanh x
Value softplus(Value x, Loc at = Loc::current());  // ln(1 + e^x), stable for large |x|

// ---- binary, numpy broadcasting -----------------------------------------------------------------
Value add(Value a, Value b, Loc at = Loc::current());  // a + b
Value sub(Value a, Value b, Loc at = Loc::current());  // a - b
Value mul(Value a, Value b, Loc at = Loc::current());  // a * b
Value div(Value a, Value b, Loc at = Loc::current());  // a / b

// Operators build the same nodes. Operators cannot take a default argument, so one operand is
// converted through a wrapper whose constructor records the caller's line; a plain number becomes
// a scalar constant built at that line too.
struct Operand {
  Operand(Value v, Loc at = Loc::current()) : value(v), where(at) {}  // NOLINT: implicit
  Value value;
  Loc where;
};
struct ScalarOperand {
  ScalarOperand(double v, Loc at = Loc::current()) : value(v), where(at) {}  // NOLINT: implicit
  double value;
  Loc where;
};
Value operator+(Value a, Operand b);
Value operator-(Value a, Operand b);
Value operator*(Value a, Operand b);
Value operator/(Value a, Operand b);
Value operator+(Value a, ScalarOperand b);
Value operator-(Value a, ScalarOperand b);
Value operator*(Value a, ScalarOperand b);
Value operator/(Value a, ScalarOperand b);
Value operator+(ScalarOperand a, Value b);
Value operator-(ScalarOperand a, Value b);
Value operator*(ScalarOperand a, Value b);
Value operator/(ScalarOperand a, Value b);
Value operator-(Operand a);

// ---- linear algebra -----------------------------------------------------------------------------
// op(a) @ op(b) with op = transpose when the flag is set: [M, K] @ [K, N] -> [M, N]. Runs on
// a BLAS gemm (see SgemmLibrary); transposes are passed as flags, never materialised.
Value matmul(Value a, Value b, bool transpose_a = false, bool transpose_b = false,
             Loc at = Loc::current());

// The library that runs float32 products, for the whole process; float64 ones always take
// OpenBLAS. OpenBLAS is the default, and with it a training step allocates nothing. oneDNN's
// sgemm makes a VAE step 1.15x to 1.22x as fast on this AVX-512 machine (bench/step_time
// --compare sgemm), but it allocates its packing buffer on the heap (posix_memalign) on every
// call. The two round differently: switching changes results in the last bits, while the thread
// count still does not. oneDNN (Debian's libdnnl2) is loaded when first asked for.
enum class SgemmLibrary { openblas, onednn };
// Throws std::invalid_argument, saying why, for a library that cannot be loaded.
void set_sgemm_library(SgemmLibrary library);
SgemmLibrary sgemm_library();
bool sgemm_library_available(SgemmLibrary library);
const char* sgemm_library_name(SgemmLibrary library);  // "openblas", "onednn"

// ---- reductions (axes empty = all axes; negative axes count from the end) -----------------------
Value sum(Value x, Axes axes = {}, bool keepdims = false, Loc at = Loc::current());
Value mean(Value x, Axes axes = {}, bool keepdims = false, Loc at = Loc::current());
Value norm2(Value x, Loc at = Loc::current());  // sqrt(sum of squares) of all elements: a scalar

// ---- shapes -------------------------------------------------------------------------------------
Value reshape(Value x, Shape shape, Loc at = Loc::current());  // one -1 dim is inferred
Value flatten(Value x, Loc at = Loc::current());  // [N, ...] -> [N, rest]
Value transpose(Value x, Loc at = Loc::current());             // 2-D: [M, N] -> [N, M]
// y's axis i is x's axis axes[i] (negative axes count from the end): permute(x, {0, 2, 3, 1}) is
// [N, C, H, W] -> [N, H, W, C]. Its gradient permutes back.
Value permute(Value x, Axes axes, Loc at = Loc::current());
Value concat(const std::vector<Value>& xs, std::int64_t axis, Loc at = Loc::current());
Value slice(Value x, std::int64_t axis, std::int64_t begin, std::int64_t end,
            Loc at = Loc::current());  // x[..., begin:end, ...] along `axis`

// ---- losses and penalties -----------------------------------------------------------------------
// Elementwise binary cross-entropy of sigmoid(logits) against targets in [0, 1]:
// max(l, 0) - l*t + ln(1 + e^-|l|), exact and finite for any logit. Same shapes.
Value bce_with_logits(Value logits, Value targets, Loc at = Loc::current());
// Elementwise squared error (a - b)^2. Same shapes.
Value mse(Value a, Value b, Loc at = Loc::current());
// Elementwise KL(N(mu, e^logvar) || N(0, 1)) = -0.5 (1 + logvar - mu^2 - e^logvar). Same shapes.
Value kl_normal(Value mu, Value logvar, Loc at = Loc::current());
// L1 activity penalty for codes h [B, ...]: sum |h| / B (per sample). Scalar.
Value l1_activity(Value h, Loc at = Loc::current());
// Sparsity penalty for sigmoid codes h [B, K] in (0, 1): with p_j = mean_b h_bj,
// sum_j rho ln(rho / p_j) + (1 - rho) ln((1 - rho) / (1 - p_j)). Scalar.
Value kl_sparsity(Value h, double rho, Loc at = Loc::current());

// ---- random (counter-based: draws depend on seed, node, step and index, not on threads) ---------
// Standard normal noise shaped like `like`. With train_only, zeros outside training.
Value random_normal_like(Value like, bool train_only = false, Loc at = Loc::current());
// 1 with probability keep, else 0, shaped like `like`. With train_only, ones outside training.
Value bernoulli_mask_like(Value like, double keep, bool train_only = true, Loc at = Loc::current());

// ---- helpers that gradient rules are written with (also usable directly) ------------------------
// Sums `g` down to the shape of `like` (undoes broadcasting); like's values are not read.
Value sum_to_like(Value g, Value like, Loc at = Loc::current());
// Broadcasts `x` up to the shape of `like`.
Value expand_like(Value x, Value like, Loc at = Loc::current());
// Inverse of sum/mean over `axes`: spreads g over the shape of `like` (divided by the count when
// `mean`).
Value spread_like(Value g, Value like, Axes axes, bool keepdims, bool mean,
                  Loc at = Loc::current());
Value reshape_like(Value x, Value like, Loc at = Loc::current());
// The part of g = concat(parts, axis) that came from parts[index] (the parts are read for their
// shapes only): concat's gradient, correct at any batch size the graph is compiled for.
Value concat_part(Value g, std::span<const Value> parts, std::int64_t axis, std::int64_t index,
                  Loc at = Loc::current());
// Zeros shaped like `like` with g written at [begin, begin + g.shape[axis]) along `axis`.
Value unslice_like(Value g, Value like, std::int64_t axis, std::int64_t begin,
                   Loc at = Loc::current());
Value relu_backward(Value g, Value x, Loc at = Loc::current());     // g * (x > 0)
Value sigmoid_backward(Value g, Value y, Loc at = Loc::current());  // g * y * (1 - y)
Value tanh_backward(Value g, Value y, Loc at = Loc::current());     // g * (1 - y^2)

// ---- research ops (ops/research.cpp, ops/research_rows.cpp) -------------------------------------
// Primitives the autoencoder variants need; softmax, log-densities, kernels and the like are
// composites of these in ops/composites.hpp.

// ln sum e^x over `axes` (all when empty), computed as m + ln sum e^(x - m) with m the max, so
// finite for any finite x: [2, 5] over {1} -> [2], or [2, 1] with keepdims. Gradient: the
// softmax e^(x - y), times g spread back over the axes.
Value logsumexp(Value x, Axes axes = {}, bool keepdims = false, Loc at = Loc::current());
// y = x; no gradient flows back through it, also when x is a parameter (the straight-through
// estimator, a discriminator trained on codes it must not move). Same shape.
Value stop_gradient(Value x, Loc at = Loc::current());
// a in a training step and b outside one (RunOptions::training): batch norm normalises with the
// batch's statistics in training and with their running averages (Graph::buffer) after. a and b
// have one shape; the gradient goes to the one picked, zero to the other.
Value if_training(Value a, Value b, Loc at = Loc::current());
// 1 at the first largest element along `axis`, 0 elsewhere; no gradient. Same shape:
// [[1, 3, 3]] -> [[0, 1, 0]]. The one-hot argmin is one_hot_argmax(neg(x), axis).
Value one_hot_argmax(Value x, std::int64_t axis = -1, Loc at = Loc::current());
// max(a, b) and min(a, b), broadcasting. The gradient goes to the operand picked; on a tie to a,
// so clamp(x, lo, hi) = minimum(maximum(x, lo), hi) passes it to x at the bounds (as torch.clamp).
Value maximum(Value a, Value b, Loc at = Loc::current());
Value minimum(Value a, Value b, Loc at = Loc::current());
// x for x > 0, else slope * x; shape of x. The slope is an input that broadcasts to x: a scalar
// constant (the double overload), or a parameter of one slope per channel for a PReLU, [C] against
// [B, C]. An input rather than an attribute so the op fuses with its neighbours, whose run
// kernels see no attributes. Gradient at 0: slope.
Value leaky_relu(Value x, double slope = 0.01, Loc at = Loc::current());
Value leaky_relu(Value x, Value slope, Loc at = Loc::current());
// ln Gamma(x) for x > 0 (NaN for x <= 0); its derivative is polygamma(x, 0). Same shape.
Value lgamma(Value x, Loc at = Loc::current());
// psi^(n)(x) = d^(n+1)/dx^(n+1) ln Gamma(x) for x > 0 (NaN for x <= 0): order 0 is digamma, 1
// trigamma; its derivative is polygamma(x, n + 1). Same shape.
Value polygamma(Value x, std::int64_t order, Loc at = Loc::current());

// Uniform noise in the open interval (0, 1) shaped like `like`, from the counter-based generator.
// With train_only, 0.5 outside training (Gumbel noise -ln(-ln 0.5) is then one constant, which a
// softmax ignores).
Value random_uniform_like(Value like, bool train_only = false, Loc at = Loc::current());
// A uniformly random permutation of 0 .. n-1 as numbers, n the rows of `like` [n, ...] -> [n];
// a new one each step, the same at any thread count. With gather_rows it shuffles a batch.
Value random_permutation_like(Value like, Loc at = Loc::current());
// y[i, ...] = x[idx[i], ...]: x [N, ...], idx [M] of whole numbers in [0, N) -> [M, ...]. An index
// outside throws std::out_of_range when the program runs. No gradient to idx.
Value gather_rows(Value x, Value idx, Loc at = Loc::current());
// Zeros shaped like `like` [N, ...] with y[idx[i], ...] += g[i, ...], g [M, ...], idx [M]: the
// gradient of gather_rows (a repeated index adds, in index order).
Value scatter_rows_add(Value g, Value idx, Value like, Loc at = Loc::current());
// `times` copies of x one after another along axis 0: [B, ...] -> [times * B, ...], so row
// k * B + b is x[b]; K importance samples per input. Gradient: the K blocks summed.
Value tile(Value x, std::int64_t times, Loc at = Loc::current());
// Each column of x [N, ...] sorted ascending along axis 0, the batch: NaN last, equal values in
// their row order. Sliced Wasserstein distances compare sorted projections of two batches.
// Gradient: unsort_by(x, g), each row's gradient sent back to the row it came from.
Value sort(Value x, Loc at = Loc::current());
// v [N, ...] with the rows of each column in the order that sorts key's column (key shaped like
// v), and the inverse permutation: unsort_by(key, sort_by(key, v)) = v. Each is the other's
// gradient with respect to v; none flows to key.
Value sort_by(Value key, Value v, Loc at = Loc::current());
Value unsort_by(Value key, Value v, Loc at = Loc::current());

}  // namespace graphrun
