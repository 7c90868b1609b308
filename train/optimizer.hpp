// Optimizers over a ParameterStore, keeping their state by parameter name (so it saves into a
// checkpoint and survives a rebuilt graph). The update runs as one parallel pass over all
// parameters rather than one small loop per tensor.
#pragma once

#include <graphrun/graph/program.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace graphrun {

struct OptimizerConfig {
  std::string kind = "adam";  // adam | sgd
  double lr = 1e-3;
  double momentum = 0.9;      // sgd
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam
  double weight_decay = 0;    // adam: decoupled (AdamW); sgd: added to the gradient
  double clip_norm = 0;       // clip the global gradient norm to this when > 0
};

// A parameter and the gradient computed for it this step (same shape, float32).
struct GradRef {
  std::string name;
  const float* grad;
};

class Optimizer {
 public:
  explicit Optimizer(OptimizerConfig config);
  // Applies one update; returns the global gradient norm before clipping. A NaN or infinite
  // norm is returned without touching any parameter or state. Throws std::invalid_argument if a
  // parameter is missing or not float32.
  // `norm`, when given, is that global norm as the caller computed it (the trainer does so inside
  // the training program); else it is computed here, in a pass over all gradients.
  double step(ParameterStore& params, const std::vector<GradRef>& grads,
              std::optional<double> norm = std::nullopt);
  // The same update of the elements [begin, end) alone, counting through the parameters laid
  // end to end in the order of `grads`, with the global norm given: data-parallel ranks that
  // share the update, each its own range (the elements outside it, their state included, stay
  // as they are).
  double step(ParameterStore& params, const std::vector<GradRef>& grads, double norm,
              std::int64_t begin, std::int64_t end);
  // The state laid end to end in the order of the last step's `grads`, one array per kind
  // (adam: m, then v; sgd: velocity), out of the optimizer and back into it: how ranks that
  // shared the update gather the whole state.
  std::size_t state_kinds() const { return config_.kind == "adam" ? 2 : 1; }
  void state_out(std::size_t kind, std::span<float> flat) const;
  void state_in(std::size_t kind, std::span<const float> flat);
  std::int64_t steps() const { return steps_; }
  const OptimizerConfig& config() const { return config_; }

  // State as tensors named "<slot>/<parameter>" (adam: m, v; sgd: velocity) plus the step count.
  ParameterStore state() const;
  void load_state(const ParameterStore& state, std::int64_t steps);

 private:
  struct Slot {
    float* param;
    const float* grad;
    float* m;
    float* v;
    std::int64_t n;
  };
  void prepare(ParameterStore& params, const std::vector<GradRef>& grads);
  // The update of the elements [begin, end) with the global norm given.
  double update(double norm, std::int64_t begin, std::int64_t end);

  OptimizerConfig config_;
  std::int64_t steps_ = 0;
  ParameterStore m_, v_;
  std::vector<Slot> slots_;
  std::vector<std::int64_t> offsets_;  // slot start in the concatenated index space
};

}  // namespace graphrun
