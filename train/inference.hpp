// Using a trained model: encode, decode, reconstruct, sample from the prior, interpolate in the
// latent space and score anomalies. Everything runs in evaluation mode (no corruption; the
// code is the posterior mean for a VAE).
#pragma once

#include <graphrun/graph/program.hpp>
#include <graphrun/models/model.hpp>
#include <graphrun/train/dataset.hpp>

#include <cstdint>
#include <memory>
#include <vector>

namespace graphrun {

class Inference {
 public:
  // `params` must outlive this object. `batch` bounds memory per run.
  Inference(Model& model, ParameterStore& params, std::int64_t batch = 256, std::uint64_t seed = 1);

  std::int64_t features() const;
  std::int64_t code_size() const;

  // Codes (the VAE's mu) of the first `limit` images (all when -1): [N, K].
  Tensor encode(const Split& data, std::int64_t limit = -1);
  Tensor encode(const Tensor& x);  // x [N, D] in [0, 1]
  Tensor decode(const Tensor& z);  // z [N, K] -> decoder means [N, D]
  Tensor reconstruct(const Tensor& x);
  // Decodes n draws of z ~ N(0, I); throws std::logic_error if the model has no prior.
  Tensor sample(std::int64_t n, std::uint64_t seed);
  // Decodes `steps` codes evenly spaced from code(a) to code(b), ends included: [steps, D].
  Tensor interpolate(const Tensor& a, const Tensor& b, std::int64_t steps);
  // Per-sample loss in evaluation mode (reconstruction error; negative ELBO for a VAE).
  std::vector<double> anomaly_scores(const Split& data, std::int64_t limit = -1);

  // Rows of a split as [N, D] floats in [0, 1].
  static Tensor images(const Split& data, const std::vector<std::int64_t>& indices);

 private:
  // Runs `out` over the rows of `in` (bound to input `input`) in batches, concatenating rows.
  Tensor map_rows(ProgramCache& cache, Value input, const Tensor& in, std::int64_t out_cols);

  Model& model_;
  ParameterStore& params_;
  std::int64_t batch_;
  std::uint64_t seed_;
  std::unique_ptr<ProgramCache> encode_, decode_, reconstruct_, score_;
  std::map<std::string, Tensor> scalars_;
};

}  // namespace graphrun
