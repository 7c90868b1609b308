#include <zlib.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <graphrun/train/atomic_file.hpp>
#include <graphrun/train/idx.hpp>
#include <graphrun/train/image.hpp>
#include <graphrun/train/image_folder.hpp>
#include <string>
#include <vector>

#include "fuzz/image_folder_check.hpp"
#include "fuzz/replay.hpp"
#include "train/temp_dir.hpp"

// Static, like the copies in the library and in image_test.cpp, so they cannot clash.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

using namespace graphrun;
using graphrun::testing::TempDir;
using graphrun::testing::thrown_message;
using Bytes = std::vector<std::uint8_t>;
using Shape = std::vector<std::int64_t>;
namespace fs = std::filesystem;

namespace {

// An image of `channels` interleaved channels (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) every pixel
// of which is `pixel`, written in the format its extension names.
void write_image(const fs::path& path, int width, int height, const Bytes& pixel) {
  int channels = static_cast<int>(pixel.size());
  Bytes data;
  for (int i = 0; i < width * height; ++i) data.insert(data.end(), pixel.begin(), pixel.end());
  fs::create_directories(path.parent_path());
  std::string ext = path.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  int ok = 0;
  if (ext == ".png")
    ok = stbi_write_png(path.c_str(), width, height, channels, data.data(), width * channels);
  else if (ext == ".bmp")
    ok = stbi_write_bmp(path.c_str(), width, height, channels, data.data());
  else
    ok = stbi_write_jpg(path.c_str(), width, height, channels, data.data(), 100);
  REQUIRE(ok != 0);
}

void append_be32(Bytes& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

void append_chunk(Bytes& out, const char* type, const Bytes& body) {
  append_be32(out, static_cast<std::uint32_t>(body.size()));
  std::size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), body.begin(), body.end());
  append_be32(out, static_cast<std::uint32_t>(crc32(0, out.data() + start, out.size() - start)));
}

// A 16-bit grey PNG of one row, built by hand: stb_image_write writes only 8 bits.
Bytes grey16_png(const std::vector<std::uint16_t>& row) {
  Bytes png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  Bytes ihdr;
  append_be32(ihdr, static_cast<std::uint32_t>(row.size()));
  append_be32(ihdr, 1);
  for (std::uint8_t b : {16, 0, 0, 0, 0}) ihdr.push_back(b);  // 16-bit grey, no interlace
  append_chunk(png, "IHDR", ihdr);
  Bytes raw = {0};  // filter type "none"
  for (auto v : row) {
    raw.push_back(static_cast<std::uint8_t>(v >> 8));
    raw.push_back(static_cast<std::uint8_t>(v));
  }
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  Bytes idat(size);
  REQUIRE(compress(idat.data(), &size, raw.data(), static_cast<uLong>(raw.size())) == Z_OK);
  idat.resize(size);
  append_chunk(png, "IDAT", idat);
  append_chunk(png, "IEND", {});
  return png;
}

// The DataError read_image_folder gives for `root`, which must name `culprit`.
std::string folder_error(const fs::path& root, const fs::path& culprit) {
  auto msg = thrown_message<DataError>([&] { read_image_folder(root); });
  CHECK_THAT(msg, Catch::Contains(culprit.string()));
  return msg;
}

}  // namespace

TEST_CASE("image folder classes are the sorted subfolders, images sorted by name", "[imagefolder]") {
  TempDir dir;
  // Created out of order: neither creation order nor the directory's order may matter.
  write_image(dir / "b_dog" / "2.png", 3, 2, {20});
  write_image(dir / "b_dog" / "10.png", 3, 2, {10});
  write_image(dir / "a_cat" / "x.png", 3, 2, {99});
  write_image(dir / "b_dog" / "1.png", 3, 2, {1});
  // Skipped: other extensions, hidden files and folders.
  graphrun::testing::write_raw<char>(dir / "b_dog" / "notes.txt", std::string_view("not an image"));
  write_image(dir / "b_dog" / ".hidden.png", 3, 2, {7});
  write_image(dir / ".cache" / "y.png", 3, 2, {7});
  CHECK(is_image_folder(dir.path()));
  auto a = read_image_folder(dir.path());
  CHECK(a.shape == Shape{4, 1, 2, 3});
  CHECK(a.is_bytes());
  CHECK(a.floats.empty());
  CHECK(a.class_names == std::vector<std::string>{"a_cat", "b_dog"});
  CHECK(a.labels == std::vector<std::int64_t>{0, 1, 1, 1});
  REQUIRE(a.bytes.size() == 4 * 6);
  // Byte order of names: "1.png" < "10.png" < "2.png".
  CHECK(a.bytes[0] == 99);
  CHECK(a.bytes[6] == 1);
  CHECK(a.bytes[12] == 10);
  CHECK(a.bytes[18] == 20);
}

TEST_CASE("image folder without subfolders is one unlabelled set", "[imagefolder]") {
  TempDir dir;
  write_image(dir / "a.png", 2, 2, {5, 200});  // grey + alpha: one channel, alpha dropped
  write_image(dir / "b.PNG", 2, 2, {6});
  auto a = read_image_folder(dir.path());
  CHECK(a.shape == Shape{2, 1, 2, 2});
  CHECK(a.bytes == Bytes{5, 5, 5, 5, 6, 6, 6, 6});
  CHECK(a.labels.empty());
  CHECK(a.class_names.empty());
}

TEST_CASE("image folder colour images are channel-planar RGB", "[imagefolder]") {
  TempDir dir;
  SECTION("planar order from stb's interleaved pixels") {
    Image img(2, 1);
    img.set(0, 0, {10, 20, 30});
    img.set(1, 0, {40, 50, 60});
    write_png(dir / "only" / "p.png", img);
    auto a = read_image_folder(dir.path());
    CHECK(a.shape == Shape{1, 3, 1, 2});
    CHECK(a.bytes == Bytes{10, 40, 20, 50, 30, 60});
    CHECK(a.class_names == std::vector<std::string>{"only"});
  }
  SECTION("PNG, BMP and JPEG by extension in any case; alpha dropped") {
    write_image(dir / "c" / "a.bmp", 4, 4, {1, 2, 3});
    write_image(dir / "c" / "b.JPG", 4, 4, {128, 128, 128});
    write_image(dir / "c" / "c.jpeg", 4, 4, {0, 255, 0});
    write_image(dir / "c" / "d.png", 4, 4, {7, 8, 9, 0});
    auto a = read_image_folder(dir.path());
    REQUIRE(a.shape == Shape{4, 3, 4, 4});
    CHECK(a.bytes[0] == 1);
    CHECK(a.bytes[16] == 2);
    CHECK(a.bytes[32] == 3);
    CHECK(std::abs(int{a.bytes[48]} - 128) <= 2);  // JPEG is lossy
    CHECK(a.bytes[3 * 48] == 7);
    CHECK(a.bytes[3 * 48 + 47] == 9);
  }
  SECTION("grey images among colour ones are repeated into RGB") {
    write_image(dir / "g" / "grey.png", 2, 2, {77});
    write_image(dir / "r" / "rgb.png", 2, 2, {1, 2, 3});
    auto a = read_image_folder(dir.path());
    CHECK(a.shape == Shape{2, 3, 2, 2});
    CHECK(a.bytes == Bytes{77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77, 77,
                           1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3});
    CHECK(a.labels == std::vector<std::int64_t>{0, 1});
  }
}

TEST_CASE("image folder 16-bit PNGs are reduced to 8 bits", "[imagefolder]") {
  TempDir dir;
  graphrun::testing::write_raw<std::uint8_t>(dir / "deep.png", grey16_png({0xffff, 0x8000, 0}));
  auto a = read_image_folder(dir.path());
  CHECK(a.shape == Shape{1, 1, 1, 3});
  CHECK(a.bytes == Bytes{255, 128, 0});
}

TEST_CASE("image folder errors name the image", "[imagefolder]") {
  TempDir dir;
  SECTION("a size other than the first image's names both") {
    write_image(dir / "a" / "1.png", 4, 3, {1});
    write_image(dir / "b" / "2.png", 3, 4, {1});
    auto msg = folder_error(dir.path(), dir / "b" / "2.png");
    CHECK_THAT(msg, Catch::Contains("3x4") && Catch::Contains("4x3") &&
                        Catch::Contains((dir / "a" / "1.png").string()));
  }
  SECTION("a truncated PNG says which chunk is cut short") {
    write_image(dir / "a" / "1.png", 16, 16, {1, 2, 3});
    auto whole = graphrun::testing::read_text(dir / "a" / "1.png");
    graphrun::testing::write_raw<char>(dir / "a" / "2.png", std::string_view(whole).substr(0, 60));
    auto msg = folder_error(dir.path(), dir / "a" / "2.png");
    CHECK_THAT(msg, Catch::Contains("corrupt PNG: the image data chunk at byte 33 is longer than "
                                    "the rest of the file"));
  }
  SECTION("a file that is no image at all") {
    graphrun::testing::write_raw<char>(dir / "x.jpg", std::string_view("hello"));
    CHECK_THAT(folder_error(dir.path(), dir / "x.jpg"), Catch::Contains("not a readable"));
  }
  SECTION("an over-large image is refused from its header") {
    write_image(dir / "wide.png", kImageMaxSide + 1, 1, {0});
    CHECK_THAT(folder_error(dir.path(), dir / "wide.png"), Catch::Contains("8193x1"));
  }
  SECTION("no images, an empty class, images beside classes") {
    CHECK_THAT(folder_error(dir.path(), dir.path()), Catch::Contains("no images"));
    graphrun::testing::write_raw<char>(dir / "readme.txt", std::string_view("x"));
    write_image(dir / ".hidden.png", 1, 1, {0});
    CHECK_THAT(folder_error(dir.path(), dir.path()), Catch::Contains("no images"));
    CHECK_FALSE(is_image_folder(dir.path()));
    fs::create_directories(dir / "empty");
    write_image(dir / "full" / "a.png", 1, 1, {0});
    CHECK(is_image_folder(dir.path()));
    CHECK_THAT(folder_error(dir.path(), dir / "empty"), Catch::Contains("holds no images"));
    fs::remove(dir / "empty");
    CHECK_NOTHROW(read_image_folder(dir.path()));
    write_image(dir / "loose.png", 1, 1, {0});
    CHECK_THAT(folder_error(dir.path(), dir.path()),
               Catch::Contains("'full'") && Catch::Contains("'loose.png'"));
  }
  SECTION("a root that is missing or a file") {
    CHECK_THROWS_AS(read_image_folder(dir / "missing"), IoError);
    CHECK_FALSE(is_image_folder(dir / "missing"));
    write_image(dir / "a.png", 1, 1, {0});
    CHECK_FALSE(is_image_folder(dir / "a.png"));
    CHECK_THAT(folder_error(dir / "a.png", dir / "a.png"), Catch::Contains("not a folder"));
  }
}

TEST_CASE("a JPEG whose Huffman table has more than 256 codes is refused before stb reads it",
          "[imagefolder]") {
  // fuzz_image_folder's first finding: Debian's stb_image writes past its table on this file.
  TempDir dir;
  fs::create_directories(dir / "set");
  fs::copy_file(fs::path(GRAPHRUN_SOURCE_DIR) / "tests/fuzz/regressions/fuzz_image_folder/jpeg_dht_over_256_codes",
                dir / "set" / "bad.jpg");
  CHECK_THAT(folder_error(dir / "set", dir / "set" / "bad.jpg"),
             Catch::Contains("Huffman table at byte 106 has more than 256 codes"));
}

TEST_CASE("a PNG's empty data chunks are dropped before stb reads it, the image the same",
          "[imagefolder]") {
  TempDir dir;
  write_image(dir / "plain" / "a.png", 3, 2, {7, 200, 31});
  std::string png = testing::read_text(dir / "plain" / "a.png");
  // After the signature (8 bytes) and IHDR (25): an IDAT of length 0, its CRC left at 0 (stb
  // does not check CRCs). Given to stb, it is a memcpy into a null buffer, which the suite under
  // UBSan stops on.
  const std::string empty("\0\0\0\0IDAT\0\0\0\0", 12);
  png.insert(33, empty);
  fs::create_directories(dir / "padded");
  std::ofstream(dir / "padded" / "a.png", std::ios::binary) << png;
  SampleArray plain = read_image_folder(dir / "plain"), padded = read_image_folder(dir / "padded");
  CHECK(padded.shape == plain.shape);
  CHECK(padded.bytes == plain.bytes);
}

TEST_CASE("fuzz inputs for image folders are refused cleanly or read the same both ways",
          "[imagefolder][fuzz]") {
  graphrun::fuzz::replay("fuzz_image_folder", graphrun::fuzz::check_image_folder);
}
