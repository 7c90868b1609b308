#include <graphrun/graph/dot.hpp>
#include <graphrun/graph/op.hpp>

// GCC 12 reports a false maybe-uninitialized inside Boost's edge iterator at -O2. Clang has no
// such warning (and warns about the unknown name), so the pragma is GCC's only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <boost/graph/adjacency_list.hpp>
#include <boost/graph/graphviz.hpp>
#include <fmt/format.h>

#include <sstream>

namespace graphrun {
namespace {

struct VertexInfo {
  std::string label, shape, fill;
};
struct EdgeInfo {
  std::string label;
};
using DotGraph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS, VertexInfo, EdgeInfo>;

VertexInfo describe(const Node& n) {
  auto dims = to_string(n.shape);
  switch (n.kind) {
    case NodeKind::input: return {fmt::format("{}\\n{}", n.name, dims), "ellipse", "#fff2cc"};
    case NodeKind::parameter:
      return {fmt::format("{}\\n{}", n.name, dims), "box", n.trainable ? "#d9ead3" : "#e6e6e6"};
    case NodeKind::constant:
      return {n.values.size() == 1 ? fmt::format("{:g}", n.values[0]) : fmt::format("const {}", dims),
              "plaintext", "white"};
    case NodeKind::op: break;
  }
  std::string label = n.op->name;
  if (!n.name.empty()) label += "\\n" + n.name;
  return {label, "box", n.backward ? "#cfe2f3" : "white"};
}

}  // namespace

std::string to_dot(const Graph& graph, const std::vector<Value>& outputs) {
  std::vector<char> keep(static_cast<std::size_t>(graph.size()), outputs.empty() ? 1 : 0);
  std::vector<int> stack;
  for (const auto& v : outputs) stack.push_back(v.id());
  while (!stack.empty()) {
    int id = stack.back();
    stack.pop_back();
    if (keep[static_cast<std::size_t>(id)]) continue;
    keep[static_cast<std::size_t>(id)] = 1;
    for (int in : graph.node(id).inputs) stack.push_back(in);
  }
  DotGraph dg;
  std::vector<std::size_t> vertex(static_cast<std::size_t>(graph.size()));
  for (int id = 0; id < graph.size(); ++id)
    if (keep[static_cast<std::size_t>(id)])
      vertex[static_cast<std::size_t>(id)] = boost::add_vertex(describe(graph.node(id)), dg);
  for (int id = 0; id < graph.size(); ++id) {
    if (!keep[static_cast<std::size_t>(id)]) continue;
    for (int in : graph.node(id).inputs)
      boost::add_edge(vertex[static_cast<std::size_t>(in)], vertex[static_cast<std::size_t>(id)],
                      EdgeInfo{to_string(graph.node(in).shape)}, dg);
  }
  boost::dynamic_properties props;
  props.property("node_id", boost::get(boost::vertex_index, dg));
  props.property("label", boost::get(&VertexInfo::label, dg));
  props.property("shape", boost::get(&VertexInfo::shape, dg));
  props.property("fillcolor", boost::get(&VertexInfo::fill, dg));
  props.property("label", boost::get(&EdgeInfo::label, dg));
  std::ostringstream out;
  boost::write_graphviz_dp(out, dg, props);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  std::string text = out.str();
  // Graph-wide style: filled nodes, small edge labels, top-to-bottom.
  auto brace = text.find('{');
  if (brace != std::string::npos)
    text.insert(brace + 1, "\nrankdir=TB;\nnode [style=filled, fontname=\"Helvetica\", fontsize=10];\n"
                           "edge [fontsize=8, fontcolor=\"#666666\"];\n");
  return text;
}

}  // namespace graphrun
