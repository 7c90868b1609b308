#include <graphrun/graph/parallel.hpp>
#include <graphrun/models/graph_model.hpp>
#include <graphrun/tools/session.hpp>
#include <graphrun/train/idx.hpp>
#include <graphrun/train/safetensors.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>

namespace graphrun::cli {
namespace fs = std::filesystem;
namespace {

ModelOptions options_from_json(const std::string& text, const fs::path& file) {
  try {
    return nlohmann::json::parse(text).get<ModelOptions>();
  } catch (const nlohmann::json::exception&) {
    throw DataError(fmt::format("'{}': the checkpoint's model_options are not a JSON object of "
                                "strings",
                                file.string()));
  }
}

std::string meta_at(const std::map<std::string, std::string>& meta, const std::string& key) {
  auto it = meta.find(key);
  return it == meta.end() ? "(none)" : it->second;
}

// The [data] keys that decide which samples a run sees, as one line for the checkpoint.
std::string data_identity(const DataSpec& d) {
  return fmt::format("train={} test={} test_fraction={} labels={} classes={} normalize={}", d.train,
                     d.test, d.test_fraction, d.labels, fmt::join(d.classes, ","), to_string(d.normalize));
}

std::string quoted(const std::string& arg) {
  if (!arg.empty() && arg.find_first_of(" \t'\"$\\*?;&|<>()") == std::string::npos) return arg;
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

Run open_run(const CliConfig& cli) {
  Run run;
  run.cli = cli;
  run.settings = load_settings(find_model_file(cli.model), cli.overrides);
  // A run folder's config.ini (or the folder itself) works on that run: its checkpoint, its
  // files. Any other model file gets runs/<file name>, a config.ini of one's own too (a run's
  // folder has its checkpoint or metrics beside it; training would rewrite the file).
  const fs::path& file = run.settings.file;
  const fs::path folder = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  std::error_code ec;
  const bool run_folder = file.filename() == "config.ini" &&
                          (fs::exists(folder / "checkpoint.safetensors", ec) ||
                           fs::exists(folder / "metrics.jsonl", ec));
  run.dir = !cli.out.empty() ? cli.out
            : run_folder     ? folder
                             : fs::path("runs") / file.filename();
  run.checkpoint = cli.checkpoint.empty() ? run.dir / "checkpoint.safetensors" : cli.checkpoint;
  set_num_threads(run.settings.threads);
  set_sgemm_library(run.settings.sgemm);
  return run;
}

Dataset load_data(const Settings& s) {
  return load_dataset(s.data, s.load_limit(), s.load_limit());
}

SampleShape sample_shape(const Settings& s) {
  try {
    return load_dataset(s.data, 1, 1).train.shape;
  } catch (const std::exception& e) {
    fmt::print(stderr, "graphrun: note: assuming 28x28 grey images ({})\n", e.what());
    return {1, 28, 28};
  }
}

std::unique_ptr<Model> build(const Settings& s, const ModelOptions& options, std::int64_t batch,
                             const SampleShape& sample) {
  try {
    // A graph file may view the samples as images; a builder takes rows of their size.
    if (s.graph) {
      auto m = std::make_unique<Model>(build_graph_model(s.graph, options, batch, sample));
      // A graph model takes its file's name; a run's config.ini gives it the run folder's, which
      // by default is the model file's (runs/beta.graph), so figures, messages and the
      // checkpoint do not call it "config.ini".
      if (s.file.filename() == "config.ini" && !s.file.parent_path().filename().empty())
        m->name = s.file.parent_path().filename().string();
      return m;
    }
    std::int64_t features = 1;
    for (auto d : sample) features *= d;
    return std::make_unique<Model>(build_model(*s.builder, options, batch, features));
  } catch (const std::invalid_argument& e) {
    Settings with = s;
    with.model_options = options;
    rethrow_model_error(with, e);
  }
}

std::map<std::string, std::string> checkpoint_identity(const Settings& s) {
  std::map<std::string, std::string> id = {{"model", s.model},
                                           {"model_options", nlohmann::json(s.model_options).dump()},
                                           {"batch", std::to_string(s.train.batch)},
                                           {"seed", std::to_string(s.train.seed)},
                                           {"dataset", s.data.dataset},
                                           {"data", data_identity(s.data)},
                                           {"limit", std::to_string(s.limit)},
                                           {"config", to_ini(s)}};
  if (s.graph) {
    id["graph"] = s.graph->graph_text;
    id["model_file"] = s.file.filename().string();  // what `compare` calls the model; not checked
  }
  return id;
}

namespace {

// The [graph]'s code: each line without its comment and with runs of spaces as one, numbered as
// in the section, blank lines dropped. A comment or the spacing edited after training leaves
// the model the checkpoint holds as it was.
std::vector<std::pair<int, std::string>> code_lines(const std::string& text) {
  std::vector<std::pair<int, std::string>> out;
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::string code;
    bool quoted = false, space = false;
    for (char c : line) {
      if (c == '"') quoted = !quoted;
      if (!quoted && c == '#') break;
      if (!quoted && (c == ' ' || c == '\t' || c == '\r')) {
        space = !code.empty();
        continue;
      }
      if (space) code += ' ';
      space = false;
      code += c;
    }
    if (!code.empty()) out.emplace_back(number, std::move(code));
  }
  return out;
}

}  // namespace

void check_same_graph(const std::map<std::string, std::string>& meta, const Settings& s,
                      const fs::path& file) {
  if (!s.graph) return;
  auto it = meta.find("graph");
  const std::string saved = it == meta.end() ? "" : it->second;
  if (saved == s.graph->graph_text) return;
  const auto was = code_lines(saved), now = code_lines(s.graph->graph_text);
  std::size_t k = 0;
  while (k < was.size() && k < now.size() && was[k].second == now[k].second) ++k;
  if (k == was.size() && k == now.size()) return;
  auto at = [](const std::vector<std::pair<int, std::string>>& v, std::size_t k) {
    return k < v.size() ? fmt::format("line {} '{}'", v[k].first, v[k].second) : std::string("the end");
  };
  throw UsageError(fmt::format(
      "the [graph] of {} is not the one the checkpoint '{}' was trained with (comments and "
      "spacing aside, the first difference: now {} of the section, trained {}); restore it (the "
      "checkpoint's config.ini holds the trained graph: {}), or train afresh with another --out",
      s.file.string(), file.string(), at(now, k), at(was, k), (file.parent_path() / "config.ini").string()));
}

void check_resumable(const std::map<std::string, std::string>& meta, const Settings& s,
                     const fs::path& file) {
  std::vector<std::string> differ;
  if (meta_at(meta, "model") != s.model)
    throw UsageError(fmt::format("--resume: '{}' holds a '{}' model, {} describes a '{}'",
                                 file.string(), meta_at(meta, "model"), s.file.string(), s.model));
  auto saved = options_from_json(meta_at(meta, "model_options"), file);
  for (const auto& [key, value] : s.model_options) {
    auto it = saved.find(key);
    std::string was = it == saved.end() ? "(unset)" : it->second;
    if (was != value)
      differ.push_back(fmt::format("model.{}: checkpoint {}, now {} ({})", key, was, value,
                                   s.origin.at("model." + key)));
  }
  auto id = checkpoint_identity(s);
  if (meta.count("data") && meta.at("data") != id.at("data"))
    differ.push_back(fmt::format("[data]: checkpoint {}, now {}", meta.at("data"), id.at("data")));
  for (const char* key : {"batch", "seed", "dataset", "limit"}) {
    std::string section = std::string(key) == "dataset" || std::string(key) == "limit" ? "data" : "train";
    if (meta_at(meta, key) != id.at(key))
      differ.push_back(fmt::format("{}.{}: checkpoint {}, now {} ({})", section, key,
                                   meta_at(meta, key), id.at(key), s.origin.at(section + "." + key)));
  }
  check_same_graph(meta, s, file);
  if (!differ.empty())
    throw UsageError(fmt::format(
        "--resume: the checkpoint '{}' was made with other settings, so the run cannot continue "
        "the same way:\n  {}\nuse the same settings, or start afresh (without --resume, or "
        "with another --out)",
        file.string(), fmt::join(differ, "\n  ")));
}

Trained load_trained(const Run& run) {
  std::error_code ec;
  if (!fs::is_regular_file(run.checkpoint, ec))
    throw std::runtime_error(fmt::format("no checkpoint at '{}'; train first: {}",
                                         run.checkpoint.string(), command_line(run, "")));
  Trained t;
  t.meta = load_safetensors(run.checkpoint).metadata;
  const Settings& s = run.settings;
  if (meta_at(t.meta, "model") != s.model)
    throw UsageError(fmt::format("'{}' holds a '{}' model, {} describes a '{}'",
                                 run.checkpoint.string(), meta_at(t.meta, "model"),
                                 s.file.string(), s.model));
  check_same_graph(t.meta, s, run.checkpoint);
  ModelOptions options = options_from_json(meta_at(t.meta, "model_options"), run.checkpoint);
  if (options != s.model_options)
    fmt::print(stderr, "graphrun: note: using the checkpoint's model options ({}), not {} ({})\n",
               options_text(options), s.file.string(), options_text(s.model_options));
  t.data = load_data(s);
  // The checkpoint's normalization, not one fitted again: the model saw the data through it.
  if (auto it = t.meta.find("normalization"); it != t.meta.end()) {
    try {
      t.data.set_normalization(Normalization::from_json(it->second, t.data.train.features()));
    } catch (const std::invalid_argument& e) {
      throw DataError(fmt::format("'{}': {}", run.checkpoint.string(), e.what()));
    }
  }
  t.model = build(s, options, s.train.batch, t.data.train.shape);
  TrainConfig config = s.train;
  config.optimizer.kind = meta_at(t.meta, "optimizer");
  t.trainer = std::make_unique<Trainer>(*t.model, config);
  t.trainer->load(run.checkpoint);
  return t;
}

std::string command_line(const Run& run, const std::string& extra) {
  std::string out = "graphrun";
  bool verb_dropped = !run.cli.verb_given;
  for (const auto& arg : run.cli.args) {
    if (!verb_dropped && arg == verb_name(run.cli.verb)) {
      verb_dropped = true;  // the hints are for training, the default verb
      continue;
    }
    out += fmt::format(" {}", quoted(arg));
  }
  if (!extra.empty()) out += fmt::format(" {}", extra);
  return out;
}

}  // namespace graphrun::cli
