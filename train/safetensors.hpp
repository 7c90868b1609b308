// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors), readable
// from Python with `safetensors.numpy.load_file`:
//   8 bytes   N, the header length, little-endian uint64
//   N bytes   JSON: {"__metadata__": {"key": "value", ...},
//                    "name": {"dtype": "F32" | "F64", "shape": [..], "data_offsets": [b, e]}, ...}
//             padded with spaces so that N is a multiple of 8
//   the rest  tensor bytes, little-endian, row-major; offsets count from the byte after the header
// and the tensors tile this region exactly, without gaps or overlaps.
#pragma once

#include <cstddef>
#include <filesystem>
#include <graphrun/graph/tensor.hpp>
#include <graphrun/train/atomic_file.hpp>
#include <graphrun/train/idx.hpp>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace graphrun {

// The largest JSON header accepted when reading (16 MiB), as the reference implementation does.
inline constexpr std::uint64_t kSafetensorsMaxHeader = std::uint64_t{16} << 20;

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;  // written as "__metadata__", omitted when empty
};

// Serialises tensors (in name order) and metadata. Throws std::invalid_argument for a tensor
// without storage or one named "__metadata__".
std::vector<std::byte> encode_safetensors(const SafetensorsFile& file);

// encode_safetensors, then write_file_atomic: the previous file survives any failure (IoError).
void save_safetensors(const std::filesystem::path& path, const SafetensorsFile& file);

// Parses a whole file held in memory; `name` is used in error messages. Throws DataError naming
// the file (and the tensor, where one is at fault) when the header is over 16 MiB or runs past
// the end, is not a JSON object, a dtype is other than F32/F64, a shape has rank over 4 or
// negative or non-integer dimensions, a shape disagrees with its byte span, offsets are out of
// range, overlap or leave bytes uncovered, or a metadata value is not a string. Every size is
// checked against the bytes actually present before anything is allocated.
SafetensorsFile decode_safetensors(std::span<const std::byte> bytes, std::string_view name);

// Reads a file, header first, then each tensor straight into its own storage (no second copy of
// the whole file). DataError as for decode_safetensors; IoError when the file cannot be read.
SafetensorsFile load_safetensors(const std::filesystem::path& path);

}  // namespace graphrun
