#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/gradcheck.hpp>
#include <graphrun/graph/op.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>

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
  if (held > 0)
    out += fmt::format("{} output{} of {} held at {} value{} for the central differences: autodiff "
                       "passes no gradient through {}\n",
                       held, held == 1 ? "" : "s", fmt::join(held_ops, ", "),
                       held == 1 ? "its" : "their", held == 1 ? "" : "s",
                       held == 1 ? "it" : "them");
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

// The forward graph `from` (its nodes [0, count)) rebuilt in `to`, node for node, except that the
// nodes in `held` become inputs named in `names`. Nodes are rebuilt in id order (an input made
// later by a rewrite first), so random ops get the streams they had and draw the same numbers.
// Returns the new id of every node.
std::vector<int> copy_holding(const Graph& from, int count, const std::vector<int>& held,
                              const std::vector<std::string>& names, Graph& to) {
  std::vector<int> map(static_cast<std::size_t>(count), -1);
  std::vector<char> visiting(static_cast<std::size_t>(count), 0);
  auto copy = [&](auto& self, int id) -> void {
    auto at = static_cast<std::size_t>(id);
    if (map[at] >= 0) return;
    if (visiting[at]) throw std::logic_error(fmt::format("gradcheck: the graph has a cycle through {}", from.node(id).describe()));
    visiting[at] = 1;
    const Node& n = from.node(id);
    to.set_origin(n.origin);
    Value v;
    if (auto h = std::find(held.begin(), held.end(), id); h != held.end()) {
      v = to.input(names[static_cast<std::size_t>(h - held.begin())], n.shape, n.where);
    } else {
      switch (n.kind) {
        case NodeKind::input: v = to.input(n.name, n.shape, n.where); break;
        case NodeKind::parameter: v = to.parameter(n.name, n.shape, n.init, n.where); break;
        case NodeKind::constant: v = to.constant(n.shape, n.values, n.where); break;
        case NodeKind::op: {
          std::vector<Value> inputs;
          for (int in : n.inputs) {
            if (in >= count) throw std::logic_error(fmt::format("gradcheck: {} reads a node of the backward pass", n.describe()));
            self(self, in);
            inputs.push_back(to.value(map[static_cast<std::size_t>(in)]));
          }
          v = to.apply(*n.op, std::move(inputs), n.attrs, n.where);
          if (!n.name.empty()) to.set_label(v, n.name);
          if (n.op->random && to.node(v.id()).stream != n.stream)
            throw std::logic_error(fmt::format("gradcheck: a rewrite reordered the random ops before {}; "
                                               "the copy would not draw what the graph draws", n.describe()));
          break;
        }
      }
    }
    map[at] = v.id();
  };
  for (int id = 0; id < count; ++id) copy(copy, id);
  to.set_origin("");
  return map;
}

}  // namespace

GradCheckReport check_gradients(Graph& graph, Value loss, const std::vector<std::string>& wrt,
                                const ParameterStore& values, const GradCheckOptions& options) {
  const int forward_nodes = graph.size();
  std::vector<Value> targets;
  for (const auto& name : wrt) targets.push_back(graph.find(name));
  auto grads = grad(loss, targets);

  // Outputs of ops that stop the gradient by design (OpDef::stops_gradient, not the op's name):
  // autodiff's gradient is the derivative with each of them held at its value. Those the loss
  // reads, that is, and not only through another held output.
  std::vector<int> held;
  std::set<std::string> held_ops;
  {
    std::vector<char> seen(static_cast<std::size_t>(forward_nodes), 0);
    std::vector<int> stack{loss.id()};
    while (!stack.empty()) {
      int id = stack.back();
      stack.pop_back();
      if (id >= forward_nodes || seen[static_cast<std::size_t>(id)]) continue;
      seen[static_cast<std::size_t>(id)] = 1;
      const Node& n = graph.node(id);
      if (n.kind != NodeKind::op) continue;
      if (n.op->stops_gradient) {
        held.push_back(id);
        held_ops.insert(n.op->name);
        continue;
      }
      stack.insert(stack.end(), n.inputs.begin(), n.inputs.end());
    }
    std::sort(held.begin(), held.end());
  }

  // float64 copies the check owns and perturbs.
  ParameterStore data;
  for (const auto& [name, t] : values) data.emplace(name, t.to(DType::f64));
  ShapeMap shapes;
  for (const auto& v : graph.inputs())
    if (auto it = data.find(v.node().name); it != data.end()) shapes[v.node().name] = it->second.shape();
  CompileOptions f64{DType::f64, false};
  std::vector<Value> outs{loss};
  outs.insert(outs.end(), grads.begin(), grads.end());
  for (int id : held) outs.push_back(graph.value(id));
  Program analytic = compile_program(graph, outs, shapes, f64);
  analytic.bind_parameters(data);
  analytic.run(options.run);

  // The loss the central differences take: the caller's forward graph, copied, with every held
  // output an input bound to the value the analytic run gave it. The caller's graph only gains
  // the backward pass.
  Graph holding;
  Program forward;
  if (held.empty()) {
    forward = compile_program(graph, {loss}, shapes, f64);
  } else {
    std::set<std::string> taken;
    for (int id = 0; id < forward_nodes; ++id)
      if (graph.node(id).kind == NodeKind::input || graph.node(id).kind == NodeKind::parameter)
        taken.insert(graph.node(id).name);
    std::vector<std::string> names;
    for (std::size_t i = 0; i < held.size(); ++i) {
      std::string name = fmt::format("gradcheck.held.{}", held[i]);
      while (taken.count(name) > 0) name += "_";
      taken.insert(name);
      names.push_back(name);
      Tensor value = analytic.output(1 + wrt.size() + i).clone();
      shapes[name] = value.shape();
      data.emplace(name, std::move(value));
    }
    auto map = copy_holding(graph, forward_nodes, held, names, holding);
    forward = compile_program(holding, {holding.value(map.at(static_cast<std::size_t>(loss.id())))},
                              shapes, f64);
  }
  forward.bind_parameters(data);
  auto f = [&] {
    forward.run(options.run);
    return forward.output(0).item();
  };

  GradCheckReport report;
  report.held = static_cast<int>(held.size());
  report.held_ops.assign(held_ops.begin(), held_ops.end());
  for (std::size_t k = 0; k < wrt.size(); ++k) {
    TensorCheck check;
    check.name = wrt[k];
    auto it = data.find(wrt[k]);
    if (it == data.end()) throw std::invalid_argument(fmt::format("gradcheck: no value for '{}'", wrt[k]));
    double* x = it->second.data<double>();
    Tensor g = analytic.output(k + 1);
    auto idx = sample_indices(it->second.numel(), options.max_elements);
    std::vector<double> numeric(idx.size()), finer(idx.size()), smooth(idx.size()),
        resolution(idx.size()), jump(idx.size());
    double scale = 0;
    for (std::size_t j = 0; j < idx.size(); ++j) {
      double saved = x[idx[j]];
      double f0 = f();
      x[idx[j]] = saved + options.eps;
      double fp = f();
      x[idx[j]] = saved - options.eps;
      double fm = f();
      // The same difference at a tenth of the step: where the loss is smooth the two agree to
      // O(eps^2); a kink within eps of x (a relu of one of 500 rows crossing 0 moves the slope
      // by far less than the one-sided test below sees) makes them differ.
      const double step = options.eps / 10;
      x[idx[j]] = saved + step;
      double fp_fine = f();
      x[idx[j]] = saved - step;
      double fm_fine = f();
      x[idx[j]] = saved;
      numeric[j] = (fp - fm) / (2 * options.eps);
      finer[j] = (fp_fine - fm_fine) / (2 * step);
      // Each loss is rounded to float64, so the difference resolves no finer than about
      // DBL_EPSILON |f| / eps: for a loss of ~650 nats at eps 1e-4, ~1.4e-9.
      resolution[j] = std::numeric_limits<double>::epsilon() * std::max(std::abs(fp), std::abs(fm)) / options.eps;
      // A kink exactly at x (a leaky relu whose input is 0, as a zero image through a zero bias
      // gives at initialisation): both central differences take the mean of the two slopes and
      // agree, and the one-sided test below misses a jump that is small against 1. The second
      // difference (f(x + h) - 2 f(x) + f(x - h)) / h is the jump of the slope for every h there,
      // where on a smooth loss it shrinks with h: at eps / 10 it is a tenth of that at eps.
      jump[j] = (fp_fine - 2 * f0 + fm_fine) / step - (fp - 2 * f0 + fm) / options.eps / 10;
      double right = (fp - f0) / options.eps, left = (f0 - fm) / options.eps;
      smooth[j] = std::abs(right - left) <= 1e-3 * (1 + std::abs(right) + std::abs(left));
      scale = std::max(scale, std::abs(numeric[j]));
    }
    double floor = std::max(1e-4 * scale, 1e-9);
    for (std::size_t j = 0; j < idx.size(); ++j) {
      // Judged on the two numeric derivatives alone, so a wrong rule (analytic off, numerics
      // agreeing) is never taken for a kink. The finer step resolves 10 times more coarsely.
      const double apart = std::abs(numeric[j] - finer[j]);
      const bool kink = apart > 0.5 * options.tolerance * std::max({std::abs(numeric[j]), std::abs(finer[j]), floor}) +
                                    100 * resolution[j];
      if (!smooth[j] || kink) {
        ++check.kinks;
        continue;
      }
      const double a = g.item(idx[j]);
      auto agrees = [&](double d, double slack) {
        return std::abs(a - d) <= std::max(options.tolerance * std::max({std::abs(a), std::abs(d), floor}), slack);
      };
      // Two kinks the tests above miss, told from a wrong rule only where the coarse difference
      // disagrees with it. At the kink itself the slope's jump shows in the second difference, and
      // the error it causes is at most about that jump; a smooth loss's jump is rounding noise,
      // held below 400 resolutions (the fine second difference resolves ~40 times coarser). Between
      // eps / 10 and eps the fine difference does not cross the kink: it parts from the coarse one
      // by more than its own rounding and agrees with the rule, which a wrong rule does not, as
      // the two differences agree where the loss is smooth.
      if (!agrees(numeric[j], resolution[j])) {
        const bool at_kink = std::abs(jump[j]) > 400 * resolution[j] && std::abs(a - numeric[j]) <= std::abs(jump[j]);
        const bool between = apart > 20 * resolution[j] && agrees(finer[j], 10 * resolution[j]);
        if (at_kink || between) {
          ++check.kinks;
          continue;
        }
      }
      double n = numeric[j];
      double abs_err = std::abs(a - n);
      check.worst_abs = std::max(check.worst_abs, abs_err);
      // Below what the difference resolves an error is judged on that resolution: it passes
      // when within it, whatever the tolerance.
      const double resolved = resolution[j] / options.tolerance;
      check.resolution = std::max(check.resolution, resolution[j]);
      check.worst_error = std::max(check.worst_error, abs_err / std::max({std::abs(a), std::abs(n), floor, resolved}));
      ++check.checked;
    }
    check.ok = check.worst_error <= options.tolerance && check.checked > 0;
    report.tensors.push_back(check);
  }
  return report;
}

}  // namespace graphrun
