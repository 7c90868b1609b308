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
  std::int64_t kinks = 0;  // elements skipped where the loss has a kink (relu or abs at 0)
  bool ok = true;
};

struct GradCheckReport {
  std::vector<TensorCheck> tensors;
  bool ok() const;
  double worst() const;
  std::string to_string() const;  // a table: name, checked, kinks, worst error, verdict
};

// Checks d(loss)/d(w) for each named input or parameter in `wrt`. `values` must hold a tensor for
// every input and parameter the loss reads (any dtype; the check runs in float64). The floor of
// the relative error is 1e-4 of the largest numeric gradient of that tensor, so tiny gradients
// are judged on scale. Elements where the one-sided differences disagree (a kink) are skipped and
// counted. Appends the backward graph to `graph`.
GradCheckReport check_gradients(Graph& graph, Value loss, const std::vector<std::string>& wrt,
                                const ParameterStore& values, const GradCheckOptions& options = {});

}  // namespace graphrun
