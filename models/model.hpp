// What a model builder returns: the graph and the named handles a trainer, an evaluator or a
// researcher's own loop needs. Builders are ordinary users of the graph API; nothing in the core
// knows a model by name.
#pragma once

#include <graphrun/graph/graph.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace graphrun {

// A scalar graph input the trainer sets before every step from the step number (e.g. a KL
// weight warmed up linearly).
struct ScalarSchedule {
  std::string input;
  std::function<double(std::int64_t step)> value;
};

// A buffer's new value after a training step, computed by that step from its batch (the trainer
// writes `value` into `buffer` once the step is applied; evaluation reads the buffer).
struct BufferUpdate {
  Value buffer;  // a Graph::buffer
  Value value;   // its shape
};

struct Model {
  std::string name;                  // the builder's name: "vae"
  std::unique_ptr<Graph> graph;
  Value x;                           // input batch [B, D], pixels in [0, 1]
  Value per_sample_loss;             // [B]: the loss of each sample (the anomaly score)
  Value loss;                        // scalar: mean of per_sample_loss, what training minimises
  std::map<std::string, Value> terms;  // scalar parts of the loss, per sample (e.g. recon, kl)
  Value code;                        // [B, K]: the code, or the posterior mean for a VAE
  Value reconstruction;              // [B, D]: the decoder's mean for x (probabilities or values)
  Value z;                           // input [B, K] feeding the decoder alone
  Value decoded;                     // [B, D]: decoder mean for z
  // Optional input: labels, bound from the data set's labels (and, for decoding, from a chosen
  // class). [B, C] one-hot over C classes, or [B] class indices as numbers (for gather_rows on an
  // embedding). Invalid when the model takes no labels.
  Value y;
  // Optional, [B]: log p(x, z) - log q(z | x) for the model's own draw of z, the importance weight
  // of that draw in log space; `eval --iw K` averages K of them (Burda et al. 2015). Invalid when
  // the model declares none.
  Value log_weight;
  bool has_prior = false;            // samples can be drawn by decoding z ~ N(0, I)
  std::vector<ScalarSchedule> schedules;
  std::vector<BufferUpdate> updates;  // run after every training step, in this order
  // Optional, x's shape: the input as a denoising model corrupts it in training (its train_only
  // noise), so that `reconstruct` can show clean, noisy and denoised rows. Invalid otherwise.
  Value corrupted;
};

// A buffer `name` shaped like `value`, filled with `init`, that follows value's exponential
// moving average over the training steps: after each, buffer += momentum * (value - buffer).
// Returns the buffer, the average so far, for evaluation to use instead of `value` (batch norm:
// if_training(batch_mean, moving_average(updates, "bn1.mean", batch_mean, 0.1))). Data parallel,
// value is each rank's part's and the ranks' new averages are averaged, weighted by rows.
Value moving_average(std::vector<BufferUpdate>& updates, std::string name, Value value,
                     double momentum, Init init = Init::zeros(),
                     std::source_location at = std::source_location::current());
// The update moving_average registers: average + momentum * (value - average), value held
// constant (an update is never differentiated).
Value moving_average_update(Value average, Value value, double momentum,
                            std::source_location at = std::source_location::current());

// Hyperparameters as text, from a model file or a command line: key -> value.
using ModelOptions = std::map<std::string, std::string>;

// A model option whose value is malformed or unknown; names the key.
class ModelOptionError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct ModelKey {
  std::string name;
  std::string default_value;
  std::string help;
};

// One sample's shape as the data give it: {C, H, W} for images, {D} for tables. The batch is
// always handed over as rows [B, product]; a graph file may view them as images
// (build_graph_model), a builder sees the product.
using SampleShape = std::vector<std::int64_t>;

struct ModelBuilder {
  std::string name;     // also the model file extension: model.vae -> "vae"
  std::string summary;
  std::vector<ModelKey> keys;
  // Builds for inputs of [batch, features]; options hold every key (defaults filled in).
  std::function<Model(const ModelOptions& options, std::int64_t batch, std::int64_t features)> build;
};

// The model registry. Built-in builders are registered when the library loads; research code
// calls register_model() for its own before handing over to the runner.
void register_model(ModelBuilder builder);
const ModelBuilder& find_model(const std::string& name);  // throws std::out_of_range listing names
std::vector<const ModelBuilder*> all_models();

// Builds `name` with `options` over the builder's defaults; rejects unknown keys by name.
Model build_model(const std::string& name, const ModelOptions& options, std::int64_t batch,
                  std::int64_t features);
// The same with a builder in hand (a graph file's, which is not in the registry).
Model build_model(const ModelBuilder& builder, const ModelOptions& options, std::int64_t batch,
                  std::int64_t features);

// Typed reads of option text, throwing ModelOptionError naming the key.
std::int64_t option_int(const ModelOptions& o, const std::string& key);
double option_double(const ModelOptions& o, const std::string& key);
std::vector<std::int64_t> option_sizes(const ModelOptions& o, const std::string& key);  // "400,200"
std::string option_choice(const ModelOptions& o, const std::string& key,
                          const std::vector<std::string>& choices);

}  // namespace graphrun
