// `graphrun compare RUN_FOLDER...`: what a researcher reads after training several variants. A
// Markdown table of the runs (model, the settings that differ, final losses, -log p(x) where
// `eval --iw` estimated it, epochs, time) and their test-loss curves in one figure.
#include <graphrun/tools/commands.hpp>
#include <graphrun/tools/console.hpp>
#include <graphrun/train/idx.hpp>
#include <graphrun/train/plot.hpp>
#include <graphrun/train/report.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

namespace graphrun::cli {
namespace fs = std::filesystem;
namespace {

struct RunSummary {
  fs::path dir;
  std::string model = "?";
  std::map<std::string, std::string> settings;  // "section.key" -> value, from config.ini
  std::vector<EpochReport> rows;                // metrics.jsonl
  std::optional<nlohmann::json> iw;             // iw.json
};

std::string trim(const std::string& s) {
  auto a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(" \t\r") - a + 1);
}

// The key = value lines of config.ini by section; the [graph] section is the model's text, not
// settings. A graph run has no `builder` line: its model is the graph file it was read from,
// which the checkpoint names.
void read_config(RunSummary& r) {
  std::ifstream in(r.dir / "config.ini");
  if (!in) throw UsageError(fmt::format("compare: '{}' is not a run folder (no config.ini)", r.dir.string()));
  std::string line, section;
  while (std::getline(in, line)) {
    line = trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    if (line.front() == '[') {
      section = trim(line.substr(1, line.find(']') - 1));
      continue;
    }
    auto eq = line.find('=');
    if (section == "graph" || eq == std::string::npos) continue;
    std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    if (section.empty() && key == "builder") r.model = value;
    else if (!section.empty()) r.settings[section + "." + key] = value;
  }
}

// The model a checkpoint records, read from its JSON header alone (the tensors can be large):
// a builder's name, or for a graph file the file's name (checkpoints before it was recorded say
// "graph").
std::optional<std::string> checkpoint_model(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  unsigned char size_bytes[8];
  if (!in.read(reinterpret_cast<char*>(size_bytes), 8)) return {};
  std::uint64_t size = 0;
  for (int i = 7; i >= 0; --i) size = size << 8 | size_bytes[i];
  if (size > (1u << 26)) return {};
  std::string header(size, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(size))) return {};
  auto j = nlohmann::json::parse(header, nullptr, false);
  if (j.is_discarded() || !j.contains("__metadata__")) return {};
  const auto& meta = j["__metadata__"];
  for (const char* key : {"model_file", "model"})
    if (meta.contains(key) && meta[key].is_string()) return meta[key].get<std::string>();
  return {};
}

RunSummary read_run(const fs::path& dir) {
  RunSummary r;
  r.dir = dir;
  read_config(r);
  if (auto m = checkpoint_model(dir / "checkpoint.safetensors")) r.model = *m;
  MetricsLog log(dir);
  log.load(std::numeric_limits<std::int64_t>::max());
  r.rows = log.rows();
  if (std::ifstream in(dir / "iw.json"); in) {
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (!j.is_discarded() && j.contains("nll")) r.iw = j;
  }
  return r;
}

// The settings whose values are not the same in every run (a key a run lacks counts as differing).
std::vector<std::string> differing(const std::vector<RunSummary>& runs) {
  std::map<std::string, int> seen;
  for (const auto& r : runs)
    for (const auto& [key, v] : r.settings) ++seen[key];
  std::vector<std::string> keys;
  for (const auto& [key, count] : seen) {
    bool same = count == static_cast<int>(runs.size());
    for (const auto& r : runs)
      same = same && r.settings.at(key) == runs.front().settings.at(key);
    if (!same) keys.push_back(key);
  }
  return keys;
}

std::string loss_cell(const EpochReport* last, bool test) {
  if (!last || (test && !last->has_test)) return "–";
  return format_loss(test ? last->test : last->train);
}

std::string iw_cell(const RunSummary& r) {
  if (!r.iw) return "–";
  const auto& j = *r.iw;
  return fmt::format("{:.2f} ± {:.2f} (K={})", j.value("nll", 0.0), j.value("std_error", 0.0),
                     j.value("samples", 0));
}

std::string table(const std::vector<RunSummary>& runs) {
  const auto keys = differing(runs);
  std::vector<std::string> head{"run", "model"};
  head.insert(head.end(), keys.begin(), keys.end());
  for (const char* h : {"epochs", "train loss", "test loss", "-log p(x)", "time"}) head.emplace_back(h);
  std::string out = fmt::format("| {} |\n|", fmt::join(head, " | "));
  for (std::size_t i = 0; i < head.size(); ++i) out += "---|";
  out += "\n";
  for (const auto& r : runs) {
    const EpochReport* last = r.rows.empty() ? nullptr : &r.rows.back();
    double seconds = 0;
    for (const auto& row : r.rows) seconds += std::isfinite(row.seconds) ? row.seconds : 0;
    std::vector<std::string> cells{r.dir.string(), r.model};
    for (const auto& k : keys) cells.push_back(r.settings.count(k) ? r.settings.at(k) : "–");
    cells.push_back(last ? std::to_string(last->epoch) : "0");
    cells.push_back(loss_cell(last, false));
    cells.push_back(loss_cell(last, true));
    cells.push_back(iw_cell(r));
    cells.push_back(fmt::format("{:.1f} s", seconds));
    out += fmt::format("| {} |\n", fmt::join(cells, " | "));
  }
  return out;
}

Image curves(const std::vector<RunSummary>& runs) {
  LinePlot plot{"test loss per epoch", "epoch", "test loss per image", {}};
  for (std::size_t i = 0; i < runs.size(); ++i) {
    Series s{runs[i].dir.string(), {}, {}, palette_color(static_cast<int>(i))};
    for (const auto& row : runs[i].rows) {
      if (!row.has_test) continue;
      s.x.push_back(static_cast<double>(row.epoch));
      s.y.push_back(row.test.loss);
    }
    plot.series.push_back(s);
  }
  return line_plot(plot);
}

}  // namespace

int compare_command(const CliConfig& config) {
  std::vector<RunSummary> runs;
  for (const auto& given : config.runs) {
    fs::path dir = given.lexically_normal();
    if (dir.filename().empty()) dir = dir.parent_path();  // runs/a/ is runs/a
    try {
      runs.push_back(read_run(dir));
    } catch (const DataError& e) {
      throw UsageError(fmt::format("compare: {}", e.what()));
    }
  }
  fmt::print("{}", table(runs));
  fs::path figure = (config.out.empty() ? fs::path(".") : config.out) / "compare.png";
  write_png(figure, curves(runs));
  fmt::print("\nwrote {}: the test loss of each run per epoch\n", figure.string());
  return 0;
}

}  // namespace graphrun::cli
