// Parameter values live outside the graph, by name, so a model's graph is pure structure and a
// checkpoint is just the store.
#pragma once

#include <graphrun/graph/graph.hpp>
#include <graphrun/graph/program.hpp>

#include <cstdint>

namespace graphrun {

// Fills one tensor per parameter and buffer of `graph` from its Init. Each one's draws are keyed
// by (seed, its name), so adding a parameter does not change the others' values.
ParameterStore init_parameters(Graph& graph, std::uint64_t seed, DType dtype = DType::f32);

}  // namespace graphrun
