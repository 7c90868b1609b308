// Whole files into memory for the parsers of data files, with the size refused before anything
// is read or allocated.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

namespace graphrun {

// The bytes of `path`. Throws DataError "'<path>': file is N bytes, more than the M <what> may
// hold" for a file over `max_bytes` (`what`: "an IDX file", "a CIFAR-10 batch"), IoError naming
// the file and the system's reason when it cannot be read.
std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path, std::uint64_t max_bytes,
                                          std::string_view what);

}  // namespace graphrun
