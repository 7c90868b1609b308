// Named helpers built from primitive ops: softmax, log-densities, distances, kernels, Gumbel
// noise. Each is a plain function that adds a few nodes; none has a gradient rule of its own, so
// autodiff differentiates through its parts. Formulas and shapes are given with each.
//
//   Value log_w = log_px + log_pz - log_qz;                    // [K, B] log-weights
//   Value iwae = logsumexp(log_w, {0}) - std::log(K);           // [B]
//   Value mmd = mean(imq_kernel(z, z_prior, 2.0 * dim));        // WAE's kernel means
#pragma once

#include <graphrun/ops/ops.hpp>

#include <cstdint>

namespace graphrun {

// e^x / sum e^x along `axis`, as e^(x - logsumexp(x)): finite for any finite x. Same shape.
Value softmax(Value x, std::int64_t axis = -1, Loc at = Loc::current());
// x - logsumexp(x) along `axis`: the log of softmax without its underflow to ln 0. Same shape.
Value log_softmax(Value x, std::int64_t axis = -1, Loc at = Loc::current());

// ln N(x; mu, e^logvar) per element = -0.5 (ln 2 pi + logvar + (x - mu)^2 e^-logvar);
// broadcasting (a prior's mu [D] against codes [B, D]). Sum over the last axis for a diagonal
// Gaussian's log-density of a vector.
Value gaussian_log_density(Value x, Value mu, Value logvar, Loc at = Loc::current());
// ln N(x; 0, 1) per element = -0.5 (ln 2 pi + x^2). Same shape.
Value std_normal_log_density(Value x, Loc at = Loc::current());
// ln Bernoulli(x; sigmoid(logits)) per element = x ln s + (1 - x) ln(1 - s), s = sigmoid(logits),
// i.e. -bce_with_logits: finite for any logit. Same shapes.
Value bernoulli_log_likelihood(Value logits, Value x, Loc at = Loc::current());

// d[i, j] = |a_i - b_j|^2 = |a_i|^2 + |b_j|^2 - 2 a_i . b_j for a [N, D], b [M, D] -> [N, M]; one
// product instead of N M differences. Clamped at 0 (rounding can leave -1e-7 where a_i = b_j).
Value pairwise_sq_distances(Value a, Value b, Loc at = Loc::current());
// k[i, j] = e^(-|a_i - b_j|^2 / scale) for a [N, D], b [M, D] -> [N, M]; scale > 0 (2 sigma^2).
Value rbf_kernel(Value a, Value b, double scale, Loc at = Loc::current());
// k[i, j] = scale / (scale + |a_i - b_j|^2) for a [N, D], b [M, D] -> [N, M]; scale > 0 (WAE
// takes 2 D sigma^2 for codes of D dimensions).
Value imq_kernel(Value a, Value b, double scale, Loc at = Loc::current());

// min(max(x, lo), hi) elementwise, fused like its two parts; the gradient passes to x on
// [lo, hi], bounds included (maximum and minimum give ties to their first operand).
Value clamp(Value x, double lo, double hi, Loc at = Loc::current());

// A relaxed one-hot sample of the categorical softmax(logits) along `axis`:
// softmax((logits + G) / temperature) with Gumbel noise G = -ln(-ln U), U = random_uniform_like.
// `temperature` is a scalar value, so a schedule can feed it as an input; the double overload
// makes a constant. With train_only, U = 0.5 outside training: G is then one constant, and the
// result is the plain softmax(logits / temperature). Same shape as logits.
Value gumbel_softmax(Value logits, Value temperature, std::int64_t axis = -1,
                     bool train_only = false, Loc at = Loc::current());
Value gumbel_softmax(Value logits, double temperature, std::int64_t axis = -1,
                     bool train_only = false, Loc at = Loc::current());

// FactorVAE's permute_dims: z [B, D] with each column shuffled over the batch by its own random
// permutation, a sample from the product of z's marginals. Built as D columns, each gathered by
// a random_permutation_like of its own and joined again; D is taken from z's shape here, so codes
// keep their width while the batch may change. Gradients reach z through each gather (though
// FactorVAE's discriminator loss puts a stop_gradient before it).
Value permute_dims(Value z, Loc at = Loc::current());

}  // namespace graphrun
