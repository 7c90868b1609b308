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
  std::string out = fmt::format("{:<28} {:>8} {:>6} {:>6} {:>12} {:>12}  {}\n", "tensor", "checked",
                                "finer", "kinks", "worst rel", "worst abs", "verdict");
  for (const auto& t : tensors)
    out += fmt::format("{:<28} {:>8} {:>6} {:>6} {:>12.3e} {:>12.3e}  {}\n", t.name, t.checked, t.finer,
                       t.kinks, t.worst_error, t.worst_abs, t.ok ? "ok" : "FAIL");
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
        case NodeKind::parameter:
          v = n.trainable ? to.parameter(n.name, n.shape, n.init, n.where) : to.buffer(n.name, n.shape, n.init, n.where);
          break;
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
  // Steps eps, eps / 10, ... : an element is judged at the first pair of neighbouring steps that
  // shows no kink (below), the finer step taken only when the coarser pair shows one.
  constexpr int kSteps = 4;
  for (std::size_t k = 0; k < wrt.size(); ++k) {
    TensorCheck check;
    check.name = wrt[k];
    auto it = data.find(wrt[k]);
    if (it == data.end()) throw std::invalid_argument(fmt::format("gradcheck: no value for '{}'", wrt[k]));
    double* x = it->second.data<double>();
    Tensor g = analytic.output(k + 1);
    auto idx = sample_indices(it->second.numel(), options.max_elements);
    // One element's losses: f0 at x, plus[s] and minus[s] at x +- eps / 10^s.
    struct Differences {
      double f0 = 0;
      double plus[kSteps] = {}, minus[kSteps] = {};
      int taken = 0;  // steps evaluated so far
      int level = 0;  // the pair judged: steps level and level + 1
    };
    std::vector<Differences> diffs(idx.size());
    auto step_of = [&](int s) { return options.eps / std::pow(10.0, s); };
    auto take = [&](Differences& d, std::int64_t i, int s) {
      const double saved = x[i];
      x[i] = saved + step_of(s);
      d.plus[s] = f();
      x[i] = saved - step_of(s);
      d.minus[s] = f();
      x[i] = saved;
      d.taken = s + 1;
    };
    auto central = [&](const Differences& d, int s) { return (d.plus[s] - d.minus[s]) / (2 * step_of(s)); };
    // Each loss is rounded to float64, so the difference resolves no finer than about
    // DBL_EPSILON |f| / step: for a loss of ~650 nats at eps 1e-4, ~1.4e-9.
    auto resolution_of = [&](const Differences& d, int s) {
      return std::numeric_limits<double>::epsilon() * std::max(std::abs(d.plus[s]), std::abs(d.minus[s])) / step_of(s);
    };
    // The one-sided differences at step s agree (no kink at x or between x and a neighbour that
    // moves the slope by more than 1e-3 relative).
    auto smooth_at = [&](const Differences& d, int s) {
      const double right = (d.plus[s] - d.f0) / step_of(s), left = (d.f0 - d.minus[s]) / step_of(s);
      return std::abs(right - left) <= 1e-3 * (1 + std::abs(right) + std::abs(left));
    };
    // A kink between the pair's steps: where the loss is smooth the two central differences
    // agree to O(step^2); a relu of one of 500 rows crossing 0 within the coarse step moves the
    // slope by far less than the one-sided test sees, but parts them. Judged on the numeric
    // derivatives alone, so a wrong rule (analytic off, numerics agreeing) is never taken for a
    // kink. The finer step resolves 10 times more coarsely.
    auto apart_at = [&](const Differences& d, int s, double floor) {
      const double coarse = central(d, s), fine = central(d, s + 1);
      return std::abs(coarse - fine) > 0.5 * options.tolerance * std::max({std::abs(coarse), std::abs(fine), floor}) +
                                           100 * resolution_of(d, s);
    };
    double scale = 0;
    for (std::size_t j = 0; j < idx.size(); ++j) {
      diffs[j].f0 = f();
      take(diffs[j], idx[j], 0);
      take(diffs[j], idx[j], 1);
      scale = std::max(scale, std::abs(central(diffs[j], 0)));
    }
    double floor = std::max(1e-4 * scale, 1e-9);
    for (std::size_t j = 0; j < idx.size(); ++j) {
      Differences& d = diffs[j];
      // Many kinks within the step, as the conv VAE's mu.b has (a code unit moves every one of the
      // decoder's ~50,000 relus an image, and some cross 0 within 1e-4): the crossings scale with
      // the step, so a tenth of it sees a tenth of them. The element moves to the next finer pair
      // until one shows no kink; a kink at x itself shows at every step and stays one.
      while ((!smooth_at(d, d.level) || apart_at(d, d.level, floor)) && d.level + 2 < kSteps) {
        ++d.level;
        take(d, idx[j], d.level + 1);
      }
      const int s = d.level;
      const double numeric = central(d, s), finer = central(d, s + 1), resolution = resolution_of(d, s);
      if (!smooth_at(d, s) || apart_at(d, s, floor)) {
        ++check.kinks;
        continue;
      }
      const double a = g.item(idx[j]);
      auto agrees = [&](double v, double slack) {
        return std::abs(a - v) <= std::max(options.tolerance * std::max({std::abs(a), std::abs(v), floor}), slack);
      };
      // Two kinks the tests above miss, told from a wrong rule only where the coarse difference
      // disagrees with it. At the kink itself (a leaky relu whose input is 0, as a zero image
      // through a zero bias gives at initialisation) both central differences take the mean of
      // the two slopes and agree, and the one-sided test misses a jump small against 1; the second
      // difference (f(x + h) - 2 f(x) + f(x - h)) / h is the jump of the slope for every h there,
      // where on a smooth loss it shrinks with h, and the error the kink causes is at most about
      // that jump; a smooth loss's jump is rounding noise, held below 400 resolutions (the fine
      // second difference resolves ~40 times coarser). Between the two steps the fine difference
      // does not cross the kink: it parts from the coarse one by more than its own rounding and
      // agrees with the rule, which a wrong rule does not, as the two agree where the loss is smooth.
      if (!agrees(numeric, resolution)) {
        const double jump = (d.plus[s + 1] - 2 * d.f0 + d.minus[s + 1]) / step_of(s + 1) -
                            (d.plus[s] - 2 * d.f0 + d.minus[s]) / step_of(s) / 10;
        const double apart = std::abs(numeric - finer);
        const bool at_kink = std::abs(jump) > 400 * resolution && std::abs(a - numeric) <= std::abs(jump);
        const bool between = apart > 20 * resolution && agrees(finer, 10 * resolution);
        if (at_kink || between) {
          ++check.kinks;
          continue;
        }
      }
      if (s > 0) ++check.finer;
      double abs_err = std::abs(a - numeric);
      check.worst_abs = std::max(check.worst_abs, abs_err);
      // Below what the difference resolves an error is judged on that resolution: it passes
      // when within it, whatever the tolerance.
      const double resolved = resolution / options.tolerance;
      check.resolution = std::max(check.resolution, resolution);
      check.worst_error = std::max(check.worst_error, abs_err / std::max({std::abs(a), std::abs(numeric), floor, resolved}));
      ++check.checked;
    }
    check.ok = check.worst_error <= options.tolerance && check.checked > 0;
    report.tensors.push_back(check);
  }
  return report;
}

}  // namespace graphrun
