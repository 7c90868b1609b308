// What fuzz_npy checks on one input, shared with the regression test (tests/train/npy_test.cpp):
// the .npy readers (samples and labels, from memory and from a file) and the .npz readers (from
// memory and from a file) each refuse the input with DataError or return a consistent result, and
// the two ways into the same reader agree. Returns "" when all behaved, else what went wrong; an
// exception other than DataError escapes, as a finding too.
#pragma once

#include <graphrun/train/npy.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "fuzz/checks.hpp"  // attempt, Outcome
#include "fuzz/fuzz_file.hpp"

namespace graphrun::fuzz {

// Sizes agree with the shape, exactly one of bytes/floats holds the values, floats are finite.
inline std::string npy_problem(const SampleArray& a) {
  if (a.shape.size() < 2) return "shape has fewer than 2 dimensions";
  std::uint64_t n = 1;
  for (auto d : a.shape) {
    if (d <= 0) return "shape has a dimension <= 0";
    n *= static_cast<std::uint64_t>(d);
  }
  if (!a.labels.empty() || !a.class_names.empty()) return "samples came with labels";
  if (!a.bytes.empty() && !a.floats.empty()) return "both bytes and floats are filled";
  std::uint64_t held = a.is_bytes() ? a.bytes.size() : a.floats.size();
  if (held != n) return "the shape disagrees with the number of values";
  for (float f : a.floats)
    if (!std::isfinite(f)) return "a float value is not finite";
  return "";
}

inline std::string labels_problem(const std::vector<std::int64_t>& labels) {
  if (labels.empty()) return "no labels";
  for (auto l : labels)
    if (l < 0) return "a negative label";
  return "";
}

inline bool same(const SampleArray& a, const SampleArray& b) {
  return a.shape == b.shape && a.bytes == b.bytes && a.floats == b.floats && a.labels == b.labels;
}

template <class T>
std::string compare(const char* what, const Outcome<T>& mem, const Outcome<T>& file,
                    bool same_messages) {
  if (mem.value.has_value() != file.value.has_value())
    return std::string(what) + ": memory and file disagree: " + mem.error + file.error;
  if (mem.value) {
    bool equal;
    if constexpr (std::is_same_v<T, SampleArray>)
      equal = same(*mem.value, *file.value);
    else
      equal = *mem.value == *file.value;
    if (!equal) return std::string(what) + ": memory and file give different values";
  } else if (same_messages && mem.error != file.error) {
    return std::string(what) + ": different messages: " + mem.error + " / " + file.error;
  }
  return "";
}

inline std::string check_npy(const std::filesystem::path& dir, const std::uint8_t* data,
                             std::size_t size) {
  auto path = write_input(dir, "input.npy", data, size);
  std::span<const std::uint8_t> bytes(data, size);
  std::string name = path.string();

  auto mem = attempt<SampleArray>([&] { return parse_npy(bytes, name); });
  auto file = attempt<SampleArray>([&] { return read_npy(path); });
  if (mem.value)
    if (auto p = npy_problem(*mem.value); !p.empty()) return "parse_npy: " + p;
  if (auto p = compare("npy samples", mem, file, true); !p.empty()) return p;

  auto lmem = attempt<std::vector<std::int64_t>>([&] { return parse_npy_labels(bytes, name); });
  auto lfile = attempt<std::vector<std::int64_t>>([&] { return read_npy_labels(path); });
  if (lmem.value)
    if (auto p = labels_problem(*lmem.value); !p.empty()) return "parse_npy_labels: " + p;
  if (auto p = compare("npy labels", lmem, lfile, true); !p.empty()) return p;
  // 8-bit samples of shape (N,) or (N, 1) are also labels, value for value.
  if (mem.value && lmem.value && mem.value->is_bytes()) {
    const auto& b = mem.value->bytes;
    if (b.size() != lmem.value->size()) return "u1 samples and labels differ in count";
    for (std::size_t i = 0; i < b.size(); ++i)
      if ((*lmem.value)[i] != b[i]) return "u1 samples and labels differ in value";
  }

  // The archive readers: from memory and from the file. libzip takes different paths for the
  // two, so only the outcomes are compared, not the messages.
  auto zpath = write_input(dir, "input.npz", data, size);
  auto names = attempt<std::vector<std::string>>([&] { return parse_npz_names(bytes, name); });
  auto fnames = attempt<std::vector<std::string>>([&] { return npz_names(zpath); });
  if (auto p = compare("npz names", names, fnames, false); !p.empty()) return p;
  if (!names.value) return "";
  std::size_t tried = 0;
  for (const auto& array : *names.value) {
    if (++tried > 4) break;
    auto zmem = attempt<SampleArray>([&] { return parse_npz_array(bytes, name, array); });
    auto zfile = attempt<SampleArray>([&] { return read_npz_array(zpath, array); });
    if (zmem.value)
      if (auto p = npy_problem(*zmem.value); !p.empty()) return "parse_npz_array: " + p;
    if (auto p = compare("npz array", zmem, zfile, false); !p.empty()) return p;
    auto lz = attempt<std::vector<std::int64_t>>([&] { return parse_npz_labels(bytes, name, array); });
    if (lz.value)
      if (auto p = labels_problem(*lz.value); !p.empty()) return "parse_npz_labels: " + p;
  }
  auto missing = attempt<SampleArray>([&] { return parse_npz_array(bytes, name, "no such array"); });
  if (missing.value) return "parse_npz_array found an array that is not there";
  return "";
}

}  // namespace graphrun::fuzz
