#include <graphrun/models/autoencoders.hpp>
#include <graphrun/ops/ops.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>

namespace graphrun {
namespace {

struct Layer {
  Value w, b;
};

Layer make_layer(Graph& g, std::int64_t in, std::int64_t out, const std::string& name, bool relu_next) {
  // He init keeps ReLU layers' variance; Xavier suits tanh, sigmoid and linear outputs.
  Init init = relu_next ? Init::he_uniform() : Init::xavier_uniform();
  return {g.parameter(name + ".w", {in, out}, init), g.parameter(name + ".b", {out}, Init::zeros())};
}

Value apply_layer(Value x, const Layer& l) { return matmul(x, l.w) + l.b; }

// A stack of layers: widths[0] -> widths[1] -> ... with `act` between them. The last layer's
// output is returned raw (the caller decides its activation).
struct Mlp {
  std::vector<Layer> layers;
  Activation act = Activation::relu;

  Mlp(Graph& g, const std::vector<std::int64_t>& widths, const std::string& prefix, Activation a,
      bool last_relu)
      : act(a) {
    for (std::size_t i = 0; i + 1 < widths.size(); ++i) {
      bool last = i + 2 == widths.size();
      bool relu_next = last ? last_relu : a == Activation::relu;
      layers.push_back(make_layer(g, widths[i], widths[i + 1], fmt::format("{}{}", prefix, i + 1), relu_next));
    }
  }
  Value operator()(Value x) const {
    for (std::size_t i = 0; i < layers.size(); ++i) {
      x = apply_layer(x, layers[i]);
      if (i + 1 < layers.size()) x = apply_activation(x, act);
    }
    return x;
  }
};

std::vector<std::int64_t> widths(std::int64_t first, const std::vector<std::int64_t>& hidden,
                                 std::int64_t last) {
  std::vector<std::int64_t> w{first};
  w.insert(w.end(), hidden.begin(), hidden.end());
  w.push_back(last);
  return w;
}

std::vector<std::int64_t> reversed(std::vector<std::int64_t> v) { return {v.rbegin(), v.rend()}; }

// The deterministic autoencoder core shared by ae, dae and sae: encoder on `encoder_input`, the
// loss against the clean x.
Model autoencoder(const std::string& name, const AeConfig& c, std::int64_t batch,
                  std::int64_t features, bool corrupt, const DaeConfig* dae) {
  Model m;
  m.name = name;
  m.graph = std::make_unique<Graph>();
  Graph& g = *m.graph;
  m.x = g.input("x", {batch, features});
  Value in = m.x;
  if (corrupt) {
    // Active in training only: eval and inference see the clean input.
    if (dae->noise == Noise::mask) in = in * bernoulli_mask_like(in, 1.0 - dae->noise_level, true);
    else in = in + random_normal_like(in, true) * dae->noise_level;
    m.corrupted = in;
  }
  Mlp encoder(g, widths(features, c.hidden, c.code), "enc", c.activation,
              !c.linear_code && c.code_activation == Activation::relu);
  Mlp decoder(g, widths(c.code, reversed(c.hidden), features), "dec", c.activation, false);
  auto code_of = [&](Value v) {
    Value h = encoder(v);
    return c.linear_code ? h : apply_activation(h, c.code_activation);
  };
  m.code = code_of(in);
  Value out = decoder(m.code);
  Value recon = reconstruction_loss(out, m.x, c.likelihood);
  m.per_sample_loss = recon;
  m.terms["recon"] = mean(recon);
  m.reconstruction = decoder_mean(out, c.likelihood);
  m.z = g.input("z", {batch, c.code});
  m.decoded = decoder_mean(decoder(m.z), c.likelihood);
  m.loss = mean(m.per_sample_loss);
  if (corrupt) {
    // The clean code for inference (encode, interpolate) while training sees the corrupted one.
    m.code = code_of(m.x);
    m.reconstruction = decoder_mean(decoder(m.code), c.likelihood);
  }
  return m;
}

// log p(x, z) - log q(z | x) per sample for z = mu + e^(logvar / 2) eps:
//   log N(z; 0, I) - log N(z; mu, e^logvar) = 0.5 sum(logvar + eps^2 - z^2)
// (the -0.5 ln 2 pi of each dimension cancels between the two densities), plus log p(x | z) =
// -recon for the Bernoulli decoder. The Gaussian decoder's squared error is -log N(x; mean, I / 2)
// less its constant D / 2 ln pi, put back so that the sum is a density. Built after every other
// node, from values the loss already computes: it adds no random draw and changes no training bit.
Value vae_log_weight(Value recon, Value z, Value eps, Value logvar, Likelihood likelihood,
                     std::int64_t features) {
  Value w = sum(logvar + square(eps) - square(z), {1}) * 0.5 - recon;
  if (likelihood == Likelihood::gaussian) w = w - 0.5 * static_cast<double>(features) * std::log(std::numbers::pi);
  return w;
}

}  // namespace

Value apply_activation(Value x, Activation a) {
  switch (a) {
    case Activation::relu: return relu(x);
    case Activation::tanh: return tanh(x);
    case Activation::sigmoid: return sigmoid(x);
  }
  return x;
}

Value dense(Value x, std::int64_t out, const std::string& name, bool relu_next) {
  if (x.shape().size() != 2) throw ShapeError(fmt::format("dense '{}' needs [B, in], got {}", name, to_string(x.shape())));
  Graph& g = x.graph();
  Init init = relu_next ? Init::he_uniform() : Init::xavier_uniform();
  return matmul(x, g.shared_parameter(name + ".w", {x.shape()[1], out}, init)) +
         g.shared_parameter(name + ".b", {out}, Init::zeros());
}

Value reconstruction_loss(Value out, Value x, Likelihood likelihood) {
  Value per_element = likelihood == Likelihood::bernoulli ? bce_with_logits(out, x) : mse(out, x);
  return sum(per_element, {1});
}

Value decoder_mean(Value out, Likelihood likelihood) {
  return likelihood == Likelihood::bernoulli ? sigmoid(out) : out;
}

Model build_ae(const AeConfig& c, std::int64_t batch, std::int64_t features) {
  return autoencoder("ae", c, batch, features, false, nullptr);
}

Model build_dae(const DaeConfig& c, std::int64_t batch, std::int64_t features) {
  if (c.noise_level < 0 || (c.noise == Noise::mask && c.noise_level >= 1))
    throw ModelOptionError(fmt::format("noise_level {} is out of range", c.noise_level));
  return autoencoder("dae", c.ae, batch, features, true, &c);
}

Model build_sae(const SaeConfig& c, std::int64_t batch, std::int64_t features) {
  AeConfig ae = c.ae;
  if (c.sparsity == Sparsity::kl) {
    ae.linear_code = false;  // the KL penalty needs activations in (0, 1)
    ae.code_activation = Activation::sigmoid;
  }
  Model m = autoencoder("sae", ae, batch, features, false, nullptr);
  Value penalty = c.sparsity == Sparsity::kl ? kl_sparsity(m.code, c.rho) : l1_activity(m.code);
  penalty = penalty * c.weight;
  m.terms["sparsity"] = penalty;
  // The penalty is a batch statistic; each sample carries an equal share of it.
  m.per_sample_loss = m.per_sample_loss + penalty;
  m.loss = mean(m.per_sample_loss);
  return m;
}

Model build_vae(const VaeConfig& c, std::int64_t batch, std::int64_t features) {
  Model m;
  m.name = "vae";
  m.has_prior = true;
  m.graph = std::make_unique<Graph>();
  Graph& g = *m.graph;
  m.x = g.input("x", {batch, features});
  Mlp trunk(g, widths(features, {c.hidden.begin(), c.hidden.end() - 1}, c.hidden.back()), "enc",
            c.activation, c.activation == Activation::relu);
  Value h = apply_activation(trunk(m.x), c.activation);
  Layer mu_head = make_layer(g, c.hidden.back(), c.latent, "mu", false);
  Layer logvar_head = make_layer(g, c.hidden.back(), c.latent, "logvar", false);
  Value mu = apply_layer(h, mu_head);
  Value logvar = apply_layer(h, logvar_head);
  // Sampled in evaluation too: the test loss is a one-sample estimate of the negative ELBO.
  Value eps = random_normal_like(mu, false);
  Value z = mu + exp(logvar * 0.5) * eps;
  Mlp decoder(g, widths(c.latent, reversed(c.hidden), features), "dec", c.activation, false);
  Value out = decoder(z);
  Value recon = reconstruction_loss(out, m.x, c.likelihood);
  Value kl = sum(kl_normal(mu, logvar), {1});
  Value beta;
  if (c.kl_warmup > 0) {
    beta = g.input("beta", {});
    double target = c.beta;
    std::int64_t warmup = c.kl_warmup;
    m.schedules.push_back({"beta", [target, warmup](std::int64_t step) {
                             return target * std::min(1.0, static_cast<double>(step) / static_cast<double>(warmup));
                           }});
  } else {
    beta = g.scalar(c.beta);
  }
  m.per_sample_loss = recon + kl * beta;
  m.loss = mean(m.per_sample_loss);
  m.terms["recon"] = mean(recon);
  m.terms["kl"] = mean(kl);
  m.code = mu;
  m.reconstruction = decoder_mean(decoder(mu), c.likelihood);  // the mean code, as eval promises
  m.z = g.input("z", {batch, c.latent});
  m.decoded = decoder_mean(decoder(m.z), c.likelihood);
  m.log_weight = vae_log_weight(recon, z, eps, logvar, c.likelihood, features);
  return m;
}

}  // namespace graphrun
