// What the verbs share: the resolved run (settings, run folder, checkpoint), loading the data,
// building the model with errors that point at the model file, and checkpoints' identity.
#pragma once

#include <graphrun/tools/cli.hpp>
#include <graphrun/tools/model_file.hpp>
#include <graphrun/train/dataset.hpp>
#include <graphrun/train/trainer.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

namespace graphrun::cli {

struct Run {
  CliConfig cli;
  Settings settings;
  std::filesystem::path dir;         // the run folder
  std::filesystem::path checkpoint;  // the checkpoint to write (train) or read (other verbs)
};

// Finds and reads the model file, applies the overrides, resolves the run folder and sets the
// thread count.
Run open_run(const CliConfig& cli);

// The data set with the settings' limit.
Dataset load_data(const Settings& settings);
// One sample's shape ({1, 28, 28} for Fashion-MNIST), for verbs that build a model without data
// ({1, 28, 28} with a note when the data cannot be read).
SampleShape sample_shape(const Settings& settings);

// build_model with the settings' builder and options; a bad value becomes a UsageError pointing
// at the key.
std::unique_ptr<Model> build(const Settings& settings, const ModelOptions& options,
                             std::int64_t batch, const SampleShape& sample);

// What a checkpoint records about its run (Trainer::save's `extra`): model, model_options (JSON),
// batch, seed, dataset, limit, and the whole config.ini text.
std::map<std::string, std::string> checkpoint_identity(const Settings& settings);

// Throws UsageError when a graph file's [graph] is not the text the checkpoint was trained with.
void check_same_graph(const std::map<std::string, std::string>& meta, const Settings& settings,
                      const std::filesystem::path& file);

// --resume: throws UsageError naming each setting that differs from the checkpoint's (model,
// model options, batch, seed, data set, limit), since the run could not continue the same way.
void check_resumable(const std::map<std::string, std::string>& meta, const Settings& settings,
                     const std::filesystem::path& file);

// A trained model loaded from the run's checkpoint, built with the model options the checkpoint
// records (a note is printed when the model file now says otherwise).
struct Trained {
  Dataset data;
  std::unique_ptr<Model> model;
  std::unique_ptr<Trainer> trainer;
  std::map<std::string, std::string> meta;
};
Trained load_trained(const Run& run);

// The command that trains this run (for "train first: ..." and "resume with: ..." hints): the
// command line without its verb, plus `extra`.
std::string command_line(const Run& run, const std::string& extra);

}  // namespace graphrun::cli
