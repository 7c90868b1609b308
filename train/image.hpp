// RGB raster images for training reports: drawing primitives, a built-in bitmap font and PNG
// output. Pictures of reconstructions, samples and loss curves are read by people, so the goal is
// legibility with no dependency beyond stb.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

namespace graphrun {

struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
  friend bool operator==(const Rgb&, const Rgb&) = default;
};

namespace colors {
inline constexpr Rgb white{255, 255, 255};
inline constexpr Rgb black{0, 0, 0};
inline constexpr Rgb gray{128, 128, 128};
inline constexpr Rgb light_gray{225, 225, 225};
}  // namespace colors

// The built-in font: glyphs of 5x7 pixels (plus one descender row) in cells of 6x10 at scale 1.
// Characters outside printable ASCII 32..126 are drawn as '?'.
inline constexpr int glyph_advance = 6;
inline constexpr int glyph_height = 7;
inline constexpr int line_height = 10;

// Width and height in pixels of `text` drawn at `scale`; '\n' starts a new line.
int text_width(std::string_view text, int scale = 1);
int text_height(std::string_view text, int scale = 1);

// An 8-bit RGB image, row-major with 3 bytes per pixel. Drawing outside the image is clipped
// silently, so callers can draw shapes that overlap the border.
class Image {
 public:
  // Throws std::invalid_argument unless 1 <= width, height <= max_side.
  Image(int width, int height, Rgb fill = colors::white);

  static constexpr int max_side = 16384;

  int width() const { return width_; }
  int height() const { return height_; }
  const std::vector<std::uint8_t>& pixels() const { return pixels_; }

  void set(int x, int y, Rgb color);
  // Mixes `color` over the pixel with opacity `alpha` in [0, 1].
  void blend(int x, int y, Rgb color, double alpha);
  // Throws std::out_of_range outside the image: reading there is a caller bug.
  Rgb get(int x, int y) const;

  void fill_rect(int x, int y, int w, int h, Rgb color);
  void draw_rect(int x, int y, int w, int h, Rgb color);  // 1-pixel outline
  // A straight line with both ends included; `thickness` > 1 draws with a square brush.
  void draw_line(int x0, int y0, int x1, int y1, Rgb color, int thickness = 1);
  void fill_circle(int cx, int cy, int radius, Rgb color);

  // (x, y) is the top-left corner of the first glyph cell; `scale` magnifies each font pixel.
  void draw_text(int x, int y, std::string_view text, Rgb color, int scale = 1);
  // Text turned 90 degrees counter-clockwise (reads bottom to top), for vertical axis labels.
  // (x, y) is the bottom-left corner of the rotated box, which is text_height wide.
  void draw_text_up(int x, int y, std::string_view text, Rgb color, int scale = 1);

 private:
  bool inside(int x, int y) const { return x >= 0 && y >= 0 && x < width_ && y < height_; }

  int width_;
  int height_;
  std::vector<std::uint8_t> pixels_;
};

// The image as a PNG file's bytes.
std::vector<std::byte> encode_png(const Image& image);
// Writes the PNG atomically (see write_file_atomic); throws IoError on failure.
void write_png(const std::filesystem::path& path, const Image& image);

// The shape of one image in a [N, C, H, W] batch: `channels` is 1 (grey) or 3 (RGB); colour is
// channel-planar, so an image is its red, green and blue planes of rows x cols one after another.
struct TileShape {
  int channels = 1;
  int rows = 0;
  int cols = 0;
};

// Tiles `count` images of `tile` shape, each row-major with values in [0, 1] (clamped; NaN shows
// black, per channel), into a grid of `grid_cols` tiles per row. Every source pixel becomes a
// scale x scale block; `pad` pixels of `pad_color` separate the tiles and frame the grid, so the
// width is tiles_per_row * (tile.cols * scale + pad) + pad. Throws std::invalid_argument when
// tile.channels is neither 1 nor 3, for non-positive sizes, for a grid over Image::max_side, or
// when `images` holds fewer than count * channels * rows * cols values (extra values are
// ignored).
Image image_grid(std::span<const float> images, int count, TileShape tile, int grid_cols,
                 int pad = 2, int scale = 2, Rgb pad_color = colors::white);

// Grayscale tiles of `rows` x `cols_px`: the same as TileShape{1, rows, cols_px}.
Image image_grid(std::span<const float> images, int count, int rows, int cols_px, int grid_cols,
                 int pad = 2, int scale = 2, Rgb pad_color = colors::white);

}  // namespace graphrun
