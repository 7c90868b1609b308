// A contractive autoencoder (Rifai et al., 2011), built outside graphrun with its public API only:
//
//   h = sigmoid(x W + b)                  encoder, code [B, K]
//   logits = h V + c                      decoder, [B, D]
//   loss = BCE(logits, x) + lambda ||dh/dx||_F^2, per sample
//
// For a sigmoid encoder the Jacobian is J_ji = h_j (1 - h_j) W_ij, so
//   ||J||_F^2 = sum_j (h_j (1 - h_j))^2 sum_i W_ij^2
// which is built here from ordinary graph ops; autodiff derives its gradient.
#pragma once

#include <graphrun/models/model.hpp>

#include <cstdint>

namespace cae {

struct Config {
  std::int64_t code = 32;
  double lambda = 0.1;
};

graphrun::Model build(const Config& config, std::int64_t batch, std::int64_t features);

// The builder for the registry: `model.cae` files with [model] code = ..., lambda = ...
graphrun::ModelBuilder builder();

}  // namespace cae
