// Restoring a trainer from a checkpoint, refusing any file that does not match the model.
#include <graphrun/train/idx.hpp>
#include <graphrun/train/safetensors.hpp>
#include <graphrun/train/trainer.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>
#include <cstdlib>
#include <set>

namespace graphrun {
namespace {

std::int64_t meta_int(const SafetensorsFile& f, const std::string& key, const std::string& file) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end())
    throw DataError(fmt::format("'{}': checkpoint metadata has no '{}'", file, key));
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  if (ec != std::errc() || end != it->second.data() + it->second.size() || v < 0)
    throw DataError(fmt::format("'{}': checkpoint metadata '{}' = '{}' is not a count", file, key, it->second));
  return v;
}

double meta_double(const SafetensorsFile& f, const std::string& key) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end()) return 0;
  return std::strtod(it->second.c_str(), nullptr);
}

void check_tensor(const std::string& file, const std::string& name, const Tensor* found,
                  const Shape& shape) {
  if (!found) throw DataError(fmt::format("'{}': checkpoint has no tensor '{}' that the model needs", file, name));
  if (found->dtype() != DType::f32)
    throw DataError(fmt::format("'{}': tensor '{}' is {}, the model needs float32", file, name,
                                dtype_name(found->dtype())));
  if (found->shape() != shape)
    throw DataError(fmt::format("'{}': tensor '{}' has shape {}, the model needs {}", file, name,
                                to_string(found->shape()), to_string(shape)));
}

}  // namespace

std::map<std::string, std::string> Trainer::load(const std::filesystem::path& path) {
  return load(load_safetensors(path), path.string());
}

std::map<std::string, std::string> Trainer::load(const SafetensorsFile& f, const std::string& file) {
  auto find = [&](const std::string& name) -> const Tensor* {
    auto it = f.tensors.find(name);
    return it == f.tensors.end() ? nullptr : &it->second;
  };
  std::set<std::string> expected;
  for (const auto& [name, t] : params_) {
    check_tensor(file, name, find(name), t.shape());
    expected.insert(name);
  }
  ParameterStore state;
  std::int64_t opt_steps = meta_int(f, "optimizer_steps", file);
  auto kind = f.metadata.count("optimizer") ? f.metadata.at("optimizer") : "";
  if (kind != config_.optimizer.kind)
    throw DataError(fmt::format("'{}': checkpoint was trained with optimizer '{}', this run uses '{}'",
                                file, kind, config_.optimizer.kind));
  if (opt_steps > 0) {
    std::vector<std::string> slots = kind == "adam" ? std::vector<std::string>{"adam.m/", "adam.v/"}
                                                    : std::vector<std::string>{"sgd.velocity/"};
    for (const auto& name : grad_names_)  // buffers have no optimizer state
      for (const auto& slot : slots) {
        check_tensor(file, slot + name, find(slot + name), params_.at(name).shape());
        state.emplace(slot + name, *find(slot + name));
        expected.insert(slot + name);
      }
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, t] : f.tensors)
    if (!expected.count(name)) unexpected.push_back(name);
  if (!unexpected.empty())
    throw DataError(fmt::format("'{}': checkpoint holds tensors this model does not have: {}", file,
                                fmt::join(unexpected, ", ")));
  for (auto& [name, t] : params_) {
    const Tensor& src = *find(name);
    std::copy_n(src.data<float>(), t.numel(), t.data<float>());  // in place: programs keep their bindings
  }
  optimizer_.load_state(state, opt_steps);
  epoch_ = meta_int(f, "epoch", file);
  step_ = meta_int(f, "step", file);
  batch_in_epoch_ = meta_int(f, "batch_in_epoch", file);
  partial_samples_ = meta_int(f, "partial_samples", file);
  partial_loss_ = meta_double(f, "partial_loss");
  partial_terms_.clear();
  for (const auto& [key, value] : f.metadata)
    if (key.rfind("partial_term/", 0) == 0) partial_terms_[key.substr(13)] = std::strtod(value.c_str(), nullptr);
  return f.metadata;
}

}  // namespace graphrun
