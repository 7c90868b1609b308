#include <catch2/catch.hpp>
#include <cstdint>
#include <graphrun/train/atomic_file.hpp>
#include <graphrun/train/idx.hpp>
#include <vector>

#include "train/idx_fixtures.hpp"
#include "train/temp_dir.hpp"

using namespace graphrun;
using graphrun::testing::gzip;
using graphrun::testing::idx_header;
using graphrun::testing::TempDir;
using graphrun::testing::thrown_message;
using graphrun::testing::write_raw;
using Bytes = std::vector<std::uint8_t>;

namespace {

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes iota_bytes(std::size_t n) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 7);
  return b;
}

// The message read_idx gives for a file holding exactly `bytes`.
std::string read_error(const TempDir& dir, const std::string& name, const Bytes& bytes) {
  auto path = dir / name;
  write_raw<std::uint8_t>(path, bytes);
  auto msg = thrown_message<DataError>([&] { read_idx(path); });
  CHECK_THAT(msg, Catch::Contains(path.string()));
  return msg;
}

}  // namespace

TEST_CASE("IDX files round-trip, plain and gzip-compressed", "[idx]") {
  TempDir dir;
  std::vector<std::int64_t> dims = {3, 2, 4};
  Bytes data = iota_bytes(24);
  for (bool gz : {false, true}) {
    auto path = dir / (gz ? "images.gz" : "images");
    write_idx(path, dims, data, gz);
    auto raw = graphrun::testing::read_text(path);
    CHECK((raw.size() >= 2 && raw[0] == '\x1f' && raw[1] == '\x8b') == gz);
    IdxArray back = read_idx(path);
    CHECK(back.dims == dims);
    CHECK(back.data == data);
  }
  SECTION("1-D labels, and gzip detected by content, not by name") {
    std::vector<std::int64_t> label_dims = {5};
    Bytes labels = {9, 0, 3, 3, 7};
    write_idx(dir / "labels.idx", label_dims, labels, true);
    IdxArray back = read_idx(dir / "labels.idx");
    CHECK(back.dims == label_dims);
    CHECK(back.data == labels);
  }
  SECTION("a gzip file of several members, as `cat a.gz b.gz` makes") {
    Bytes whole = concat(idx_header(8, {2, 3}), iota_bytes(6));
    Bytes first(whole.begin(), whole.begin() + 9), second(whole.begin() + 9, whole.end());
    write_raw<std::uint8_t>(dir / "two-members.gz", concat(gzip(first), gzip(second)));
    CHECK(read_idx(dir / "two-members.gz").data == iota_bytes(6));
  }
}

TEST_CASE("parse_idx reads a buffer and names it in errors", "[idx]") {
  Bytes file = concat(idx_header(8, {2, 2}), {1, 2, 3, 255});
  IdxArray a = parse_idx(file, "buffer");
  CHECK(a.dims == std::vector<std::int64_t>{2, 2});
  CHECK(a.data == Bytes{1, 2, 3, 255});
  CHECK_THAT(thrown_message<DataError>([&] { parse_idx(gzip(file), "buf.gz"); }),
             Catch::Contains("'buf.gz'") && Catch::Contains("gzip"));
}

TEST_CASE("malformed IDX headers are rejected with the file's name", "[idx]") {
  TempDir dir;
  CHECK_THAT(read_error(dir, "magic", {1, 0, 8, 1, 0, 0, 0, 1, 0}),
             Catch::Contains("not an IDX file"));
  CHECK_THAT(
      read_error(dir, "float", concat(idx_header(0x0D, {1}), {0, 0, 0, 0})),
      Catch::Contains("0x0d") && Catch::Contains("32-bit floats") && Catch::Contains("only 0x08"));
  CHECK_THAT(read_error(dir, "rank0", {0, 0, 8, 0}), Catch::Contains("0 dimensions"));
  CHECK_THAT(read_error(dir, "rank5", concat(idx_header(8, {1, 1, 1, 1, 1}), {0})),
             Catch::Contains("5 dimensions"));
  CHECK_THAT(read_error(dir, "zero-dim", idx_header(8, {4, 0})),
             Catch::Contains("dimension 1 of the IDX header is 0"));
  CHECK_THAT(read_error(dir, "tiny", {0, 0}), Catch::Contains("too short"));
  CHECK_THAT(read_error(dir, "empty", {}), Catch::Contains("0 bytes"));
  CHECK_THAT(read_error(dir, "cut-header", {0, 0, 8, 3, 0, 0, 0, 1}),
             Catch::Contains("too short for its 3-dimensional IDX header (16 bytes)"));
}

TEST_CASE("IDX sizes that disagree with the header are rejected", "[idx]") {
  TempDir dir;
  SECTION("truncated values") {
    auto msg = read_error(dir, "train-images-idx3-ubyte",
                          concat(idx_header(8, {60000, 28, 28}), Bytes(1000)));
    CHECK_THAT(msg, Catch::EndsWith("train-images-idx3-ubyte': header claims 60000x28x28 = "
                                    "47040000 bytes of pixels but the file holds 1000"));
  }
  SECTION("trailing bytes") {
    CHECK_THAT(read_error(dir, "labels", concat(idx_header(8, {4}), Bytes(7))),
               Catch::Contains("4 bytes of labels but the file holds 7 (3 trailing bytes)"));
  }
  SECTION("a header claiming 2^31 images is refused before any allocation") {
    auto msg = read_error(dir, "huge", concat(idx_header(8, {1u << 31, 28, 28}), Bytes(16)));
    CHECK_THAT(msg, Catch::Contains("2147483648x28x28") &&
                        Catch::Contains("more than the 2147483648 bytes"));
    // Four maximal dimensions would overflow a 64-bit product; the cap is checked step by step.
    CHECK_THAT(read_error(dir, "max", idx_header(8, {~0u, ~0u, ~0u, ~0u})),
               Catch::Contains("more than the 2147483648 bytes"));
  }
  SECTION("exactly 2^31 labels pass the cap and fail on the real size") {
    CHECK_THAT(read_error(dir, "cap", concat(idx_header(8, {1u << 31}), Bytes(5))),
               Catch::Contains("2147483648 bytes of labels but the file holds 5"));
  }
}

TEST_CASE("broken gzip IDX files are rejected with the file's name", "[idx]") {
  TempDir dir;
  Bytes good = gzip(concat(idx_header(8, {100, 10}), iota_bytes(1000)));
  SECTION("truncated stream") {
    Bytes cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() / 2));
    CHECK_THAT(read_error(dir, "cut.gz", cut), Catch::Contains("gzip data is truncated"));
  }
  SECTION("corrupt stream") {
    Bytes bad = good;
    bad.resize(bad.size() - 4);  // drop the length field and corrupt the CRC
    bad.insert(bad.end(), {0xde, 0xad, 0xbe, 0xef});
    CHECK_THAT(read_error(dir, "crc.gz", bad), Catch::Contains("corrupt gzip data"));
  }
  SECTION("garbage after the gzip member") {
    CHECK_THAT(read_error(dir, "junk.gz", concat(good, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10})),
               Catch::Contains("corrupt gzip data"));
  }
  SECTION("sizes that disagree inside the gzip") {
    CHECK_THAT(read_error(dir, "short.gz", gzip(concat(idx_header(8, {10, 10}), Bytes(60)))),
               Catch::Contains("header claims 10x10 = 100 bytes of pixels but the file holds 60"));
    CHECK_THAT(read_error(dir, "long.gz", gzip(concat(idx_header(8, {10}), Bytes(11)))),
               Catch::Contains("runs past the 10 bytes of labels"));
  }
  SECTION("a gzip bomb stops at the size its header claims") {
    // 64 MiB of zeros compress to about 64 KiB; only the 4 claimed bytes (+1) are inflated.
    Bytes bomb = gzip(concat(idx_header(8, {2, 2}), Bytes(std::size_t{64} << 20)));
    CHECK(bomb.size() < (std::size_t{1} << 20));
    CHECK_THAT(read_error(dir, "bomb.gz", bomb), Catch::Contains("trailing bytes"));
    CHECK_THAT(read_error(dir, "capped.gz", gzip(concat(idx_header(8, {1u << 31, 2}), Bytes(8)))),
               Catch::Contains("more than the 2147483648 bytes"));
  }
  SECTION("gzip of a bad header") {
    CHECK_THAT(read_error(dir, "magic.gz", gzip({7, 7, 8, 1, 0, 0, 0, 1, 0})),
               Catch::Contains("not an IDX file"));
  }
}

TEST_CASE("read_idx on a missing file throws IoError naming it", "[idx]") {
  TempDir dir;
  auto path = dir / "nope-idx1-ubyte";
  CHECK_THAT(thrown_message<IoError>([&] { read_idx(path); }), Catch::Contains(path.string()));
}

TEST_CASE("write_idx refuses dims that disagree with the data", "[idx]") {
  TempDir dir;
  Bytes data(6);
  std::vector<std::int64_t> wrong = {4, 2}, empty = {}, zero = {0, 6};
  CHECK_THROWS_AS(write_idx(dir / "a", wrong, data, false), std::invalid_argument);
  CHECK_THROWS_AS(write_idx(dir / "b", empty, data, false), std::invalid_argument);
  CHECK_THROWS_AS(write_idx(dir / "c", zero, data, false), std::invalid_argument);
  CHECK_FALSE(std::filesystem::exists(dir / "a"));
}
