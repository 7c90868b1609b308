// Reverse-mode autodiff as a graph transformation: the backward pass is appended to the same
// graph as ordinary nodes built from each op's gradient rule, so it can be compiled, drawn and
// differentiated again.
#pragma once

#include <graphrun/graph/graph.hpp>

#include <source_location>
#include <vector>

namespace graphrun {

// Returns d(loss)/d(wrt[i]) for each i, each with the shape of wrt[i]. `loss` must be a scalar.
// Gradients reaching a value along several paths are summed. A value that does not influence the
// loss gets a zero constant. Throws std::logic_error naming the node when an op on the path has
// no gradient rule, or a rule returns the wrong number or shapes of gradients.
std::vector<Value> grad(Value loss, const std::vector<Value>& wrt,
                        std::source_location where = std::source_location::current());

// The nodes reachable backwards from `roots`, in an order where every node comes after its
// inputs. Throws std::logic_error naming a node on a cycle.
std::vector<int> topological_order(const Graph& graph, const std::vector<int>& roots);

}  // namespace graphrun
