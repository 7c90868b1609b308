#include <fmt/format.h>

#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <graphrun/train/atomic_file.hpp>
#include <graphrun/train/npy.hpp>
#include <limits>
#include <string>
#include <vector>

#include "fuzz/npy_check.hpp"
#include "fuzz/replay.hpp"
#include "train/temp_dir.hpp"

using namespace graphrun;
using graphrun::testing::TempDir;
using graphrun::testing::thrown_message;
using graphrun::testing::write_raw;
using Bytes = std::vector<std::uint8_t>;

namespace {

const std::filesystem::path kFixtures =
    std::filesystem::path(GRAPHRUN_SOURCE_DIR) / "tests" / "data" / "npy";

// An .npy file around `header` (the dict text), written here byte by byte as np.save lays it
// out, so the tests do not depend on the reader's idea of the format.
Bytes npy_raw(const std::string& header, const Bytes& values, int version = 1) {
  std::size_t preamble = version == 1 ? 10 : 12;
  std::string text = header;
  while ((preamble + text.size() + 1) % 64 != 0) text += ' ';
  text += '\n';
  Bytes out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<std::uint8_t>(version), 0};
  std::size_t len_bytes = version == 1 ? 2 : 4;
  for (std::size_t k = 0; k < len_bytes; ++k)
    out.push_back(static_cast<std::uint8_t>(text.size() >> (8 * k)));
  out.insert(out.end(), text.begin(), text.end());
  out.insert(out.end(), values.begin(), values.end());
  return out;
}

Bytes npy(const std::string& descr, const std::string& shape, const Bytes& values,
          int version = 1) {
  return npy_raw(
      fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr, shape),
      values, version);
}

// The bytes of v in the given byte order.
template <class T>
void put(Bytes& out, T v, bool big_endian = false) {
  std::uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  if ((std::endian::native == std::endian::big) != big_endian) std::reverse(b, b + sizeof(T));
  out.insert(out.end(), b, b + sizeof(T));
}

template <class T>
Bytes encode(std::initializer_list<T> values, bool big_endian = false) {
  Bytes out;
  for (T v : values) put(out, v, big_endian);
  return out;
}

std::string samples_error(const Bytes& file) {
  auto msg = thrown_message<DataError>([&] { parse_npy(file, "test.npy"); });
  CHECK_THAT(msg, Catch::Contains("test.npy"));
  return msg;
}

std::string labels_error(const Bytes& file) {
  auto msg = thrown_message<DataError>([&] { parse_npy_labels(file, "labels.npy"); });
  CHECK_THAT(msg, Catch::Contains("labels.npy"));
  return msg;
}

Bytes read_bytes(const std::filesystem::path& p) {
  std::string s = graphrun::testing::read_text(p);
  return {s.begin(), s.end()};
}

}  // namespace

TEST_CASE("NPY |u1 samples keep their bytes, rank 2 and rank 4", "[npy]") {
  Bytes values = {0, 1, 2, 250, 251, 255};
  SampleArray a = parse_npy(npy("|u1", "(2, 3)", values), "a.npy");
  CHECK(a.shape == std::vector<std::int64_t>{2, 3});
  CHECK(a.bytes == values);
  CHECK(a.floats.empty());
  CHECK(a.is_bytes());
  CHECK(a.labels.empty());

  Bytes pixels(2 * 3 * 4 * 5);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i);
  SampleArray images = parse_npy(npy("|u1", "(2, 3, 4, 5)", pixels), "images.npy");
  CHECK(images.shape == std::vector<std::int64_t>{2, 3, 4, 5});
  CHECK(images.count() == 2);
  CHECK(images.sample_size() == 60);
  CHECK(images.bytes == pixels);
}

TEST_CASE("NPY float32 and float64 samples, either byte order, become float32", "[npy]") {
  std::vector<float> expected = {0.5f, -1.25f, 3e38f, -1e-30f, 0.0f, 7.0f};
  for (bool big : {false, true}) {
    INFO((big ? "big-endian" : "little-endian"));
    const char* order = big ? ">" : "<";
    Bytes f4 = encode<float>({0.5f, -1.25f, 3e38f, -1e-30f, 0.0f, 7.0f}, big);
    SampleArray a = parse_npy(npy(std::string(order) + "f4", "(3, 2)", f4), "f4.npy");
    CHECK(a.shape == std::vector<std::int64_t>{3, 2});
    CHECK(a.floats == expected);
    CHECK(a.bytes.empty());
    CHECK_FALSE(a.is_bytes());

    Bytes f8 = encode<double>({0.5, -1.25, 3e38, -1e-30, 0.0, 7.0}, big);
    SampleArray b = parse_npy(npy(std::string(order) + "f8", "(3, 2)", f8), "f8.npy");
    CHECK(b.shape == std::vector<std::int64_t>{3, 2});
    CHECK(b.floats == expected);
  }
  SECTION("a float64 value finer than float32 is rounded, not refused") {
    SampleArray c = parse_npy(npy("<f8", "(1, 2)", encode<double>({0.1, 1e-50})), "fine.npy");
    CHECK(c.floats == std::vector<float>{0.1f, 0.0f});
  }
}

TEST_CASE("NPY rank-1 arrays are N samples of one feature", "[npy]") {
  SampleArray a = parse_npy(npy("<f4", "(4,)", encode<float>({1, 2, 3, 4})), "r1.npy");
  CHECK(a.shape == std::vector<std::int64_t>{4, 1});
  CHECK(a.count() == 4);
  CHECK(a.sample_size() == 1);
  CHECK(a.floats == std::vector<float>{1, 2, 3, 4});
}

TEST_CASE("NPY format versions 2.0 and 3.0 have a 4-byte header length", "[npy]") {
  for (int version : {2, 3}) {
    INFO(version);
    Bytes file = npy("|u1", "(1, 2)", {7, 8}, version);
    CHECK(file[8 + 2] == 0);  // the length's upper bytes: a 1.0 reader would misread them
    SampleArray a = parse_npy(file, "v.npy");
    CHECK(a.shape == std::vector<std::int64_t>{1, 2});
    CHECK(a.bytes == Bytes{7, 8});
  }
  CHECK_THAT(samples_error(npy("|u1", "(2,)", {1, 2}, 4)),
             Catch::Contains("version 4.0") && Catch::Contains("byte 6"));
}

TEST_CASE("NPY header dicts in every spelling numpy has written", "[npy]") {
  Bytes v = {1, 2};
  for (const char* header : {
           "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }",
           "{\"descr\": \"|u1\", \"fortran_order\": False, \"shape\": (2,)}",
           "{'shape': (2,), 'fortran_order': False, 'descr': '|u1'}",
           "{'descr':'|u1','fortran_order':False,'shape':(2L,)}",  // Python 2
           "{'descr': '<u1', 'fortran_order': False, 'shape': (2, ), }",
           "  {'descr': '|u1',\n 'fortran_order': False, 'shape': (2,)}  ",
       }) {
    INFO(header);
    SampleArray a = parse_npy(npy_raw(header, v), "h.npy");
    CHECK(a.shape == std::vector<std::int64_t>{2, 1});
    CHECK(a.bytes == v);
  }
}

TEST_CASE("NPY headers that are not np.save's dict are refused, naming the key or byte", "[npy]") {
  Bytes v = {1, 2};
  auto bad = [&](const std::string& header) { return samples_error(npy_raw(header, v)); };
  CHECK_THAT(bad("{'descr': '|u1', 'fortran_order': False, 'shape': (2,), 'extra': 1}"),
             Catch::Contains("unknown key 'extra'") && Catch::Contains("byte 66"));
  CHECK_THAT(bad("{'descr': '|u1', 'descr': '|u1', 'fortran_order': False, 'shape': (2,)}"),
             Catch::Contains("'descr' appears twice"));
  CHECK_THAT(bad("{'descr': '|u1', 'shape': (2,)}"), Catch::Contains("no 'fortran_order' key"));
  CHECK_THAT(bad("{'descr': '|u1', 'fortran_order': false, 'shape': (2,)}"),
             Catch::Contains("True or False"));
  CHECK_THAT(bad("{'descr': '|u1' 'fortran_order': False, 'shape': (2,)}"),
             Catch::Contains("expected ',' or '}' after the value of 'descr'"));
  CHECK_THAT(bad("{'descr': '|u1', 'fortran_order': False, 'shape': (2,)} x"),
             Catch::Contains("after the header dict"));
  CHECK_THAT(bad("{'descr': '|u1', 'fortran_order': False, 'shape': (2)}"),
             Catch::Contains("not a tuple"));
  CHECK_THAT(bad("{'descr': '|u1', 'fortran_order': False, 'shape': [2]}"),
             Catch::Contains("must be a tuple"));
  CHECK_THAT(bad("{'descr': '|u1', 'fortran_order': False, 'shape': (-2,)}"),
             Catch::Contains("non-negative whole number"));
  CHECK_THAT(bad("{'descr': '|u1', 'fortran_order': False, 'shape': (02,)}"),
             Catch::Contains("leading zeros"));
  CHECK_THAT(bad("{'descr': '|u\\x31', 'fortran_order': False, 'shape': (2,)}"),
             Catch::Contains("escape"));
  CHECK_THAT(bad("{'descr' '|u1', 'fortran_order': False, 'shape': (2,)}"),
             Catch::Contains("byte 19: expected ':' after key 'descr'"));
  CHECK_THAT(bad("{'descr': '|u1, 'fortran_order': False, 'shape': (2,)}"),
             Catch::Contains("byte 27: expected ',' or '}' after the value of 'descr'"));
  CHECK_THAT(bad("['descr', '|u1']"), Catch::Contains("dict"));
  CHECK_THAT(bad("{'descr': '|u1', 'fortran_order': False, 'shape': (2,)"),
             Catch::Contains("expected ',' or '}'"));
  CHECK_THAT(bad("{'descr': '|u1', 'fortran_order': False, 'shape': (99999999999999999999,)}"),
             Catch::Contains("63 bits"));
  std::string many = "(";
  for (int i = 0; i < 33; ++i) many += "1, ";
  CHECK_THAT(bad("{'descr': '|u1', 'fortran_order': False, 'shape': " + many + ")}"),
             Catch::Contains("more than 32 dimensions"));
}

TEST_CASE("NPY dtypes and layouts graphrun cannot train on are refused clearly", "[npy]") {
  Bytes eight(8);
  CHECK_THAT(samples_error(npy("<i8", "(1,)", eight)),
             Catch::Contains("'descr'") && Catch::Contains("'<i8'") &&
                 Catch::Contains("astype(np.float32)"));
  CHECK_THAT(samples_error(npy("|O", "(1,)", eight)), Catch::Contains("object"));
  CHECK_THAT(samples_error(npy("<f2", "(4,)", eight)), Catch::Contains("half"));
  CHECK_THAT(samples_error(npy("<c8", "(1,)", eight)), Catch::Contains("not supported"));
  CHECK_THAT(samples_error(npy("<U2", "(1,)", eight)), Catch::Contains("not supported"));
  CHECK_THAT(samples_error(npy("|f4", "(2,)", eight)), Catch::Contains("byte order"));
  CHECK_THAT(samples_error(npy_raw("{'descr': [('x', '<f4')], 'fortran_order': False, "
                                   "'shape': (2,)}",
                                   eight)),
             Catch::Contains("structured"));
  CHECK_THAT(samples_error(npy_raw("{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2)}",
                                   eight)),
             Catch::Contains("fortran_order") && Catch::Contains("np.ascontiguousarray"));
  CHECK_THAT(samples_error(npy("<f4", "()", Bytes(4))), Catch::Contains("single value"));
  CHECK_THAT(samples_error(npy("<f4", "(0, 3)", {})), Catch::Contains("dimension 0 is 0"));
  CHECK_THAT(samples_error(npy("<f4", "(3, 0)", {})), Catch::Contains("dimension 1 is 0"));
}

TEST_CASE("NPY sizes are checked from the header before anything is allocated", "[npy]") {
  SECTION("2^40 elements claimed by a 164-byte file") {
    Bytes file = npy("<f4", "(1099511627776,)", Bytes(36));
    CHECK(file.size() < 200);
    CHECK_THAT(samples_error(file), Catch::Contains("more than the 4294967296 bytes"));
    CHECK_THAT(labels_error(npy("|u1", "(1099511627776,)", Bytes(36))),
               Catch::Contains("more than"));
  }
  SECTION("a product that overflows 64 bits") {
    CHECK_THAT(samples_error(npy("|u1", "(4294967296, 4294967296, 4294967296)", {})),
               Catch::Contains("more than"));
  }
  SECTION("under the cap, but far more than the file holds: a truncation, not an allocation") {
    // 2^29 float32 = 2 GiB: allocating it first would be slow enough for a test to notice.
    CHECK_THAT(samples_error(npy("<f4", "(536870912,)", Bytes(4))),
               Catch::Contains("2147483648 bytes of values") &&
                   Catch::Contains("holds 4") && Catch::Contains("truncated"));
  }
  SECTION("truncated and trailing values") {
    CHECK_THAT(samples_error(npy("<f4", "(2, 2)", Bytes(15))),
               Catch::Contains("16 bytes") && Catch::Contains("holds 15") &&
                   Catch::Contains("truncated"));
    CHECK_THAT(samples_error(npy("<f4", "(2, 2)", Bytes(17))),
               Catch::Contains("1 trailing bytes"));
  }
  SECTION("a header length past the end, or beyond any real header") {
    Bytes file = npy("|u1", "(2,)", {1, 2});
    file[8] = 0xff;
    file[9] = 0xff;
    CHECK_THAT(samples_error(file), Catch::Contains("truncated"));
    Bytes v2 = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    CHECK_THAT(samples_error(v2), Catch::Contains("header length at byte 8"));
  }
  SECTION("not an .npy at all") {
    CHECK_THAT(samples_error({}), Catch::Contains("not an .npy file"));
    CHECK_THAT(samples_error({0x93, 'N', 'U', 'M', 'P', 'Y', 1}), Catch::Contains("too short"));
    CHECK_THAT(samples_error({'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0}), Catch::Contains(".npz"));
  }
}

TEST_CASE("NPY NaN, infinity and float64 beyond float32 name the element", "[npy]") {
  float nan = std::numeric_limits<float>::quiet_NaN();
  float inf = std::numeric_limits<float>::infinity();
  CHECK_THAT(samples_error(npy("<f4", "(2, 2)", encode<float>({1, 2, 3, nan}))),
             Catch::Contains("element 3 (sample 1) is NaN"));
  CHECK_THAT(samples_error(npy(">f4", "(2, 2)", encode<float>({1, -inf, 3, 4}, true))),
             Catch::Contains("element 1 (sample 0) is -inf"));
  CHECK_THAT(samples_error(npy("<f8", "(3,)", encode<double>({1, 2, 1e300}))),
             Catch::Contains("element 2 (sample 2) is 1e+300") &&
                 Catch::Contains("outside float32's range"));
  CHECK_THAT(samples_error(npy("<f8", "(1, 2)", encode<double>({0, -1e39}))),
             Catch::Contains("element 1"));
}

TEST_CASE("NPY labels from every integer dtype, booleans and whole floats", "[npy]") {
  std::vector<std::int64_t> want = {3, 0, 9, 1};
  auto check = [&](const std::string& descr, const Bytes& values) {
    INFO(descr);
    CHECK(parse_npy_labels(npy(descr, "(4,)", values), "l.npy") == want);
  };
  check("|u1", {3, 0, 9, 1});
  check("|i1", {3, 0, 9, 1});
  check("<u2", encode<std::uint16_t>({3, 0, 9, 1}));
  check("<i2", encode<std::int16_t>({3, 0, 9, 1}));
  check(">i2", encode<std::int16_t>({3, 0, 9, 1}, true));
  check("<u4", encode<std::uint32_t>({3, 0, 9, 1}));
  check("<i4", encode<std::int32_t>({3, 0, 9, 1}));
  check("<u8", encode<std::uint64_t>({3, 0, 9, 1}));
  check("<i8", encode<std::int64_t>({3, 0, 9, 1}));
  check(">u8", encode<std::uint64_t>({3, 0, 9, 1}, true));
  check("<f8", encode<double>({3, 0, 9, 1}));
  check("<f4", encode<float>({3, 0, 9, 1}));
  CHECK(parse_npy_labels(npy("|b1", "(3,)", {1, 0, 1}), "b.npy") ==
        std::vector<std::int64_t>{1, 0, 1});
  CHECK(parse_npy_labels(npy("<i8", "(4, 1)", encode<std::int64_t>({3, 0, 9, 1})), "c.npy") ==
        want);
  CHECK(parse_npy_labels(npy("<i8", "(1,)", encode<std::int64_t>({INT64_MAX})), "m.npy") ==
        std::vector<std::int64_t>{INT64_MAX});
}

TEST_CASE("NPY labels that are not class indices are refused, naming the label", "[npy]") {
  CHECK_THAT(labels_error(npy("<i8", "(3,)", encode<std::int64_t>({1, -1, 2}))),
             Catch::Contains("label 1 is -1"));
  CHECK_THAT(labels_error(npy("|i1", "(2,)", {5, 0x80})), Catch::Contains("label 1 is -128"));
  CHECK_THAT(labels_error(npy("<u8", "(1,)", encode<std::uint64_t>({1ull << 63}))),
             Catch::Contains("label 0 is 9223372036854775808"));
  CHECK_THAT(labels_error(npy("<f8", "(2,)", encode<double>({1, 2.5}))),
             Catch::Contains("label 1 is 2.5"));
  CHECK_THAT(labels_error(npy("<f4", "(2,)", encode<float>({std::nanf(""), 1}))),
             Catch::Contains("label 0 is nan"));
  CHECK_THAT(labels_error(npy("|b1", "(2,)", {1, 2})), Catch::Contains("label 1 is byte 2"));
  CHECK_THAT(labels_error(npy("<i8", "(2, 2)", Bytes(32))), Catch::Contains("(N,) or (N, 1)"));
  CHECK_THAT(labels_error(npy("|O", "(2,)", Bytes(16))), Catch::Contains("labels must be"));
}

TEST_CASE("read_npy and read_npy_labels read files the same as from memory", "[npy]") {
  TempDir dir;
  Bytes samples = npy("<f4", "(2, 1, 2)", encode<float>({1, 2, 3, 4}));
  write_raw<std::uint8_t>(dir / "x.npy", samples);
  SampleArray a = read_npy(dir / "x.npy");
  CHECK(a.shape == std::vector<std::int64_t>{2, 1, 2});
  CHECK(a.floats == std::vector<float>{1, 2, 3, 4});
  write_raw<std::uint8_t>(dir / "y.npy", npy("<i4", "(2,)", encode<std::int32_t>({4, 2})));
  CHECK(read_npy_labels(dir / "y.npy") == std::vector<std::int64_t>{4, 2});

  Bytes truncated(samples.begin(), samples.end() - 1);
  write_raw<std::uint8_t>(dir / "t.npy", truncated);
  CHECK_THAT(thrown_message<DataError>([&] { read_npy(dir / "t.npy"); }),
             Catch::Contains((dir / "t.npy").string()) && Catch::Contains("truncated"));
  CHECK_THAT(thrown_message<IoError>([&] { read_npy(dir / "missing.npy"); }),
             Catch::Contains("missing.npy"));
  CHECK_THAT(thrown_message<IoError>([&] { read_npy_labels(dir / "missing.npy"); }),
             Catch::Contains("missing.npy"));
}

TEST_CASE("NPZ archives from np.savez and np.savez_compressed", "[npy]") {
  for (const char* file : {"savez.npz", "savez_compressed.npz"}) {
    INFO(file);
    auto path = kFixtures / file;
    auto names = npz_names(path);
    std::sort(names.begin(), names.end());
    CHECK(names == std::vector<std::string>{"pixels", "x", "y"});

    SampleArray x = read_npz_array(path, "x");
    CHECK(x.shape == std::vector<std::int64_t>{3, 4});
    std::vector<float> want(12);
    for (int i = 0; i < 12; ++i) want[i] = static_cast<float>(i) / 4;
    CHECK(x.floats == want);
    CHECK(read_npz_array(path, "x.npy").floats == want);

    SampleArray pixels = read_npz_array(path, "pixels");
    CHECK(pixels.shape == std::vector<std::int64_t>{3, 2, 2, 2});
    CHECK(pixels.bytes.size() == 24);
    CHECK(pixels.bytes[23] == 23);

    CHECK(read_npz_labels(path, "y") == std::vector<std::int64_t>{2, 0, 1});

    Bytes archive = read_bytes(path);
    CHECK(parse_npz_names(archive, file).size() == 3);
    CHECK(parse_npz_array(archive, file, "x").floats == want);
    CHECK(parse_npz_labels(archive, file, "y") == std::vector<std::int64_t>{2, 0, 1});
  }
}

TEST_CASE("NPZ errors name the archive and the member", "[npy]") {
  auto stored = kFixtures / "savez.npz";
  Bytes archive = read_bytes(stored);
  auto error = [](const Bytes& bytes, const char* array) {
    return thrown_message<DataError>([&] { parse_npz_array(bytes, "a.npz", array); });
  };
  SECTION("a missing array lists the arrays there are") {
    CHECK_THAT(thrown_message<DataError>([&] { read_npz_array(stored, "z"); }),
               Catch::Contains(stored.string()) && Catch::Contains("no array 'z'") &&
                   Catch::Contains("'x'") && Catch::Contains("'pixels'"));
  }
  SECTION("wrong dtype for the purpose") {
    CHECK_THAT(error(archive, "y"), Catch::Contains("a.npz/y.npy") && Catch::Contains("'<i8'"));
    CHECK_THAT(thrown_message<DataError>([&] { parse_npz_labels(archive, "a.npz", "pixels"); }),
               Catch::Contains("a.npz/pixels.npy") && Catch::Contains("(N,) or (N, 1)"));
  }
  SECTION("a member that is not .npy") {
    auto path = kFixtures / "text_member.npz";
    CHECK(npz_names(path) == std::vector<std::string>{"x"});
    CHECK_THAT(thrown_message<DataError>([&] { read_npz_array(path, "notes.txt"); }),
               Catch::Contains("'notes.txt' is not an .npy array"));
  }
  SECTION("a corrupted value fails the CRC") {
    // The last float of x: its stored bytes end just before the next member's local header.
    Bytes bad = archive;
    std::size_t x_at = 0;
    for (std::size_t i = 0; i + 5 < bad.size(); ++i)
      if (std::memcmp(&bad[i], "x.npy", 5) == 0) {
        x_at = i;
        break;
      }
    REQUIRE(x_at > 0);
    std::size_t values = x_at;
    for (std::size_t i = x_at; i + 6 < bad.size(); ++i)
      if (bad[i] == '\n' && bad[i - 1] == ' ') {
        values = i + 1;  // the end of x's .npy header
        break;
      }
    REQUIRE(values > x_at);
    bad[values + 5] ^= 0x40;
    CHECK_THAT(error(bad, "x"), Catch::Contains("a.npz/x.npy") && Catch::Contains("CRC"));
  }
  SECTION("a directory entry that claims 2 GiB is refused before reading") {
    Bytes bad = read_bytes(kFixtures / "savez_compressed.npz");
    int patched = 0;
    for (std::size_t i = 0; i + 46 < bad.size(); ++i)
      if (bad[i] == 'P' && bad[i + 1] == 'K' && bad[i + 2] == 1 && bad[i + 3] == 2) {
        bad[i + 24] = bad[i + 25] = bad[i + 26] = 0xff;  // uncompressed size, 32-bit field
        bad[i + 27] = 0x7f;
        ++patched;
      }
    REQUIRE(patched == 3);
    // libzip's consistency check (local header against directory) catches it first; graphrun's
    // own size checks stand behind it.
    CHECK_THAT(thrown_message<DataError>([&] { parse_npz_array(bad, "a.npz", "x"); }),
               Catch::Contains("a.npz") && Catch::Contains("inconsistent"));
  }
  SECTION("truncated, not a zip, empty") {
    Bytes cut(archive.begin(), archive.begin() + static_cast<std::ptrdiff_t>(archive.size() / 2));
    CHECK_THAT(thrown_message<DataError>([&] { parse_npz_names(cut, "a.npz"); }),
               Catch::Contains("a.npz"));
    Bytes text = {'h', 'e', 'l', 'l', 'o'};
    CHECK_THAT(thrown_message<DataError>([&] { parse_npz_names(text, "a.npz"); }),
               Catch::Contains("not a readable .npz"));
    CHECK_THAT(error({}, "x"), Catch::Contains("a.npz"));
  }
  SECTION("a file that cannot be read is IoError") {
    TempDir dir;
    CHECK_THAT(thrown_message<IoError>([&] { npz_names(dir / "none.npz"); }),
               Catch::Contains("none.npz"));
    CHECK_THAT(thrown_message<IoError>([&] { read_npz_array(dir / "none.npz", "x"); }),
               Catch::Contains("none.npz"));
  }
}

TEST_CASE("fuzz inputs for NPY and NPZ are refused cleanly or read consistently", "[npy][fuzz]") {
  graphrun::fuzz::replay("fuzz_npy", graphrun::fuzz::check_npy);
}
