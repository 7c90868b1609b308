// Files whose headers claim absurd sizes are refused before anything that size is allocated, with
// a message naming the file. Each read runs in a forked child whose address space may grow by
// only kHeadroom beyond what it has (RLIMIT_AS, relative, so it works under the sanitizers' huge
// reservations too): an allocation of the claimed size would fail there and the test with it.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <graphrun/train/idx.hpp>
#include <graphrun/train/safetensors.hpp>
#include <filesystem>
#include <new>
#include <span>
#include <string>
#include <vector>

#include "train/idx_fixtures.hpp"
#include "train/temp_dir.hpp"

using namespace graphrun;
using graphrun::testing::gzip;
using graphrun::testing::idx_header;
using graphrun::testing::TempDir;
using graphrun::testing::write_raw;
using Bytes = std::vector<std::uint8_t>;

namespace {

constexpr std::uint64_t kHeadroom = std::uint64_t{192} << 20;

std::uint64_t virtual_size() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmSize:", 0) == 0) return std::stoull(line.substr(7)) * 1024;  // in kB
  return 0;
}

// Runs f in a child limited to kHeadroom more address space; returns "DataError: <message>",
// "accepted", "bad_alloc", "other exception: <what>" or how the child died.
template <class F>
std::string run_capped(F&& f) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    std::string out;
    rlimit cap{virtual_size() + kHeadroom, RLIM_INFINITY};
    if (cap.rlim_cur == kHeadroom || ::setrlimit(RLIMIT_AS, &cap) != 0) {
      out = "cannot limit the address space";
    } else {
      try {
        f();
        out = "accepted";
      } catch (const DataError& e) {
        out = std::string("DataError: ") + e.what();
      } catch (const std::bad_alloc&) {
        out = "bad_alloc";
      } catch (const std::exception& e) {
        out = std::string("other exception: ") + e.what();
      }
    }
    [[maybe_unused]] auto n = ::write(fds[1], out.data(), out.size());
    ::_exit(0);  // no atexit handlers, no Catch session teardown in the child
  }
  ::close(fds[1]);
  std::string got;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
    got.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return "child killed by signal " + std::to_string(WTERMSIG(status));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return "child exited with " + std::to_string(WEXITSTATUS(status)) + ": " + got;
  return got;
}

Bytes safetensors_file(const std::string& header, std::uint64_t claimed_length, std::size_t data) {
  Bytes out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(claimed_length >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.resize(out.size() + data);
  return out;
}

}  // namespace

TEST_CASE("an IDX file claiming 2^31 images is refused before allocation", "[idx][hostile]") {
  TempDir dir;
  Bytes header = idx_header(8, {1u << 31, 28, 28});
  for (bool compressed : {false, true}) {
    auto path = dir / (compressed ? "huge-images-idx3-ubyte.gz" : "huge-images-idx3-ubyte");
    write_raw<std::uint8_t>(path, compressed ? gzip(header) : header);
    INFO(path.string());
    std::string got = run_capped([&] { read_idx(path); });
    CHECK_THAT(got, Catch::StartsWith("DataError: '" + path.string() + "'"));
    CHECK_THAT(got, Catch::Contains("2147483648x28x28"));
  }
  std::string got = run_capped([&] { parse_idx(header, "in-memory.idx"); });
  CHECK_THAT(got, Catch::StartsWith("DataError: 'in-memory.idx'"));
}

TEST_CASE("a gzip IDX file claiming 2 GiB but holding little allocates little", "[idx][hostile]") {
  TempDir dir;
  // 2739137 images of 28x28 (2147483408 bytes) is just under the 2 GiB cap; the stream stops
  // after 4 KiB.
  Bytes raw = idx_header(8, {2739137, 28, 28});
  raw.resize(raw.size() + 4096, 0x7f);
  auto path = dir / "short.idx.gz";
  write_raw<std::uint8_t>(path, gzip(raw));
  std::string got = run_capped([&] { read_idx(path); });
  CHECK_THAT(got, Catch::StartsWith("DataError: '" + path.string() + "'"));
  CHECK_THAT(got, Catch::Contains("holds 4096"));
}

TEST_CASE("a gzip bomb under an IDX header stops at the claimed size", "[idx][hostile]") {
  TempDir dir;
  // The header claims 1000 images (784000 bytes); 512 gzip members of 1 MiB of zeros follow, which
  // would be 512 MiB if decompressed whole. Reading must stop one byte past the claim.
  Bytes member = gzip(Bytes(std::size_t{1} << 20, 0));
  Bytes raw = idx_header(8, {1000, 28, 28});
  raw.resize(raw.size() + (std::size_t{1} << 20), 0);
  Bytes file = gzip(raw);
  for (int i = 0; i < 511; ++i) file.insert(file.end(), member.begin(), member.end());
  auto path = dir / "bomb.idx.gz";
  write_raw<std::uint8_t>(path, file);
  std::string got = run_capped([&] { read_idx(path); });
  CHECK_THAT(got, Catch::StartsWith("DataError: '" + path.string() + "'"));
  CHECK_THAT(got, Catch::Contains("trailing bytes"));
}

TEST_CASE("a safetensors header claiming a 2^40-byte tensor is refused before allocation",
          "[safetensors][hostile]") {
  TempDir dir;
  std::string header =
      R"({"w": {"dtype": "F32", "shape": [274877906944], "data_offsets": [0, 1099511627776]}})";
  auto path = dir / "huge-tensor.safetensors";
  Bytes file = safetensors_file(header, header.size(), 16);
  write_raw<std::uint8_t>(path, file);
  std::string got = run_capped([&] { load_safetensors(path); });
  CHECK_THAT(got, Catch::StartsWith("DataError: '" + path.string() + "': tensor 'w'"));
  got = run_capped([&] { decode_safetensors(std::as_bytes(std::span(file)), "in-memory"); });
  CHECK_THAT(got, Catch::StartsWith("DataError: 'in-memory': tensor 'w'"));
  // The same shape with offsets that fit the file is refused too: the shape needs 2^40 bytes.
  header = R"({"w": {"dtype": "F32", "shape": [274877906944], "data_offsets": [0, 16]}})";
  write_raw<std::uint8_t>(path, safetensors_file(header, header.size(), 16));
  got = run_capped([&] { load_safetensors(path); });
  CHECK_THAT(got, Catch::StartsWith("DataError: '" + path.string() + "': tensor 'w'"));
}

TEST_CASE("a safetensors file claiming a 2 GiB JSON header is refused before reading it",
          "[safetensors][hostile]") {
  TempDir dir;
  auto path = dir / "huge-header.safetensors";
  // The length says 2 GiB and the file really is that long (sparse: it costs no disk).
  write_raw<std::uint8_t>(path, safetensors_file("{", std::uint64_t{1} << 31, 0));
  std::filesystem::resize_file(path, (std::uint64_t{1} << 31) + 8);
  std::string got = run_capped([&] { load_safetensors(path); });
  CHECK_THAT(got, Catch::StartsWith("DataError: '" + path.string() + "': header length "
                                    "2147483648 is over the 16777216 byte limit"));
}
