#include <graphrun/graph/parallel.hpp>
#include <graphrun/ops/kernel_util.hpp>
#include <graphrun/train/optimizer.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace graphrun {
namespace {

struct AdamStep {
  float grad_scale, beta1, beta2, eps, step_size, inv_sqrt_bc2, decay;
};

// One contiguous run of one parameter. Separate, restrict-qualified pointers let the compiler
// vectorize the whole update (sqrt and divide included).
void adam_update(float* __restrict p, const float* __restrict g, float* __restrict m,
                 float* __restrict v, std::int64_t n, AdamStep a) {
  for (std::int64_t k = 0; k < n; ++k) {
    float gk = g[k] * a.grad_scale;
    m[k] = a.beta1 * m[k] + (1 - a.beta1) * gk;
    v[k] = a.beta2 * v[k] + (1 - a.beta2) * gk * gk;
    p[k] -= a.step_size * m[k] / (std::sqrt(v[k]) * a.inv_sqrt_bc2 + a.eps) + a.decay * p[k];
  }
}

}  // namespace

Optimizer::Optimizer(OptimizerConfig config) : config_(std::move(config)) {
  if (config_.kind != "adam" && config_.kind != "sgd")
    throw std::invalid_argument(fmt::format("unknown optimizer '{}' (adam or sgd)", config_.kind));
  if (!(config_.lr > 0)) throw std::invalid_argument(fmt::format("learning rate must be > 0, got {}", config_.lr));
}

void Optimizer::prepare(ParameterStore& params, const std::vector<GradRef>& grads) {
  if (!offsets_.empty() && slots_.size() == grads.size()) {  // offsets_: prepared once (even for none)
    bool same = true;
    for (std::size_t i = 0; i < grads.size() && same; ++i) {
      auto it = params.find(grads[i].name);
      same = slots_[i].grad == grads[i].grad && it != params.end() &&
             it->second.dtype() == DType::f32 && slots_[i].param == it->second.data<float>();
    }
    if (same) return;  // the usual case: the same program buffers every step
  }
  slots_.clear();
  offsets_.clear();
  std::int64_t total = 0;
  for (const auto& g : grads) {
    auto it = params.find(g.name);
    if (it == params.end()) throw std::invalid_argument(fmt::format("optimizer: no parameter '{}'", g.name));
    Tensor& p = it->second;
    if (p.dtype() != DType::f32) throw std::invalid_argument(fmt::format("optimizer: '{}' is not float32", g.name));
    auto& m = m_[g.name];
    auto& v = v_[g.name];
    if (m.empty() || m.shape() != p.shape()) m = Tensor(DType::f32, p.shape());
    if (v.empty() || v.shape() != p.shape()) v = Tensor(DType::f32, p.shape());
    slots_.push_back({p.data<float>(), g.grad, m.data<float>(), v.data<float>(), p.numel()});
    offsets_.push_back(total);
    total += p.numel();
  }
  offsets_.push_back(total);
}

double Optimizer::step(ParameterStore& params, const std::vector<GradRef>& grads,
                       std::optional<double> given_norm) {
  prepare(params, grads);
  if (given_norm) return update(*given_norm, 0, offsets_.back());
  double sq = 0;
  for (const Slot& s : slots_) sq += ops::sum_of_squares(s.grad, s.n);
  return update(std::sqrt(sq), 0, offsets_.back());
}

double Optimizer::step(ParameterStore& params, const std::vector<GradRef>& grads, double norm,
                       std::int64_t begin, std::int64_t end) {
  prepare(params, grads);
  if (begin < 0 || end < begin || end > offsets_.back())
    throw std::invalid_argument(fmt::format("optimizer: range [{}, {}) outside the {} parameters' "
                                            "elements", begin, end, offsets_.back()));
  return update(norm, begin, end);
}

void Optimizer::state_out(std::size_t kind, std::span<float> flat) const {
  if (flat.size() != static_cast<std::size_t>(offsets_.empty() ? 0 : offsets_.back()))
    throw std::invalid_argument("optimizer: state_out needs one value per parameter element");
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const float* from = kind == 0 ? slots_[i].m : slots_[i].v;
    std::copy(from, from + slots_[i].n, flat.begin() + offsets_[i]);
  }
}

void Optimizer::state_in(std::size_t kind, std::span<const float> flat) {
  if (flat.size() != static_cast<std::size_t>(offsets_.empty() ? 0 : offsets_.back()))
    throw std::invalid_argument("optimizer: state_in needs one value per parameter element");
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    float* to = kind == 0 ? slots_[i].m : slots_[i].v;
    std::copy(flat.begin() + offsets_[i], flat.begin() + offsets_[i] + slots_[i].n, to);
  }
}

double Optimizer::update(double norm, std::int64_t begin, std::int64_t end) {
  FlushDenormals flush;  // a moment decaying towards zero would otherwise crawl through them
  // Finds the slot holding global index i (few slots: a linear walk from a hint is enough).
  auto for_range = [&](std::int64_t b, std::int64_t e, auto&& f) {
    std::size_t s = static_cast<std::size_t>(std::upper_bound(offsets_.begin(), offsets_.end(), b) - offsets_.begin()) - 1;
    for (std::int64_t i = b; i < e;) {
      while (offsets_[s + 1] <= i) ++s;
      std::int64_t end = std::min(e, offsets_[s + 1]);
      f(slots_[s], i - offsets_[s], end - offsets_[s]);
      i = end;
    }
  };
  if (!std::isfinite(norm)) return norm;
  float scale = 1.0f;
  if (config_.clip_norm > 0 && norm > config_.clip_norm) scale = static_cast<float>(config_.clip_norm / norm);
  ++steps_;
  const auto& c = config_;
  if (c.kind == "adam") {
    float lr = static_cast<float>(c.lr), b1 = static_cast<float>(c.beta1), b2 = static_cast<float>(c.beta2);
    float eps = static_cast<float>(c.eps), decay = static_cast<float>(c.lr * c.weight_decay);
    double t = static_cast<double>(steps_);
    float step_size = lr / static_cast<float>(1.0 - std::pow(c.beta1, t));
    float inv_sqrt_bc2 = 1.0f / std::sqrt(static_cast<float>(1.0 - std::pow(c.beta2, t)));
    parallel_for(end - begin, kGrain, [&](std::int64_t b, std::int64_t e) {
      for_range(begin + b, begin + e, [&](const Slot& s, std::int64_t lo, std::int64_t hi) {
        adam_update(s.param + lo, s.grad + lo, s.m + lo, s.v + lo, hi - lo,
                    {scale, b1, b2, eps, step_size, inv_sqrt_bc2, decay});
      });
    });
  } else {
    float lr = static_cast<float>(c.lr), mu = static_cast<float>(c.momentum), wd = static_cast<float>(c.weight_decay);
    parallel_for(end - begin, kGrain, [&](std::int64_t b, std::int64_t e) {
      for_range(begin + b, begin + e, [&](const Slot& s, std::int64_t lo, std::int64_t hi) {
        float* __restrict p = s.param;
        const float* __restrict gr = s.grad;
        float* __restrict vel = s.m;
        for (std::int64_t k = lo; k < hi; ++k) {
          float g = gr[k] * scale + wd * p[k];
          vel[k] = mu * vel[k] + g;
          p[k] -= lr * vel[k];
        }
      });
    });
  }
  return norm;
}

ParameterStore Optimizer::state() const {
  ParameterStore out;
  const char* first = config_.kind == "adam" ? "adam.m/" : "sgd.velocity/";
  for (const auto& [name, t] : m_) out.emplace(first + name, t.clone());
  if (config_.kind == "adam")
    for (const auto& [name, t] : v_) out.emplace("adam.v/" + name, t.clone());
  return out;
}

void Optimizer::load_state(const ParameterStore& state, std::int64_t steps) {
  m_.clear();
  v_.clear();
  slots_.clear();
  const std::string first = config_.kind == "adam" ? "adam.m/" : "sgd.velocity/";
  for (const auto& [name, t] : state) {
    if (name.rfind(first, 0) == 0) m_.emplace(name.substr(first.size()), t.to(DType::f32));
    else if (name.rfind("adam.v/", 0) == 0) v_.emplace(name.substr(7), t.to(DType::f32));
  }
  steps_ = steps;
}

}  // namespace graphrun
