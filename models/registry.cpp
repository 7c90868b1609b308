// The model registry and the text options model files are made of.
#include <graphrun/models/autoencoders.hpp>
#include <graphrun/models/model.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>
#include <cmath>
#include <mutex>

namespace graphrun {
namespace {

std::map<std::string, ModelBuilder>& registry() {
  static std::map<std::string, ModelBuilder> builders;
  return builders;
}
std::mutex registry_mutex;

const std::string& text(const ModelOptions& o, const std::string& key) {
  auto it = o.find(key);
  if (it == o.end()) throw ModelOptionError(fmt::format("missing model option '{}'", key));
  return it->second;
}

[[noreturn]] void bad(const std::string& key, const std::string& value, const char* want) {
  throw ModelOptionError(fmt::format("model option '{}': '{}' is not {}", key, value, want));
}

Activation activation_of(const ModelOptions& o, const std::string& key) {
  auto s = option_choice(o, key, {"relu", "tanh", "sigmoid"});
  return s == "relu" ? Activation::relu : s == "tanh" ? Activation::tanh : Activation::sigmoid;
}

Likelihood likelihood_of(const ModelOptions& o) {
  return option_choice(o, "likelihood", {"bernoulli", "gaussian"}) == "bernoulli" ? Likelihood::bernoulli
                                                                                   : Likelihood::gaussian;
}

AeConfig ae_config(const ModelOptions& o) {
  AeConfig c;
  c.hidden = option_sizes(o, "hidden");
  c.code = option_int(o, "code");
  c.activation = activation_of(o, "activation");
  c.likelihood = likelihood_of(o);
  if (c.code < 1) throw ModelOptionError("model option 'code' must be at least 1");
  return c;
}

std::vector<ModelKey> ae_keys() {
  return {{"hidden", "400", "encoder hidden widths, comma-separated; the decoder mirrors them"},
          {"code", "32", "code size (a linear bottleneck)"},
          {"activation", "relu", "hidden activation: relu, tanh or sigmoid"},
          {"likelihood", "bernoulli", "bernoulli (BCE with logits, pixels in [0,1]) or gaussian (squared error)"}};
}

void register_builtins() {
  auto ae = ae_keys();
  register_model({"ae", "undercomplete MLP autoencoder", ae, [](const ModelOptions& o, std::int64_t b, std::int64_t f) {
                    return build_ae(ae_config(o), b, f);
                  }});
  auto dae = ae;
  dae.push_back({"noise", "mask", "corruption in training: mask (drop inputs to 0) or gaussian (additive)"});
  dae.push_back({"noise_level", "0.25", "fraction of inputs dropped (mask) or noise stddev (gaussian)"});
  register_model({"dae", "denoising autoencoder", dae, [](const ModelOptions& o, std::int64_t b, std::int64_t f) {
                    DaeConfig c;
                    c.ae = ae_config(o);
                    c.noise = option_choice(o, "noise", {"mask", "gaussian"}) == "mask" ? Noise::mask : Noise::gaussian;
                    c.noise_level = option_double(o, "noise_level");
                    return build_dae(c, b, f);
                  }});
  auto sae = ae;
  sae.push_back({"sparsity", "kl", "penalty on the code: kl (sigmoid code, KL to rate rho) or l1 (activity)"});
  sae.push_back({"rho", "0.05", "KL target mean activation of each code unit"});
  sae.push_back({"sparsity_weight", "auto", "penalty weight: beta for kl (auto = 1), lambda for l1 (auto = 0.001)"});
  register_model({"sae", "sparse autoencoder", sae, [](const ModelOptions& o, std::int64_t b, std::int64_t f) {
                    SaeConfig c;
                    c.ae = ae_config(o);
                    c.sparsity = option_choice(o, "sparsity", {"kl", "l1"}) == "kl" ? Sparsity::kl : Sparsity::l1;
                    c.rho = option_double(o, "rho");
                    if (!(c.rho > 0 && c.rho < 1)) throw ModelOptionError("model option 'rho' must be in (0, 1)");
                    c.weight = text(o, "sparsity_weight") == "auto" ? (c.sparsity == Sparsity::kl ? 1.0 : 1e-3)
                                                                     : option_double(o, "sparsity_weight");
                    return build_sae(c, b, f);
                  }});
  register_model({"vae", "variational autoencoder (Kingma & Welling)",
                  {{"hidden", "400", "encoder hidden widths, comma-separated; the decoder mirrors them"},
                   {"latent", "20", "latent dimensions"},
                   {"activation", "relu", "hidden activation: relu, tanh or sigmoid"},
                   {"likelihood", "bernoulli", "bernoulli (BCE with logits) or gaussian (squared error)"},
                   {"beta", "1", "weight of the KL term (beta-VAE when != 1)"},
                   {"kl_warmup", "0", "steps over which the KL weight rises linearly from 0 to beta"}},
                  [](const ModelOptions& o, std::int64_t b, std::int64_t f) {
                    VaeConfig c;
                    c.hidden = option_sizes(o, "hidden");
                    c.latent = option_int(o, "latent");
                    c.activation = activation_of(o, "activation");
                    c.likelihood = likelihood_of(o);
                    c.beta = option_double(o, "beta");
                    c.kl_warmup = option_int(o, "kl_warmup");
                    if (c.latent < 1) throw ModelOptionError("model option 'latent' must be at least 1");
                    if (c.hidden.empty()) throw ModelOptionError("model option 'hidden' needs at least one width");
                    return build_vae(c, b, f);
                  }});
}

const struct Builtins {
  Builtins() { register_builtins(); }
} builtins;

}  // namespace

void register_model(ModelBuilder builder) {
  std::lock_guard lock(registry_mutex);
  if (builder.name.empty() || !builder.build)
    throw std::invalid_argument("register_model: a builder needs a name and a build function");
  if (registry().count(builder.name))
    throw std::invalid_argument(fmt::format("register_model: '{}' is already registered", builder.name));
  auto name = builder.name;
  registry().emplace(name, std::move(builder));
}

const ModelBuilder& find_model(const std::string& name) {
  std::lock_guard lock(registry_mutex);
  auto it = registry().find(name);
  if (it != registry().end()) return it->second;
  std::vector<std::string> names;
  for (const auto& [k, v] : registry()) names.push_back(k);
  throw std::out_of_range(fmt::format("no model builder named '{}'; registered: {}", name, fmt::join(names, ", ")));
}

std::vector<const ModelBuilder*> all_models() {
  std::lock_guard lock(registry_mutex);
  std::vector<const ModelBuilder*> out;
  for (const auto& [k, v] : registry()) out.push_back(&v);
  return out;
}

Model build_model(const std::string& name, const ModelOptions& options, std::int64_t batch,
                  std::int64_t features) {
  Model m = build_model(find_model(name), options, batch, features);
  m.name = name;
  return m;
}

Model build_model(const ModelBuilder& b, const ModelOptions& options, std::int64_t batch,
                  std::int64_t features) {
  const std::string& name = b.name;
  ModelOptions full;
  for (const auto& key : b.keys) full[key.name] = key.default_value;
  for (const auto& [k, v] : options) {
    if (!full.count(k)) {
      std::vector<std::string> keys;
      for (const auto& key : b.keys) keys.push_back(key.name);
      throw ModelOptionError(fmt::format("unknown model option '{}' for '{}'; valid keys: {}", k, name,
                                         fmt::join(keys, ", ")));
    }
    full[k] = v;
  }
  return b.build(full, batch, features);
}

std::int64_t option_int(const ModelOptions& o, const std::string& key) {
  const auto& s = text(o, key);
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) bad(key, s, "an integer");
  return v;
}

double option_double(const ModelOptions& o, const std::string& key) {
  const auto& s = text(o, key);
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) bad(key, s, "a number");
  return v;
}

std::vector<std::int64_t> option_sizes(const ModelOptions& o, const std::string& key) {
  const auto& s = text(o, key);
  std::vector<std::int64_t> out;
  std::size_t at = 0;
  while (at <= s.size()) {
    auto comma = s.find(',', at);
    auto part = s.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    while (!part.empty() && part.front() == ' ') part.erase(part.begin());
    while (!part.empty() && part.back() == ' ') part.pop_back();
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || ec != std::errc() || end != part.data() + part.size() || v < 1 || v > 1'000'000)
      bad(key, s, "a comma-separated list of positive widths");
    out.push_back(v);
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return out;
}

std::string option_choice(const ModelOptions& o, const std::string& key,
                          const std::vector<std::string>& choices) {
  const auto& s = text(o, key);
  for (const auto& c : choices)
    if (s == c) return s;
  throw ModelOptionError(fmt::format("model option '{}': '{}' is not one of {}", key, s, fmt::join(choices, ", ")));
}

}  // namespace graphrun
