#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/op.hpp>

#include <fmt/format.h>

#include <map>
#include <stdexcept>

namespace graphrun {

std::vector<int> topological_order(const Graph& graph, const std::vector<int>& roots) {
  // Iterative depth-first search; state 1 = on the stack, 2 = done.
  std::vector<char> state(static_cast<std::size_t>(graph.size()), 0);
  std::vector<int> order;
  std::vector<std::pair<int, std::size_t>> stack;
  for (int root : roots) {
    if (state[static_cast<std::size_t>(root)]) continue;
    stack.emplace_back(root, 0);
    state[static_cast<std::size_t>(root)] = 1;
    while (!stack.empty()) {
      auto& [id, next] = stack.back();
      const auto& inputs = graph.node(id).inputs;
      if (next < inputs.size()) {
        int in = inputs[next++];
        auto& s = state[static_cast<std::size_t>(in)];
        if (s == 1)
          throw std::logic_error(fmt::format("the graph has a cycle through {}",
                                             graph.node(in).describe()));
        if (s == 0) {
          s = 1;
          stack.emplace_back(in, 0);
        }
      } else {
        state[static_cast<std::size_t>(id)] = 2;
        order.push_back(id);
        stack.pop_back();
      }
    }
  }
  return order;
}

namespace {

Value accumulate(Value a, Value b, std::source_location where) {
  if (!a.valid()) return b;
  return a.graph().apply(op_registry().at("add"), {a, b}, {}, where);
}

// Takes the node by value: the rule appends nodes, which moves the graph's node storage.
std::vector<Value> apply_rule(Graph& g, const Node node, Value grad_out,
                              const std::vector<bool>& needs) {
  const OpDef& op = *node.op;
  if (!op.grad)
    throw std::logic_error(fmt::format("failed to compute gradient for {}: op '{}' has no gradient "
                                       "rule", node.describe(), op.name));
  std::vector<Value> inputs;
  for (int in : node.inputs) inputs.push_back(g.value(in));
  GradContext ctx{inputs, g.value(node.id), grad_out, node.attrs, node.where};
  // The gradient's nodes are placed where their forward node was.
  std::string origin = g.origin();
  g.set_origin(node.origin);
  auto grads = op.grad(ctx);
  g.set_origin(origin);
  if (grads.size() != inputs.size())
    throw std::logic_error(fmt::format("gradient rule of {} returned {} gradients for {} inputs",
                                       node.describe(), grads.size(), inputs.size()));
  for (std::size_t i = 0; i < grads.size(); ++i) {
    if (!needs[static_cast<std::size_t>(node.inputs[i])] || !op.input_differentiable(i)) {
      grads[i] = Value();  // off the path to `wrt`, or the op says no gradient flows there
      continue;
    }
    if (!grads[i].valid())
      throw std::logic_error(fmt::format("gradient rule of {} gave no gradient for its input {}, "
                                         "which it declares differentiable", node.describe(), i));
    if (grads[i].shape() != inputs[i].shape())
      throw std::logic_error(fmt::format("gradient rule of {} gave input {} a gradient of shape {} "
                                         "for a value of shape {}", node.describe(), i,
                                         to_string(grads[i].shape()),
                                         to_string(inputs[i].shape())));
  }
  return grads;
}

}  // namespace

std::vector<Value> grad(Value loss, const std::vector<Value>& wrt, std::source_location where) {
  Graph& g = loss.graph();
  if (!loss.shape().empty())
    throw ShapeError(fmt::format("grad needs a scalar loss; {} has shape {}",
                                 loss.node().describe(), to_string(loss.shape())));
  auto order = topological_order(g, {loss.id()});
  // needs[v]: v lies on a path from some wrt to the loss.
  std::vector<bool> needs(static_cast<std::size_t>(g.size()), false);
  for (const auto& w : wrt) {
    if (&w.graph() != &g) throw std::invalid_argument("grad: a value from another graph");
    needs[static_cast<std::size_t>(w.id())] = true;
  }
  for (int id : order)
    for (int in : g.node(id).inputs)
      if (needs[static_cast<std::size_t>(in)]) needs[static_cast<std::size_t>(id)] = true;

  const int first_new = g.size();
  std::map<int, Value> grads;
  grads[loss.id()] = g.scalar(1.0, where);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const Node node = g.node(*it);
    auto found = grads.find(node.id);
    if (node.kind != NodeKind::op || found == grads.end() || !needs[static_cast<std::size_t>(node.id)])
      continue;
    auto input_grads = apply_rule(g, node, found->second, needs);
    for (std::size_t i = 0; i < input_grads.size(); ++i) {
      if (!input_grads[i].valid()) continue;
      int in = node.inputs[i];
      grads[in] = accumulate(grads.count(in) ? grads[in] : Value(), input_grads[i], node.where);
    }
  }
  std::vector<Value> out;
  for (const auto& w : wrt) {
    auto found = grads.find(w.id());
    if (found != grads.end()) {
      out.push_back(found->second);
    } else {
      // Shaped like w when compiled: an input's batch may differ from the one built with.
      out.push_back(g.apply(op_registry().at("expand_like"), {g.scalar(0.0, where), w}, {}, where));
    }
    if (w.node().kind == NodeKind::parameter || w.node().kind == NodeKind::input)
      if (out.back().node().name.empty()) g.set_label(out.back(), "grad/" + w.node().name);
  }
  g.mark_backward(first_new);
  return out;
}

}  // namespace graphrun
