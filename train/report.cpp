#include <graphrun/train/atomic_file.hpp>
#include <graphrun/train/idx.hpp>
#include <graphrun/train/pca.hpp>
#include <graphrun/train/plot.hpp>
#include <graphrun/train/report.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <numeric>

namespace graphrun {
namespace fs = std::filesystem;
namespace {

using Json = nlohmann::ordered_json;

// The latent scatter figures show at most this many test images.
constexpr std::int64_t kLatentImages = 5000;

// The figures show test images, or training images when a data set has no test part.
const Split& figure_split(const Dataset& data) {
  return data.test.count > 0 ? data.test : data.train;
}

Json row_json(const EpochReport& r) {
  Json j;
  j["epoch"] = r.epoch;
  j["step"] = r.step;
  j["train_loss"] = r.train.loss;
  for (const auto& [name, v] : r.train.terms) j["train_" + name] = v;
  if (r.has_test) {
    j["test_loss"] = r.test.loss;
    for (const auto& [name, v] : r.test.terms) j["test_" + name] = v;
  }
  j["seconds"] = r.seconds;
  j["samples_per_second"] = r.samples_per_second;
  j["ranks"] = r.ranks;
  return j;
}

double number_or_nan(const Json& v) {
  return v.is_number() ? v.get<double>() : std::numeric_limits<double>::quiet_NaN();
}

EpochReport row_from_json(const Json& j) {
  EpochReport r;
  r.epoch = j.at("epoch").get<std::int64_t>();
  r.step = j.at("step").get<std::int64_t>();
  r.seconds = number_or_nan(j.at("seconds"));
  r.samples_per_second = number_or_nan(j.at("samples_per_second"));
  r.ranks = j.value("ranks", 1);
  for (const auto& [key, v] : j.items()) {
    for (auto [prefix, report] : {std::pair{"train_", &r.train}, std::pair{"test_", &r.test}}) {
      std::string p = prefix;
      if (key.rfind(p, 0) != 0) continue;
      std::string name = key.substr(p.size());
      if (name == "loss") report->loss = number_or_nan(v);
      else report->terms[name] = number_or_nan(v);
      if (report == &r.test) r.has_test = true;
    }
  }
  return r;
}

std::string csv_number(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "nan"; }

// Standard normal quantile by bisection on the CDF 0.5 erfc(-x / sqrt 2).
double normal_quantile(double p) {
  double lo = -10, hi = 10;
  for (int i = 0; i < 200 && hi - lo > 1e-12; ++i) {
    double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

int label_of(const Split& data, std::int64_t i) {
  return data.labels.empty() ? -1 : static_cast<int>(data.labels[static_cast<std::size_t>(i)]);
}

// Tiles rows of model inputs or outputs: undone from the normalization into [0, 1], in colour
// when the data are RGB.
Image tiles(const Split& data, std::span<const float> rows, int count, int grid_cols, int pad = 2,
            int scale = 2) {
  if (!data.is_image())
    throw std::invalid_argument(fmt::format("samples of shape [{}] are not images (C x H x W with "
                                            "C = 1 or 3); there is nothing to draw",
                                            fmt::join(data.shape, ", ")));
  std::vector<float> shown(rows.begin(), rows.end());
  data.to_display(shown);
  return image_grid(shown, count,
                    TileShape{static_cast<int>(data.channels()), static_cast<int>(data.height()),
                              static_cast<int>(data.width())},
                    grid_cols, pad, scale);
}

}  // namespace

MetricsLog::MetricsLog(fs::path dir) : dir_(std::move(dir)) {}

void MetricsLog::load(std::int64_t up_to_epoch) {
  rows_.clear();
  std::ifstream in(jsonl_path());
  if (!in) return;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      EpochReport r = row_from_json(Json::parse(line));
      if (r.epoch <= up_to_epoch) rows_.push_back(r);
    } catch (const nlohmann::json::exception& e) {
      throw DataError(fmt::format("{}:{}: not a metrics row: {}", jsonl_path().string(), number, e.what()));
    }
  }
}

void MetricsLog::add(const EpochReport& report) { rows_.push_back(report); }

void MetricsLog::write() const {
  std::string jsonl, csv;
  std::vector<std::string> columns;
  for (const auto& r : rows_) {
    Json j = row_json(r);
    jsonl += j.dump() + "\n";
    for (const auto& [key, v] : j.items())
      if (std::find(columns.begin(), columns.end(), key) == columns.end()) columns.push_back(key);
  }
  csv = fmt::format("{}\n", fmt::join(columns, ","));
  for (const auto& r : rows_) {
    Json j = row_json(r);
    for (std::size_t i = 0; i < columns.size(); ++i) {
      const auto& c = columns[i];
      if (i > 0) csv += ',';
      if (j.contains(c)) csv += j[c].is_number_integer() ? j[c].dump() : csv_number(number_or_nan(j[c]));
    }
    csv += "\n";
  }
  write_file_atomic(jsonl_path(), jsonl);
  write_file_atomic(csv_path(), csv);
}

std::vector<std::string> class_names(const Dataset& data) {
  if (!data.class_names.empty()) return data.class_names;
  std::string id = data.name + " " + data.dir.string();
  std::transform(id.begin(), id.end(), id.begin(), [](unsigned char c) { return std::tolower(c); });
  if (id.find("fashion") != std::string::npos)
    return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  if (id.find("mnist") != std::string::npos)
    return {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
  return {};
}

Image loss_figure(const std::vector<EpochReport>& rows, const std::string& title) {
  Series train{"train", {}, {}, palette_color(0)}, test{"test", {}, {}, palette_color(1)};
  for (const auto& r : rows) {
    train.x.push_back(static_cast<double>(r.epoch));
    train.y.push_back(r.train.loss);
    if (!r.has_test) continue;
    test.x.push_back(static_cast<double>(r.epoch));
    test.y.push_back(r.test.loss);
  }
  LinePlot plot{title, "epoch", "loss per image", {train}};
  if (!test.x.empty()) plot.series.push_back(test);
  return line_plot(plot);
}

Image reconstruction_figure(Inference& inference, const Split& data, int count) {
  count = static_cast<int>(std::min<std::int64_t>(count, data.count));
  std::vector<std::int64_t> idx(static_cast<std::size_t>(count));
  std::iota(idx.begin(), idx.end(), 0);
  Tensor x = Inference::images(data, idx);
  Tensor labels = inference.labels(data, idx);
  std::vector<float> rows(x.values<float>().begin(), x.values<float>().end());
  Tensor input = x;
  if (inference.denoising()) {  // the Keras blog's figure: clean, noisy, denoised
    input = inference.corrupt(x, labels);
    rows.insert(rows.end(), input.values<float>().begin(), input.values<float>().end());
  }
  Tensor y = inference.reconstruct(input, labels);
  rows.insert(rows.end(), y.values<float>().begin(), y.values<float>().end());
  int row_count = inference.denoising() ? 3 : 2;
  return tiles(data, rows, row_count * count, count);
}

Image sample_figure(Inference& inference, const Split& shape, int side, std::uint64_t seed,
                    std::optional<std::int64_t> cls) {
  Tensor s = inference.sample(static_cast<std::int64_t>(side) * side, seed, cls);
  return tiles(shape, s.values<float>(), side * side, side);
}

Image manifold_figure(Inference& inference, const Split& shape, int side) {
  if (inference.code_size() != 2)
    throw std::invalid_argument(fmt::format("the manifold figure needs a 2-D code, this one has {}",
                                            inference.code_size()));
  Tensor z(DType::f32, {static_cast<std::int64_t>(side) * side, 2});
  float* v = z.data<float>();
  for (int row = 0; row < side; ++row)
    for (int col = 0; col < side; ++col) {
      double p_x = 0.05 + 0.9 * col / std::max(side - 1, 1);
      double p_y = 0.95 - 0.9 * row / std::max(side - 1, 1);
      v[2 * (row * side + col)] = static_cast<float>(normal_quantile(p_x));
      v[2 * (row * side + col) + 1] = static_cast<float>(normal_quantile(p_y));
    }
  Tensor images = inference.decode(z, inference.classes(std::vector<std::int64_t>(
                                           static_cast<std::size_t>(side) * side, 0)));
  return tiles(shape, images.values<float>(), side * side, side, 0, 1);
}

Image latent_figure(std::span<const float> codes, std::int64_t n, std::int64_t k,
                    const std::vector<std::int64_t>& labels, const std::vector<std::string>& names,
                    const std::string& title) {
  ScatterPlot plot;
  plot.title = title;
  plot.class_names = names;
  if (k == 2) {
    for (std::int64_t i = 0; i < n; ++i) {
      plot.x.push_back(codes[static_cast<std::size_t>(2 * i)]);
      plot.y.push_back(codes[static_cast<std::size_t>(2 * i + 1)]);
    }
    plot.x_label = "z1";
    plot.y_label = "z2";
  } else {
    Pca pca = fit_pca(codes.first(static_cast<std::size_t>(n * k)), n, k, 2);
    auto p = project(pca, codes.first(static_cast<std::size_t>(n * k)));
    double total = 0;  // the sum of every dimension's variance
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t d = 0; d < k; ++d) {
        double c = codes[static_cast<std::size_t>(i * k + d)] - pca.mean[static_cast<std::size_t>(d)];
        total += c * c / static_cast<double>(n - 1);
      }
    for (std::int64_t i = 0; i < n; ++i) {
      plot.x.push_back(p[static_cast<std::size_t>(2 * i)]);
      plot.y.push_back(p[static_cast<std::size_t>(2 * i + 1)]);
    }
    auto share = [&](int c) { return total > 0 ? 100.0 * pca.variances[static_cast<std::size_t>(c)] / total : 0.0; };
    plot.x_label = fmt::format("PC1 ({:.0f}% of variance)", share(0));
    plot.y_label = fmt::format("PC2 ({:.0f}% of variance)", share(1));
  }
  if (!labels.empty()) plot.labels.assign(labels.begin(), labels.begin() + n);
  return scatter_plot(plot);
}

Image interpolation_figure(Inference& inference, const Split& data, int pairs, int steps,
                           std::optional<std::int64_t> cls) {
  std::vector<std::pair<std::int64_t, std::int64_t>> ends;
  for (std::int64_t i = 0; i + 1 < data.count && static_cast<int>(ends.size()) < pairs;) {
    std::int64_t j = i + 1;
    while (j + 1 < data.count && label_of(data, j) == label_of(data, i) && label_of(data, i) >= 0) ++j;
    ends.push_back({i, j});
    i = j + 1;
  }
  if (ends.empty()) throw std::invalid_argument("interpolation needs at least two images");
  const std::int64_t d = data.features();
  const int cols = steps + 2;
  std::vector<float> row_tiles;
  for (const auto& [a, b] : ends) {
    Tensor ia = Inference::images(data, {a}), ib = Inference::images(data, {b});
    Tensor line_y = cls ? inference.classes({*cls}) : inference.labels(data, {a});
    Tensor line = inference.interpolate(ia, ib, steps, inference.labels(data, {a, b}), line_y);
    row_tiles.insert(row_tiles.end(), ia.values<float>().begin(), ia.values<float>().end());
    row_tiles.insert(row_tiles.end(), line.values<float>().begin(), line.values<float>().begin() + steps * d);
    row_tiles.insert(row_tiles.end(), ib.values<float>().begin(), ib.values<float>().end());
  }
  return tiles(data, row_tiles, static_cast<int>(ends.size()) * cols, cols);
}

Image images_figure(const Split& data, const std::vector<std::int64_t>& indices, int grid_cols) {
  Tensor x = Inference::images(data, indices);
  return tiles(data, x.values<float>(), static_cast<int>(indices.size()),
               std::min<int>(grid_cols, static_cast<int>(indices.size())));
}

void write_codes_csv(const fs::path& path, const Tensor& codes, const Split& data) {
  const std::int64_t n = codes.shape()[0], k = codes.shape()[1];
  std::string csv = "index,label";
  for (std::int64_t j = 0; j < k; ++j) csv += fmt::format(",z{}", j + 1);
  csv += "\n";
  const float* c = codes.data<float>();
  for (std::int64_t i = 0; i < n; ++i) {
    int label = label_of(data, i);
    csv += label >= 0 ? fmt::format("{},{}", i, label) : fmt::format("{},", i);
    for (std::int64_t j = 0; j < k; ++j) csv += fmt::format(",{}", c[i * k + j]);
    csv += "\n";
  }
  write_file_atomic(path, csv);
}

void write_scores_csv(const fs::path& path, const std::vector<double>& scores, const Split& data) {
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return scores[a] > scores[b]; });
  std::vector<std::size_t> rank(scores.size());
  for (std::size_t r = 0; r < order.size(); ++r) rank[order[r]] = r + 1;
  std::string csv = "index,label,score,rank\n";
  for (std::size_t i = 0; i < scores.size(); ++i) {
    int label = label_of(data, static_cast<std::int64_t>(i));
    csv += fmt::format("{},{},{},{}\n", i, label >= 0 ? std::to_string(label) : "", csv_number(scores[i]), rank[i]);
  }
  write_file_atomic(path, csv);
}

std::vector<std::string> training_figure_names(const Model& model, const Dataset& data) {
  std::vector<std::string> names{"loss.png"};
  const bool images = figure_split(data).is_image();  // tables get no pictures of samples
  if (images) names.emplace_back("reconstructions.png");
  if (images && model.has_prior) names.emplace_back("samples.png");
  if (std::min(figure_split(data).count, kLatentImages) < 2) return names;
  const std::int64_t k = model.code.shape()[1];
  if (k == 2) {
    if (images && model.has_prior) names.emplace_back("manifold.png");
    names.emplace_back("latent.png");
  } else if (k > 2) {
    names.emplace_back("latent_pca.png");
  }
  return names;
}

std::vector<fs::path> write_training_figures(const fs::path& dir, Inference& inference,
                                             const Dataset& data, const std::vector<EpochReport>& rows,
                                             const Model& model, std::uint64_t seed) {
  const Split& test = figure_split(data);
  const std::int64_t n = std::min(test.count, kLatentImages);
  const std::string& model_name = model.name;
  const std::string what = model.has_prior ? "latent means" : "codes";
  Tensor codes;  // encoded once, for the scatter figures only
  auto latent = [&](const std::string& title) {
    if (codes.empty()) codes = inference.encode(test, n);
    return latent_figure(codes.values<float>(), n, inference.code_size(), test.labels,
                         class_names(data), title);
  };
  auto draw = [&](const std::string& name) -> Image {
    if (name == "loss.png") return loss_figure(rows, model_name + " loss");
    if (name == "reconstructions.png") return reconstruction_figure(inference, test, 16);
    if (name == "samples.png") return sample_figure(inference, test, 8, seed);
    if (name == "manifold.png") return manifold_figure(inference, test, 15);
    if (name == "latent.png")
      return latent(fmt::format("{} {} of {} test images", model_name, what, n));
    return latent(fmt::format("{} {} ({}-D), first two principal components", model_name, what,
                              inference.code_size()));
  };
  std::vector<fs::path> written;
  for (const auto& name : training_figure_names(model, data)) {
    write_png(dir / name, draw(name));
    written.push_back(dir / name);
  }
  return written;
}

}  // namespace graphrun
