#include <graphrun/train/atomic_file.hpp>
#include <graphrun/train/idx.hpp>
#include <graphrun/train/read_file.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace graphrun {

std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path, std::uint64_t max_bytes,
                                          std::string_view what) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) throw IoError(fmt::format("cannot read '{}': {}", path.string(), ec.message()));
  if (size > max_bytes)
    throw DataError(fmt::format("'{}': file is {} bytes, more than the {} bytes {} may hold",
                                path.string(), size, max_bytes, what));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("cannot open '{}': {}", path.string(), std::strerror(errno)));
  std::vector<std::uint8_t> bytes(size);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (static_cast<std::uint64_t>(in.gcount()) != size)
    throw IoError(
        fmt::format("cannot read '{}': got {} of its {} bytes", path.string(), in.gcount(), size));
  return bytes;
}

}  // namespace graphrun
