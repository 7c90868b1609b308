// What the CSV fuzz target checks on one input, shared with the regression replay in
// tests/train/csv_test.cpp: check_csv returns "" when parse_csv and read_csv behaved, else what
// went wrong. An exception other than DataError escapes, as a finding too.
#pragma once

#include <graphrun/train/csv.hpp>
#include <graphrun/train/idx.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "fuzz/checks.hpp"
#include "fuzz/fuzz_file.hpp"

namespace graphrun::fuzz {

// "" when `a` is a table parse_csv may return: [N, D] finite floats, and with `labelled` one
// class per row, within class_names when there are names (sorted and distinct).
inline std::string csv_problem(const SampleArray& a, bool labelled) {
  if (a.shape.size() != 2 || a.shape[0] < 1 || a.shape[1] < 1) return "shape is not [N, D]";
  if (!a.bytes.empty()) return "a table holds bytes";
  if (static_cast<std::uint64_t>(a.shape[0]) * static_cast<std::uint64_t>(a.shape[1]) !=
      a.floats.size())
    return "shape disagrees with the number of values";
  if (!std::all_of(a.floats.begin(), a.floats.end(), [](float v) { return std::isfinite(v); }))
    return "a value is not finite";
  if (!labelled) return a.labels.empty() && a.class_names.empty() ? "" : "labels without a column";
  if (a.labels.size() != a.floats.size() / static_cast<std::size_t>(a.shape[1]))
    return "not one label per row";
  std::int64_t classes = a.class_names.empty() ? kCsvMaxClasses
                                               : static_cast<std::int64_t>(a.class_names.size());
  if (a.class_names.size() > static_cast<std::size_t>(kCsvMaxClasses)) return "too many classes";
  if (!std::all_of(a.labels.begin(), a.labels.end(),
                   [&](std::int64_t l) { return l >= 0 && l < classes; }))
    return "a label is out of range";
  if (!std::is_sorted(a.class_names.begin(), a.class_names.end()) ||
      std::adjacent_find(a.class_names.begin(), a.class_names.end()) != a.class_names.end())
    return "class names are not sorted and distinct";
  return "";
}

inline bool same(const SampleArray& a, const SampleArray& b) {
  return a.shape == b.shape && a.floats == b.floats && a.labels == b.labels &&
         a.class_names == b.class_names;
}

// parse_csv without a label column, with one by name and with one by number refuses with a
// DataError naming the input or returns a consistent table; read_csv on the same bytes as a file
// says exactly what parse_csv says.
inline std::string check_csv(const std::filesystem::path& dir, const std::uint8_t* data,
                             std::size_t size) {
  auto path = write_input(dir, "input.csv", data, size);
  std::string name = path.string();
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (const char* label : {"", "label", "0", "2"}) {
    CsvOptions options{label};
    auto mem = attempt<SampleArray>([&] { return parse_csv(text, name, options); });
    if (mem.value) {
      std::string problem = csv_problem(*mem.value, *label != '\0');
      if (!problem.empty()) return std::string("label column '") + label + "': " + problem;
    } else if (!mem.error.starts_with(name + ":")) {
      return "message does not start with the name: " + mem.error;
    }
    auto file = attempt<SampleArray>([&] { return read_csv(path, options); });
    if (mem.value.has_value() != file.value.has_value())
      return "parse_csv and read_csv disagree: " + mem.error + file.error;
    if (mem.value && !same(*mem.value, *file.value))
      return "parse_csv and read_csv return different tables";
    if (mem.error != file.error) return "different messages: " + mem.error + " / " + file.error;
  }
  // The separator may follow the name: as a .tsv the same bytes must behave as well.
  auto tsv = attempt<SampleArray>([&] { return parse_csv(text, "input.tsv", CsvOptions{}); });
  if (tsv.value) return csv_problem(*tsv.value, false);
  return tsv.error.starts_with("input.tsv:") ? "" : "message does not start with the name";
}

}  // namespace graphrun::fuzz
