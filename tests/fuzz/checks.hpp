// What the IDX and safetensors fuzz targets check on one input, shared with the regression test
// (tests/train/fuzz_regressions_test.cpp). Each returns "" when the parsers behaved, else what
// went wrong; an exception other than the documented DataError escapes, as a finding too.
#pragma once

#include <graphrun/train/idx.hpp>
#include <graphrun/train/safetensors.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string>

#include "fuzz/fuzz_file.hpp"

namespace graphrun::fuzz {

template <class T>
struct Outcome {
  std::optional<T> value;
  std::string error;  // DataError's message
};

template <class T, class F>
Outcome<T> attempt(F&& f) {
  Outcome<T> o;
  try {
    o.value = f();
  } catch (const DataError& e) {
    o.error = e.what();
  }
  return o;
}

inline bool consistent(const IdxArray& a) {
  if (a.dims.empty() || a.dims.size() > 4) return false;
  std::uint64_t n = 1;
  for (auto d : a.dims) {
    if (d <= 0) return false;
    n *= static_cast<std::uint64_t>(d);
  }
  return n == a.data.size();
}

// parse_idx on the bytes and read_idx on them as a file (gunzipping input that starts 1f 8b)
// refuse with DataError or return consistent arrays; on plain data both say the same.
inline std::string check_idx(const std::filesystem::path& dir, const std::uint8_t* data,
                             std::size_t size) {
  auto path = write_input(dir, "input.idx", data, size);
  auto file = attempt<IdxArray>([&] { return read_idx(path); });
  auto mem = attempt<IdxArray>([&] { return parse_idx({data, size}, path.string()); });
  if (file.value && !consistent(*file.value)) return "read_idx: dims disagree with the data";
  if (mem.value && !consistent(*mem.value)) return "parse_idx: dims disagree with the data";
  if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b)
    return mem.value ? "parse_idx accepted gzip data" : "";
  if (file.value.has_value() != mem.value.has_value())
    return "read_idx and parse_idx disagree: " + file.error + mem.error;
  if (file.value && (file.value->dims != mem.value->dims || file.value->data != mem.value->data))
    return "read_idx and parse_idx return different arrays";
  if (file.error != mem.error) return "different messages: " + file.error + " / " + mem.error;
  return "";
}

inline bool same(const SafetensorsFile& a, const SafetensorsFile& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (const auto& [name, t] : a.tensors) {
    auto it = b.tensors.find(name);
    if (it == b.tensors.end()) return false;
    const auto& u = it->second;
    if (t.dtype() != u.dtype() || t.shape() != u.shape() || t.bytes() != u.bytes()) return false;
    if (t.bytes() && std::memcmp(t.raw(), u.raw(), t.bytes()) != 0) return false;
  }
  return true;
}

// decode_safetensors on the bytes and load_safetensors on them as a file agree (same tensors, or
// the same DataError message), and what they accept survives encode -> decode unchanged.
inline std::string check_safetensors(const std::filesystem::path& dir, const std::uint8_t* data,
                                     std::size_t size) {
  auto path = write_input(dir, "input.safetensors", data, size);
  auto bytes = std::as_bytes(std::span(data, size));
  auto mem = attempt<SafetensorsFile>([&] { return decode_safetensors(bytes, path.string()); });
  auto file = attempt<SafetensorsFile>([&] { return load_safetensors(path); });
  if (mem.value.has_value() != file.value.has_value())
    return "decode_safetensors and load_safetensors disagree: " + mem.error + file.error;
  if (!mem.value)
    return mem.error == file.error ? "" : "different messages: " + mem.error + " / " + file.error;
  if (!same(*mem.value, *file.value)) return "decode and load return different tensors";
  auto again = decode_safetensors(encode_safetensors(*mem.value), "re-encoded");
  if (!same(*mem.value, again)) return "encode -> decode changed the tensors";
  return "";
}

}  // namespace graphrun::fuzz
