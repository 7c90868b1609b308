// The graph IR: nodes in SSA form, each producing one value with a shape inferred when the node
// is built. Nodes are inputs (bound at run time), parameters (named, with an initialiser, values
// held outside the graph; buffers are parameters that are not trained), constants, or
// applications of a registered op.
#pragma once

#include <graphrun/graph/attrs.hpp>
#include <graphrun/graph/tensor.hpp>

#include <compare>
#include <cstdint>
#include <source_location>
#include <string>
#include <string_view>
#include <vector>

namespace graphrun {

class Graph;
struct OpDef;

// How a parameter is filled before training. Fans are read from a [fan_in, fan_out] shape
// (the layout of a matmul weight); a 1-D shape uses its size for both; a convolution weight
// [F, C, kh, kw] has fan_in C * kh * kw and fan_out F * kh * kw (PyTorch's and Keras' count).
struct Init {
  enum class Kind { zeros, constant, normal, uniform, xavier_uniform, xavier_normal, he_uniform,
                    he_normal };
  Kind kind = Kind::zeros;
  double value = 0;  // the constant, or the stddev / half-width of normal / uniform

  static Init zeros() { return {}; }
  static Init constant(double v) { return {Kind::constant, v}; }
  static Init normal(double stddev) { return {Kind::normal, stddev}; }
  static Init uniform(double half_width) { return {Kind::uniform, half_width}; }
  static Init xavier_uniform() { return {Kind::xavier_uniform, 0}; }
  static Init xavier_normal() { return {Kind::xavier_normal, 0}; }
  static Init he_uniform() { return {Kind::he_uniform, 0}; }
  static Init he_normal() { return {Kind::he_normal, 0}; }
};
std::string to_string(const Init& init);

enum class NodeKind { input, parameter, constant, op };

struct Node {
  NodeKind kind = NodeKind::op;
  const OpDef* op = nullptr;  // set for op nodes
  std::vector<int> inputs;
  Attrs attrs;
  Shape shape;       // inferred from the shapes the inputs were declared with
  std::string name;  // inputs and parameters: their key; op nodes: an optional label
  Init init;         // parameters
  bool trainable = true;  // parameters: false for a buffer, held and saved alike, never trained
  std::vector<double> values;  // constants, row-major
  std::source_location where;  // where the builder made it; named in every error
  // Where the node came from when that is not C++ (a graph file's "vae.graph:12:9"); named in
  // errors instead of `where`.
  std::string origin;
  bool backward = false;       // made by grad(): drawn apart from the forward pass
  // Random ops: how many random ops the graph held before this one. Draws are keyed by it rather
  // than by the node id, so a model's noise does not change when unrelated nodes are added, and
  // the same model written in C++ or in a graph file draws the same numbers.
  std::uint32_t stream = 0;

  std::string describe() const;  // "node 12 'relu' built at vae.cpp:40"
  std::string built_at() const;  // "vae.cpp:40", or the origin
  int id = -1;
};

// A handle to the value a node produces; cheap to copy. Arithmetic on handles builds nodes
// (operators live in ops/ops.hpp).
class Value {
 public:
  Value() = default;
  Value(Graph* graph, int id) : graph_(graph), id_(id) {}

  bool valid() const { return graph_ != nullptr; }
  Graph& graph() const;
  int id() const { return id_; }
  const Node& node() const;
  const Shape& shape() const;

  friend bool operator==(const Value& a, const Value& b) = default;
  friend auto operator<=>(const Value& a, const Value& b) { return a.id_ <=> b.id_; }

 private:
  Graph* graph_ = nullptr;
  int id_ = -1;
};

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;  // values point at their graph
  Graph& operator=(const Graph&) = delete;
  Graph(Graph&&) = delete;

  using Loc = std::source_location;

  // A value bound at run time. `shape` is the declared shape used to check the graph while it is
  // built; compile() may be given another (e.g. a smaller last batch).
  Value input(std::string name, Shape shape, Loc where = Loc::current());
  Value parameter(std::string name, Shape shape, Init init, Loc where = Loc::current());
  // The parameter `name` if the graph has it (same weights wherever it is used, as a graph
  // file's param("name", ...)), else a new one. Throws std::invalid_argument when the existing
  // one has another shape, or the name is an input's.
  Value shared_parameter(std::string name, Shape shape, Init init, Loc where = Loc::current());
  // A value held outside the graph and saved like a parameter, which training does not
  // differentiate: a running statistic that the model updates itself (batch norm's averages).
  // It shares the parameters' names, initialisers and store.
  Value buffer(std::string name, Shape shape, Init init, Loc where = Loc::current());
  Value constant(Shape shape, std::vector<double> values, Loc where = Loc::current());
  Value scalar(double value, Loc where = Loc::current());
  // Applies an op: checks arity and shapes now (ShapeError names the op, shapes, attributes and
  // `where`), records the node and returns its value.
  Value apply(const OpDef& op, std::vector<Value> inputs, Attrs attrs = {},
              Loc where = Loc::current());

  int size() const { return static_cast<int>(nodes_.size()); }
  const Node& node(int id) const;
  Value value(int id) { return {this, id}; }
  std::vector<Value> inputs();
  std::vector<Value> parameters();  // the trainable ones, what grad() is taken with respect to
  std::vector<Value> buffers();
  // The input or parameter with that name; throws std::out_of_range listing the names.
  Value find(std::string_view name);
  void set_label(Value v, std::string label);

  // Rewires input `slot` of an op node. Used by graph rewrites; compile() re-checks the result
  // (this is how a cycle can appear, and compile reports it).
  void set_input(int node, int slot, Value v);
  // Marks nodes [first, size()) as part of a backward pass (grad() does this).
  void mark_backward(int first);
  // Nodes built from now on record `origin` (empty: none) as where they came from. Builders
  // that read another language (graph files) set it to the position of the text being built.
  void set_origin(std::string origin) { origin_ = std::move(origin); }
  const std::string& origin() const { return origin_; }

 private:
  Value add_node(Node node);
  Value add_named(NodeKind kind, std::string name, Shape shape, Init init, Loc where);
  void check_owned(const Value& v, const char* what) const;

  std::vector<Node> nodes_;
  std::string origin_;
  std::uint32_t random_ops_ = 0;
};

// Shape inference for one op node given concrete input shapes; throws ShapeError with a message
// naming the node, its op, every input shape and attribute, and where it was built.
Shape infer_shape(const Node& node, const std::vector<Shape>& input_shapes);

}  // namespace graphrun
