// IDX files, the format of MNIST and Fashion-MNIST: a big-endian header
//   00 00 <type> <ndims>   then ndims big-endian uint32 dimensions   then the values,
// here only type 0x08 (unsigned bytes) with 1 to 4 dimensions, read plain or gzip-compressed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace graphrun {

// A malformed or inconsistent data file (IDX, data set, safetensors). The message names the file.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The most value bytes graphrun accepts from one IDX file (2 GiB); checked against the header
// before anything is allocated, and bounds gzip decompression.
inline constexpr std::uint64_t kIdxMaxBytes = std::uint64_t{1} << 31;

// Row-major values: dims {60000, 28, 28} holds 60000 images of 28 rows by 28 columns.
struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> data;
};

// Parses an uncompressed IDX image held in memory; `name` is used in error messages.
// Throws DataError for a bad magic number, an element type other than 0x08, a rank outside 1..4,
// a zero dimension, more than kIdxMaxBytes values, or a value count that disagrees with the
// header (truncated file or trailing bytes).
IdxArray parse_idx(std::span<const std::uint8_t> bytes, std::string_view name);

// Reads an IDX file, gunzipping it first when it starts with the gzip magic 1f 8b (whatever its
// name). Decompression stops as soon as the output exceeds what the header claims, so a gzip
// bomb costs no more memory than the header's (capped) size. Throws IoError when the file cannot
// be read, DataError when its content is wrong.
IdxArray read_idx(const std::filesystem::path& path);

// Writes an IDX file atomically (write_file_atomic), gzip-compressed when `gzip` is set.
// Throws std::invalid_argument when dims and data disagree, IoError when writing fails.
void write_idx(const std::filesystem::path& path, std::span<const std::int64_t> dims,
               std::span<const std::uint8_t> data, bool gzip);

}  // namespace graphrun
