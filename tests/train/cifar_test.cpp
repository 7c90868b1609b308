#include <catch2/catch.hpp>
#include <cstdint>
#include <graphrun/train/cifar.hpp>
#include <string>
#include <vector>

#include "fuzz/cifar_check.hpp"
#include "fuzz/replay.hpp"
#include "train/temp_dir.hpp"

using namespace graphrun;
using graphrun::testing::TempDir;
using graphrun::testing::thrown_message;
using graphrun::testing::write_raw;
using Bytes = std::vector<std::uint8_t>;

namespace {

// One record: the label, then red, green and blue planes whose bytes encode (seed, channel, y, x)
// so a misplaced byte shows.
Bytes record(std::uint8_t label, int seed) {
  Bytes r = {label};
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) r.push_back(static_cast<std::uint8_t>(seed * 7 + c * 50 + y + x));
  return r;
}

Bytes batch(std::initializer_list<std::uint8_t> labels, int seed) {
  Bytes out;
  for (auto l : labels) {
    Bytes r = record(l, seed++);
    out.insert(out.end(), r.begin(), r.end());
  }
  return out;
}

const std::vector<std::string> kStandard = {"airplane", "automobile", "bird",  "cat",  "deer",
                                            "dog",      "frog",       "horse", "ship", "truck"};

}  // namespace

TEST_CASE("CIFAR-10 records become [N, 3, 32, 32] bytes and labels", "[cifar]") {
  Bytes b = batch({6, 9, 0}, 1);
  SampleArray a = parse_cifar_batch(b, "data_batch_1.bin");
  CHECK(a.shape == std::vector<std::int64_t>{3, 3, 32, 32});
  CHECK(a.labels == std::vector<std::int64_t>{6, 9, 0});
  CHECK(a.class_names == kStandard);
  REQUIRE(a.bytes.size() == 3 * 3072);
  CHECK(a.floats.empty());
  // Sample 1, green plane, row 4, column 5: channel-planar, as in the file.
  CHECK(a.bytes[1 * 3072 + 1 * 1024 + 4 * 32 + 5] == static_cast<std::uint8_t>(2 * 7 + 50 + 9));
  CHECK(a.bytes[0] == b[1]);
  CHECK(a.bytes[3 * 3072 - 1] == b.back());
}

TEST_CASE("CIFAR-10 batches that are not whole records with labels 0..9 are refused", "[cifar]") {
  auto error = [](const Bytes& b) {
    auto msg = thrown_message<DataError>([&] { parse_cifar_batch(b, "batch.bin"); });
    CHECK_THAT(msg, Catch::Contains("batch.bin"));
    return msg;
  };
  CHECK_THAT(error({}), Catch::Contains("empty"));
  Bytes b = batch({1, 2}, 0);
  b.resize(b.size() - 100);
  CHECK_THAT(error(b), Catch::Contains("6046 bytes are 1 whole CIFAR-10 records") &&
                           Catch::Contains("2973 bytes over"));
  CHECK_THAT(error(batch({1, 2, 10}, 0)),
             Catch::Contains("record 2 (byte 6146) has label 10") && Catch::Contains("CIFAR-100"));
  Bytes extra = batch({1}, 0);
  extra.push_back(0);
  CHECK_THAT(error(extra), Catch::Contains("1 bytes over"));
}

TEST_CASE("read_cifar10 joins the training batches in order and reads the test batch", "[cifar]") {
  TempDir dir;
  write_raw<std::uint8_t>(dir / "data_batch_1.bin", batch({1, 2}, 0));
  write_raw<std::uint8_t>(dir / "data_batch_2.bin", batch({3}, 10));
  write_raw<std::uint8_t>(dir / "test_batch.bin", batch({4, 5, 6}, 20));
  CHECK(is_cifar10_folder(dir.path()));
  Cifar10 set = read_cifar10(dir.path());
  CHECK(set.train.shape == std::vector<std::int64_t>{3, 3, 32, 32});
  CHECK(set.train.labels == std::vector<std::int64_t>{1, 2, 3});
  CHECK(set.train.bytes.size() == 3 * 3072);
  CHECK(set.train.bytes[2 * 3072] == record(3, 10)[1]);
  CHECK(set.test.labels == std::vector<std::int64_t>{4, 5, 6});
  CHECK(set.train.class_names == kStandard);
  CHECK(set.test.class_names == kStandard);

  SECTION("class names from batches.meta.txt") {
    std::string meta = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n";
    write_raw<char>(dir / "batches.meta.txt", meta);
    Cifar10 named = read_cifar10(dir.path());
    CHECK(named.train.class_names ==
          std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"});
    CHECK(named.test.class_names == named.train.class_names);
    write_raw<char>(dir / "batches.meta.txt", std::string("a\nb\n"));
    CHECK_THAT(thrown_message<DataError>([&] { read_cifar10(dir.path()); }),
               Catch::Contains("batches.meta.txt") && Catch::Contains("names 2 classes"));
  }
  SECTION("a gap in the training batches") {
    write_raw<std::uint8_t>(dir / "data_batch_4.bin", batch({1}, 0));
    CHECK_THAT(thrown_message<DataError>([&] { read_cifar10(dir.path()); }),
               Catch::Contains("data_batch_4.bin is there but data_batch_3.bin is not"));
  }
  SECTION("a malformed batch is named") {
    write_raw<std::uint8_t>(dir / "data_batch_2.bin", batch({11}, 0));
    CHECK_THAT(thrown_message<DataError>([&] { read_cifar10(dir.path()); }),
               Catch::Contains((dir / "data_batch_2.bin").string()) &&
                   Catch::Contains("label 11"));
  }
}

TEST_CASE("read_cifar10 finds cifar-10-batches-bin inside the folder given", "[cifar]") {
  TempDir dir;
  auto inner = dir / "cifar-10-batches-bin";
  std::filesystem::create_directories(inner);
  write_raw<std::uint8_t>(inner / "data_batch_1.bin", batch({7}, 0));
  write_raw<std::uint8_t>(inner / "test_batch.bin", batch({8}, 1));
  CHECK(is_cifar10_folder(dir.path()));
  CHECK(is_cifar10_folder(inner));
  Cifar10 set = read_cifar10(dir.path());
  CHECK(set.train.labels == std::vector<std::int64_t>{7});
  CHECK(set.test.labels == std::vector<std::int64_t>{8});
}

TEST_CASE("read_cifar10 lists what it looked for when files are missing", "[cifar]") {
  TempDir dir;
  CHECK_FALSE(is_cifar10_folder(dir.path()));
  CHECK_FALSE(is_cifar10_folder(dir / "nowhere"));
  auto msg = thrown_message<DataError>([&] { read_cifar10(dir.path()); });
  CHECK_THAT(msg, Catch::Contains("data_batch_1.bin") && Catch::Contains("test_batch.bin") &&
                      Catch::Contains("cifar-10-batches-bin") &&
                      Catch::Contains(dir.path().string()));
  CHECK_THAT(thrown_message<DataError>([&] { read_cifar10(dir / "nowhere"); }),
             Catch::Contains("does not exist"));
  write_raw<std::uint8_t>(dir / "data_batch_1.bin", batch({1}, 0));
  CHECK(is_cifar10_folder(dir.path()));
  CHECK_THAT(thrown_message<DataError>([&] { read_cifar10(dir.path()); }),
             Catch::Contains("lacks test_batch.bin"));
}

TEST_CASE("fuzz inputs for CIFAR-10 batches are refused cleanly or read unchanged",
          "[cifar][fuzz]") {
  graphrun::fuzz::replay("fuzz_cifar", graphrun::fuzz::check_cifar);
}
