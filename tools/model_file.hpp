// Model files: Boost.Program_options config-file syntax (`key = value`, `# comment`,
// `[section]`), read into the effective settings of a run. The extension names the builder
// (model.vae -> "vae"); a file with any other extension (such as a run's config.ini) names it
// with a top-level `builder = NAME` line. A file with a [graph] section is a graph file
// (models/graph_syntax.hpp): the model is the graph it defines, its [model] keys are its own.
//
//   [model]  the builder's keys (ModelBuilder::keys), validated by build_model
//   [train]  epochs, batch, lr, optimizer, momentum, weight_decay, clip_norm, seed, threads,
//            sgemm, check_numerics
//   [data]   dataset, train, test, test_fraction, labels, classes, normalize, limit
//
// Command-line overrides are applied over the file. Every value remembers where it came from
// (file and line, or the option), so an error can point at it.
#pragma once

#include <graphrun/models/graph_syntax.hpp>
#include <graphrun/models/model.hpp>
#include <graphrun/ops/ops.hpp>
#include <graphrun/train/dataset.hpp>
#include <graphrun/train/trainer.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace graphrun::cli {

// Bad usage: an unknown option or key, a bad value, a missing file. The runner exits with 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One setting given on the command line: key is "section.key" ("train.epochs", "model.latent").
struct Override {
  std::string key;
  std::string value;
  std::string origin;  // the option as typed: "--epochs", "--model.latent"
};

// A key of the [train] or [data] section, or of [model] when listed for a builder.
struct SettingKey {
  std::string section;
  std::string name;
  std::string default_value;
  std::string help;
};

struct Settings {
  std::filesystem::path file;  // the model file read
  std::string model;           // builder name; "graph" for a graph file
  std::shared_ptr<const ModelBuilder> builder;  // the registry's, or the graph file's
  std::shared_ptr<const GraphSyntax> graph;     // a graph file's parsed text; null otherwise
  ModelOptions model_options;  // every key of the builder, defaults filled in
  TrainConfig train;
  int threads = 0;
  SgemmLibrary sgemm = SgemmLibrary::openblas;  // train.sgemm
  DataSpec data;           // [data] but limit; data.seed is train.seed
  std::int64_t limit = 0;  // first N train and test images; 0 = all
  // "section.key" -> where its value came from: "model.vae:12", "--epochs" or "default".
  std::map<std::string, std::string> origin;

  std::int64_t load_limit() const { return limit > 0 ? limit : -1; }
};

// The [train] and [data] keys, then the builder's [model] keys.
std::vector<SettingKey> setting_keys(const ModelBuilder& builder);

// Where model files are looked for after the current directory: the source tree's models/,
// <exe dir>/../models, <exe dir>/../share/graphrun/models, the installed data folder.
std::vector<std::filesystem::path> model_search_path();

// Resolves MODEL as given on the command line: an existing path, else a file of that name in the
// search path; a bare builder name ("vae") means "model.vae". Throws UsageError listing the
// places looked in.
std::filesystem::path find_model_file(const std::string& name);

// The graph files (*.graph) in the search path, as the names find_model_file takes
// ("vae.graph", "zoo/iwae.graph"), each with the folder it is in.
std::vector<std::pair<std::string, std::filesystem::path>> graph_files_on_search_path();

// Reads a model file and applies `overrides`. Throws UsageError naming the file, the line and
// the key for a syntax error, an unknown or repeated key (listing the valid ones) or a bad
// value; model values are checked by building the model once, small.
Settings load_settings(const std::filesystem::path& file, const std::vector<Override>& overrides);

// The settings as a model file that runs the same again (config.ini of a run).
std::string to_ini(const Settings& settings);

// "hidden=400 latent=20 ..." in key order, for messages and checkpoint metadata.
std::string options_text(const ModelOptions& options);

// Rethrows a ModelOptionError (or another std::invalid_argument of a builder) as a UsageError
// pointing at where the offending key was set.
[[noreturn]] void rethrow_model_error(const Settings& settings, const std::exception& e);

}  // namespace graphrun::cli
