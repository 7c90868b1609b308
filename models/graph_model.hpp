// Graph files, steps 2 and 3: names resolved and the Graph built through the same op API C++
// builders use (ops are called through the registry by name), each node remembering its file
// line. The result is an ordinary Model, so every verb and the library's own loops take it.
//
//   auto file = read_graph_file("models/vae.graph");
//   Model m = build_graph_model(file, {{"latent", "2"}}, 128, 784);
//   // or in one call: load_graph_model("models/vae.graph", {{"latent", "2"}}, 128, 784)
#pragma once

#include <graphrun/models/graph_syntax.hpp>
#include <graphrun/models/model.hpp>

#include <filesystem>
#include <memory>

namespace graphrun {

// Reads and parses a graph file; GraphFileError names the file, line and column of a fault.
std::shared_ptr<const GraphSyntax> read_graph_file(const std::filesystem::path& path);
std::shared_ptr<const GraphSyntax> parse_graph_text(std::string_view text, const std::string& name);

// The file's [model] keys: name, default value and the line's comment as help.
std::vector<ModelKey> graph_model_keys(const GraphSyntax& syntax);

// Builds the model for a batch of samples of shape `sample` ({D}, or {C, H, W} for images that
// the file may view as `input x [B, C, H, W]`). `options` override the [model] defaults; an
// unknown key is a ModelOptionError naming the valid ones. Faults in the graph (an unknown name
// or op, a shape error, a missing role) are GraphFileErrors at their place in the file.
Model build_graph_model(std::shared_ptr<const GraphSyntax> syntax, const ModelOptions& options,
                        std::int64_t batch, const SampleShape& sample);
Model load_graph_model(const std::filesystem::path& path, const ModelOptions& options,
                       std::int64_t batch, const SampleShape& sample);
// The same for rows of `features` values, {features}.
Model build_graph_model(std::shared_ptr<const GraphSyntax> syntax, const ModelOptions& options,
                        std::int64_t batch, std::int64_t features);
Model load_graph_model(const std::filesystem::path& path, const ModelOptions& options,
                       std::int64_t batch, std::int64_t features);

// A ModelBuilder over a parsed file, for the runner: named "graph", keys from [model].
ModelBuilder graph_model_builder(std::shared_ptr<const GraphSyntax> syntax);

// The number of single-character insertions, deletions and substitutions from a to b.
std::size_t edit_distance(const std::string& a, const std::string& b);
// The closest of `candidates` to `name` within a small edit distance, or "".
std::string closest_name(const std::string& name, const std::vector<std::string>& candidates);

}  // namespace graphrun
