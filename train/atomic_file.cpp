#include <graphrun/train/atomic_file.hpp>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fmt/format.h>
#include <string>
#include <system_error>

namespace graphrun {
namespace {

namespace fs = std::filesystem;

std::string reason(int err) {
  if (err == ENOSPC) return "disk full (no space left on device)";
  if (err == EDQUOT) return "disk quota exceeded";
  // strerror's "File too large" hides that the limit is the process's, not the disk's.
  if (err == EFBIG) return "file too large (over the file size limit, see ulimit -f)";
  return std::strerror(err);
}

[[noreturn]] void fail(const fs::path& path, std::string_view what, int err) {
  throw IoError(fmt::format("cannot write '{}': {} failed: {}", path.string(), what, reason(err)));
}

// A process killed between open and rename leaves its temporary file behind, under a name that
// no later write reuses (the pid differs). Those of processes that no longer exist are removed
// here, before the write, so repeated crashes neither pile up files nor keep the space that a
// nearly full disk needs. A live writer's file, or one we cannot judge, is left alone.
void remove_stale_temporaries(const fs::path& path) {
  const std::string prefix = path.filename().string() + ".tmp.";
  const auto parent = path.parent_path();
  std::error_code ec;
  fs::directory_iterator it(parent.empty() ? fs::path(".") : parent, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const char* first = name.data() + prefix.size();
    const char* last = name.data() + name.size();
    pid_t pid = 0;
    auto [end, err] = std::from_chars(first, last, pid);
    if (err != std::errc() || end != last || *first < '1' || *first > '9' || pid == ::getpid())
      continue;
    if (::kill(pid, 0) == 0 || errno != ESRCH) continue;
    std::error_code ignored;  // best effort: a leftover never stops a write
    fs::remove(it->path(), ignored);
  }
}

}  // namespace

void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  auto parent = path.parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec)
      throw IoError(fmt::format("cannot write '{}': cannot create the folder '{}': {}",
                                path.string(), parent.string(), reason(ec.value())));
  }
  remove_stale_temporaries(path);
  auto tmp = path;
  tmp += fmt::format(".tmp.{}", static_cast<long>(::getpid()));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, "open", errno);
  auto abandon = [&](std::string_view what, int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    fail(path, what, err);
  };
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      abandon("write", errno);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) abandon("fsync", errno);
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail(path, "close", err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail(path, "rename", err);
  }
  // Make the rename itself durable; a failure here does not lose data, so it is not an error.
  int dir = ::open(parent.empty() ? "." : parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

void write_file_atomic(const std::filesystem::path& path, std::string_view text) {
  write_file_atomic(path, std::as_bytes(std::span(text.data(), text.size())));
}

}  // namespace graphrun
