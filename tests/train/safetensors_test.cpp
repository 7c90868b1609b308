#include <fmt/format.h>
#include <fmt/ranges.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <graphrun/train/safetensors.hpp>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/temp_dir.hpp"

using namespace graphrun;
using graphrun::testing::TempDir;
using graphrun::testing::thrown_message;
using Bytes = std::vector<std::byte>;

namespace {

SafetensorsFile sample() {
  SafetensorsFile f;
  Tensor w(DType::f32, {3, 2});
  for (int i = 0; i < 6; ++i) w.data<float>()[i] = 0.5f * static_cast<float>(i) - 1.0f;
  Tensor b(DType::f64, {2});
  b.data<double>()[0] = 1.0 / 3.0;
  b.data<double>()[1] = -2e300;
  Tensor s(DType::f32, {});
  s.data<float>()[0] = 42.0f;
  f.tensors.emplace("enc.weight", w);
  f.tensors.emplace("enc.bias", b);
  f.tensors.emplace("step_scale", s);
  f.tensors.emplace("empty", Tensor(DType::f64, {0, 3}));
  f.metadata = {{"model", "vae"}, {"step", "1200"}, {"note", "quote \" and ünïcode"}};
  return f;
}

void check_same(const SafetensorsFile& a, const SafetensorsFile& b) {
  CHECK(a.metadata == b.metadata);
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (const auto& [name, t] : a.tensors) {
    INFO("tensor " << name);
    REQUIRE(b.tensors.count(name) == 1);
    const Tensor& u = b.tensors.at(name);
    CHECK(u.dtype() == t.dtype());
    CHECK(u.shape() == t.shape());
    REQUIRE(u.bytes() == t.bytes());
    CHECK(std::memcmp(u.raw(), t.raw(), t.bytes()) == 0);
  }
}

// A file with the given header text (unpadded) and `data` zero bytes after it.
Bytes make_file(const std::string& header, std::size_t data, std::uint64_t claimed_length = 0) {
  std::uint64_t n = claimed_length ? claimed_length : header.size();
  Bytes out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::byte>(n >> (8 * i)));
  for (char c : header) out.push_back(static_cast<std::byte>(c));
  out.resize(out.size() + data);
  return out;
}

std::string decode_error(const std::string& header, std::size_t data) {
  auto msg = thrown_message<DataError>(
      [&] { decode_safetensors(make_file(header, data), "ckpt.safetensors"); });
  CHECK_THAT(msg, Catch::StartsWith("'ckpt.safetensors': "));
  return msg;
}

std::string one(const std::string& name, const std::string& dtype, const std::string& shape,
                const std::string& offsets) {
  return fmt::format(R"("{}": {{"dtype": "{}", "shape": {}, "data_offsets": {}}})", name, dtype,
                     shape, offsets);
}

// A JSON object of the given "key": value entries.
std::string object(std::initializer_list<std::string> entries) {
  return fmt::format("{{{}}}", fmt::join(entries, ", "));
}

}  // namespace

TEST_CASE("safetensors round-trip f32, f64, scalars, empty tensors and metadata", "[safetensors]") {
  TempDir dir;
  SafetensorsFile f = sample();
  check_same(f, decode_safetensors(encode_safetensors(f), "memory"));
  save_safetensors(dir / "ckpt.safetensors", f);
  check_same(f, load_safetensors(dir / "ckpt.safetensors"));
  SECTION("a file with nothing in it") {
    SafetensorsFile none;
    Bytes bytes = encode_safetensors(none);
    CHECK(bytes.size() == 16);  // length, then "{}" padded to 8
    check_same(none, decode_safetensors(bytes, "empty"));
  }
}

TEST_CASE("safetensors byte layout follows the specification", "[safetensors]") {
  SafetensorsFile f = sample();
  Bytes bytes = encode_safetensors(f);
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | std::to_integer<std::uint64_t>(bytes[i]);
  CHECK(n % 8 == 0);
  REQUIRE(8 + n <= bytes.size());
  std::string text(reinterpret_cast<const char*>(bytes.data() + 8), n);
  CHECK(text.front() == '{');
  CHECK(text.find_last_not_of(' ') == text.rfind('}'));  // padding is spaces only
  auto header = nlohmann::json::parse(text);
  CHECK(header["__metadata__"]["step"] == "1200");
  CHECK(header["enc.weight"]["dtype"] == "F32");
  CHECK(header["enc.weight"]["shape"] == nlohmann::json::array({3, 2}));
  CHECK(header["enc.bias"]["dtype"] == "F64");
  CHECK(header["step_scale"]["shape"] == nlohmann::json::array());
  // Name order: empty (0 bytes), enc.bias (16), enc.weight (24), step_scale (4).
  CHECK(header["empty"]["data_offsets"] == nlohmann::json::array({0, 0}));
  CHECK(header["enc.bias"]["data_offsets"] == nlohmann::json::array({0, 16}));
  CHECK(header["enc.weight"]["data_offsets"] == nlohmann::json::array({16, 40}));
  CHECK(header["step_scale"]["data_offsets"] == nlohmann::json::array({40, 44}));
  REQUIRE(bytes.size() == 8 + n + 44);
  const std::byte* data = bytes.data() + 8 + n;
  float w5 = 0;
  std::memcpy(&w5, data + 16 + 5 * 4, 4);
  CHECK(w5 == 1.5f);
  double b0 = 0;
  std::memcpy(&b0, data, 8);
  CHECK(b0 == 1.0 / 3.0);
}

TEST_CASE("safetensors header length and JSON are bounded", "[safetensors]") {
  auto msg = [](const Bytes& b) {
    return thrown_message<DataError>([&] { decode_safetensors(b, "ckpt.safetensors"); });
  };
  CHECK_THAT(msg(Bytes(5)), Catch::Contains("'ckpt.safetensors'") && Catch::Contains("too short"));
  CHECK_THAT(msg(make_file("{}", 0, (16u << 20) + 1)),
             Catch::Contains("over the 16777216 byte limit"));
  CHECK_THAT(msg(make_file("{}      ", 0, 100)), Catch::Contains("runs past the end"));
  CHECK_THAT(decode_error("{\"a\": ", 0), Catch::Contains("not valid JSON"));
  CHECK_THAT(decode_error("[1, 2]", 0), Catch::Contains("not a JSON object"));
  CHECK_THAT(decode_error(fmt::format("{{\"a\": {}}}", std::string(100000, '[')), 0),
             Catch::Contains("nests deeper"));
  CHECK_THAT(decode_error("{\"a\": \"[[[[[[[[[[[[\"}", 0), Catch::Contains("tensor 'a'"));
  CHECK_THAT(decode_error("{\"x\": 3}", 0),
             Catch::Contains("tensor 'x'") && Catch::Contains("dtype, shape and data_offsets"));
}

TEST_CASE("safetensors tensor entries are validated", "[safetensors]") {
  auto check = [](const std::string& entry, std::size_t data, const std::string& expected) {
    INFO(entry);
    auto msg = decode_error(object({entry}), data);
    CHECK_THAT(msg, Catch::Contains("tensor 'w'") && Catch::Contains(expected));
  };
  check(one("w", "BF16", "[2]", "[0, 4]"), 4,
        "\"BF16\" is not supported; graphrun reads only F32 and F64");
  check(one("w", "I64", "[1]", "[0, 8]"), 8, "only F32 and F64");
  check(one("w", "F32", "[1, 1, 1, 1, 1]", "[0, 4]"), 4, "rank 5, more than the supported 4");
  check(one("w", "F32", "[-1]", "[0, 4]"), 4, "dimension 0 is -1, not a non-negative integer");
  check(one("w", "F32", "[2.5]", "[0, 4]"), 4, "dimension 0 is 2.5");
  check(one("w", "F32", "[1, 4611686018427387904]", "[0, 4]"), 4,
        "dimension 1 is 4611686018427387904, too large");
  check(one("w", "F32", "[65536, 65536, 65536, 65536]", "[0, 4]"), 4, "more than 2^48 elements");
  check(one("w", "F64", "[1000000]", "[0, 16]"), 16, "needs more than the 16 bytes");
  check(one("w", "F32", "[2]", "[0, 12]"), 12,
        "shape [2] of F32 needs 8 bytes but data_offsets [0, 12] span 12");
  check(one("w", "F32", "[2]", "[0, 8]"), 4, "data_offsets [0, 8] are out of range");
  check(one("w", "F32", "[0]", "[8, 4]"), 8, "data_offsets [8, 4] are out of range");
  check(one("w", "F32", "[2]", "[0]"), 8, "data_offsets must be [begin, end]");
  check(one("w", "F32", "[2]", "[-8, 0]"), 8, "data_offsets[0] is -8");
  check(one("w", "F32", "2", "[0, 4]"), 4, "shape must be an array");
}

TEST_CASE("safetensors offsets must tile the data region", "[safetensors]") {
  CHECK_THAT(decode_error(
                 object({one("a", "F32", "[2]", "[0, 8]"), one("b", "F32", "[2]", "[4, 12]")}), 12),
             Catch::Contains("tensor 'b' (bytes 4..12) overlaps tensor 'a' (bytes 0..8)"));
  CHECK_THAT(decode_error(
                 object({one("a", "F32", "[1]", "[0, 4]"), one("b", "F32", "[1]", "[8, 12]")}), 12),
             Catch::Contains("bytes 4..8 before tensor 'b' belong to no tensor"));
  CHECK_THAT(decode_error(object({one("a", "F32", "[1]", "[0, 4]")}), 8),
             Catch::Contains("bytes 4..8 at the end of the data region belong to no tensor"));
  CHECK_THAT(decode_error("{}", 3), Catch::Contains("bytes 0..3 at the end"));
  // Zero-sized tensors may sit anywhere on a boundary.
  auto ok =
      make_file(object({one("a", "F32", "[1]", "[0, 4]"), one("z", "F64", "[0, 7]", "[4, 4]")}), 4);
  CHECK(decode_safetensors(ok, "ok").tensors.at("z").shape() == Shape{0, 7});
}

TEST_CASE("safetensors metadata must map strings to strings", "[safetensors]") {
  CHECK_THAT(decode_error("{\"__metadata__\": {\"step\": 12}}", 0),
             Catch::Contains("__metadata__ value for 'step' is number 12") &&
                 Catch::Contains("must be strings"));
  CHECK_THAT(decode_error("{\"__metadata__\": [\"a\"]}", 0),
             Catch::Contains("__metadata__ is array, not an object"));
  auto good = decode_safetensors(make_file("{\"__metadata__\": {\"k\": \"v\"}}", 0), "good");
  CHECK(good.metadata == std::map<std::string, std::string>{{"k", "v"}});
}

TEST_CASE("load_safetensors names the file in every error", "[safetensors]") {
  TempDir dir;
  auto path = dir / "bad.safetensors";
  graphrun::testing::write_raw<std::byte>(path,
                                          make_file(object({one("w", "F16", "[1]", "[0, 2]")}), 2));
  CHECK_THAT(thrown_message<DataError>([&] { load_safetensors(path); }),
             Catch::Contains(path.string()) && Catch::Contains("tensor 'w'"));
  graphrun::testing::write_raw<std::byte>(path, make_file("{}", 0, 1000));
  CHECK_THAT(thrown_message<DataError>([&] { load_safetensors(path); }),
             Catch::Contains(path.string()) && Catch::Contains("runs past the end"));
  auto missing = dir / "missing.safetensors";
  CHECK_THAT(thrown_message<IoError>([&] { load_safetensors(missing); }),
             Catch::Contains(missing.string()));
}

TEST_CASE("encode_safetensors refuses what it cannot write", "[safetensors]") {
  SafetensorsFile f;
  f.tensors.emplace("__metadata__", Tensor(DType::f32, {1}));
  CHECK_THROWS_AS(encode_safetensors(f), std::invalid_argument);
  SafetensorsFile g;
  g.tensors.emplace("hollow", Tensor());
  CHECK_THROWS_AS(encode_safetensors(g), std::invalid_argument);
}
