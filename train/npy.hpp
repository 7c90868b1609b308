// NumPy's own files: .npy (one array, as np.save writes it) and .npz (a zip archive of .npy
// members, as np.savez and np.savez_compressed write it).
//
// An .npy file is the magic "\x93NUMPY", a version (1.0, 2.0 or 3.0), the length of a text header
// (2 bytes little-endian in 1.0, 4 bytes in 2.0 and 3.0), the header itself -- a Python dict
// literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 28, 28), } padded with
// spaces and a newline -- and then the raw values.
//
// Accepted here, for samples: '|u1' (kept as bytes), '<f4' and '<f8' (float32; float64 values are
// converted), and the big-endian '>f4' and '>f8' (converted to the machine's order, since a file
// written on a big-endian machine is as valid as any). For labels: the integer types u1 i1 u2 i2
// u4 i4 u8 i8 in either byte order, '|b1', and f4/f8 when every value is a whole number (labels
// saved by pandas or after arithmetic are often float). Anything else -- object arrays (pickles),
// strings, structured dtypes, half floats, complex -- is refused with a message naming the dtype.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <graphrun/train/idx.hpp>  // DataError
#include <graphrun/train/sample_array.hpp>

namespace graphrun {

// The most value bytes graphrun accepts from one .npy file or .npz member (4 GiB, as stored in
// the file, before float64 is narrowed); checked against the header, and for .npz members
// against the archive's directory, before anything is allocated.
inline constexpr std::uint64_t kNpyMaxBytes = std::uint64_t{1} << 32;

// The longest .npy text header read (numpy writes a few hundred bytes; a header of megabytes is
// an attack or a corrupt length field, not an array description).
inline constexpr std::uint64_t kNpyMaxHeaderBytes = std::uint64_t{1} << 16;

// Parses a whole .npy file held in memory; `name` is used in error messages.
// Returns samples along the first axis: shape (N,) becomes [N, 1], (N, d1, ...) stays as it is;
// '|u1' fills `bytes`, the float dtypes fill `floats`; labels and class_names stay empty.
// Throws DataError, naming `name` and the byte offset, header key or element index, for:
//  - a bad magic, a version other than 1.0/2.0/3.0, a header longer than kNpyMaxHeaderBytes;
//  - a header that is not exactly a dict of 'descr', 'fortran_order' and 'shape' (unknown,
//    missing or repeated keys; bad syntax; trailing characters other than white space);
//  - an unsupported dtype (see above); fortran_order True (save with
//    np.save(path, np.ascontiguousarray(a)));
//  - rank 0, more than 32 dimensions, a zero dimension, more than kNpyMaxBytes of values;
//  - a value count that disagrees with the bytes after the header (truncated or trailing bytes);
//    all of the above is checked before the values are allocated;
//  - a NaN or infinity, or a float64 value outside float32's range.
SampleArray parse_npy(std::span<const std::uint8_t> bytes, std::string_view name);

// Parses a .npy file of class indices: shape (N,) or (N, 1), an integer dtype, '|b1', or a float
// dtype whose values are all whole numbers. Throws DataError as parse_npy does, and for another
// shape, a negative value or one above 2^63-1 (naming its index), or a float label that is not a
// whole number.
std::vector<std::int64_t> parse_npy_labels(std::span<const std::uint8_t> bytes,
                                           std::string_view name);

// The same, from a file. The values are read straight into the result, so a file costs its
// values' size in memory once. Throws IoError when the file cannot be read, DataError as above
// with the path as the name.
SampleArray read_npy(const std::filesystem::path& path);
std::vector<std::int64_t> read_npy_labels(const std::filesystem::path& path);

// .npz archives. Array `name` is the member "<name>.npy" (np.savez(path, x=a) stores "x.npy");
// a name that is itself a member's full name ("x.npy") is accepted too. Stored and deflated
// members are read; other compression methods and encrypted members are refused.
//
// The names of the archive's .npy members without ".npy", in archive order (members that are not
// .npy files are left out). Throws IoError when the file cannot be read, DataError when it is
// not a zip archive, is corrupt, or names a member twice.
std::vector<std::string> npz_names(const std::filesystem::path& path);

// One array of the archive, as parse_npy / parse_npy_labels read it. Throws DataError naming the
// archive and the member: a missing name (listing the names there are), a member that is not
// .npy, a member whose directory entry claims more than kNpyMaxBytes (checked before reading), a
// CRC mismatch or other corruption, and every error of parse_npy with "<archive>/<member>" as
// the name. IoError when the file cannot be read.
SampleArray read_npz_array(const std::filesystem::path& path, std::string_view name);
std::vector<std::int64_t> read_npz_labels(const std::filesystem::path& path,
                                          std::string_view name);

// The same for an archive held in memory (nothing is copied); `archive_name` is used in error
// messages.
std::vector<std::string> parse_npz_names(std::span<const std::uint8_t> archive,
                                         std::string_view archive_name);
SampleArray parse_npz_array(std::span<const std::uint8_t> archive, std::string_view archive_name,
                            std::string_view name);
std::vector<std::int64_t> parse_npz_labels(std::span<const std::uint8_t> archive,
                                           std::string_view archive_name, std::string_view name);

}  // namespace graphrun
