#include <catch2/catch.hpp>
#include <filesystem>
#include <graphrun/train/atomic_file.hpp>
#include <string>

#include "train/temp_dir.hpp"

using namespace graphrun;
using graphrun::testing::read_text;
using graphrun::testing::TempDir;
using graphrun::testing::thrown_message;

namespace {

// Anything left beside the target (a stray temporary file) other than the expected names.
std::size_t entries(const std::filesystem::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

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
               Catch::Contains(path.string()));
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
