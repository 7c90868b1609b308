// Crash-safe file output: data goes to a temporary name beside the target, is flushed to disk,
// and only then renamed over the target, so a reader sees the old file or the new one, never
// half of one.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string_view>

namespace graphrun {

// An input or output failure; the message names the file and the system's reason.
class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writes `bytes` to `path` atomically (temporary file `<path>.tmp.<pid>`, fsync, rename, fsync of
// the folder). Creates missing parent folders. Removes the temporary files of `path` that killed
// processes left. On any failure removes its own temporary file, leaves the previous `path`
// untouched and throws IoError ("disk full" for ENOSPC, "file too large" for EFBIG).
void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes);
void write_file_atomic(const std::filesystem::path& path, std::string_view text);

}  // namespace graphrun
