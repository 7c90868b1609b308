#include <graphrun/graph/graph.hpp>
#include <graphrun/graph/op.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>

namespace graphrun {

std::string to_string(const Init& init) {
  switch (init.kind) {
    case Init::Kind::zeros: return "zeros";
    case Init::Kind::constant: return fmt::format("constant({})", init.value);
    case Init::Kind::normal: return fmt::format("normal({})", init.value);
    case Init::Kind::uniform: return fmt::format("uniform({})", init.value);
    case Init::Kind::xavier_uniform: return "xavier_uniform";
    case Init::Kind::xavier_normal: return "xavier_normal";
    case Init::Kind::he_uniform: return "he_uniform";
    case Init::Kind::he_normal: return "he_normal";
  }
  return "?";
}

std::string Node::describe() const {
  std::string what;
  switch (kind) {
    case NodeKind::input: what = fmt::format("input '{}'", name); break;
    case NodeKind::parameter: what = fmt::format("{} '{}'", trainable ? "parameter" : "buffer", name); break;
    case NodeKind::constant: what = "constant"; break;
    case NodeKind::op:
      what = name.empty() ? fmt::format("'{}'", op->name) : fmt::format("'{}' ({})", op->name, name);
      break;
  }
  return fmt::format("node {} {} built at {}", id, what, built_at());
}

std::string Node::built_at() const {
  if (!origin.empty()) return origin;
  auto file = std::filesystem::path(where.file_name()).filename().string();
  return fmt::format("{}:{}", file, where.line());
}

Graph& Value::graph() const {
  if (!graph_) throw std::logic_error("use of an empty Value handle");
  return *graph_;
}

const Node& Value::node() const { return graph().node(id_); }

const Shape& Value::shape() const { return node().shape; }

const Node& Graph::node(int id) const {
  if (id < 0 || id >= size())
    throw std::out_of_range(fmt::format("node {} is not in this graph of {} nodes", id, size()));
  return nodes_[static_cast<std::size_t>(id)];
}

Value Graph::add_node(Node node) {
  node.id = size();
  node.origin = origin_;
  nodes_.push_back(std::move(node));
  return {this, size() - 1};
}

void Graph::check_owned(const Value& v, const char* what) const {
  if (!v.valid() || &v.graph() != this || v.id() >= size())
    throw std::invalid_argument(fmt::format("{}: the value does not belong to this graph", what));
}

// Inputs and parameters share one namespace: bindings and checkpoints look them up by name.
Value Graph::add_named(NodeKind kind, std::string name, Shape shape, Init init, Loc where) {
  check_shape(shape);
  for (const auto& n : nodes_)
    if ((n.kind == NodeKind::input || n.kind == NodeKind::parameter) && n.name == name)
      throw std::invalid_argument(fmt::format("{} name '{}' is already used by {}",
                                              kind == NodeKind::input ? "input" : "parameter or buffer",
                                              name, n.describe()));
  Node n;
  n.kind = kind;
  n.name = std::move(name);
  n.shape = std::move(shape);
  n.init = init;
  n.where = where;
  return add_node(std::move(n));
}

Value Graph::input(std::string name, Shape shape, Loc where) {
  return add_named(NodeKind::input, std::move(name), std::move(shape), Init::zeros(), where);
}

Value Graph::parameter(std::string name, Shape shape, Init init, Loc where) {
  return add_named(NodeKind::parameter, std::move(name), std::move(shape), init, where);
}

Value Graph::buffer(std::string name, Shape shape, Init init, Loc where) {
  Value v = add_named(NodeKind::parameter, std::move(name), std::move(shape), init, where);
  nodes_[static_cast<std::size_t>(v.id())].trainable = false;
  return v;
}

Value Graph::shared_parameter(std::string name, Shape shape, Init init, Loc where) {
  for (const auto& n : nodes_)
    if (n.kind == NodeKind::parameter && n.name == name) {
      if (!n.trainable)
        throw std::invalid_argument(fmt::format("'{}' is a buffer ({}), not a parameter", name, n.describe()));
      if (n.shape != shape)
        throw std::invalid_argument(fmt::format("parameter '{}' is {}, asked for again as {}", name,
                                                to_string(n.shape), to_string(shape)));
      return {this, n.id};
    }
  return parameter(std::move(name), std::move(shape), init, where);
}

Value Graph::constant(Shape shape, std::vector<double> values, Loc where) {
  check_shape(shape);
  if (static_cast<std::int64_t>(values.size()) != numel(shape))
    throw ShapeError(fmt::format("constant of shape {} needs {} values, got {}", to_string(shape),
                                 numel(shape), values.size()));
  Node n;
  n.kind = NodeKind::constant;
  n.shape = std::move(shape);
  n.values = std::move(values);
  n.where = where;
  return add_node(std::move(n));
}

Value Graph::scalar(double value, Loc where) { return constant({}, {value}, where); }

Shape infer_shape(const Node& node, const std::vector<Shape>& input_shapes) {
  const OpDef& op = *node.op;
  auto fail = [&](const std::string& why) -> ShapeError {
    std::vector<std::string> shapes;
    for (const auto& s : input_shapes) shapes.push_back(to_string(s));
    return ShapeError(fmt::format("{} (node {}{}) built at {}: inputs {}{}: {}", op.name, node.id,
                                  node.name.empty() ? "" : " '" + node.name + "'",
                                  node.built_at(), fmt::join(shapes, ", "),
                                  node.attrs.empty() ? "" : " attributes " + node.attrs.to_string(),
                                  why));
  };
  if (op.arity >= 0 && static_cast<int>(input_shapes.size()) != op.arity)
    throw fail(fmt::format("takes {} inputs, got {}", op.arity, input_shapes.size()));
  if (op.arity < 0 && input_shapes.empty()) throw fail("takes at least one input");
  try {
    Shape out = op.shape(input_shapes, node.attrs);
    check_shape(out);
    return out;
  } catch (const std::invalid_argument& e) {  // ShapeError and bad attributes alike
    throw fail(e.what());
  }
}

Value Graph::apply(const OpDef& op, std::vector<Value> inputs, Attrs attrs, Loc where) {
  Node n;
  n.kind = NodeKind::op;
  n.op = &op;
  n.attrs = std::move(attrs);
  n.where = where;
  n.origin = origin_;
  n.id = size();
  std::vector<Shape> shapes;
  for (const auto& v : inputs) {
    check_owned(v, op.name.c_str());
    n.inputs.push_back(v.id());
    shapes.push_back(node(v.id()).shape);
  }
  n.shape = infer_shape(n, shapes);
  if (op.random) n.stream = random_ops_++;
  return add_node(std::move(n));
}

std::vector<Value> Graph::inputs() {
  std::vector<Value> out;
  for (const auto& n : nodes_)
    if (n.kind == NodeKind::input) out.emplace_back(this, n.id);
  return out;
}

std::vector<Value> Graph::parameters() {
  std::vector<Value> out;
  for (const auto& n : nodes_)
    if (n.kind == NodeKind::parameter && n.trainable) out.emplace_back(this, n.id);
  return out;
}

std::vector<Value> Graph::buffers() {
  std::vector<Value> out;
  for (const auto& n : nodes_)
    if (n.kind == NodeKind::parameter && !n.trainable) out.emplace_back(this, n.id);
  return out;
}

Value Graph::find(std::string_view name) {
  std::vector<std::string> names;
  for (const auto& n : nodes_) {
    if (n.kind != NodeKind::input && n.kind != NodeKind::parameter) continue;
    if (n.name == name) return {this, n.id};
    names.push_back(n.name);
  }
  throw std::out_of_range(fmt::format("no input or parameter named '{}'; the graph has: {}", name,
                                      fmt::join(names, ", ")));
}

void Graph::set_label(Value v, std::string label) {
  check_owned(v, "set_label");
  nodes_[static_cast<std::size_t>(v.id())].name = std::move(label);
}

void Graph::set_input(int id, int slot, Value v) {
  check_owned(v, "set_input");
  auto& n = nodes_.at(static_cast<std::size_t>(id));
  if (n.kind != NodeKind::op || slot < 0 || slot >= static_cast<int>(n.inputs.size()))
    throw std::invalid_argument(fmt::format("set_input: {} has no input slot {}", n.describe(), slot));
  n.inputs[static_cast<std::size_t>(slot)] = v.id();
}

void Graph::mark_backward(int first) {
  for (int i = std::max(first, 0); i < size(); ++i) nodes_[static_cast<std::size_t>(i)].backward = true;
}

}  // namespace graphrun
