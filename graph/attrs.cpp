#include <graphrun/graph/attrs.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>

namespace graphrun {

Attrs& Attrs::set(std::string key, AttrValue value) {
  items_.insert_or_assign(std::move(key), std::move(value));
  return *this;
}

bool Attrs::has(std::string_view key) const { return items_.find(key) != items_.end(); }

const AttrValue& Attrs::at(std::string_view key) const {
  auto it = items_.find(key);
  if (it == items_.end())
    throw std::invalid_argument(fmt::format("missing attribute '{}' in {}", key, to_string()));
  return it->second;
}

std::int64_t Attrs::i(std::string_view key) const {
  if (auto* v = std::get_if<std::int64_t>(&at(key))) return *v;
  throw std::invalid_argument(fmt::format("attribute '{}' is not an integer", key));
}

double Attrs::f(std::string_view key) const {
  const auto& v = at(key);
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* n = std::get_if<std::int64_t>(&v)) return static_cast<double>(*n);
  throw std::invalid_argument(fmt::format("attribute '{}' is not a number", key));
}

const std::vector<std::int64_t>& Attrs::ints(std::string_view key) const {
  if (auto* v = std::get_if<std::vector<std::int64_t>>(&at(key))) return *v;
  throw std::invalid_argument(fmt::format("attribute '{}' is not a list of integers", key));
}

std::int64_t Attrs::i_or(std::string_view key, std::int64_t fallback) const {
  return has(key) ? i(key) : fallback;
}

double Attrs::f_or(std::string_view key, double fallback) const {
  return has(key) ? f(key) : fallback;
}

std::string Attrs::to_string() const {
  std::vector<std::string> parts;
  for (const auto& [k, v] : items_) {
    std::visit([&, &k = k](const auto& x) { parts.push_back(fmt::format("{}={}", k, x)); }, v);
  }
  return fmt::format("{{{}}}", fmt::join(parts, ", "));
}

}  // namespace graphrun
