// Resolving and building a parsed graph file (graph_syntax.hpp) into a Model.
#include <graphrun/graph/op.hpp>
#include <graphrun/models/graph_eval.hpp>
#include <graphrun/models/graph_model.hpp>
#include <graphrun/ops/ops.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <optional>

namespace graphrun {
namespace {

std::optional<double> parse_number(const std::string& s) {
  if (s == "true") return 1.0;
  if (s == "false") return 0.0;
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return {};
  return v;
}

// The [model] values as the graph sees them: numbers where the text is one, else strings.
std::map<std::string, GraphVal> option_values(const GraphSyntax& syntax, const ModelOptions& given) {
  std::map<std::string, GraphVal> out;
  std::vector<std::string> keys;
  for (const auto& s : syntax.settings) {
    if (s.section != "model") continue;
    keys.push_back(s.key);
    auto it = given.find(s.key);
    const std::string& text = it == given.end() ? s.value : it->second;
    auto number = parse_number(text);
    if (parse_number(s.value) && !number)
      throw ModelOptionError(fmt::format("model option '{}': '{}' is not a number", s.key, text));
    out[s.key] = number ? GraphVal::num(*number) : GraphVal::str(text);
  }
  for (const auto& [key, value] : given)
    if (!out.count(key)) {
      std::string hint = closest_name(key, keys);
      throw ModelOptionError(fmt::format("unknown model option '{}' for {}{}; valid keys: {}", key,
                                         syntax.file, hint.empty() ? "" : " (did you mean '" + hint + "'?)",
                                         keys.empty() ? "none ([model] is empty)" : fmt::format("{}", fmt::join(keys, ", "))));
    }
  return out;
}

}  // namespace

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string closest_name(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, name.size() / 3) + 1;
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(name, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

std::shared_ptr<const GraphSyntax> parse_graph_text(std::string_view text, const std::string& name) {
  return std::make_shared<const GraphSyntax>(parse_graph_file(text, name));
}

std::shared_ptr<const GraphSyntax> read_graph_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw GraphFileError(fmt::format("cannot read graph file '{}'", path.string()), path.string(), {});
  std::string text;
  char buffer[65536];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxGraphFileBytes) break;  // parse_graph_file names the limit
  }
  return parse_graph_text(text, path.string());
}

std::vector<ModelKey> graph_model_keys(const GraphSyntax& syntax) {
  std::vector<ModelKey> keys;
  for (const auto& s : syntax.settings)
    if (s.section == "model") keys.push_back({s.key, s.value, s.comment});
  return keys;
}

Model build_graph_model(std::shared_ptr<const GraphSyntax> syntax, const ModelOptions& options,
                        std::int64_t batch, const SampleShape& sample) {
  auto values = option_values(*syntax, options);
  Model m;
  m.name = std::filesystem::path(syntax->file).filename().string();
  m.graph = std::make_unique<Graph>();
  GraphBuilder builder(syntax, values, m.graph.get(), batch, sample);
  builder.run();
  builder.fill(m);
  return m;
}

Model load_graph_model(const std::filesystem::path& path, const ModelOptions& options,
                       std::int64_t batch, const SampleShape& sample) {
  return build_graph_model(read_graph_file(path), options, batch, sample);
}

Model build_graph_model(std::shared_ptr<const GraphSyntax> syntax, const ModelOptions& options,
                        std::int64_t batch, std::int64_t features) {
  return build_graph_model(std::move(syntax), options, batch, SampleShape{features});
}

Model load_graph_model(const std::filesystem::path& path, const ModelOptions& options,
                       std::int64_t batch, std::int64_t features) {
  return load_graph_model(path, options, batch, SampleShape{features});
}

ModelBuilder graph_model_builder(std::shared_ptr<const GraphSyntax> syntax) {
  ModelBuilder b;
  b.name = "graph";
  b.summary = fmt::format("the model defined in {}", syntax->file);
  b.keys = graph_model_keys(*syntax);
  b.build = [syntax](const ModelOptions& o, std::int64_t batch, std::int64_t features) {
    return build_graph_model(syntax, o, batch, {features});
  };

  return b;
}

}  // namespace graphrun
