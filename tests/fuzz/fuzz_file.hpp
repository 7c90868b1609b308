// Files for the fuzz checks whose parser takes a path: a private folder (on tmpfs when there is
// one) that lasts for the process, and a writer of raw bytes.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace graphrun::fuzz {

inline std::filesystem::path write_input(const std::filesystem::path& dir, const std::string& name,
                                         const std::uint8_t* data, std::size_t size) {
  std::filesystem::path p = dir / name;
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return p;
}

class FuzzDir {
 public:
  FuzzDir() {
    std::error_code ec;
    std::filesystem::path base = std::filesystem::is_directory("/dev/shm", ec)
                                     ? std::filesystem::path("/dev/shm")
                                     : std::filesystem::temp_directory_path();
    path_ = base / ("graphrun-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path_);
  }
  FuzzDir(const FuzzDir&) = delete;
  FuzzDir& operator=(const FuzzDir&) = delete;
  ~FuzzDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// One folder for the whole run; a static's destructor removes it at a normal exit.
inline const std::filesystem::path& fuzz_dir() {
  static const FuzzDir dir;
  return dir.path();
}

}  // namespace graphrun::fuzz
