#include <graphrun/train/plot.hpp>

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

using graphrun::Image;
using graphrun::Rgb;

namespace {

bool has_color(const Image& image, Rgb color) {
  for (int y = 0; y < image.height(); ++y) {
    for (int x = 0; x < image.width(); ++x) {
      if (image.get(x, y) == color) return true;
    }
  }
  return false;
}

constexpr double bad = std::numeric_limits<double>::quiet_NaN();
constexpr double huge = std::numeric_limits<double>::infinity();

}  // namespace

TEST_CASE("palette_color wraps around ten colours", "[png]") {
  CHECK(graphrun::palette_color(0) == Rgb{31, 119, 180});
  CHECK(graphrun::palette_color(11) == graphrun::palette_color(1));
  CHECK(graphrun::palette_color(-1) == graphrun::palette_color(9));
}

TEST_CASE("line_plot draws every series in its colour at the requested size", "[png]") {
  graphrun::LinePlot plot;
  plot.title = "Loss";
  plot.x_label = "epoch";
  plot.y_label = "loss";
  plot.series.push_back({"train", {1, 2, 3, 4}, {0.9, 0.5, 0.3, 0.25}, {200, 0, 0}});
  plot.series.push_back({"test", {1, 2, 3, 4}, {1.0, 0.6, 0.45, 0.4}, {0, 0, 200}});
  const Image image = graphrun::line_plot(plot);
  CHECK(image.width() == 640);
  CHECK(image.height() == 420);
  CHECK(has_color(image, {200, 0, 0}));
  CHECK(has_color(image, {0, 0, 200}));
}

TEST_CASE("line_plot survives awkward data", "[png]") {
  graphrun::LinePlot plot;
  plot.width = 300;
  plot.height = 200;
  SECTION("a single point") { plot.series.push_back({"one", {1}, {5}, {0, 150, 0}}); }
  SECTION("a constant series") {
    plot.series.push_back({"flat", {0, 1, 2}, {3, 3, 3}, {0, 150, 0}});
  }
  SECTION("NaN and Inf values") {
    plot.series.push_back({"gaps", {0, 1, 2, 3, bad}, {1, bad, huge, 2, 4}, {0, 150, 0}});
  }
  SECTION("nothing finite") { plot.series.push_back({"", {bad}, {1}, {0, 150, 0}}); }
  SECTION("huge and tiny values") {
    plot.series.push_back({"wide", {0, 1e-12, 2e-12}, {-1e300, 0, 1e300}, {0, 150, 0}});
  }
  const Image image = graphrun::line_plot(plot);
  CHECK(image.width() == 300);
  CHECK(image.height() == 200);
  CHECK(has_color(image, {0, 150, 0}));  // at least the legend swatch
}

TEST_CASE("line_plot rejects mismatched series and tiny images", "[png]") {
  graphrun::LinePlot plot;
  plot.series.push_back({"bad", {1, 2}, {1}, {0, 0, 0}});
  CHECK_THROWS_AS(graphrun::line_plot(plot), std::invalid_argument);
  plot.series.clear();
  plot.width = 50;
  CHECK_THROWS_AS(graphrun::line_plot(plot), std::invalid_argument);
}

TEST_CASE("scatter_plot colours points by label", "[png]") {
  graphrun::ScatterPlot plot;
  plot.title = "codes";
  for (int i = 0; i < 300; ++i) {
    plot.x.push_back(std::cos(i * 0.1) * (1 + i % 3));
    plot.y.push_back(std::sin(i * 0.1) * (1 + i % 3));
    plot.labels.push_back(i % 3);
  }
  plot.class_names = {"T-shirt/top", "Trouser", "Pullover"};
  const Image image = graphrun::scatter_plot(plot);
  CHECK(image.width() == 640);
  CHECK(image.height() == 560);
  for (int label = 0; label < 3; ++label) CHECK(has_color(image, graphrun::palette_color(label)));
  CHECK_FALSE(has_color(image, graphrun::palette_color(3)));
}

TEST_CASE("scatter_plot survives awkward data and rejects bad labels", "[png]") {
  graphrun::ScatterPlot plot;
  plot.width = 320;
  plot.height = 240;
  SECTION("no labels") {
    plot.x = {1, 2, bad};
    plot.y = {3, 3, 1};
    CHECK(has_color(graphrun::scatter_plot(plot), graphrun::palette_color(0)));
  }
  SECTION("a single point with a label beyond the names") {
    plot.x = {0};
    plot.y = {0};
    plot.labels = {12};
    CHECK(has_color(graphrun::scatter_plot(plot), graphrun::palette_color(12)));
  }
  SECTION("no points at all") { CHECK(graphrun::scatter_plot(plot).width() == 320); }
  SECTION("many labels in a short legend") {
    for (int i = 0; i < 40; ++i) {
      plot.x.push_back(i);
      plot.y.push_back(i % 7);
      plot.labels.push_back(i);
    }
    CHECK(graphrun::scatter_plot(plot).height() == 240);
  }
  SECTION("errors") {
    plot.x = {1, 2};
    plot.y = {1};
    CHECK_THROWS_AS(graphrun::scatter_plot(plot), std::invalid_argument);
    plot.y = {1, 2};
    plot.labels = {0, -1};
    CHECK_THROWS_AS(graphrun::scatter_plot(plot), std::invalid_argument);
    plot.labels = {0};
    CHECK_THROWS_AS(graphrun::scatter_plot(plot), std::invalid_argument);
  }
}
