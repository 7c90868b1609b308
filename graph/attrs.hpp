// Op attributes: small named constants that parameterise a node (axes, probabilities, flags).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace graphrun {

using AttrValue = std::variant<std::int64_t, double, std::vector<std::int64_t>>;

class Attrs {
 public:
  Attrs() = default;
  Attrs(std::initializer_list<std::pair<const std::string, AttrValue>> items) : items_(items) {}

  Attrs& set(std::string key, AttrValue value);
  bool has(std::string_view key) const;
  // Typed reads; a missing key or another type throws std::invalid_argument naming the key.
  std::int64_t i(std::string_view key) const;
  double f(std::string_view key) const;  // an integer attribute reads as double too
  const std::vector<std::int64_t>& ints(std::string_view key) const;
  std::int64_t i_or(std::string_view key, std::int64_t fallback) const;
  double f_or(std::string_view key, double fallback) const;

  const std::map<std::string, AttrValue, std::less<>>& items() const { return items_; }
  std::string to_string() const;  // "{axes=[0, 1], keepdims=0}"
  bool empty() const { return items_.empty(); }

 private:
  const AttrValue& at(std::string_view key) const;
  std::map<std::string, AttrValue, std::less<>> items_;
};

}  // namespace graphrun
