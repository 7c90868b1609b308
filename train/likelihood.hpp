// The importance-sampled estimate of -log p(x) (Burda, Grosse & Salakhutdinov, "Importance
// Weighted Autoencoders", 2015): for K draws z_k ~ q(z | x),
//   log p(x) >= log (1/K) sum_k p(x, z_k) / q(z_k | x) = logsumexp_k(log_weight_k) - ln K,
// a bound that tightens to log p(x) as K grows, from the per-sample Model::log_weight.
#pragma once

#include <graphrun/graph/program.hpp>
#include <graphrun/models/model.hpp>
#include <graphrun/train/dataset.hpp>

#include <cstdint>
#include <functional>
#include <vector>

namespace graphrun {

struct IwOptions {
  std::int64_t samples = 1000;  // K draws per image
  // Images per run, and draws of each image in one run: a run sees `batch` * `tile` rows, image i
  // of the block in rows t * batch + i. More rows make better use of the GEMMs, up to a point.
  std::int64_t batch = 128;
  std::int64_t tile = 8;
  std::uint64_t seed = 1;
  std::int64_t limit = -1;  // the first N images of the split; -1: all
  // Called after each block of images with the images done and the total: a thousand draws an
  // image take minutes to hours on a large model, and a silent run looks hung.
  std::function<void(std::int64_t done, std::int64_t total)> progress;
};

struct IwEstimate {
  double nll = 0;        // mean over the images of -log p_K(x), in nats
  double std_error = 0;  // of that mean: the per-image estimates' standard deviation / sqrt(n)
  std::int64_t images = 0, samples = 0;
  double seconds = 0;
  std::vector<double> per_image;  // -log p_K(x) of each image
};

// Runs the model's log_weight in evaluation mode over the first images of `data`, K draws each,
// and sums in float64 with the log-sum-exp shift, streaming (no K-sized buffer per image). The
// draws come from the counter-based generator: run r of image block b (r = 0 .. ceil(K / tile) - 1)
// uses RunOptions{training = false, seed, step = b * runs + r}, so the figure repeats exactly for
// the same options (and changes with batch and tile, which lay the draws out). Binds the labels
// for a model with y, and each schedule at its final value. Throws std::invalid_argument when the
// model declares no log_weight or an option is below 1, LabelError when labels are missing.
IwEstimate importance_sampled_nll(Model& model, ParameterStore& params, const Split& data,
                                  const IwOptions& options);

}  // namespace graphrun
