// Using a trained model: encode, decode, reconstruct, sample from the prior, interpolate in the
// latent space and score anomalies. Everything runs in evaluation mode (no corruption; the
// code is the posterior mean for a VAE).
#pragma once

#include <graphrun/graph/program.hpp>
#include <graphrun/models/model.hpp>
#include <graphrun/train/dataset.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace graphrun {

class Inference {
 public:
  // `params` must outlive this object. `batch` bounds memory per run. Its programs run in
  // `arena` when given (e.g. a Trainer's, between its steps), else in one of their own.
  Inference(Model& model, ParameterStore& params, std::int64_t batch = 256, std::uint64_t seed = 1,
            std::shared_ptr<SharedArena> arena = {});

  std::int64_t features() const;
  std::int64_t code_size() const;

  // Models with labels (Model::y): every call that runs the encoder or the decoder takes the y
  // rows to bind beside x or z (from labels() or classes()), and throws LabelError without them.
  // For other models these are empty tensors and may be left out.
  bool conditional() const { return model_.y.valid(); }
  // y for the images `indices` of `data` (fill_labels); empty for a model without labels.
  Tensor labels(const Split& data, const std::vector<std::int64_t>& indices) const;
  // y with one row per entry of `classes`; empty for a model without labels. Throws LabelError
  // for a class the model does not have.
  Tensor classes(const std::vector<std::int64_t>& classes) const;

  // Codes (the VAE's mu) of the first `limit` images (all when -1): [N, K].
  Tensor encode(const Split& data, std::int64_t limit = -1);
  Tensor encode(const Tensor& x, const Tensor& y = {});  // x [N, D] in [0, 1]
  Tensor decode(const Tensor& z, const Tensor& y = {});  // z [N, K] -> decoder means [N, D]
  Tensor reconstruct(const Tensor& x, const Tensor& y = {});
  // A denoising model (Model::corrupted valid) shows its training noise: x as the model corrupts
  // it in training, drawn with this object's seed, so the same images get the same noise.
  bool denoising() const { return model_.corrupted.valid(); }
  Tensor corrupt(const Tensor& x, const Tensor& y = {});
  // Decodes n draws of z ~ N(0, I); throws std::logic_error if the model has no prior. A
  // conditional model decodes class `cls`, or when none is given the classes in turn, in blocks
  // of n / classes draws.
  Tensor sample(std::int64_t n, std::uint64_t seed, std::optional<std::int64_t> cls = {});
  // Decodes `steps` codes evenly spaced from code(a) to code(b), ends included: [steps, D]. A
  // conditional model encodes a and b with `ends_y` (2 rows) and decodes the line with `line_y`
  // (1 row, used for every step).
  Tensor interpolate(const Tensor& a, const Tensor& b, std::int64_t steps, const Tensor& ends_y = {},
                     const Tensor& line_y = {});
  // Per-sample loss in evaluation mode (reconstruction error; negative ELBO for a VAE).
  std::vector<double> anomaly_scores(const Split& data, std::int64_t limit = -1);

  // Rows of a split as [N, D] floats in [0, 1].
  static Tensor images(const Split& data, const std::vector<std::int64_t>& indices);

 private:
  // Runs `out` over the rows of `in` (bound to input `input`) in batches, concatenating rows;
  // binds the matching rows of `y` for a conditional model.
  Tensor map_rows(ProgramCache& cache, Value input, const Tensor& in, std::int64_t out_cols,
                  const Tensor& y, bool training = false);

  Model& model_;
  ParameterStore& params_;
  std::int64_t batch_;
  std::uint64_t seed_;
  std::unique_ptr<ProgramCache> encode_, decode_, reconstruct_, score_, corrupt_;
  std::map<std::string, Tensor> scalars_;
};

}  // namespace graphrun
