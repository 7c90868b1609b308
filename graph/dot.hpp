// Graphviz DOT export of a graph: forward nodes in white, backward nodes (made by grad()) in blue,
// parameters as boxes, inputs as ellipses; each edge is labelled with the shape it carries.
#pragma once

#include <graphrun/graph/graph.hpp>

#include <string>
#include <vector>

namespace graphrun {

// The nodes that `outputs` depend on (the whole graph when empty), as DOT text.
std::string to_dot(const Graph& graph, const std::vector<Value>& outputs = {});

}  // namespace graphrun
