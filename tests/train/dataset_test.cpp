#include <stdlib.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
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
  CHECK(ds.train.height() == 4);
  CHECK(ds.train.width() == 3);
  CHECK(ds.train.features() == 12);
  CHECK(ds.test.count == 4);
  REQUIRE(ds.train.bytes.size() == 120);
  CHECK(ds.train.bytes[13] == pixel(1, 1));
  if (labels) {
    CHECK(ds.train.labels == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
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
  CHECK(ds.train.bytes.size() == 36);
  CHECK(ds.train.labels == std::vector<std::int64_t>{0, 1, 2});
  CHECK(ds.train.bytes[35] == pixel(2, 11));
  CHECK(ds.test.count == 4);  // a limit over the count keeps them all
  CHECK(load_dataset(dir.path().string(), 0, 1).train.count == 0);
  CHECK_THROWS_AS(load_dataset(dir.path().string(), -2), std::invalid_argument);
}

TEST_CASE("fill_batch scales bytes to [0, 1] in batch order", "[dataset]") {
  Split s;
  s.count = 3;
  s.shape = {1, 1, 2};
  s.bytes = {0, 255, 51, 102, 1, 128};
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
  s.shape = {1, 16, 16};
  for (int b = 0; b < 256; ++b) s.bytes.push_back(static_cast<std::uint8_t>(b));
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
  s.shape = {1, 28, 28};
  s.bytes.resize(500 * 784);
  for (std::size_t i = 0; i < s.bytes.size(); ++i) s.bytes[i] = static_cast<std::uint8_t>(i * 31);
  std::vector<std::int64_t> idx(300);
  for (std::size_t r = 0; r < idx.size(); ++r) idx[r] = static_cast<std::int64_t>((r * 7) % 500);
  std::vector<float> out(300 * 784);
  s.fill_batch<float>(idx, out.data());
  for (std::size_t r = 0; r < idx.size(); r += 37)
    for (std::size_t j = 0; j < 784; j += 101)
      CHECK(out[r * 784 + j] == static_cast<float>(s.bytes[idx[r] * 784 + j]) / 255.0f);
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
  CHECK(ds.train.height() == 28);
  CHECK(ds.train.width() == 28);
  CHECK(ds.train.bytes.size() == 60000u * 784u);
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
  CHECK(small.train.bytes.size() == 78400);
  CHECK(small.train.labels ==
        std::vector<std::int64_t>(ds.train.labels.begin(), ds.train.labels.begin() + 100));
}

namespace {

// A table of `n` rows of `d` float features, row i feature j = 10 j + i, as an .npy file.
void write_float_npy(const std::filesystem::path& path, std::int64_t n, std::int64_t d) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(n) + ", " +
                       std::to_string(d) + "), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  out.put(static_cast<char>(header.size() & 0xff)).put(static_cast<char>(header.size() >> 8));
  out << header;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j) {
      float v = static_cast<float>(10 * j + i);
      out.write(reinterpret_cast<const char*>(&v), sizeof v);
    }
}

}  // namespace

TEST_CASE("test_fraction holds out a seeded part of the training samples", "[dataset][data]") {
  TempDir dir;
  write_float_npy(dir / "x.npy", 40, 3);
  DataSpec spec;
  spec.train = (dir / "x.npy").string();
  spec.test_fraction = 0.25;
  Dataset a = load_dataset(spec), b = load_dataset(spec);
  CHECK(a.train.count == 30);
  CHECK(a.test.count == 10);
  CHECK(a.train.floats == b.train.floats);  // the same seed holds out the same samples
  CHECK(a.test.floats == b.test.floats);
  spec.seed = 2;
  Dataset c = load_dataset(spec);
  CHECK(c.test.floats != a.test.floats);
  // Every sample lands in exactly one split, each split in file order (column 0 is the row).
  std::vector<float> rows;
  for (const Split* s : {&a.train, &a.test}) {
    for (std::int64_t i = 0; i < s->count; ++i) rows.push_back(s->floats[static_cast<std::size_t>(3 * i)]);
    CHECK(std::is_sorted(rows.end() - s->count, rows.end()));
  }
  std::sort(rows.begin(), rows.end());
  for (std::size_t i = 0; i < rows.size(); ++i) CHECK(rows[i] == static_cast<float>(i));
  spec.test_fraction = 1.5;
  CHECK_THROWS_AS(load_dataset(spec), std::invalid_argument);
}

TEST_CASE("classes keeps those classes in training and every class in the test set", "[dataset][data]") {
  TempDir dir;
  write_tiny_split(dir.path(), "train", 30, true, false);
  write_tiny_split(dir.path(), "t10k", 20, true, false);
  DataSpec spec;
  spec.dataset = dir.path().string();
  spec.classes = {3, 5};
  Dataset ds = load_dataset(spec);
  CHECK(ds.train.count == 6);  // labels i % 10: three 3s and three 5s
  for (auto l : ds.train.labels) CHECK((l == 3 || l == 5));
  CHECK(ds.test.count == 20);
  spec.classes = {11};
  CHECK_THAT(thrown_message<DataError>([&] { load_dataset(spec); }),
             Catch::Contains("class 11") && Catch::Contains("labels run 0 to 9"));
  write_tiny_split(dir.path(), "train", 30, false, false);
  std::filesystem::remove(dir / "train-labels-idx1-ubyte");
  spec.classes = {1};
  CHECK_THAT(thrown_message<DataError>([&] { load_dataset(spec); }), Catch::Contains("needs labels"));
}

TEST_CASE("normalize fits on the training split and undoes itself for display", "[dataset][data]") {
  TempDir dir;
  write_float_npy(dir / "x.npy", 5, 2);  // feature 0: 0..4, feature 1: 10..14
  DataSpec spec;
  spec.train = (dir / "x.npy").string();
  SECTION("auto keeps floats as they are") {
    Dataset ds = load_dataset(spec);
    CHECK(ds.train.normalization.mode == Normalize::none);
    std::vector<float> out(2);
    std::vector<std::int64_t> idx{4};
    ds.train.fill_batch<float>(idx, out.data());
    CHECK(out == std::vector<float>{4, 14});
  }
  SECTION("standardize: mean 0, deviation 1 per feature, and back") {
    spec.normalize = Normalize::standardize;
    Dataset ds = load_dataset(spec);
    CHECK(ds.train.normalization.offset == std::vector<float>{2, 12});
    CHECK(ds.train.normalization.scale[0] == Approx(std::sqrt(2.0)));
    std::vector<float> out(10);
    std::vector<std::int64_t> idx{0, 1, 2, 3, 4};
    ds.train.fill_batch<float>(idx, out.data());
    CHECK(out[0] == Approx(-2 / std::sqrt(2.0)));
    CHECK(out[0] + out[2] + out[4] + out[6] + out[8] == Approx(0).margin(1e-6));
    ds.train.to_data_units(out);
    CHECK(out[8] == Approx(4));
    CHECK(out[9] == Approx(14));
    // The checkpoint's text restores the same map.
    auto text = ds.train.normalization.to_json();
    CHECK(Normalization::from_json(text, 2) == ds.train.normalization);
    CHECK_THROWS_AS(Normalization::from_json(text, 3), std::invalid_argument);
    CHECK_THROWS_AS(Normalization::from_json("{", 2), std::invalid_argument);
  }
  SECTION("scale maps each feature's training range to [0, 1]") {
    spec.normalize = Normalize::scale;
    Dataset ds = load_dataset(spec);
    std::vector<float> out(4);
    std::vector<std::int64_t> idx{0, 4};
    ds.train.fill_batch<float>(idx, out.data());
    CHECK(out == std::vector<float>{0, 0, 1, 1});
  }
  CHECK_THROWS_AS(parse_normalize("zscore"), std::invalid_argument);
}

TEST_CASE("a file graphrun does not read, or a folder without data, names what it looked for", "[dataset][data]") {
  TempDir dir;
  std::ofstream(dir / "x.txt") << "1 2 3\n";
  DataSpec spec;
  spec.train = (dir / "x.txt").string();
  CHECK_THAT(thrown_message<DataError>([&] { load_dataset(spec); }),
             Catch::Contains("x.txt") && Catch::Contains(".npy, .npz, .csv"));
  std::filesystem::create_directories(dir / "empty");
  spec.train = (dir / "empty").string();
  CHECK_THAT(thrown_message<DataError>([&] { load_dataset(spec); }),
             Catch::Contains("IDX") && Catch::Contains("CIFAR-10") && Catch::Contains("images"));
}

TEST_CASE("an .npz in Keras' layout gives both splits; x and y give one", "[dataset][data]") {
  const std::filesystem::path dir = std::filesystem::path(GRAPHRUN_SOURCE_DIR) / "tests" / "data" / "npy";
  DataSpec spec;
  spec.dataset = (dir / "keras_layout.npz").string();
  Dataset ds = load_dataset(spec);
  CHECK(ds.train.count == 6);
  CHECK(ds.train.shape == std::vector<std::int64_t>{1, 4, 4});  // [N, H, W]: grey images
  CHECK(ds.train.is_image());
  CHECK(ds.train.labels == std::vector<std::int64_t>{0, 1, 2, 0, 1, 2});
  CHECK(ds.test.count == 2);
  CHECK(ds.test.bytes[0] == 100);
  CHECK(ds.test.labels == std::vector<std::int64_t>{0, 1});
  spec.dataset = (dir / "savez.npz").string();  // x, y and pixels
  Dataset xy = load_dataset(spec);
  CHECK(xy.train.labels == std::vector<std::int64_t>{2, 0, 1});
  CHECK(xy.test.count == 0);
}
