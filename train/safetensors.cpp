#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <graphrun/train/safetensors.hpp>
#include <nlohmann/json.hpp>

namespace graphrun {
namespace {

// Tensor bytes are copied as they lie in memory, and the format is little-endian.
static_assert(std::endian::native == std::endian::little,
              "safetensors I/O assumes a little-endian host");

using nlohmann::json;

constexpr std::size_t kPrefixBytes = 8;
// A valid header nests three deep (file object, tensor object, shape array); deeper input is
// refused before parsing, as a deep nest of brackets costs memory per bracket.
constexpr int kMaxJsonDepth = 8;
constexpr std::uint64_t kMaxElements = std::uint64_t{1} << 48;

struct Entry {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  std::uint64_t begin = 0, end = 0;
};

struct Layout {
  std::vector<Entry> entries;
  std::map<std::string, std::string> metadata;
};

std::string_view st_dtype(DType d) { return d == DType::f32 ? "F32" : "F64"; }

std::uint64_t get_u64_le(const std::byte* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
  return v;
}

[[noreturn]] void bad(std::string_view file, const std::string& what) {
  throw DataError(fmt::format("'{}': {}", file, what));
}

void check_header_length(std::uint64_t n, std::uint64_t file_size, std::string_view file) {
  if (n > kSafetensorsMaxHeader)
    bad(file, fmt::format("header length {} is over the {} byte limit", n, kSafetensorsMaxHeader));
  if (n > file_size - kPrefixBytes)
    bad(file,
        fmt::format("header length {} runs past the end of the file ({} bytes)", n, file_size));
}

void check_depth(std::string_view text, std::string_view file) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > kMaxJsonDepth)
        bad(file, fmt::format("header JSON nests deeper than {} levels", kMaxJsonDepth));
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
}

std::uint64_t unsigned_at(const json& v, std::string_view file, std::string_view what) {
  if (!v.is_number_unsigned())
    bad(file, fmt::format("{} is {}, not a non-negative integer", what, v.dump()));
  return v.get<std::uint64_t>();
}

// Bytes the shape needs, refusing anything over `limit`. Non-zero dimensions are bounded even
// when another one is zero, so numel() cannot overflow on any accepted shape.
std::uint64_t shape_bytes(const Entry& e, std::uint64_t limit, std::string_view file) {
  std::uint64_t elements = 1;
  bool has_zero = false;
  for (auto d : e.shape) {
    auto ud = static_cast<std::uint64_t>(d);
    if (ud == 0) {
      has_zero = true;
    } else if (elements > kMaxElements / ud) {
      bad(file, fmt::format("tensor '{}': shape {} has more than 2^48 elements", e.name,
                            to_string(e.shape)));
    } else {
      elements *= ud;
    }
  }
  if (has_zero) return 0;
  if (elements > limit / dtype_size(e.dtype))
    bad(file, fmt::format("tensor '{}': shape {} of {} needs more than the {} bytes of the data "
                          "region",
                          e.name, to_string(e.shape), st_dtype(e.dtype), limit));
  return elements * dtype_size(e.dtype);
}

Entry parse_entry(const std::string& key, const json& v, std::uint64_t data_size,
                  std::string_view file) {
  Entry e;
  e.name = key;
  auto where = [&](std::string_view field) { return fmt::format("tensor '{}': {}", key, field); };
  if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
    bad(file, where("entry must be an object with dtype, shape and data_offsets"));
  const json& dtype = v["dtype"];
  if (dtype == "F32")
    e.dtype = DType::f32;
  else if (dtype == "F64")
    e.dtype = DType::f64;
  else
    bad(file, where(fmt::format("dtype {} is not supported; graphrun reads only F32 and F64",
                                dtype.dump())));
  const json& shape = v["shape"];
  if (!shape.is_array()) bad(file, where("shape must be an array"));
  if (shape.size() > static_cast<std::size_t>(kMaxRank))
    bad(file, where(fmt::format("shape has rank {}, more than the supported {}", shape.size(),
                                kMaxRank)));
  for (std::size_t i = 0; i < shape.size(); ++i) {
    std::uint64_t d = unsigned_at(shape[i], file, where(fmt::format("dimension {}", i)));
    if (d > kMaxElements) bad(file, where(fmt::format("dimension {} is {}, too large", i, d)));
    e.shape.push_back(static_cast<std::int64_t>(d));
  }
  const json& offsets = v["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    bad(file, where("data_offsets must be [begin, end]"));
  e.begin = unsigned_at(offsets[0], file, where("data_offsets[0]"));
  e.end = unsigned_at(offsets[1], file, where("data_offsets[1]"));
  if (e.begin > e.end || e.end > data_size)
    bad(file,
        where(fmt::format("data_offsets [{}, {}] are out of range for a data region of {} bytes",
                          e.begin, e.end, data_size)));
  std::uint64_t need = shape_bytes(e, data_size, file);
  if (need != e.end - e.begin)
    bad(file, where(fmt::format("shape {} of {} needs {} bytes but data_offsets [{}, {}] span {}",
                                to_string(e.shape), st_dtype(e.dtype), need, e.begin, e.end,
                                e.end - e.begin)));
  return e;
}

std::map<std::string, std::string> parse_metadata(const json& v, std::string_view file) {
  if (!v.is_object()) bad(file, fmt::format("__metadata__ is {}, not an object", v.type_name()));
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : v.items()) {
    if (!value.is_string())
      bad(file, fmt::format("__metadata__ value for '{}' is {} {}; values must be strings", key,
                            value.type_name(), value.dump()));
    out.emplace(key, value.get<std::string>());
  }
  return out;
}

// The tensors must tile [0, data_size) exactly: no gaps, no overlaps, nothing left over.
void check_tiling(std::vector<Entry>& entries, std::uint64_t data_size, std::string_view file) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  std::uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const auto& e : entries) {
    if (e.begin < pos)
      bad(file, fmt::format("tensor '{}' (bytes {}..{}) overlaps tensor '{}' (bytes {}..{})",
                            e.name, e.begin, e.end, prev->name, prev->begin, prev->end));
    if (e.begin > pos)
      bad(file,
          fmt::format("bytes {}..{} before tensor '{}' belong to no tensor", pos, e.begin, e.name));
    pos = e.end;
    prev = &e;
  }
  if (pos != data_size)
    bad(file, fmt::format("bytes {}..{} at the end of the data region belong to no tensor", pos,
                          data_size));
}

Layout parse_header(std::string_view text, std::uint64_t data_size, std::string_view file) {
  check_depth(text, file);
  json header;
  try {
    header = json::parse(text);
  } catch (const json::exception& e) {
    bad(file, fmt::format("header is not valid JSON ({})", e.what()));
  }
  if (!header.is_object())
    bad(file, fmt::format("header is {}, not a JSON object", header.type_name()));
  Layout layout;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__")
      layout.metadata = parse_metadata(value, file);
    else
      layout.entries.push_back(parse_entry(key, value, data_size, file));
  }
  check_tiling(layout.entries, data_size, file);
  return layout;
}

[[noreturn]] void io_fail(const std::filesystem::path& path, std::string_view what) {
  throw IoError(
      fmt::format("cannot read '{}': {} ({})", path.string(), what, std::strerror(errno)));
}

void read_exact(std::ifstream& in, const std::filesystem::path& path, std::uint64_t offset,
                void* out, std::uint64_t n) {
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(static_cast<char*>(out), static_cast<std::streamsize>(n));
  if (!in || static_cast<std::uint64_t>(in.gcount()) != n)
    io_fail(path, fmt::format("short read of {} bytes at offset {}", n, offset));
}

}  // namespace

std::vector<std::byte> encode_safetensors(const SafetensorsFile& file) {
  json header = json::object();
  std::uint64_t offset = 0;
  for (const auto& [name, t] : file.tensors) {
    if (name == "__metadata__")
      throw std::invalid_argument("encode_safetensors: a tensor may not be named '__metadata__'");
    if (t.empty())
      throw std::invalid_argument(
          fmt::format("encode_safetensors: tensor '{}' has no storage", name));
    header[name] = {{"dtype", std::string(st_dtype(t.dtype()))},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + t.bytes()}}};
    offset += t.bytes();
  }
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    throw std::invalid_argument(fmt::format("encode_safetensors: {}", e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  std::vector<std::byte> out(kPrefixBytes + text.size() + offset);
  std::uint64_t n = text.size();
  for (std::size_t i = 0; i < kPrefixBytes; ++i) out[i] = static_cast<std::byte>(n >> (8 * i));
  std::memcpy(out.data() + kPrefixBytes, text.data(), text.size());
  std::byte* data = out.data() + kPrefixBytes + text.size();
  for (const auto& [name, t] : file.tensors) {
    if (t.bytes()) std::memcpy(data, t.raw(), t.bytes());
    data += t.bytes();
  }
  return out;
}

void save_safetensors(const std::filesystem::path& path, const SafetensorsFile& file) {
  write_file_atomic(path, encode_safetensors(file));
}

SafetensorsFile decode_safetensors(std::span<const std::byte> bytes, std::string_view name) {
  if (bytes.size() < kPrefixBytes)
    bad(name,
        fmt::format("file is {} bytes, too short for the 8-byte header length", bytes.size()));
  std::uint64_t n = get_u64_le(bytes.data());
  check_header_length(n, bytes.size(), name);
  std::string_view text(reinterpret_cast<const char*>(bytes.data() + kPrefixBytes), n);
  const std::byte* data = bytes.data() + kPrefixBytes + n;
  Layout layout = parse_header(text, bytes.size() - kPrefixBytes - n, name);
  SafetensorsFile out;
  out.metadata = std::move(layout.metadata);
  for (auto& e : layout.entries) {
    Tensor t(e.dtype, e.shape);
    if (t.bytes()) std::memcpy(t.raw(), data + e.begin, t.bytes());
    out.tensors.emplace(std::move(e.name), std::move(t));
  }
  return out;
}

SafetensorsFile load_safetensors(const std::filesystem::path& path) {
  std::string name = path.string();
  std::error_code ec;
  std::uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) throw IoError(fmt::format("cannot read '{}': {}", name, ec.message()));
  std::ifstream in(path, std::ios::binary);
  if (!in) io_fail(path, "open failed");
  if (size < kPrefixBytes)
    bad(name, fmt::format("file is {} bytes, too short for the 8-byte header length", size));
  std::byte prefix[kPrefixBytes];
  read_exact(in, path, 0, prefix, kPrefixBytes);
  std::uint64_t n = get_u64_le(prefix);
  check_header_length(n, size, name);
  std::string text(n, '\0');
  read_exact(in, path, kPrefixBytes, text.data(), n);
  Layout layout = parse_header(text, size - kPrefixBytes - n, name);
  SafetensorsFile out;
  out.metadata = std::move(layout.metadata);
  for (auto& e : layout.entries) {
    Tensor t(e.dtype, e.shape);
    if (t.bytes()) read_exact(in, path, kPrefixBytes + n + e.begin, t.raw(), t.bytes());
    out.tensors.emplace(std::move(e.name), std::move(t));
  }
  return out;
}

}  // namespace graphrun
