// CIFAR-10 in its binary version (cifar-10-binary.tar.gz, unpacked to cifar-10-batches-bin/):
// batch files of records, each 1 label byte (0..9) and 3072 pixel bytes -- 1024 red, 1024 green,
// 1024 blue, each plane 32x32 row-major. The planes are already channel-first, so records are
// copied as they are into [N, 3, 32, 32] samples.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>

#include <graphrun/train/idx.hpp>  // DataError
#include <graphrun/train/sample_array.hpp>

namespace graphrun {

inline constexpr std::int64_t kCifarSide = 32;
inline constexpr std::int64_t kCifarChannels = 3;
inline constexpr std::size_t kCifarPixelBytes = 3 * 32 * 32;         // 3072
inline constexpr std::size_t kCifarRecordBytes = 1 + kCifarPixelBytes;  // 3073
inline constexpr int kCifarClasses = 10;

// The largest batch file read (the real ones are 30,730,000 bytes); checked before reading.
inline constexpr std::uint64_t kCifarMaxFileBytes = std::uint64_t{1} << 30;

// Parses one batch held in memory; `name` is used in error messages. Returns shape
// [N, 3, 32, 32] of bytes, N labels, and the ten standard class names (airplane .. truck).
// Throws DataError for empty input, a size that is not a whole number of 3073-byte records
// (stating the records and the bytes left over), or a label above 9 (naming the record).
SampleArray parse_cifar_batch(std::span<const std::uint8_t> bytes, std::string_view name);

struct Cifar10 {
  SampleArray train, test;
};

// Reads the CIFAR-10 binary data set from `dir`, or from `dir`/cifar-10-batches-bin when `dir`
// holds that folder instead of the batches: train = data_batch_1.bin .. data_batch_5.bin, every
// one that exists, concatenated in order (data_batch_1.bin is required, and a later batch without
// the one before it is an error); test = test_batch.bin. Class names come from batches.meta.txt
// when it is there (ten names, one a line; trailing blank lines ignored), else the standard ten.
// Throws DataError listing the paths looked for when the folder or a required file is missing,
// naming the file for a malformed batch or meta file; IoError when a file cannot be read.
Cifar10 read_cifar10(const std::filesystem::path& dir);

// Whether `dir` (or `dir`/cifar-10-batches-bin) holds data_batch_1.bin or test_batch.bin: the
// data-set loader's cue to call read_cifar10, which then names whatever else is missing.
// Never throws.
bool is_cifar10_folder(const std::filesystem::path& dir);

}  // namespace graphrun
