// Charts for training reports, drawn with the built-in font into an Image: loss curves and 2-D
// scatter plots of latent codes. Axes get 1-2-5 tick steps so the numbers read easily.
#pragma once

#include <string>
#include <vector>

#include <graphrun/train/image.hpp>

namespace graphrun {

// A qualitative 10-colour palette (matplotlib's tab10); index i wraps modulo 10.
Rgb palette_color(int index);

struct Series {
  std::string name;
  std::vector<double> x, y;  // same length; a point with a NaN or Inf coordinate is skipped
  Rgb color = palette_color(0);
};

struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  int width = 640, height = 420;
};

// Lines between consecutive finite points (a skipped point breaks the line), markers at the
// points while they are far enough apart to be told apart, a legend in the emptiest corner.
// Throws std::invalid_argument when a series' x and y differ in length or the size is too small
// to hold the axes (under 200x150).
Image line_plot(const LinePlot& plot);

struct ScatterPlot {
  std::string title, x_label, y_label;
  std::vector<double> x, y;
  std::vector<int> labels;               // same length as x, or empty for one colour
  std::vector<std::string> class_names;  // legend text per label; missing ones show the number
  int width = 640, height = 560;
};

// Points coloured by label with palette_color(label), drawn in a fixed interleaved order so no
// class hides under another wholesale; the legend to the right names the labels present.
// Throws std::invalid_argument for mismatched lengths, negative labels or a too-small size.
Image scatter_plot(const ScatterPlot& plot);

}  // namespace graphrun
