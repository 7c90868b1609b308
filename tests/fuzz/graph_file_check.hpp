// What the graph-file fuzz target checks on one input, shared with the regression test: parsing
// ends in a GraphFileError or a syntax tree; building that at a small size ends in a
// GraphFileError or ModelOptionError or a model; and an accepted file's [graph] text, written
// out as a run's config.ini writes it, parses to the same text again. Returns "" when so, else
// what went wrong; any other exception escapes, as a finding too.
#pragma once

#include <graphrun/models/graph_model.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace graphrun::fuzz {

inline std::string check_graph_file(const std::filesystem::path&, const std::uint8_t* data,
                                    std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::shared_ptr<const GraphSyntax> syntax;
  try {
    syntax = parse_graph_text(text, "fuzz.graph");
  } catch (const GraphFileError&) {
    return "";
  }
  try {
    build_graph_model(syntax, {}, 3, 5);
  } catch (const GraphFileError&) {
  } catch (const ModelOptionError&) {
  }
  std::shared_ptr<const GraphSyntax> again;
  try {
    again = parse_graph_text("[graph]\n" + syntax->graph_text, "again.graph");
  } catch (const GraphFileError& e) {
    return std::string("the [graph] text parses alone no more: ") + e.what();
  }
  if (again->graph_text != syntax->graph_text) return "the [graph] text reads back different";
  return "";
}

}  // namespace graphrun::fuzz
