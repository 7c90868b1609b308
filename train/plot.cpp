#include <graphrun/train/plot.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <fmt/format.h>
#include <numeric>
#include <stdexcept>
#include <string_view>

namespace graphrun {
namespace {

constexpr Rgb text_color{30, 30, 30};
constexpr Rgb frame_color{90, 90, 90};
constexpr Rgb grid_color{232, 232, 232};
constexpr int tick_length = 4;
constexpr int gap = 8;

struct Range {
  double lo = 0.0, hi = 1.0;
};

// The finite values' extent plus `fraction` of it each side, so markers sit inside the frame. A
// constant (or empty) set still gets a non-empty range: mapping to pixels divides by its width.
Range padded_range(const std::vector<const std::vector<double>*>& sets, double fraction) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto* set : sets) {
    for (double v : *set) {
      if (!std::isfinite(v)) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  if (lo > hi) return {0.0, 1.0};
  const double span = hi - lo;
  const double magnitude = std::max(std::abs(lo), std::abs(hi));
  if (!(span > magnitude * 1e-9)) {
    const double half = magnitude > 0.0 ? magnitude * 0.1 : 1.0;
    return {lo - half, hi + half};
  }
  if (!std::isfinite(span)) return {lo, hi};
  return {lo - span * fraction, hi + span * fraction};
}

// The smallest step of 1, 2 or 5 times a power of ten that cuts `span` into at most `max_ticks`.
double nice_step(double span, int max_ticks, bool integers) {
  const double raw = span / std::max(max_ticks, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10.0 * magnitude;
  for (double m : {1.0, 2.0, 5.0}) {
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  }
  return integers ? std::max(step, 1.0) : step;
}

std::vector<double> tick_values(Range r, double step) {
  std::vector<double> ticks;
  if (!(step > 0.0) || !std::isfinite(step)) return ticks;
  const double first = std::ceil(r.lo / step - 1e-9);
  for (int k = 0; k < 100; ++k) {
    double v = (first + k) * step;  // by index, so errors do not accumulate
    if (v > r.hi + step * 1e-9) break;
    if (std::abs(v) < step * 1e-6) v = 0.0;  // never print "-0"
    ticks.push_back(v);
  }
  return ticks;
}

// Enough decimals to tell neighbouring ticks apart, scientific notation for extreme magnitudes.
std::string format_tick(double v, double step) {
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  if (decimals <= 5 && std::abs(v) < 1e6) return fmt::format("{:.{}f}", v, decimals);
  // "2.5e+06" -> "2.5e6": narrower labels leave room for more ticks.
  auto text = fmt::format("{:.3g}", v);
  const auto e = text.find('e');
  if (e == std::string::npos) return text;
  std::string exponent = text.substr(e + 1);
  const bool negative = exponent[0] == '-';
  exponent.erase(0, exponent.find_first_not_of("+-0"));
  return text.substr(0, e + 1) + (negative ? "-" : "") + exponent;
}

struct Frame {
  int left = 0, top = 0, width = 1, height = 1;  // the plot area in pixels
  Range x, y;
  double to_px(double v) const { return left + (v - x.lo) / (x.hi - x.lo) * (width - 1); }
  double to_py(double v) const {
    return top + height - 1 - (v - y.lo) / (y.hi - y.lo) * (height - 1);
  }
};

// Pixel coordinates stay far inside int range even for data beyond the axes.
int to_pixel(double v) { return static_cast<int>(std::lround(std::clamp(v, -1e6, 1e6))); }

struct AxesSpec {
  std::string_view title, x_label, y_label;
  Range x, y;
  bool x_integers = false;
  int reserve_right = 0;  // room kept free right of the plot area, for an outside legend
};

int widest_label(const std::vector<double>& ticks, double step) {
  int widest = 0;
  for (double t : ticks) widest = std::max(widest, text_width(format_tick(t, step)));
  return widest;
}

void draw_title_and_labels(Image& image, const AxesSpec& spec, const Frame& f) {
  if (!spec.title.empty()) {
    const int scale = text_width(spec.title, 2) + 2 * gap <= image.width() ? 2 : 1;
    const int x = (image.width() - text_width(spec.title, scale)) / 2;
    image.draw_text(std::max(x, 0), gap + 2, spec.title, text_color, scale);
  }
  if (!spec.x_label.empty()) {
    const int x = f.left + (f.width - text_width(spec.x_label)) / 2;
    image.draw_text(std::max(x, 0), image.height() - gap - glyph_height, spec.x_label, text_color);
  }
  if (!spec.y_label.empty()) {
    const int y = f.top + (f.height + text_width(spec.y_label)) / 2;
    image.draw_text_up(gap, std::min(y, image.height() - 1), spec.y_label, text_color);
  }
}

// Lays out and draws everything but the data: title, grid, frame, ticks and their labels, axis
// labels. Returns the frame the data is drawn into.
Frame draw_axes(Image& image, const AxesSpec& spec) {
  Frame f;
  f.x = spec.x;
  f.y = spec.y;
  f.top = spec.title.empty() ? 2 * gap : 2 * gap + 2 * glyph_height + gap;
  const int bottom =
      tick_length + 4 + glyph_height + gap + (spec.x_label.empty() ? 0 : glyph_height + gap + 2);
  f.height = image.height() - f.top - bottom;
  const double y_step = nice_step(f.y.hi - f.y.lo, std::max(2, f.height / 35), false);
  const auto y_ticks = tick_values(f.y, y_step);
  f.left = gap + (spec.y_label.empty() ? 0 : glyph_height + gap) + widest_label(y_ticks, y_step) +
           4 + tick_length;
  f.width = image.width() - f.left - 2 * gap - spec.reserve_right;
  if (f.width < 40 || f.height < 40) {
    throw std::invalid_argument(fmt::format("plot '{}': a {}x{} image leaves no room for the data",
                                            spec.title, image.width(), image.height()));
  }
  // Fewer x ticks until their labels have air between them.
  double x_step = 0.0;
  std::vector<double> x_ticks;
  for (int max_ticks = std::max(2, f.width / 60); max_ticks >= 1; --max_ticks) {
    x_step = nice_step(f.x.hi - f.x.lo, max_ticks, spec.x_integers);
    x_ticks = tick_values(f.x, x_step);
    const double spacing = x_step / (f.x.hi - f.x.lo) * f.width;
    if (widest_label(x_ticks, x_step) + 3 * glyph_advance <= spacing) break;
  }
  const int right = f.left + f.width - 1;
  const int base = f.top + f.height - 1;
  for (double t : y_ticks) {
    const int py = to_pixel(f.to_py(t));
    image.draw_line(f.left, py, right, py, grid_color);
    image.draw_line(f.left - tick_length, py, f.left - 1, py, frame_color);
    const auto label = format_tick(t, y_step);
    image.draw_text(f.left - tick_length - 4 - text_width(label), py - glyph_height / 2, label,
                    text_color);
  }
  for (double t : x_ticks) {
    const int px = to_pixel(f.to_px(t));
    image.draw_line(px, f.top, px, base, grid_color);
    image.draw_line(px, base + 1, px, base + tick_length, frame_color);
    const auto label = format_tick(t, x_step);
    // Kept whole inside the image even when the outermost tick sits at the frame's corner.
    const int x =
        std::max(0, std::min(px - text_width(label) / 2, image.width() - text_width(label)));
    image.draw_text(x, base + tick_length + 4, label, text_color);
  }
  image.draw_rect(f.left - 1, f.top - 1, f.width + 2, f.height + 2, frame_color);
  draw_title_and_labels(image, spec, f);
  return f;
}

struct LegendEntry {
  std::string text;
  Rgb color;
};

// How data is drawn, so the legend's swatches can match it.
struct Style {
  bool lines = false;
  bool markers = true;
  int thickness = 2;
};

constexpr int legend_pad = 6;
constexpr int legend_row = line_height + 4;
constexpr int swatch = 16;

int legend_width(const std::vector<LegendEntry>& entries) {
  int widest = 0;
  for (const auto& e : entries) widest = std::max(widest, text_width(e.text));
  return 2 * legend_pad + swatch + legend_pad + widest;
}

int legend_height(const std::vector<LegendEntry>& entries) {
  return 2 * legend_pad + static_cast<int>(entries.size()) * legend_row - 4;
}

// A boxed list: each row has a swatch drawn like the data, in the entry's colour, and its text.
void draw_legend(Image& image, int x, int y, const std::vector<LegendEntry>& entries, Style style) {
  image.fill_rect(x, y, legend_width(entries), legend_height(entries), colors::white);
  image.draw_rect(x, y, legend_width(entries), legend_height(entries), frame_color);
  int row_y = y + legend_pad;
  for (const auto& e : entries) {
    const int mid = row_y + glyph_height / 2;
    const int sx = x + legend_pad;
    if (style.lines) image.draw_line(sx, mid, sx + swatch - 1, mid, e.color, style.thickness);
    if (style.markers) image.fill_circle(sx + swatch / 2, mid, 3, e.color);
    image.draw_text(sx + swatch + legend_pad, row_y, e.text, text_color);
    row_y += legend_row;
  }
}

// Counts data pixels (neither background nor grid) in a rectangle: the legend goes where it
// hides the least.
int covered_pixels(const Image& image, int x, int y, int w, int h) {
  int count = 0;
  for (int yy = std::max(y, 0); yy < std::min(y + h, image.height()); ++yy) {
    for (int xx = std::max(x, 0); xx < std::min(x + w, image.width()); ++xx) {
      const Rgb p = image.get(xx, yy);
      count += p != colors::white && p != grid_color;
    }
  }
  return count;
}

void place_legend_inside(Image& image, const Frame& f, const std::vector<LegendEntry>& entries,
                         Style style) {
  if (entries.empty()) return;
  const int w = legend_width(entries);
  const int h = legend_height(entries);
  const int x_lo = f.left + gap, x_hi = f.left + f.width - gap - w;
  const int y_lo = f.top + gap, y_hi = f.top + f.height - gap - h;
  // Preference order on ties: top right, top left, bottom right, bottom left.
  const std::array<std::pair<int, int>, 4> corners = {
      {{x_hi, y_lo}, {x_lo, y_lo}, {x_hi, y_hi}, {x_lo, y_hi}}};
  auto best = corners[0];
  int least = covered_pixels(image, best.first, best.second, w, h);
  for (const auto& c : corners) {
    const int covered = covered_pixels(image, c.first, c.second, w, h);
    if (covered < least) {
      least = covered;
      best = c;
    }
  }
  draw_legend(image, best.first, best.second, entries, style);
}

void check_size(const std::string& title, int width, int height) {
  if (width < 200 || height < 150 || width > Image::max_side || height > Image::max_side) {
    throw std::invalid_argument(fmt::format("plot '{}': size {}x{} is outside 200x150..{} per side",
                                            title, width, height, Image::max_side));
  }
}

bool all_integers(const std::vector<Series>& series) {
  for (const auto& s : series) {
    for (double v : s.x) {
      if (std::isfinite(v) && v != std::round(v)) return false;
    }
  }
  return true;
}

void draw_series(Image& image, const Frame& f, const Series& s, Style style) {
  bool have_previous = false;
  int prev_x = 0, prev_y = 0;
  for (std::size_t i = 0; i < s.x.size(); ++i) {
    if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
      have_previous = false;
      continue;
    }
    const int px = to_pixel(f.to_px(s.x[i]));
    const int py = to_pixel(f.to_py(s.y[i]));
    if (have_previous) image.draw_line(prev_x, prev_y, px, py, s.color, style.thickness);
    if (style.markers) image.fill_circle(px, py, 3, s.color);
    have_previous = true;
    prev_x = px;
    prev_y = py;
  }
}

// A fixed pseudo-random rank per point (splitmix64), so the draw order mixes the classes.
std::uint64_t mix_rank(std::uint64_t i) {
  std::uint64_t z = i + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::vector<LegendEntry> class_legend(const ScatterPlot& plot, int max_rows) {
  std::vector<int> present(plot.labels);
  std::sort(present.begin(), present.end());
  present.erase(std::unique(present.begin(), present.end()), present.end());
  std::vector<LegendEntry> entries;
  for (int label : present) {
    if (static_cast<int>(entries.size()) + 1 >= max_rows && label != present.back()) {
      entries.push_back({"...", colors::gray});
      break;
    }
    const auto index = static_cast<std::size_t>(label);
    entries.push_back(
        {index < plot.class_names.size() ? plot.class_names[index] : std::to_string(label),
         palette_color(label)});
  }
  return entries;
}

}  // namespace

Rgb palette_color(int index) {
  // clang-format off
  static constexpr std::array<Rgb, 10> tab10 = {{
      {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
      {140, 86, 75}, {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}}};
  // clang-format on
  return tab10[static_cast<std::size_t>(((index % 10) + 10) % 10)];
}

Image line_plot(const LinePlot& plot) {
  check_size(plot.title, plot.width, plot.height);
  std::vector<const std::vector<double>*> xs, ys;
  std::size_t most_points = 0;
  for (const auto& s : plot.series) {
    if (s.x.size() != s.y.size()) {
      throw std::invalid_argument(
          fmt::format("line plot '{}': series '{}' has {} x and {} y values", plot.title, s.name,
                      s.x.size(), s.y.size()));
    }
    xs.push_back(&s.x);
    ys.push_back(&s.y);
    most_points = std::max(most_points, s.x.size());
  }
  Image image(plot.width, plot.height);
  AxesSpec spec{plot.title,
                plot.x_label,
                plot.y_label,
                padded_range(xs, 0.03),
                padded_range(ys, 0.06),
                all_integers(plot.series),
                0};
  const Frame f = draw_axes(image, spec);
  // Markers only while points are well apart, and thin lines once they crowd: a noisy per-step
  // curve drawn thick becomes a solid band.
  const double spacing = f.width / std::max(static_cast<double>(most_points), 1.0);
  const Style style{true, spacing >= 10.0, spacing >= 3.0 ? 2 : 1};
  std::vector<LegendEntry> entries;
  for (std::size_t i = 0; i < plot.series.size(); ++i) {
    const auto& s = plot.series[i];
    draw_series(image, f, s, style);
    entries.push_back({s.name.empty() ? fmt::format("series {}", i + 1) : s.name, s.color});
  }
  place_legend_inside(image, f, entries, style);
  return image;
}

Image scatter_plot(const ScatterPlot& plot) {
  check_size(plot.title, plot.width, plot.height);
  if (plot.x.size() != plot.y.size() ||
      (!plot.labels.empty() && plot.labels.size() != plot.x.size())) {
    throw std::invalid_argument(
        fmt::format("scatter plot '{}': {} x values, {} y values and {} labels (want equal, or "
                    "no labels)",
                    plot.title, plot.x.size(), plot.y.size(), plot.labels.size()));
  }
  const auto negative =
      std::find_if(plot.labels.begin(), plot.labels.end(), [](int label) { return label < 0; });
  if (negative != plot.labels.end()) {
    throw std::invalid_argument(fmt::format("scatter plot '{}': label {} at point {} is negative",
                                            plot.title, *negative, negative - plot.labels.begin()));
  }
  Image image(plot.width, plot.height);
  const int max_rows = std::max(1, (plot.height - 6 * gap) / legend_row);
  const auto entries = class_legend(plot, max_rows);
  const int reserve = entries.empty() ? 0 : legend_width(entries) + gap;
  AxesSpec spec{plot.title,
                plot.x_label,
                plot.y_label,
                padded_range({&plot.x}, 0.05),
                padded_range({&plot.y}, 0.05),
                false,
                reserve};
  const Frame f = draw_axes(image, spec);
  std::vector<std::size_t> order(plot.x.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(),
            [](std::size_t a, std::size_t b) { return mix_rank(a) < mix_rank(b); });
  const int radius = order.size() <= 500 ? 3 : order.size() <= 5000 ? 2 : 1;
  for (std::size_t i : order) {
    if (!std::isfinite(plot.x[i]) || !std::isfinite(plot.y[i])) continue;
    const Rgb color = plot.labels.empty() ? palette_color(0) : palette_color(plot.labels[i]);
    image.fill_circle(to_pixel(f.to_px(plot.x[i])), to_pixel(f.to_py(plot.y[i])), radius, color);
  }
  if (!entries.empty()) draw_legend(image, f.left + f.width + 2 * gap, f.top, entries, Style{});
  return image;
}

}  // namespace graphrun
