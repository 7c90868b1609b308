// The autoencoder family as graph builders over the public API.
//
//   ae   undercomplete MLP autoencoder            x -> enc -> code -> dec -> x'
//   dae  denoising: corrupt(x) -> enc -> dec, the loss compares with the clean x
//   sae  sparse: ae + an activity penalty on the code (L1, or KL to a target rate rho)
//   vae  variational (Kingma & Welling): enc -> (mu, logvar), z = mu + e^(logvar/2) eps,
//        loss = recon + beta KL(q(z|x) || N(0, I)), per sample in nats
#pragma once

#include <graphrun/graph/graph.hpp>
#include <graphrun/models/model.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace graphrun {

enum class Activation { relu, tanh, sigmoid };
enum class Likelihood {
  bernoulli,  // logits; recon = sum over features of BCE with logits (pixels in [0, 1])
  gaussian,   // linear mean; recon = sum over features of squared error
};
enum class Noise { mask, gaussian };
enum class Sparsity { l1, kl };

struct AeConfig {
  std::vector<std::int64_t> hidden = {400};  // encoder widths; the decoder mirrors them
  std::int64_t code = 32;
  Activation activation = Activation::relu;
  Activation code_activation = Activation::relu;  // ignored when linear_code
  bool linear_code = true;
  Likelihood likelihood = Likelihood::bernoulli;
};

struct DaeConfig {
  AeConfig ae;
  Noise noise = Noise::mask;
  double noise_level = 0.25;  // fraction dropped to 0 (mask), or the stddev (gaussian)
};

struct SaeConfig {
  AeConfig ae;  // the code is sigmoid for the KL penalty
  Sparsity sparsity = Sparsity::kl;
  double rho = 0.05;     // KL: the target mean activation
  double weight = 1.0;   // beta for KL, lambda for L1
};

struct VaeConfig {
  std::vector<std::int64_t> hidden = {400};
  std::int64_t latent = 20;
  Activation activation = Activation::relu;
  Likelihood likelihood = Likelihood::bernoulli;
  double beta = 1.0;
  std::int64_t kl_warmup = 0;  // steps over which beta rises linearly from 0
};

Model build_ae(const AeConfig& config, std::int64_t batch, std::int64_t features);
Model build_dae(const DaeConfig& config, std::int64_t batch, std::int64_t features);
Model build_sae(const SaeConfig& config, std::int64_t batch, std::int64_t features);
Model build_vae(const VaeConfig& config, std::int64_t batch, std::int64_t features);

// Pieces the builders share, public so research variants can reuse them.
Value apply_activation(Value x, Activation a);
// x [B, in] -> x W + b [B, out], parameters "<name>.w" (Xavier or He by `relu_next`) and
// "<name>.b" (zeros). The same name is the same weights: a decoder written as a function of its
// input serves both the code and z (Graph::shared_parameter).
Value dense(Value x, std::int64_t out, const std::string& name, bool relu_next);
// Per-sample reconstruction loss [B] of decoder output `out` for clean x.
Value reconstruction_loss(Value out, Value x, Likelihood likelihood);
// The decoder mean from its raw output: sigmoid(logits) for Bernoulli, the output for Gaussian.
Value decoder_mean(Value out, Likelihood likelihood);

}  // namespace graphrun
