#include <graphrun/graph/parameters.hpp>
#include <graphrun/graph/random.hpp>

#include <cmath>
#include <string_view>

namespace graphrun {
namespace {

std::uint32_t name_hash(std::string_view name) {
  std::uint32_t h = 2166136261u;  // FNV-1a
  for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  return h;
}

// Dense weights are [in, out] (x @ w). Convolution weights are [F, C, kh, kw] (or [C, F, kh, kw]
// transposed): each output sums C * kh * kw inputs, so the kernel area counts in both fans, as
// PyTorch and Keras count it; taking shape[0] alone made He bounds of conv layers 3x too wide.
double draw(const Init& init, const Shape& shape, const RandomKey& key, std::uint64_t i) {
  double fan_in = shape.empty() ? 1.0 : static_cast<double>(shape.front());
  double fan_out = shape.size() < 2 ? fan_in : static_cast<double>(shape[1]);
  if (shape.size() > 2) {
    double area = 1.0;
    for (std::size_t d = 2; d < shape.size(); ++d) area *= static_cast<double>(shape[d]);
    fan_in = static_cast<double>(shape[1]) * area;
    fan_out = static_cast<double>(shape[0]) * area;
  }
  auto uniform = [&](double a) { return (2.0 * random_uniform(key, i) - 1.0) * a; };
  switch (init.kind) {
    case Init::Kind::zeros: return 0.0;
    case Init::Kind::constant: return init.value;
    case Init::Kind::normal: return init.value * random_normal(key, i);
    case Init::Kind::uniform: return uniform(init.value);
    case Init::Kind::xavier_uniform: return uniform(std::sqrt(6.0 / (fan_in + fan_out)));
    case Init::Kind::xavier_normal: return std::sqrt(2.0 / (fan_in + fan_out)) * random_normal(key, i);
    case Init::Kind::he_uniform: return uniform(std::sqrt(6.0 / fan_in));
    case Init::Kind::he_normal: return std::sqrt(2.0 / fan_in) * random_normal(key, i);
  }
  return 0.0;
}

}  // namespace

ParameterStore init_parameters(Graph& graph, std::uint64_t seed, DType dtype) {
  ParameterStore store;
  std::vector<Value> held = graph.parameters();
  for (const auto& b : graph.buffers()) held.push_back(b);
  for (const auto& p : held) {
    const Node& node = p.node();
    Tensor t(DType::f64, node.shape);
    RandomKey key{seed, 0, name_hash(node.name)};
    auto values = t.values<double>();
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = draw(node.init, node.shape, key, i);
    store.emplace(node.name, dtype == DType::f64 ? t : t.to(DType::f32));
  }
  return store;
}

}  // namespace graphrun
