#include <graphrun/train/image.hpp>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <stdexcept>

#include <graphrun/train/atomic_file.hpp>

namespace {

// stb's own deflate is simple; zlib (already a dependency) makes charts and image grids 1.4 to 2
// times smaller. stb frees the result with free(), so it must come from malloc().
unsigned char* zlib_compress_for_stb(unsigned char* data, int length, int* out_length,
                                     int quality) {
  uLongf size = compressBound(static_cast<uLong>(length));
  auto* out = static_cast<unsigned char*>(std::malloc(size));
  if (out == nullptr) return nullptr;
  int level = std::clamp(quality, 1, 9);
  if (compress2(out, &size, data, static_cast<uLong>(length), level) != Z_OK) {
    std::free(out);
    return nullptr;
  }
  *out_length = static_cast<int>(size);
  return out;
}

}  // namespace

// Static, so this copy cannot clash with another stb_image_write linked into the same program.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBIW_ZLIB_COMPRESS zlib_compress_for_stb
#include <stb/stb_image_write.h>

namespace graphrun {
namespace {

// Printable ASCII 32..126. Each glyph is 8 rows of 5 bits (bit 4 is the left column); rows 0-6
// stand on the baseline and row 7 holds descenders (g, j, p, q, y, comma, semicolon).
using Glyph = std::array<std::uint8_t, 8>;
constexpr std::array<Glyph, 95> font = {{
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // space
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00},  // !
    {0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00},  // "
    {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A, 0x00},  // #
    {0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04, 0x00},  // $
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00},  // %
    {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D, 0x00},  // &
    {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00},  // '
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00},  // (
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00},  // )
    {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00, 0x00},  // *
    {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00},  // +
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08},  // ,
    {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00},  // -
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00},  // .
    {0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10, 0x00},  // /
    {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00},  // 0
    {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00},  // 1
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00},  // 2
    {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00},  // 3
    {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00},  // 4
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00},  // 5
    {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00},  // 6
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00},  // 7
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00},  // 8
    {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00},  // 9
    {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00},  // :
    {0x00, 0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08},  // ;
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00},  // <
    {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, 0x00},  // =
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00},  // >
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00},  // ?
    {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E, 0x00},  // @
    {0x0E, 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x00},  // A
    {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E, 0x00},  // B
    {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E, 0x00},  // C
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C, 0x00},  // D
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F, 0x00},  // E
    {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10, 0x00},  // F
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F, 0x00},  // G
    {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00},  // H
    {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00},  // I
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C, 0x00},  // J
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00},  // K
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F, 0x00},  // L
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00},  // M
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00},  // N
    {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00},  // O
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10, 0x00},  // P
    {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D, 0x00},  // Q
    {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11, 0x00},  // R
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E, 0x00},  // S
    {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00},  // T
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00},  // U
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00},  // V
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A, 0x00},  // W
    {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11, 0x00},  // X
    {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x00},  // Y
    {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F, 0x00},  // Z
    {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E, 0x00},  // [
    {0x10, 0x10, 0x08, 0x04, 0x02, 0x01, 0x01, 0x00},  // backslash
    {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E, 0x00},  // ]
    {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00},  // ^
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F},  // _
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00},  // `
    {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00},  // a
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E, 0x00},  // b
    {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00},  // c
    {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F, 0x00},  // d
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00},  // e
    {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00},  // f
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E},  // g
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00},  // h
    {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00},  // i
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x12, 0x0C},  // j
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00},  // k
    {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00},  // l
    {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11, 0x00},  // m
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00},  // n
    {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00},  // o
    {0x00, 0x00, 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10},  // p
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01},  // q
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00},  // r
    {0x00, 0x00, 0x0F, 0x10, 0x0E, 0x01, 0x1E, 0x00},  // s
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00},  // t
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00},  // u
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00},  // v
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00},  // w
    {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00},  // x
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E},  // y
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00},  // z
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00},  // {
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00},  // |
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00},  // }
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00},  // ~
}};

const Glyph& glyph_for(char c) {
  auto code = static_cast<unsigned char>(c);
  if (code < 32 || code > 126) code = '?';
  return font[code - 32];
}

void check_scale(int scale) {
  if (scale < 1 || scale > 64) {
    throw std::invalid_argument(fmt::format("text scale must be in 1..64, got {}", scale));
  }
}

// Calls plot(column, row) for every lit font pixel of `text`, in unrotated text coordinates.
template <typename Plot>
void for_each_text_pixel(std::string_view text, int scale, Plot plot) {
  check_scale(scale);
  int pen_x = 0;
  int pen_y = 0;
  for (char c : text) {
    if (c == '\n') {
      pen_x = 0;
      pen_y += line_height * scale;
      continue;
    }
    const Glyph& glyph = glyph_for(c);
    for (int row = 0; row < 8; ++row) {
      for (int col = 0; col < 5; ++col) {
        if (((glyph[row] >> (4 - col)) & 1) == 0) continue;
        for (int dy = 0; dy < scale; ++dy) {
          for (int dx = 0; dx < scale; ++dx) {
            plot(pen_x + col * scale + dx, pen_y + row * scale + dy);
          }
        }
      }
    }
    pen_x += glyph_advance * scale;
  }
}

void check_size(int width, int height) {
  if (width < 1 || height < 1 || width > Image::max_side || height > Image::max_side) {
    throw std::invalid_argument(
        fmt::format("image size {}x{} is outside 1..{} per side", width, height, Image::max_side));
  }
}

// Liang-Barsky: shortens the segment to the box; false when nothing of it is inside. Needed so a
// line towards a far-away point costs pixels only where it is visible.
bool clip_segment(double& x0, double& y0, double& x1, double& y1, double lo_x, double lo_y,
                  double hi_x, double hi_y) {
  double t0 = 0.0;
  double t1 = 1.0;
  const double dx = x1 - x0;
  const double dy = y1 - y0;
  const std::array<double, 4> p = {-dx, dx, -dy, dy};
  const std::array<double, 4> q = {x0 - lo_x, hi_x - x0, y0 - lo_y, hi_y - y0};
  for (int i = 0; i < 4; ++i) {
    if (p[i] == 0.0) {
      if (q[i] < 0.0) return false;
      continue;
    }
    const double t = q[i] / p[i];
    if (p[i] < 0.0) {
      t0 = std::max(t0, t);
    } else {
      t1 = std::min(t1, t);
    }
    if (t0 > t1) return false;
  }
  x1 = x0 + t1 * dx;
  y1 = y0 + t1 * dy;
  x0 = x0 + t0 * dx;
  y0 = y0 + t0 * dy;
  return true;
}

}  // namespace

int text_width(std::string_view text, int scale) {
  check_scale(scale);
  std::size_t widest = 0;
  std::size_t current = 0;
  for (char c : text) {
    current = c == '\n' ? 0 : current + 1;
    widest = std::max(widest, current);
  }
  if (widest == 0) return 0;
  return (static_cast<int>(widest) * glyph_advance - 1) * scale;
}

int text_height(std::string_view text, int scale) {
  check_scale(scale);
  if (text.empty()) return 0;
  const auto lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;
  return ((lines - 1) * line_height + glyph_height) * scale;
}

Image::Image(int width, int height, Rgb fill) : width_(width), height_(height) {
  check_size(width, height);
  pixels_.resize(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3);
  for (std::size_t i = 0; i < pixels_.size(); i += 3) {
    pixels_[i] = fill.r;
    pixels_[i + 1] = fill.g;
    pixels_[i + 2] = fill.b;
  }
}

void Image::set(int x, int y, Rgb color) {
  if (!inside(x, y)) return;
  auto* p = &pixels_[(static_cast<std::size_t>(y) * static_cast<std::size_t>(width_) +
                      static_cast<std::size_t>(x)) *
                     3];
  p[0] = color.r;
  p[1] = color.g;
  p[2] = color.b;
}

void Image::blend(int x, int y, Rgb color, double alpha) {
  if (!inside(x, y)) return;
  alpha = std::clamp(alpha, 0.0, 1.0);
  const Rgb old = get(x, y);
  auto mix = [alpha](std::uint8_t over, std::uint8_t under) {
    return static_cast<std::uint8_t>(std::lround(alpha * over + (1.0 - alpha) * under));
  };
  set(x, y, {mix(color.r, old.r), mix(color.g, old.g), mix(color.b, old.b)});
}

Rgb Image::get(int x, int y) const {
  if (!inside(x, y)) {
    throw std::out_of_range(
        fmt::format("pixel ({}, {}) is outside the {}x{} image", x, y, width_, height_));
  }
  const auto* p = &pixels_[(static_cast<std::size_t>(y) * static_cast<std::size_t>(width_) +
                            static_cast<std::size_t>(x)) *
                           3];
  return {p[0], p[1], p[2]};
}

void Image::fill_rect(int x, int y, int w, int h, Rgb color) {
  const auto x_end = static_cast<int>(std::min<long long>(static_cast<long long>(x) + w, width_));
  const auto y_end = static_cast<int>(std::min<long long>(static_cast<long long>(y) + h, height_));
  for (int yy = std::max(y, 0); yy < y_end; ++yy) {
    for (int xx = std::max(x, 0); xx < x_end; ++xx) set(xx, yy, color);
  }
}

void Image::draw_rect(int x, int y, int w, int h, Rgb color) {
  if (w <= 0 || h <= 0) return;
  fill_rect(x, y, w, 1, color);
  fill_rect(x, y + h - 1, w, 1, color);
  fill_rect(x, y, 1, h, color);
  fill_rect(x + w - 1, y, 1, h, color);
}

void Image::draw_line(int x0, int y0, int x1, int y1, Rgb color, int thickness) {
  thickness = std::max(thickness, 1);
  const double margin = thickness;
  double ax = x0, ay = y0, bx = x1, by = y1;
  if (!clip_segment(ax, ay, bx, by, -margin, -margin, width_ + margin, height_ + margin)) return;
  // Bresenham over the clipped ends; the brush is centred on the ideal line.
  int cx = static_cast<int>(std::lround(ax));
  int cy = static_cast<int>(std::lround(ay));
  const int ex = static_cast<int>(std::lround(bx));
  const int ey = static_cast<int>(std::lround(by));
  const int dx = std::abs(ex - cx);
  const int dy = -std::abs(ey - cy);
  const int sx = cx < ex ? 1 : -1;
  const int sy = cy < ey ? 1 : -1;
  const int offset = (thickness - 1) / 2;
  int err = dx + dy;
  while (true) {
    fill_rect(cx - offset, cy - offset, thickness, thickness, color);
    if (cx == ex && cy == ey) break;
    const int e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      cx += sx;
    }
    if (e2 <= dx) {
      err += dx;
      cy += sy;
    }
  }
}

void Image::fill_circle(int cx, int cy, int radius, Rgb color) {
  if (radius < 0) return;
  // The +radius term rounds the disc so small markers look round rather than diamond-shaped.
  const int limit = radius * radius + radius;
  for (int dy = -radius; dy <= radius; ++dy) {
    for (int dx = -radius; dx <= radius; ++dx) {
      if (dx * dx + dy * dy <= limit) set(cx + dx, cy + dy, color);
    }
  }
}

void Image::draw_text(int x, int y, std::string_view text, Rgb color, int scale) {
  for_each_text_pixel(text, scale, [&](int col, int row) { set(x + col, y + row, color); });
}

void Image::draw_text_up(int x, int y, std::string_view text, Rgb color, int scale) {
  // Turning counter-clockwise maps a text column to height above y and a text row to x.
  for_each_text_pixel(text, scale, [&](int col, int row) { set(x + row, y - col, color); });
}

std::vector<std::byte> encode_png(const Image& image) {
  std::vector<std::byte> out;
  auto append = [](void* context, void* data, int size) {
    auto* bytes = static_cast<std::vector<std::byte>*>(context);
    const auto* begin = static_cast<const std::byte*>(data);
    bytes->insert(bytes->end(), begin, begin + size);
  };
  const int ok = stbi_write_png_to_func(append, &out, image.width(), image.height(), 3,
                                        image.pixels().data(), image.width() * 3);
  if (ok == 0) {
    throw std::runtime_error(
        fmt::format("cannot encode a {}x{} PNG (out of memory)", image.width(), image.height()));
  }
  return out;
}

void write_png(const std::filesystem::path& path, const Image& image) {
  const auto bytes = encode_png(image);
  write_file_atomic(path, std::span<const std::byte>(bytes));
}

Image image_grid(std::span<const float> images, int count, TileShape tile, int grid_cols,
                 int pad, int scale, Rgb pad_color) {
  if (tile.channels != 1 && tile.channels != 3) {
    throw std::invalid_argument(fmt::format(
        "image_grid: images need 1 (grey) or 3 (RGB) channels, got {}", tile.channels));
  }
  if (count < 1 || tile.rows < 1 || tile.cols < 1 || grid_cols < 1 || pad < 0 || scale < 1) {
    throw std::invalid_argument(fmt::format(
        "image_grid: need count, rows, cols, grid_cols, scale >= 1 and pad >= 0; got count={} "
        "rows={} cols={} grid_cols={} pad={} scale={}",
        count, tile.rows, tile.cols, grid_cols, pad, scale));
  }
  const int across = std::min(count, grid_cols);
  // In 64 bits: count + grid_cols overflows an int for the largest ints (UBSan in CI).
  const long long down = (static_cast<long long>(count) + grid_cols - 1) / grid_cols;
  const long long tile_w = static_cast<long long>(tile.cols) * scale;
  const long long tile_h = static_cast<long long>(tile.rows) * scale;
  // Checking one padded tile first keeps the products below far from overflow, and bounds count
  // (by across * down) before it multiplies the tile size.
  auto side = [pad](long long tiles, long long tile_side) {
    if (tile_side + 2LL * pad > Image::max_side) return tile_side + 2LL * pad;
    return tiles * (tile_side + pad) + pad;
  };
  const long long width = side(across, tile_w);
  const long long height = side(down, tile_h);
  if (width > Image::max_side || height > Image::max_side) {
    throw std::invalid_argument(fmt::format(
        "image_grid: the grid would be at least {}x{} pixels, over the limit of {} per side",
        width, height, Image::max_side));
  }
  const auto plane = static_cast<std::size_t>(tile.rows) * static_cast<std::size_t>(tile.cols);
  const auto tile_values = plane * static_cast<std::size_t>(tile.channels);
  if (images.size() < tile_values * static_cast<std::size_t>(count)) {
    throw std::invalid_argument(fmt::format(
        "image_grid: {} images of {}x{}x{} need {} values, got {}", count, tile.channels,
        tile.rows, tile.cols, tile_values * static_cast<std::size_t>(count), images.size()));
  }
  // A grey pixel is an RGB pixel whose three channels read the same plane, so one loop serves
  // both and grey tiles keep the pixels they have always had.
  const std::size_t channel_step = tile.channels == 3 ? plane : 0;
  auto level = [](float v) {
    const float clamped = std::isnan(v) ? 0.0f : std::clamp(v, 0.0f, 1.0f);
    return static_cast<std::uint8_t>(std::lround(clamped * 255.0f));
  };
  Image grid(static_cast<int>(width), static_cast<int>(height), pad_color);
  for (int i = 0; i < count; ++i) {
    const int left = static_cast<int>(pad + (i % grid_cols) * (tile_w + pad));
    const int top = static_cast<int>(pad + (i / grid_cols) * (tile_h + pad));
    const float* values = images.data() + tile_values * static_cast<std::size_t>(i);
    for (int r = 0; r < tile.rows; ++r) {
      for (int c = 0; c < tile.cols; ++c) {
        const float* p = values + static_cast<std::size_t>(r) * tile.cols + c;
        grid.fill_rect(left + c * scale, top + r * scale, scale, scale,
                       {level(p[0]), level(p[channel_step]), level(p[2 * channel_step])});
      }
    }
  }
  return grid;
}

Image image_grid(std::span<const float> images, int count, int rows, int cols_px, int grid_cols,
                 int pad, int scale, Rgb pad_color) {
  return image_grid(images, count, TileShape{1, rows, cols_px}, grid_cols, pad, scale, pad_color);
}

}  // namespace graphrun
