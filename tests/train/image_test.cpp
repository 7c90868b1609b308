#include <graphrun/train/image.hpp>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <unistd.h>
#include <vector>

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>

using graphrun::Image;
using graphrun::Rgb;

namespace {

struct Decoded {
  int width = 0, height = 0;
  std::vector<unsigned char> rgb;
  Rgb at(int x, int y) const {
    const auto* p = &rgb[(static_cast<std::size_t>(y) * width + x) * 3];
    return {p[0], p[1], p[2]};
  }
};

Decoded decode(const std::vector<std::byte>& png) {
  Decoded out;
  int channels = 0;
  unsigned char* data =
      stbi_load_from_memory(reinterpret_cast<const unsigned char*>(png.data()),
                            static_cast<int>(png.size()), &out.width, &out.height, &channels, 3);
  REQUIRE(data != nullptr);
  out.rgb.assign(data, data + static_cast<std::size_t>(out.width) * out.height * 3);
  stbi_image_free(data);
  return out;
}

int count_not(const Image& image, Rgb background, int x, int y, int w, int h) {
  int count = 0;
  for (int yy = y; yy < y + h; ++yy) {
    for (int xx = x; xx < x + w; ++xx) count += image.get(xx, yy) != background;
  }
  return count;
}

}  // namespace

TEST_CASE("Image rejects bad sizes and clips drawing", "[png]") {
  CHECK_THROWS_AS(Image(0, 5), std::invalid_argument);
  CHECK_THROWS_AS(Image(5, -1), std::invalid_argument);
  CHECK_THROWS_AS(Image(16385, 1), std::invalid_argument);
  Image image(4, 3, {1, 2, 3});
  CHECK(image.pixels().size() == 4 * 3 * 3);
  image.set(-1, 0, graphrun::colors::black);
  image.set(4, 0, graphrun::colors::black);
  image.fill_rect(-100, -100, 1000, 1000, {9, 9, 9});
  image.draw_line(-1000000, 1, 1000000, 1, {7, 7, 7});
  CHECK(image.get(0, 2) == Rgb{9, 9, 9});
  CHECK(image.get(3, 1) == Rgb{7, 7, 7});
  CHECK_THROWS_AS(image.get(4, 0), std::out_of_range);
}

TEST_CASE("encode_png round-trips through stb_image", "[png]") {
  Image image(7, 5, {10, 20, 30});
  image.set(0, 0, {255, 0, 0});
  image.set(6, 4, {0, 255, 0});
  image.set(3, 2, {1, 2, 250});
  const auto decoded = decode(graphrun::encode_png(image));
  CHECK(decoded.width == 7);
  CHECK(decoded.height == 5);
  CHECK(decoded.at(0, 0) == Rgb{255, 0, 0});
  CHECK(decoded.at(6, 4) == Rgb{0, 255, 0});
  CHECK(decoded.at(3, 2) == Rgb{1, 2, 250});
  CHECK(decoded.at(1, 1) == Rgb{10, 20, 30});
}

TEST_CASE("write_png writes a decodable file and leaves no temporary", "[png]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("graphrun_png_test_" + std::to_string(::getpid()));
  const auto path = dir / "nested" / "picture.png";
  Image image(9, 4, graphrun::colors::black);
  image.set(8, 3, {200, 100, 50});
  graphrun::write_png(path, image);
  REQUIRE(std::filesystem::exists(path));
  CHECK(std::distance(std::filesystem::directory_iterator(dir / "nested"),
                      std::filesystem::directory_iterator()) == 1);
  int w = 0, h = 0, channels = 0;
  unsigned char* data = stbi_load(path.c_str(), &w, &h, &channels, 3);
  REQUIRE(data != nullptr);
  CHECK(w == 9);
  CHECK(h == 4);
  const std::size_t last = (3 * 9 + 8) * 3;
  CHECK(Rgb{data[last], data[last + 1], data[last + 2]} == Rgb{200, 100, 50});
  stbi_image_free(data);
  std::filesystem::remove_all(dir);
}

TEST_CASE("text draws inside its box and nowhere else", "[png]") {
  // "Ag,1" at scale 2: 4 glyphs * 6 - 1 = 23 columns, 7 rows (+1 descender row) -> 46 x 16.
  CHECK(graphrun::text_width("Ag,1", 2) == 46);
  CHECK(graphrun::text_height("Ag,1", 2) == 14);
  CHECK(graphrun::text_width("ab\nlonger") == 6 * 6 - 1);
  CHECK(graphrun::text_height("a\nb") == 17);
  Image image(80, 40);
  image.draw_text(10, 5, "Ag,1", graphrun::colors::black, 2);
  const int inside = count_not(image, graphrun::colors::white, 10, 5, 46, 16);
  CHECK(inside > 50);
  CHECK(count_not(image, graphrun::colors::white, 0, 0, 80, 40) == inside);
  // Every printable character has at least one lit pixel except the space.
  for (char c = 33; c < 127; ++c) {
    Image cell(6, 8);
    cell.draw_text(0, 0, std::string(1, c), graphrun::colors::black);
    INFO("character " << c);
    CHECK(count_not(cell, graphrun::colors::white, 0, 0, 6, 8) > 0);
  }
  Image up(20, 40);
  up.draw_text_up(2, 30, "Hi", graphrun::colors::black);
  CHECK(count_not(up, graphrun::colors::white, 2, 30 - 11 + 1, 8, 11) ==
        count_not(up, graphrun::colors::white, 0, 0, 20, 40));
}

TEST_CASE("image_grid geometry and pixel values", "[png]") {
  // 5 tiles of 2x3, 3 per row, pad 1, scale 2: width 3 * (3*2 + 1) + 1 = 22,
  // height 2 * (2*2 + 1) + 1 = 11.
  std::vector<float> images(5 * 6);
  for (std::size_t i = 0; i < images.size(); ++i) images[i] = static_cast<float>(i) / 29.0f;
  images[0] = -0.5f;  // clamps to 0
  images[6] = 2.0f;   // clamps to 1
  const Image grid = graphrun::image_grid(images, 5, 2, 3, 3, 1, 2);
  CHECK(grid.width() == 22);
  CHECK(grid.height() == 11);
  CHECK(grid.get(0, 0) == graphrun::colors::white);
  CHECK(grid.get(1, 1) == Rgb{0, 0, 0});
  CHECK(grid.get(2, 2) == Rgb{0, 0, 0});  // the same source pixel, scaled
  CHECK(grid.get(8, 1) == Rgb{255, 255, 255});
  // Tile 4 (second row, second column), source pixel (row 1, col 2) = value 4*6+5 = 29 -> 1.0;
  // its top-left is x = 1 + 7 + 2*2 = 12, y = 1 + 5 + 1*2 = 8.
  CHECK(grid.get(12, 8) == Rgb{255, 255, 255});
  // Tile 3 (second row, first column), pixel (0, 1) = 19/29 * 255 = 167.07 -> 167.
  CHECK(grid.get(1 + 2, 6) == Rgb{167, 167, 167});
  // The sixth slot stays padding.
  CHECK(grid.get(16, 8) == graphrun::colors::white);
  CHECK_THROWS_AS(graphrun::image_grid(images, 6, 2, 3, 3), std::invalid_argument);
  CHECK_THROWS_AS(graphrun::image_grid(images, 1, 2, 3, 0), std::invalid_argument);
  const Image single = graphrun::image_grid(images, 1, 2, 3, 10, 0, 1);
  CHECK(single.width() == 3);
  CHECK(single.height() == 2);
}

TEST_CASE("image_grid draws channel-planar RGB tiles in colour", "[image]") {
  // Two 2x2 RGB tiles side by side, pad 1, scale 1: width 2 * (2 + 1) + 1 = 7, height 4.
  // Each tile is its R plane, then G, then B, each row-major.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> images = {
      1, 0, 0.5f, nan,   0, 1, 0.5f, 0.2f,  0, 0, 2.0f, -1.0f,  // tile 0: R, G, B
      0, 0, 0, 1,        0, 0, 0, 1,        1, 0.25f, 0, 1,     // tile 1: R, G, B
  };
  const Rgb pad{1, 2, 3};
  const Image grid = graphrun::image_grid(images, 2, graphrun::TileShape{3, 2, 2}, 2, 1, 1, pad);
  REQUIRE(grid.width() == 7);
  REQUIRE(grid.height() == 4);
  // Tile 0 starts at (1, 1).
  CHECK(grid.get(1, 1) == Rgb{255, 0, 0});
  CHECK(grid.get(2, 1) == Rgb{0, 255, 0});
  CHECK(grid.get(1, 2) == Rgb{128, 128, 255});  // 0.5 * 255 = 127.5 rounds up; B 2.0 clamps
  CHECK(grid.get(2, 2) == Rgb{0, 51, 0});       // NaN red is black; 0.2 * 255 = 51; B -1 clamps
  // Tile 1 starts at (1 + 2 + 1, 1) = (4, 1).
  CHECK(grid.get(4, 1) == Rgb{0, 0, 255});
  CHECK(grid.get(5, 1) == Rgb{0, 0, 64});  // 0.25 * 255 = 63.75
  CHECK(grid.get(4, 2) == Rgb{0, 0, 0});
  CHECK(grid.get(5, 2) == Rgb{255, 255, 255});
  // The frame and the gutter between the tiles.
  for (int x = 0; x < 7; ++x) {
    CHECK(grid.get(x, 0) == pad);
    CHECK(grid.get(x, 3) == pad);
  }
  CHECK(grid.get(3, 1) == pad);
  CHECK(grid.get(6, 2) == pad);
  // A colour source pixel becomes a scale x scale block like a grey one.
  const Image big = graphrun::image_grid(images, 2, graphrun::TileShape{3, 2, 2}, 2, 0, 3);
  CHECK(big.width() == 12);
  CHECK(big.get(3, 0) == Rgb{0, 255, 0});
  CHECK(big.get(5, 2) == Rgb{0, 255, 0});
  CHECK(big.get(6, 0) == Rgb{0, 0, 255});
}

TEST_CASE("image_grid's grayscale form draws the pixels it always has", "[image]") {
  // Values below 0, above 1, NaN and in between, a coloured pad and a partly filled last row.
  std::vector<float> images(7 * 3 * 4);
  for (std::size_t i = 0; i < images.size(); ++i) {
    images[i] = i % 13 == 5 ? std::numeric_limits<float>::quiet_NaN()
                            : static_cast<float>(i * 37 % 101) / 90.0f - 0.05f;
  }
  const Rgb pad{10, 200, 30};
  const Image grey = graphrun::image_grid(images, 7, 3, 4, 3, 1, 2, pad);
  // FNV-1a of the pixels drawn by the grayscale-only image_grid before TileShape existed, so the
  // reports' existing figures cannot change by a single byte.
  std::uint64_t hash = 1469598103934665603ull;
  for (std::uint8_t byte : grey.pixels()) {
    hash ^= byte;
    hash *= 1099511628211ull;
  }
  CHECK(grey.width() == 28);
  CHECK(grey.height() == 22);
  CHECK(hash == 0xed1ab36350c2cf97ull);
  const Image one_channel =
      graphrun::image_grid(images, 7, graphrun::TileShape{1, 3, 4}, 3, 1, 2, pad);
  CHECK(one_channel.pixels() == grey.pixels());
  // Defaults are shared too.
  CHECK(graphrun::image_grid(images, 7, 3, 4, 3).pixels() ==
        graphrun::image_grid(images, 7, graphrun::TileShape{1, 3, 4}, 3).pixels());
}

TEST_CASE("image_grid rejects channel counts other than 1 and 3", "[image]") {
  const std::vector<float> images(4 * 2 * 2, 0.5f);
  for (int channels : {0, 2, 4, -1}) {
    INFO("channels " << channels);
    CHECK_THROWS_WITH(
        graphrun::image_grid(images, 1, graphrun::TileShape{channels, 2, 2}, 1),
        Catch::Contains("1 (grey) or 3 (RGB) channels, got " + std::to_string(channels)));
  }
  // Three channels need three planes per image: 16 values hold one 2x2 RGB image, not two.
  CHECK_NOTHROW(graphrun::image_grid(images, 1, graphrun::TileShape{3, 2, 2}, 1));
  CHECK_THROWS_WITH(graphrun::image_grid(images, 2, graphrun::TileShape{3, 2, 2}, 1),
                    Catch::Contains("need 24 values, got 16"));
  CHECK_THROWS_AS(graphrun::image_grid(images, 1, graphrun::TileShape{3, 0, 2}, 1),
                  std::invalid_argument);
  // A huge tile is refused by its size alone, before any product of sizes can overflow.
  CHECK_THROWS_WITH(graphrun::image_grid(images, 1 << 30,
                                         graphrun::TileShape{3, 1 << 30, 1 << 30}, 1 << 30, 0,
                                         64),
                    Catch::Contains("over the limit"));
}
