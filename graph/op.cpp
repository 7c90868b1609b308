#include <graphrun/graph/op.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>

namespace graphrun {

const OpDef& OpRegistry::add(OpDef def) {
  auto fail = [&](const char* why) {
    throw std::invalid_argument(fmt::format("cannot register op '{}': {}", def.name, why));
  };
  if (def.name.empty()) fail("it has no name");
  if (ops_.count(def.name)) fail("the name is taken");
  if (!def.shape) fail("it has no shape rule");
  if (!def.f32 || !def.f64) fail("it needs float32 and float64 kernels");
  if (def.summary.empty()) fail("it has no summary (formula and shapes)");
  if (!def.f32_run != !def.f64_run) fail("it needs both float32 and float64 run kernels, or neither");
  if (def.f32_run && ((!def.elementwise && !def.broadcast) || def.random || def.arity < 1 || def.arity > 2))
    fail("only unary or binary elementwise or repeating ops without randomness may have run kernels");
  if (def.broadcast && !def.f32_run) fail("its broadcast rule needs run kernels");
  auto name = def.name;
  auto& slot = ops_[name];
  slot = std::make_unique<OpDef>(std::move(def));
  return *slot;
}

const OpDef* OpRegistry::find(std::string_view name) const {
  auto it = ops_.find(name);
  return it == ops_.end() ? nullptr : it->second.get();
}

const OpDef& OpRegistry::at(std::string_view name) const {
  if (auto* op = find(name)) return *op;
  std::vector<std::string> names;
  for (const auto& [k, v] : ops_) names.push_back(k);
  throw std::out_of_range(
      fmt::format("no op named '{}'; registered ops: {}", name, fmt::join(names, ", ")));
}

std::vector<const OpDef*> OpRegistry::all() const {
  std::vector<const OpDef*> out;
  for (const auto& [k, v] : ops_) out.push_back(v.get());
  return out;
}

OpRegistry& op_registry() {
  static OpRegistry registry;
  return registry;
}

}  // namespace graphrun
