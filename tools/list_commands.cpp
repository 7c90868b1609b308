// --list, --list-ops, --list-keys and --version: reference text generated from the registries,
// the source of the README's op and key tables.
#include <graphrun/graph/op.hpp>
#include <graphrun/tools/commands.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <fstream>

#ifndef GRAPHRUN_VERSION
#define GRAPHRUN_VERSION "0.1.0"
#endif

namespace graphrun::cli {
namespace {

std::string cell(const std::string& text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

// A builder name, or a model file whose extension (or builder line) names one, or a graph file.
ModelBuilder builder_for(const std::string& name) {
  for (const auto* b : all_models())
    if (b->name == name) return *b;
  try {
    return *load_settings(find_model_file(name), {}).builder;
  } catch (const UsageError& e) {
    std::vector<std::string> names;
    for (const auto* b : all_models()) names.push_back(b->name);
    throw UsageError(fmt::format("--list-keys: '{}' is neither a model ({}) nor a readable model "
                                 "file: {}",
                                 name, fmt::join(names, ", "), e.what()));
  }
}

// A graph file's first comment line: what it is.
std::string first_comment(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    auto at = line.find_first_not_of(" \t#");
    if (line.rfind('#', 0) == 0 && at != std::string::npos) return line.substr(at);
    if (line.find_first_not_of(" \t\r") != std::string::npos) break;
  }
  return "";
}

std::string attr_text(const AttrValue& v) {
  if (auto i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (auto d = std::get_if<double>(&v)) return fmt::format("{}", *d);
  return fmt::format("[{}]", fmt::join(std::get<std::vector<std::int64_t>>(v), ", "));
}

// "sum(x, axes=[], keepdims=0)": the inputs, then each attribute with its default (? when
// every call must give it).
std::string call_form(const OpDef& op) {
  std::vector<std::string> parts;
  switch (op.arity) {
    case -1: parts = {"x1", "x2", "..."}; break;
    case 1: parts = {"x"}; break;
    default:
      for (int i = 0; i < op.arity; ++i) parts.push_back(std::string(1, static_cast<char>('a' + i)));
  }
  for (const auto& a : op.attributes)
    parts.push_back(fmt::format("{}={}", a.name, a.default_value ? attr_text(*a.default_value) : "?"));
  return fmt::format("{}({})", op.name, fmt::join(parts, ", "));
}

}  // namespace

int list_command() {
  fmt::print("Models (a model file's extension names its builder; keys: graphrun --list-keys NAME):\n");
  for (const auto* b : all_models()) {
    std::vector<std::string> keys;
    for (const auto& k : b->keys) keys.push_back(k.name);
    fmt::print("  {:<6} {}\n         [model] keys: {}\n", b->name, b->summary, fmt::join(keys, ", "));
  }
  auto graphs = graph_files_on_search_path();
  fmt::print("\nGraph files (models written as graphs; run one as graphrun NAME):\n");
  if (graphs.empty()) fmt::print("  none found in the search path\n");
  for (const auto& [name, dir] : graphs) {
    std::string summary;
    try {
      summary = first_comment(dir / name);
    } catch (const std::exception&) {
    }
    fmt::print("  {:<28} {}\n", name, summary);
  }
  auto ops = op_registry().all();
  fmt::print("\nOps ({}):\n", ops.size());
  for (const auto* op : ops) fmt::print("  {:<18} {}\n", op->name, op->summary);
  return 0;
}

int list_ops_command(bool markdown) {
  if (markdown) fmt::print("| call (as in graph files) | summary |\n|---|---|\n");
  for (const auto* op : op_registry().all()) {
    if (markdown) fmt::print("| `{}` | {} |\n", call_form(*op), cell(op->summary));
    else fmt::print("{}\n", op->name);
  }
  return 0;
}

int list_keys_command(const std::string& model, bool markdown) {
  const ModelBuilder builder = builder_for(model);
  auto keys = setting_keys(builder);
  if (markdown) {
    fmt::print("| section | key | default | meaning |\n|---|---|---|---|\n");
    for (const auto& k : keys)
      fmt::print("| `[{}]` | `{}` | {} | {} |\n", k.section, k.name,
                 k.default_value.empty() ? "" : "`" + k.default_value + "`", cell(k.help));
    return 0;
  }
  std::string section;
  for (const auto& k : keys) {
    if (k.section != section) {
      section = k.section;
      fmt::print("{}[{}]{}\n", section == "model" ? "" : "\n", section,
                 section == "model" ? fmt::format("  ({}: {})", builder.name, builder.summary) : "");
    }
    fmt::print("  {:<28} {}\n", fmt::format("{} = {}", k.name, k.default_value), k.help);
  }
  return 0;
}

int version_command() {
  fmt::print("graphrun {}\n", GRAPHRUN_VERSION);
  return 0;
}

}  // namespace graphrun::cli
