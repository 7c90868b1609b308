#include <fmt/format.h>
#include <fmt/ranges.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <graphrun/train/atomic_file.hpp>
#include <graphrun/train/idx.hpp>
#include <graphrun/train/read_file.hpp>
#include <limits>
#include <string>

namespace graphrun {
namespace {

constexpr std::uint8_t kTypeUbyte = 0x08;
constexpr int kMaxIdxRank = 4;
constexpr std::size_t kMaxHeaderBytes = 4 + 4 * kMaxIdxRank;

struct IdxHeader {
  std::vector<std::int64_t> dims;
  std::size_t header_bytes = 0;
  std::uint64_t value_bytes = 0;
};

std::string dims_text(const std::vector<std::int64_t>& dims) {
  return fmt::format("{}", fmt::join(dims, "x"));
}

std::string_view payload_word(const std::vector<std::int64_t>& dims) {
  return dims.size() == 1 ? "labels" : "pixels";
}

std::string_view idx_type_name(std::uint8_t type) {
  switch (type) {
    case 0x09:
      return "signed bytes";
    case 0x0B:
      return "16-bit integers";
    case 0x0C:
      return "32-bit integers";
    case 0x0D:
      return "32-bit floats";
    case 0x0E:
      return "64-bit floats";
    default:
      return "an unknown type";
  }
}

void check_magic(std::span<const std::uint8_t> bytes, std::string_view name) {
  if (bytes.size() < 4)
    throw DataError(
        fmt::format("'{}': file is {} bytes, too short for an IDX header", name, bytes.size()));
  if (bytes[0] == 0x1f && bytes[1] == 0x8b)
    throw DataError(fmt::format("'{}': data is gzip-compressed, not a raw IDX file", name));
  if (bytes[0] != 0 || bytes[1] != 0)
    throw DataError(fmt::format("'{}': not an IDX file (starts with {:02x} {:02x}, expected 00 00)",
                                name, bytes[0], bytes[1]));
  if (bytes[2] != kTypeUbyte)
    throw DataError(fmt::format(
        "'{}': IDX element type 0x{:02x} ({}) is not supported; graphrun reads only 0x08 "
        "(unsigned bytes)",
        name, bytes[2], idx_type_name(bytes[2])));
  if (bytes[3] < 1 || bytes[3] > kMaxIdxRank)
    throw DataError(fmt::format("'{}': IDX header declares {} dimensions; supported are 1 to {}",
                                name, bytes[3], kMaxIdxRank));
}

// Validates everything the header says, including the size cap, without looking at the values.
IdxHeader read_header(std::span<const std::uint8_t> bytes, std::string_view name) {
  check_magic(bytes, name);
  IdxHeader h;
  int rank = bytes[3];
  h.header_bytes = 4 + 4 * static_cast<std::size_t>(rank);
  if (bytes.size() < h.header_bytes)
    throw DataError(
        fmt::format("'{}': file is {} bytes, too short for its {}-dimensional IDX "
                    "header ({} bytes)",
                    name, bytes.size(), rank, h.header_bytes));
  // The product is checked against the cap step by step, so it cannot overflow.
  std::uint64_t product = 1;
  bool over_cap = false;
  for (int i = 0; i < rank; ++i) {
    const std::uint8_t* p = bytes.data() + 4 + 4 * i;
    std::uint32_t d = (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                      (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
    if (d == 0) throw DataError(fmt::format("'{}': dimension {} of the IDX header is 0", name, i));
    h.dims.push_back(d);
    if (over_cap || product > kIdxMaxBytes / d)
      over_cap = true;
    else
      product *= d;
  }
  if (over_cap || product > kIdxMaxBytes)
    throw DataError(
        fmt::format("'{}': header claims {} values, more than the {} bytes graphrun "
                    "reads from one IDX file",
                    name, dims_text(h.dims), kIdxMaxBytes));
  h.value_bytes = product;
  return h;
}

IdxHeader check_idx(std::span<const std::uint8_t> bytes, std::string_view name) {
  IdxHeader h = read_header(bytes, name);
  std::uint64_t held = bytes.size() - h.header_bytes;
  if (held == h.value_bytes) return h;
  std::string base =
      fmt::format("'{}': header claims {} = {} bytes of {} but the file holds {}", name,
                  dims_text(h.dims), h.value_bytes, payload_word(h.dims), held);
  if (held > h.value_bytes) base += fmt::format(" ({} trailing bytes)", held - h.value_bytes);
  throw DataError(base);
}

// Takes over a buffer holding a whole IDX file, so the values are not copied a second time.
IdxArray parse_idx_owned(std::vector<std::uint8_t>&& bytes, std::string_view name) {
  IdxHeader h = check_idx(bytes, name);
  IdxArray out;
  out.dims = std::move(h.dims);
  // No shrink_to_fit: callers size the buffer exactly, and shrinking would copy it whole.
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(h.header_bytes));
  out.data = std::move(bytes);
  return out;
}

// Streaming gunzip of an in-memory buffer, read in caller-chosen pieces so the caller can stop
// as soon as it has seen enough (the defence against gzip bombs).
class Gunzip {
 public:
  Gunzip(std::span<const std::uint8_t> in, std::string_view name) : name_(name) {
    if (inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK)
      throw DataError(fmt::format("'{}': cannot start zlib decompression", name_));
    z_.next_in = const_cast<Bytef*>(in.data());  // zlib's API is not const-correct
    z_.avail_in = static_cast<uInt>(in.size());
  }
  Gunzip(const Gunzip&) = delete;
  Gunzip& operator=(const Gunzip&) = delete;
  ~Gunzip() { inflateEnd(&z_); }

  // Appends up to `want` decompressed bytes to `out`; fewer only at the end of the data.
  void read(std::vector<std::uint8_t>& out, std::size_t want) {
    std::size_t old = out.size();
    out.resize(old + want);
    z_.next_out = out.data() + old;
    z_.avail_out = static_cast<uInt>(want);
    while (z_.avail_out > 0 && !done_) step();
    out.resize(old + want - z_.avail_out);
  }

 private:
  void step() {
    int rc = inflate(&z_, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      // A gzip file may hold several members back to back, as `cat a.gz b.gz` makes.
      if (z_.avail_in == 0)
        done_ = true;
      else
        inflateReset(&z_);
      return;
    }
    if (rc == Z_BUF_ERROR && z_.avail_in == 0)
      throw DataError(
          fmt::format("'{}': gzip data is truncated (the file ends mid-stream)", name_));
    if (rc != Z_OK)
      throw DataError(
          fmt::format("'{}': corrupt gzip data ({})", name_, z_.msg ? z_.msg : zError(rc)));
  }

  std::string_view name_;
  z_stream z_{};
  bool done_ = false;
};

IdxArray read_gzip_idx(std::span<const std::uint8_t> compressed, std::string_view name) {
  Gunzip gz(compressed, name);
  std::vector<std::uint8_t> bytes;
  gz.read(bytes, 4);
  if (bytes.size() == 4 && bytes[3] >= 1 && bytes[3] <= kMaxIdxRank) gz.read(bytes, 4 * bytes[3]);
  IdxHeader h = read_header(bytes, name);
  // Ask for one byte more than claimed: getting it proves trailing data, and never more is held.
  std::uint64_t wanted = h.header_bytes + h.value_bytes + 1;
  // Reserve what the header claims, so the buffer never doubles and copies (that doubled the
  // peak memory of loading Fashion-MNIST); but no more than deflate could expand this input to
  // (about 1032:1), so a small hostile file cannot make us reserve gigabytes.
  bytes.reserve(static_cast<std::size_t>(
      std::min<std::uint64_t>(wanted, 1032 * static_cast<std::uint64_t>(compressed.size()) + 4096)));
  constexpr std::size_t kMinPiece = std::size_t{1} << 20;
  while (bytes.size() < wanted) {
    std::size_t before = bytes.size();
    std::size_t piece = std::max(kMinPiece, before);  // geometric growth, few reallocations
    gz.read(bytes, static_cast<std::size_t>(std::min<std::uint64_t>(piece, wanted - before)));
    if (bytes.size() - before < std::min<std::uint64_t>(piece, wanted - before)) break;
  }
  if (bytes.size() == wanted)
    throw DataError(
        fmt::format("'{}': decompressed data runs past the {} bytes of {} its header "
                    "claims ({}); the file has trailing bytes",
                    name, h.value_bytes, payload_word(h.dims), dims_text(h.dims)));
  return parse_idx_owned(std::move(bytes), name);
}

std::vector<std::uint8_t> gzip_bytes(std::span<const std::uint8_t> raw) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK)
    throw std::runtime_error("cannot start zlib compression");
  std::vector<std::uint8_t> out(deflateBound(&z, static_cast<uLong>(raw.size())));
  z.next_in = const_cast<Bytef*>(raw.data());  // zlib's API is not const-correct
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error(fmt::format("zlib compression failed ({})", rc));
  return out;
}

}  // namespace

IdxArray parse_idx(std::span<const std::uint8_t> bytes, std::string_view name) {
  IdxHeader h = check_idx(bytes, name);
  return {std::move(h.dims),
          {bytes.begin() + static_cast<std::ptrdiff_t>(h.header_bytes), bytes.end()}};
}

IdxArray read_idx(const std::filesystem::path& path) {
  std::string name = path.string();
  auto bytes = read_file_bytes(path, kIdxMaxBytes + kMaxHeaderBytes, "an IDX file");
  if (bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) return read_gzip_idx(bytes, name);
  return parse_idx_owned(std::move(bytes), name);
}

void write_idx(const std::filesystem::path& path, std::span<const std::int64_t> dims,
               std::span<const std::uint8_t> data, bool gzip) {
  if (dims.empty() || dims.size() > static_cast<std::size_t>(kMaxIdxRank))
    throw std::invalid_argument(fmt::format("write_idx '{}': {} dimensions; IDX here takes 1 to {}",
                                            path.string(), dims.size(), kMaxIdxRank));
  std::uint64_t product = 1;
  for (auto d : dims) {
    if (d <= 0 || static_cast<std::uint64_t>(d) > std::numeric_limits<std::uint32_t>::max() ||
        product > kIdxMaxBytes / static_cast<std::uint64_t>(d))
      throw std::invalid_argument(fmt::format("write_idx '{}': dimensions {} are not writable",
                                              path.string(), fmt::join(dims, "x")));
    product *= static_cast<std::uint64_t>(d);
  }
  if (product != data.size())
    throw std::invalid_argument(fmt::format("write_idx '{}': dimensions {} need {} bytes, got {}",
                                            path.string(), fmt::join(dims, "x"), product,
                                            data.size()));
  std::vector<std::uint8_t> bytes = {0, 0, kTypeUbyte, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims)
    for (int shift = 24; shift >= 0; shift -= 8)
      bytes.push_back(static_cast<std::uint8_t>(static_cast<std::uint64_t>(d) >> shift));
  bytes.insert(bytes.end(), data.begin(), data.end());
  if (gzip) bytes = gzip_bytes(bytes);
  write_file_atomic(path, std::as_bytes(std::span(bytes)));
}

}  // namespace graphrun
