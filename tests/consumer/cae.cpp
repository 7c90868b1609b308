#include "cae.hpp"

#include <graphrun/models/autoencoders.hpp>
#include <graphrun/ops/ops.hpp>

#include <memory>

namespace cae {

using namespace graphrun;

Model build(const Config& c, std::int64_t batch, std::int64_t features) {
  Model m;
  m.graph = std::make_unique<Graph>();
  Graph& g = *m.graph;
  m.x = g.input("x", {batch, features});
  Value h = sigmoid(dense(m.x, c.code, "enc", false));  // parameters enc.w [D, K], enc.b [K]
  Value w = g.find("enc.w");
  // ||J||_F^2 per sample: sum_j (h_j (1 - h_j))^2 * sum_i W_ij^2      [B]
  Value contractive = sum(square(h * (1.0 - h)) * sum(square(w), {0}), {1});
  // The decoder is applied twice (to the code and to the z input), so it holds its own weights.
  Value v = g.parameter("dec.w", {c.code, features}, Init::xavier_uniform());
  Value b = g.parameter("dec.b", {features}, Init::zeros());
  auto decode = [&](Value code) { return matmul(code, v) + b; };
  Value logits = decode(h);
  Value recon = reconstruction_loss(logits, m.x, Likelihood::bernoulli);
  m.per_sample_loss = recon + contractive * c.lambda;
  m.loss = mean(m.per_sample_loss);
  m.terms["recon"] = mean(recon);
  m.terms["contractive"] = mean(contractive);
  m.code = h;
  m.reconstruction = decoder_mean(logits, Likelihood::bernoulli);
  m.z = g.input("z", {batch, c.code});
  m.decoded = decoder_mean(decode(m.z), Likelihood::bernoulli);
  return m;
}

ModelBuilder builder() {
  return {"cae", "contractive autoencoder: BCE + lambda ||dh/dx||_F^2 (sigmoid code)",
          {{"code", "32", "code size (sigmoid units)"},
           {"lambda", "0.1", "weight of the contractive penalty"}},
          [](const ModelOptions& o, std::int64_t batch, std::int64_t features) {
            Config c{option_int(o, "code"), option_double(o, "lambda")};
            if (c.code < 1) throw ModelOptionError("model option 'code' must be at least 1");
            if (c.lambda < 0) throw ModelOptionError("model option 'lambda' must be >= 0");
            return build(c, batch, features);
          }};
}

}  // namespace cae
