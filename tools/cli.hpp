// The command line of graphrun: `graphrun [VERB] MODEL [options]`, parsed into a plain struct.
#pragma once

#include <graphrun/tools/model_file.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace graphrun::cli {

enum class Verb {
  train, eval, sample, reconstruct, encode, interpolate, anomaly, graph, info, gradcheck, profile,
  compare
};

enum class Action { run, help, version, list, list_ops, list_keys };

struct CliConfig {
  Action action = Action::run;
  Verb verb = Verb::train;
  bool verb_given = false;  // named on the command line, not the default
  std::string model;  // MODEL as typed: a model file, or a builder name meaning model.<name>
  std::vector<Override> overrides;
  std::filesystem::path out;         // run folder; empty: runs/<model file stem>
  std::filesystem::path checkpoint;  // empty: <out>/checkpoint.safetensors
  std::filesystem::path trace;       // profile: where to write the timeline; empty: nowhere
  bool resume = false;
  bool markdown = false;
  std::int64_t count = 0;  // images / steps / top-k for the verb; 0: the verb's default
  std::optional<std::int64_t> decode_class;  // sample, interpolate: --class N (conditional models)
  // anomaly: the classes that are normal; the others are the anomalies AUROC and AP measure.
  std::vector<std::int64_t> normal_classes;
  std::int64_t iw = 0;  // eval: importance samples per image for -log p(x); 0: no estimate
  std::vector<std::filesystem::path> runs;  // compare: the run folders
  std::vector<std::string> args;  // argv[1..] as given, to print the command again
};

// Throws UsageError for anything it cannot make sense of.
CliConfig parse_args(int argc, char** argv);

std::string help_text();
std::string verb_name(Verb verb);

}  // namespace graphrun::cli
