// Draws graphrun's and the PyTorch reference's loss curves in one PNG, from graphrun's
// metrics.jsonl and torch_ref.py's --jsonl output.
//
//   plot_curves TITLE GRAPHRUN_METRICS.jsonl TORCH.jsonl OUT.png
#include <graphrun/train/image.hpp>
#include <graphrun/train/plot.hpp>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <stdexcept>
#include <string>

namespace {

struct Curves {
  std::vector<double> epoch, train, test;
};

Curves read(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  Curves c;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    c.epoch.push_back(j.at("epoch").get<double>());
    c.train.push_back(j.at("train_loss").get<double>());
    c.test.push_back(j.at("test_loss").is_null() ? 0.0 : j.at("test_loss").get<double>());
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    fmt::print(stderr, "usage: plot_curves TITLE GRAPHRUN.jsonl TORCH.jsonl OUT.png\n");
    return 2;
  }
  try {
    auto ours = read(argv[2]);
    auto torch = read(argv[3]);
    graphrun::LinePlot plot;
    plot.title = argv[1];
    plot.x_label = "epoch";
    plot.y_label = "loss per image (nats)";
    plot.series = {{"graphrun train", ours.epoch, ours.train, graphrun::palette_color(0)},
                   {"graphrun test", ours.epoch, ours.test, graphrun::palette_color(1)},
                   {"PyTorch train", torch.epoch, torch.train, graphrun::palette_color(2)},
                   {"PyTorch test", torch.epoch, torch.test, graphrun::palette_color(3)}};
    graphrun::write_png(argv[4], graphrun::line_plot(plot));
    fmt::print("graphrun test {:.2f}, PyTorch test {:.2f} after epoch {} ({:+.2f}%)\n",
               ours.test.back(), torch.test.back(), ours.epoch.back(),
               100.0 * (ours.test.back() - torch.test.back()) / torch.test.back());
  } catch (const std::exception& e) {
    fmt::print(stderr, "plot_curves: {}\n", e.what());
    return 1;
  }
  return 0;
}
