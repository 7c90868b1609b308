#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/gradcheck.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace graphrun {

bool GradCheckReport::ok() const {
  return std::all_of(tensors.begin(), tensors.end(), [](const auto& t) { return t.ok; });
}

double GradCheckReport::worst() const {
  double w = 0;
  for (const auto& t : tensors) w = std::max(w, t.worst_error);
  return w;
}

std::string GradCheckReport::to_string() const {
  std::string out = fmt::format("{:<28} {:>8} {:>6} {:>12} {:>12}  {}\n", "tensor", "checked",
                                "kinks", "worst rel", "worst abs", "verdict");
  for (const auto& t : tensors)
    out += fmt::format("{:<28} {:>8} {:>6} {:>12.3e} {:>12.3e}  {}\n", t.name, t.checked, t.kinks,
                       t.worst_error, t.worst_abs, t.ok ? "ok" : "FAIL");
  return out;
}

namespace {

std::vector<std::int64_t> sample_indices(std::int64_t n, int max_elements) {
  std::vector<std::int64_t> idx;
  if (n <= std::max(max_elements, 1)) {
    for (std::int64_t i = 0; i < n; ++i) idx.push_back(i);
    return idx;
  }
  if (max_elements <= 1) return {0};
  // Spread over the tensor, first and last included, with a fixed stride.
  for (int k = 0; k < max_elements; ++k)
    idx.push_back(static_cast<std::int64_t>(static_cast<double>(k) * static_cast<double>(n - 1) /
                                            (max_elements - 1)));
  return idx;
}

}  // namespace

GradCheckReport check_gradients(Graph& graph, Value loss, const std::vector<std::string>& wrt,
                                const ParameterStore& values, const GradCheckOptions& options) {
  std::vector<Value> targets;
  for (const auto& name : wrt) targets.push_back(graph.find(name));
  auto grads = grad(loss, targets);

  // float64 copies the check owns and perturbs.
  ParameterStore data;
  for (const auto& [name, t] : values) data.emplace(name, t.to(DType::f64));
  ShapeMap shapes;
  for (const auto& v : graph.inputs())
    if (auto it = data.find(v.node().name); it != data.end()) shapes[v.node().name] = it->second.shape();
  CompileOptions f64{DType::f64, false};
  std::vector<Value> outs{loss};
  outs.insert(outs.end(), grads.begin(), grads.end());
  Program analytic = compile_program(graph, outs, shapes, f64);
  Program forward = compile_program(graph, {loss}, shapes, f64);
  analytic.bind_parameters(data);
  forward.bind_parameters(data);
  analytic.run(options.run);
  auto f = [&] {
    forward.run(options.run);
    return forward.output(0).item();
  };

  GradCheckReport report;
  for (std::size_t k = 0; k < wrt.size(); ++k) {
    TensorCheck check;
    check.name = wrt[k];
    auto it = data.find(wrt[k]);
    if (it == data.end()) throw std::invalid_argument(fmt::format("gradcheck: no value for '{}'", wrt[k]));
    double* x = it->second.data<double>();
    Tensor g = analytic.output(k + 1);
    auto idx = sample_indices(it->second.numel(), options.max_elements);
    std::vector<double> numeric(idx.size()), smooth(idx.size());
    double scale = 0;
    for (std::size_t j = 0; j < idx.size(); ++j) {
      double saved = x[idx[j]];
      double f0 = f();
      x[idx[j]] = saved + options.eps;
      double fp = f();
      x[idx[j]] = saved - options.eps;
      double fm = f();
      x[idx[j]] = saved;
      numeric[j] = (fp - fm) / (2 * options.eps);
      double right = (fp - f0) / options.eps, left = (f0 - fm) / options.eps;
      smooth[j] = std::abs(right - left) <= 1e-3 * (1 + std::abs(right) + std::abs(left));
      scale = std::max(scale, std::abs(numeric[j]));
    }
    double floor = std::max(1e-4 * scale, 1e-9);
    for (std::size_t j = 0; j < idx.size(); ++j) {
      if (!smooth[j]) {
        ++check.kinks;
        continue;
      }
      double a = g.item(idx[j]), n = numeric[j];
      double abs_err = std::abs(a - n);
      check.worst_abs = std::max(check.worst_abs, abs_err);
      check.worst_error = std::max(check.worst_error, abs_err / std::max({std::abs(a), std::abs(n), floor}));
      ++check.checked;
    }
    check.ok = check.worst_error <= options.tolerance && check.checked > 0;
    report.tensors.push_back(check);
  }
  return report;
}

}  // namespace graphrun
