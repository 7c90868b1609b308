#include <stdlib.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <graphrun/train/dataset.hpp>
#include <graphrun/train/idx.hpp>
#include <optional>
#include <string>
#include <vector>

#include "train/temp_dir.hpp"

using namespace graphrun;
using graphrun::testing::TempDir;
using graphrun::testing::thrown_message;

namespace {

// Pixel j of tiny image i: (12 i + j) * 2, capped at 255, so images and positions differ.
std::uint8_t pixel(std::int64_t image, std::int64_t j) {
  return static_cast<std::uint8_t>(std::min<std::int64_t>((image * 12 + j) * 2, 255));
}

// Writes a set of `count` 4x3 images (and labels i % 10 unless `labels` is false).
void write_tiny_split(const std::filesystem::path& dir, const std::string& prefix,
                      std::int64_t count, bool labels, bool gz) {
  std::vector<std::uint8_t> pixels, label_bytes;
  for (std::int64_t i = 0; i < count; ++i) {
    for (std::int64_t j = 0; j < 12; ++j) pixels.push_back(pixel(i, j));
    label_bytes.push_back(static_cast<std::uint8_t>(i % 10));
  }
  std::string suffix = gz ? ".gz" : "";
  std::vector<std::int64_t> image_dims = {count, 4, 3}, label_dims = {count};
  write_idx(dir / (prefix + "-images-idx3-ubyte" + suffix), image_dims, pixels, gz);
  if (labels)
    write_idx(dir / (prefix + "-labels-idx1-ubyte" + suffix), label_dims, label_bytes, gz);
}

// Sets an environment variable for one scope, restoring the previous value after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("a data set loads from a folder, with and without labels", "[dataset]") {
  TempDir dir;
  bool labels = GENERATE(true, false);
  bool gz = GENERATE(false, true);
  write_tiny_split(dir.path(), "train", 10, labels, gz);
  write_tiny_split(dir.path(), "t10k", 4, labels, !gz);
  Dataset ds = load_dataset(dir.path().string());
  CHECK(ds.dir == dir.path());
  CHECK(ds.train.count == 10);
  CHECK(ds.train.rows == 4);
  CHECK(ds.train.cols == 3);
  CHECK(ds.train.features() == 12);
  CHECK(ds.test.count == 4);
  REQUIRE(ds.train.pixels.size() == 120);
  CHECK(ds.train.pixels[13] == pixel(1, 1));
  if (labels) {
    CHECK(ds.train.labels == std::vector<std::uint8_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK(ds.test.labels.size() == 4);
  } else {
    CHECK(ds.train.labels.empty());
    CHECK(ds.test.labels.empty());
  }
}

TEST_CASE("data set limits keep the first images", "[dataset]") {
  TempDir dir;
  write_tiny_split(dir.path(), "train", 10, true, false);
  write_tiny_split(dir.path(), "t10k", 4, true, true);
  Dataset ds = load_dataset(dir.path().string(), 3, 100);
  CHECK(ds.train.count == 3);
  CHECK(ds.train.pixels.size() == 36);
  CHECK(ds.train.labels == std::vector<std::uint8_t>{0, 1, 2});
  CHECK(ds.train.pixels[35] == pixel(2, 11));
  CHECK(ds.test.count == 4);  // a limit over the count keeps them all
  CHECK(load_dataset(dir.path().string(), 0, 1).train.count == 0);
  CHECK_THROWS_AS(load_dataset(dir.path().string(), -2), std::invalid_argument);
}

TEST_CASE("fill_batch scales bytes to [0, 1] in batch order", "[dataset]") {
  Split s;
  s.count = 3;
  s.rows = 1;
  s.cols = 2;
  s.pixels = {0, 255, 51, 102, 1, 128};
  std::vector<std::int64_t> idx = {2, 0, 1, 2};
  std::vector<float> f(8, -1.0f);
  s.fill_batch<float>(idx, f.data());
  // 255/255 = 1 exactly; 51/255 = 0.2 and 102/255 = 0.4 (correctly rounded); 128/255 = 0.50196...
  CHECK(f[0] == Approx(1.0 / 255));
  CHECK(f[1] == Approx(128.0 / 255));
  CHECK(f[2] == 0.0f);
  CHECK(f[3] == 1.0f);
  CHECK(f[4] == 0.2f);
  CHECK(f[5] == 0.4f);
  CHECK(f[6] == f[0]);
  std::vector<double> d(2);
  std::vector<std::int64_t> one = {0};
  s.fill_batch<double>(one, d.data());
  CHECK(d == std::vector<double>{0.0, 1.0});
  std::vector<std::int64_t> bad = {1, 3};
  CHECK_THAT(thrown_message<std::out_of_range>([&] { s.fill_batch<double>(bad, d.data()); }),
             Catch::Contains("index 3 (batch row 1)"));
  CHECK(d == std::vector<double>{0.0, 1.0});  // nothing written
}

TEST_CASE("fill_batch gives every byte value as its correctly rounded fraction of 255", "[dataset]") {
  Split s;
  s.count = 1;
  s.rows = 16;
  s.cols = 16;
  for (int b = 0; b < 256; ++b) s.pixels.push_back(static_cast<std::uint8_t>(b));
  std::vector<std::int64_t> idx = {0};
  std::vector<float> f(256);
  std::vector<double> d(256);
  s.fill_batch<float>(idx, f.data());
  s.fill_batch<double>(idx, d.data());
  for (int b = 0; b < 256; ++b) {
    INFO("byte " << b);
    CHECK(f[static_cast<std::size_t>(b)] == static_cast<float>(b) / 255.0f);
    CHECK(d[static_cast<std::size_t>(b)] == static_cast<double>(b) / 255.0);
  }
}

TEST_CASE("fill_batch over many rows matches a serial loop", "[dataset]") {
  Split s;
  s.count = 500;
  s.rows = 28;
  s.cols = 28;
  s.pixels.resize(500 * 784);
  for (std::size_t i = 0; i < s.pixels.size(); ++i) s.pixels[i] = static_cast<std::uint8_t>(i * 31);
  std::vector<std::int64_t> idx(300);
  for (std::size_t r = 0; r < idx.size(); ++r) idx[r] = static_cast<std::int64_t>((r * 7) % 500);
  std::vector<float> out(300 * 784);
  s.fill_batch<float>(idx, out.data());
  for (std::size_t r = 0; r < idx.size(); r += 37)
    for (std::size_t j = 0; j < 784; j += 101)
      CHECK(out[r * 784 + j] == static_cast<float>(s.pixels[idx[r] * 784 + j]) / 255.0f);
}

TEST_CASE("data sets that disagree are rejected with the file's name", "[dataset]") {
  TempDir dir;
  write_tiny_split(dir.path(), "t10k", 4, true, false);
  SECTION("label count differs from image count") {
    write_tiny_split(dir.path(), "train", 10, false, false);
    std::vector<std::int64_t> dims = {9};
    write_idx(dir / "train-labels-idx1-ubyte.gz", dims, std::vector<std::uint8_t>(9), true);
    CHECK_THAT(
        thrown_message<DataError>([&] { load_dataset(dir.path().string()); }),
        Catch::Contains("train-labels-idx1-ubyte.gz") && Catch::Contains("expected 10 labels"));
  }
  SECTION("images that are not 3-D") {
    std::vector<std::int64_t> dims = {10, 12};
    write_idx(dir / "train-images-idx3-ubyte", dims, std::vector<std::uint8_t>(120), false);
    CHECK_THAT(thrown_message<DataError>([&] { load_dataset(dir.path().string()); }),
               Catch::Contains("train-images-idx3-ubyte") && Catch::Contains("3-D"));
  }
  SECTION("train and test images of different sizes") {
    std::vector<std::int64_t> dims = {2, 3, 4};
    write_idx(dir / "train-images-idx3-ubyte", dims, std::vector<std::uint8_t>(24), false);
    CHECK_THAT(thrown_message<DataError>([&] { load_dataset(dir.path().string()); }),
               Catch::Contains("3x4") && Catch::Contains("4x3"));
  }
}

TEST_CASE("a missing data set says what was looked for and how to get it", "[dataset]") {
  TempDir dir;
  ScopedEnv root("GRAPHRUN_DATA_ROOT", dir.path().string());
  auto msg = thrown_message<DataError>([] { load_dataset("fashion-mnist"); });
  CHECK_THAT(msg, Catch::Contains((dir / "fashion-mnist/train-images-idx3-ubyte").string()) &&
                      Catch::Contains("apt-get install dataset-fashion-mnist"));
  auto folder = dir / "mine";
  CHECK_THAT(thrown_message<DataError>([&] { load_dataset(folder.string()); }),
             Catch::Contains("does not exist") && !Catch::Contains("apt-get"));
  SECTION("a named set found under GRAPHRUN_DATA_ROOT") {
    std::filesystem::create_directories(dir / "mnist");
    write_tiny_split(dir / "mnist", "train", 5, true, true);
    CHECK_THAT(thrown_message<DataError>([] { load_dataset("mnist"); }),
               Catch::Contains("t10k-images-idx3-ubyte"));
    write_tiny_split(dir / "mnist", "t10k", 2, true, true);
    Dataset ds = load_dataset("mnist");
    CHECK(ds.name == "mnist");
    CHECK(ds.train.count == 5);
    CHECK(ds.test.count == 2);
  }
}

TEST_CASE("the installed Fashion-MNIST loads, when present", "[dataset]") {
  const std::filesystem::path dir = "/usr/share/datasets/fashion-mnist";
  if (std::getenv("GRAPHRUN_DATA_ROOT") || !std::filesystem::exists(dir)) {
    WARN("Fashion-MNIST not installed at " << dir << " (or GRAPHRUN_DATA_ROOT set); skipped");
    return;
  }
  Dataset ds = load_dataset("fashion-mnist");
  CHECK(ds.dir == dir);
  CHECK(ds.train.count == 60000);
  CHECK(ds.train.rows == 28);
  CHECK(ds.train.cols == 28);
  CHECK(ds.train.pixels.size() == 60000u * 784u);
  CHECK(ds.test.count == 10000);
  REQUIRE(ds.train.labels.size() == 60000);
  REQUIRE(ds.test.labels.size() == 10000);
  std::vector<int> per_class(10, 0);
  for (auto l : ds.train.labels) {
    REQUIRE(l < 10);
    ++per_class[l];
  }
  CHECK(per_class == std::vector<int>(10, 6000));  // Fashion-MNIST is balanced
  Dataset small = load_dataset("fashion-mnist", 100, 10);
  CHECK(small.train.count == 100);
  CHECK(small.train.pixels.size() == 78400);
  CHECK(small.train.labels ==
        std::vector<std::uint8_t>(ds.train.labels.begin(), ds.train.labels.begin() + 100));
}
