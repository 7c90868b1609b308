#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <graphrun/train/atomic_file.hpp>
#include <string>

#include "train/temp_dir.hpp"

using namespace graphrun;
using graphrun::testing::read_text;
using graphrun::testing::TempDir;
using graphrun::testing::thrown_message;
using graphrun::testing::write_raw;

namespace {

// Anything left beside the target (a stray temporary file) other than the expected names.
std::size_t entries(const std::filesystem::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

// Until the end of the scope, this process's writes past `bytes` fail with EFBIG (SIGXFSZ
// ignored), the way writes to a full disk fail with ENOSPC.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved_) == 0);
    rlimit lower = saved_;
    lower.rlim_cur = bytes;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &lower) == 0);
    handler_ = std::signal(SIGXFSZ, SIG_IGN);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, handler_);
  }

 private:
  rlimit saved_{};
  void (*handler_)(int) = SIG_DFL;
};

}  // namespace

TEST_CASE("write_file_atomic writes and replaces", "[atomic]") {
  TempDir dir;
  auto path = dir / "metrics.json";
  write_file_atomic(path, std::string_view("first"));
  CHECK(read_text(path) == "first");
  write_file_atomic(path, std::string_view("second, longer"));
  CHECK(read_text(path) == "second, longer");
  write_file_atomic(path, std::string_view(""));
  CHECK(read_text(path).empty());
  CHECK(entries(dir.path()) == 1);  // no temporary file left behind
  std::vector<std::byte> bytes = {std::byte{0}, std::byte{0xff}, std::byte{10}};
  write_file_atomic(path, bytes);
  CHECK(read_text(path) == std::string("\0\xff\n", 3));
}

TEST_CASE("write_file_atomic creates missing folders", "[atomic]") {
  TempDir dir;
  auto path = dir / "runs/vae/ckpt.safetensors";
  write_file_atomic(path, std::string_view("x"));
  CHECK(read_text(path) == "x");
}

TEST_CASE("write_file_atomic failures throw IoError and keep the previous file", "[atomic]") {
  TempDir dir;
  // Tests run as root, which ignores permission bits; a regular file used as a folder fails for
  // everyone.
  auto blocker = dir / "plain-file";
  write_file_atomic(blocker, std::string_view("keep me"));
  SECTION("target under a regular file") {
    auto path = blocker / "ckpt.safetensors";
    CHECK_THAT(thrown_message<IoError>([&] { write_file_atomic(path, std::string_view("new")); }),
               Catch::Contains(path.string()) &&
                   Catch::Contains("cannot create the folder '" + blocker.string() + "'") &&
                   Catch::Contains("Not a directory"));
    CHECK(read_text(blocker) == "keep me");
  }
  SECTION("target is a folder: the rename fails, the folder and its content survive") {
    auto target = dir / "busy";
    std::filesystem::create_directories(target / "inside");
    CHECK_THAT(thrown_message<IoError>([&] { write_file_atomic(target, std::string_view("new")); }),
               Catch::Contains(target.string()) && Catch::Contains("rename"));
    CHECK(std::filesystem::is_directory(target / "inside"));
    CHECK(entries(dir.path()) == 2);  // the temporary file was removed
  }
  CHECK(read_text(blocker) == "keep me");
}

TEST_CASE("write_file_atomic on a full disk names the file and the reason and keeps the old one",
          "[atomic]") {
  TempDir dir;
  auto path = dir / "ckpt.safetensors";
  write_file_atomic(path, std::string_view("previous"));
  const std::string bigger(256 * 1024, 'x');
  std::string message;
  {
    FileSizeLimit limit(64 * 1024);  // checks come after it ends: a report must not hit it
    try {
      write_file_atomic(path, bigger);
    } catch (const IoError& e) {
      message = e.what();
    }
  }
  CHECK_THAT(message, Catch::Contains(path.string()) && Catch::Contains("write failed") &&
                          Catch::Contains("file too large"));
  CHECK(read_text(path) == "previous");
  CHECK(entries(dir.path()) == 1);  // its temporary file is gone
}

TEST_CASE("write_file_atomic removes the temporary files that killed writers left", "[atomic]") {
  TempDir dir;
  auto path = dir / "ckpt.safetensors";
  // No process has a pid above pid_max.
  long pid_max = 4194304;
  std::ifstream("/proc/sys/kernel/pid_max") >> pid_max;
  const std::string dead = std::to_string(pid_max + 1);
  const std::string stale = "ckpt.safetensors.tmp." + dead;
  const std::vector<std::string> kept = {
      "ckpt.safetensors.tmp.1",         // pid 1 is alive: its write may be under way
      "ckpt.safetensors.tmp.0",         // no pid: kill(0) would mean the process group
      "ckpt.safetensors.tmp.x" + dead,  // not ours
      "other.safetensors.tmp." + dead,  // another file's: its own next write removes it
  };
  for (const auto& name : kept) write_raw(dir / name, std::span<const char>("part", 4));
  write_raw(dir / stale, std::span<const char>("part", 4));
  write_file_atomic(path, std::string_view("whole"));
  CHECK(read_text(path) == "whole");
  CHECK_FALSE(std::filesystem::exists(dir / stale));
  for (const auto& name : kept) {
    INFO(name);
    CHECK(std::filesystem::exists(dir / name));
  }
}
