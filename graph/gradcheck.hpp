// Gradient checking: compares the gradients autodiff builds against central differences, in
// float64, with random ops replaying the same draws. A public library function, so research code
// can check its own variants the way the test suite checks every op and model.
#pragma once

#include <graphrun/graph/graph.hpp>
#include <graphrun/graph/program.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace graphrun {

struct GradCheckOptions {
  double eps = 1e-6;         // central-difference step
  double tolerance = 1e-5;   // on the relative error below
  int max_elements = 48;     // per tensor; larger tensors are checked at a deterministic sample
  RunOptions run = {true, 1234, 0};
};

struct TensorCheck {
  std::string name;
  double worst_error = 0;  // max |analytic - numeric| / max(|analytic|, |numeric|, floor)
  double worst_abs = 0;
  std::int64_t checked = 0;
  std::int64_t kinks = 0;  // elements skipped for a kink (relu or abs at 0) at every step: the
                           // one-sided differences or the central ones at neighbouring steps disagree
  std::int64_t finer = 0;  // of the checked, those judged at a step below eps (kinks within eps)
  double resolution = 0;   // the largest rounding uncertainty of its numeric derivatives (below)
  bool ok = true;
};

struct GradCheckReport {
  std::vector<TensorCheck> tensors;
  int held = 0;                       // outputs held at their values (see check_gradients)
  std::vector<std::string> held_ops;  // the ops they are outputs of, by name, for the report
  bool ok() const;
  double worst() const;
  // A table: name, checked, finer, kinks, worst error, verdict; then, if any output was held, a line
  // saying how many and of which ops.
  std::string to_string() const;
};

// Checks d(loss)/d(w) for each named input or parameter in `wrt`. `values` must hold a tensor for
// every input and parameter the loss reads (any dtype; the check runs in float64). The floor of
// the relative error is 1e-4 of the largest numeric gradient of that tensor, so tiny gradients
// are judged on scale. Elements where the one-sided differences disagree (a kink) are skipped and
// counted, and so are those where the central differences at eps and eps / 10 do (below).
//
// Nor is an error judged below what the difference resolves: each loss is rounded to float64, so
// (f(w + eps) - f(w - eps)) / 2 eps is uncertain by about DBL_EPSILON |f| / eps (twice what
// rounding the two losses' last digits alone can do; TensorCheck::resolution), and an error
// within that passes. Without it a tensor whose gradients are all far below the loss fails on
// rounding alone: the VampPrior's 500 pseudo-inputs each move a loss of ~650 nats by ~1e-6 per
// unit, which at eps 1e-4 is resolved to one ulp of the loss over 2 eps, 6e-10, a relative error
// of 7e-4. Errors larger than the resolution are judged against the tolerance as before.
//
// A kink of relu crossed by the step in one of many rows that share the perturbed element, such
// as a bias read by hundreds of rows, moves the slope by a small part of the gradient, below what
// the one-sided differences call a kink (1e-3 relative), yet it moves the central difference by
// up to half the jump, which may exceed the tolerance (the VampPrior's enc1.b, read by 4 images
// and 500 pseudo-inputs: 4e-3 at --seed 2). So each element also takes the central difference at
// eps / 10, and where the two disagree by more than half the tolerance (beyond their rounding)
// the element is skipped as a kink too. Where the loss is smooth they agree to O(eps^2); the
// test reads the numeric derivatives only, so a wrong rule cannot pass for a kink. Five losses
// per element.
//
// Many such kinks, as a code unit of a conv VAE meets (it moves each of the decoder's ~50,000
// relus an image, and dozens cross 0 within a step of 1e-4), make the differences at eps and
// eps / 10 disagree for every element, and the tensor had nothing left to check. The crossings
// scale with the step, so such an element moves on to the pair eps / 10 and eps / 100, then
// eps / 100 and eps / 1000 (two losses more each), and is judged at the first pair that agrees
// (TensorCheck::finer counts them), its rounding resolution 10 or 100 times coarser. A kink at the
// point itself shows at every step and stays skipped.
//
// Ops that stop the gradient by design (OpDef::stops_gradient: stop_gradient) are identities or
// other smooth functions forward, so central differences see through them while autodiff does
// not: for a straight-through estimator or a discriminator read through frozen weights the
// gradient autodiff builds is not the derivative of the loss as written, but the derivative with
// every such output held at its value. That is the reference this checks against: each such
// output is computed once at the unperturbed values and held there while the differences are
// taken (in a copy of the forward graph; report.held counts them). Ops are found by the flag, not
// by name, so a research op that sets it is held too. Ops without a gradient whose derivative is
// zero almost everywhere (one_hot_argmax, random ops) are not held: central differences give
// their zero, and where a step flips them the one-sided differences disagree and the element is
// skipped as a kink.
//
// `graph` gains the backward pass (grad() appends it); nothing already in it changes.
GradCheckReport check_gradients(Graph& graph, Value loss, const std::vector<std::string>& wrt,
                                const ParameterStore& values, const GradCheckOptions& options = {});

}  // namespace graphrun
