// The verbs that use a trained model: eval, sample, reconstruct, encode, interpolate, anomaly.
#include <graphrun/tools/commands.hpp>
#include <graphrun/tools/console.hpp>
#include <graphrun/train/atomic_file.hpp>
#include <graphrun/train/inference.hpp>
#include <graphrun/train/likelihood.hpp>
#include <graphrun/train/ranking.hpp>
#include <graphrun/train/report.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <numeric>

#include <unistd.h>

namespace graphrun::cli {
namespace fs = std::filesystem;
namespace {

std::int64_t count_or(const Run& run, std::int64_t fallback) {
  return run.cli.count > 0 ? run.cli.count : fallback;
}

const Split& test_split(const Trained& t) {
  const Split& s = t.data.test.count > 0 ? t.data.test : t.data.train;
  if (t.data.test.count == 0)
    fmt::print(stderr, "graphrun: note: the data set has no test images; using the training set\n");
  require_labels(*t.model, s, "the test images");
  return s;
}

// --class for a model that decodes a chosen class; a model without labels has nothing to choose.
std::optional<std::int64_t> decode_class(const Run& run, const Trained& t) {
  if (run.cli.decode_class && !t.model->y.valid())
    throw UsageError(fmt::format("--class: '{}' takes no labels (no input y), so there is no class "
                                 "to choose",
                                 t.model->name));
  return run.cli.decode_class;
}

// Draws of eval --iw stay apart from training's and from the one-sample test loss's.
constexpr std::uint64_t kIwSeedSalt = 0x1a9f0e57ull;

void require_log_weight(const Trained& t) {
  if (!t.model->log_weight.valid())
    throw UsageError(fmt::format("eval --iw: '{}' declares no log_weight (log p(x, z) - log q(z | x) "
                                 "of its draw; a graph file's 'role log_weight = ...')",
                                 t.model->name));
}

int estimate_likelihood(const Run& run, Trained& t, const Split& test) {
  IwOptions o;
  o.samples = run.cli.iw;
  o.seed = run.settings.train.seed ^ kIwSeedSalt;
  // A line at most every 10 s, or one line redrawn in place on a terminal and cleared at the end.
  const bool terminal = ::isatty(STDOUT_FILENO) == 1;
  const double start = clock_seconds();
  double shown = start;
  o.progress = [&](std::int64_t done, std::int64_t total) {
    const double now = clock_seconds();
    if (done == total) {
      if (terminal) fmt::print("\r\033[K");
      return;
    }
    if (now - shown < (terminal ? 0.5 : 10.0)) return;
    shown = now;
    const double left = (now - start) / static_cast<double>(done) * static_cast<double>(total - done);
    fmt::print("{}eval --iw: {} of {} images in {}, about {} left{}", terminal ? "\r" : "", done, total,
               format_duration(now - start), format_duration(left), terminal ? "" : "\n");
    std::fflush(stdout);
  };
  IwEstimate e = importance_sampled_nll(*t.model, t.trainer->parameters(), test, o);
  fmt::print("-log p(x) <= {:.2f} +- {:.2f} nats (mean of {} test images, its standard error; {} "
             "importance samples each, Burda et al. 2015) in {:.1f} s\n",
             e.nll, e.std_error, e.images, e.samples, e.seconds);
  nlohmann::ordered_json j = {{"model", t.model->name}, {"epoch", t.trainer->epoch()},
                              {"step", t.trainer->step()}, {"samples", e.samples},
                              {"images", e.images}, {"nll", e.nll}, {"std_error", e.std_error},
                              {"seed", o.seed}, {"batch", o.batch}, {"tile", o.tile},
                              {"seconds", e.seconds}};
  write_file_atomic(run.dir / "iw.json", j.dump(1) + "\n");
  fmt::print("wrote {}\n", (run.dir / "iw.json").string());
  return 0;
}

std::string trained_at(const Trained& t) {
  return fmt::format("{} after epoch {} (step {})", t.model->name, t.trainer->epoch(),
                     t.trainer->step());
}

Inference make_inference(const Run& run, Trained& t) {
  return Inference(*t.model, t.trainer->parameters(), 256, run.settings.train.seed, t.trainer->arena());
}

// Rows of samples in the data's own units, for tables, which have no pictures: a header of
// `columns` (prefix + 1..D for each tensor) and one line per row.
void write_rows_csv(const fs::path& path, const Split& data,
                    const std::vector<std::pair<std::string, Tensor>>& blocks, bool labels) {
  const std::int64_t n = blocks.front().second.shape()[0], d = data.features();
  std::string csv = labels ? "index,label" : "index";
  std::vector<std::vector<float>> values;
  for (const auto& [prefix, t] : blocks) {
    for (std::int64_t j = 0; j < d; ++j) csv += fmt::format(",{}{}", prefix, j + 1);
    values.emplace_back(t.values<float>().begin(), t.values<float>().end());
    data.to_data_units(values.back());
  }
  csv += "\n";
  for (std::int64_t i = 0; i < n; ++i) {
    csv += std::to_string(i);
    if (labels) csv += data.labels.empty() ? "," : fmt::format(",{}", data.labels[static_cast<std::size_t>(i)]);
    for (const auto& v : values)
      for (std::int64_t j = 0; j < d; ++j) csv += fmt::format(",{}", v[static_cast<std::size_t>(i * d + j)]);
    csv += "\n";
  }
  write_file_atomic(path, csv);
}

// The normal classes of an anomaly run: --normal-classes, else the classes it trained on, else
// class 0 when the labels are a column named "anomaly"; empty when there is nothing to measure.
std::vector<std::int64_t> normal_classes(const Run& run) {
  if (!run.cli.normal_classes.empty()) return run.cli.normal_classes;
  if (!run.settings.data.classes.empty()) return run.settings.data.classes;
  if (run.settings.data.labels == "anomaly") return {0};
  return {};
}

// AUROC and average precision of the scores against the test labels (Golan & El-Yaniv 2018's
// one-class protocol): every image outside the normal classes is an anomaly.
void measure_detection(const Run& run, const Split& test, const std::vector<double>& scores) {
  auto normal = normal_classes(run);
  if (normal.empty()) return;
  if (test.labels.empty())
    throw UsageError(fmt::format("anomaly: normal classes {} given, but the test samples have no "
                                 "labels to tell anomalies by",
                                 fmt::join(normal, ",")));
  std::vector<std::uint8_t> anomalous(scores.size());
  std::int64_t count = 0;
  for (std::size_t i = 0; i < scores.size(); ++i) {
    anomalous[i] = std::find(normal.begin(), normal.end(), test.labels[i]) == normal.end();
    count += anomalous[i];
  }
  if (count == 0 || count == static_cast<std::int64_t>(scores.size()))
    throw UsageError(fmt::format("anomaly: with normal classes {}, {} of the {} test samples are "
                                 "anomalies; AUROC needs both kinds",
                                 fmt::join(normal, ","), count, scores.size()));
  const double roc = auroc(scores, anomalous), ap = average_precision(scores, anomalous);
  fmt::print("AUROC {:.4f}, average precision {:.4f} ({} anomalies among {} test samples; normal "
             "classes {})\n",
             roc, ap, count, scores.size(), fmt::join(normal, ","));
  nlohmann::ordered_json j = {{"normal_classes", normal}, {"anomalies", count},
                              {"samples", scores.size()}, {"auroc", roc},
                              {"average_precision", ap}};
  write_file_atomic(run.dir / "anomaly.json", j.dump(1) + "\n");
}

}  // namespace

int eval_command(const Run& run) {
  Trained t = load_trained(run);
  // Refused before the plain evaluation, which would otherwise print as if the command worked.
  if (run.cli.iw > 0) require_log_weight(t);
  const Split& test = test_split(t);
  LossReport r = t.trainer->evaluate(test);
  fmt::print("{}, {} test images: loss {}\n", trained_at(t), r.samples, format_loss(r));
  if (run.cli.iw > 0) return estimate_likelihood(run, t, test);
  return 0;
}

int sample_command(const Run& run) {
  Trained t = load_trained(run);
  if (!t.model->has_prior)
    throw UsageError(fmt::format("sample: a '{}' has no prior to sample from; only a VAE has "
                                 "(try 'reconstruct' or 'interpolate')",
                                 t.model->name));
  auto side = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(count_or(run, 64)))));
  Inference inference = make_inference(run, t);
  const Split& shape = t.data.test.count > 0 ? t.data.test : t.data.train;
  auto cls = decode_class(run, t);
  if (!shape.is_image()) {
    const std::int64_t n = count_or(run, 64);
    write_rows_csv(run.dir / "samples.csv", shape, {{"x", inference.sample(n, run.settings.train.seed, cls)}}, false);
    fmt::print("wrote {}: {} draws from the prior of {}, in the data's units\n",
               (run.dir / "samples.csv").string(), n, trained_at(t));
    return 0;
  }
  write_png(run.dir / "samples.png", sample_figure(inference, shape, side, run.settings.train.seed, cls));
  fmt::print("wrote {}: {}x{} draws from the prior of {}{}\n", (run.dir / "samples.png").string(),
             side, side, trained_at(t), cls ? fmt::format(", class {}", *cls) : "");
  return 0;
}

int reconstruct_command(const Run& run) {
  Trained t = load_trained(run);
  const Split& test = test_split(t);
  auto n = static_cast<int>(std::min(count_or(run, 16), test.count));
  Inference inference = make_inference(run, t);
  if (!test.is_image()) {
    std::vector<std::int64_t> idx(static_cast<std::size_t>(n));
    std::iota(idx.begin(), idx.end(), 0);
    Tensor x = Inference::images(test, idx);
    Tensor r = inference.reconstruct(x, inference.labels(test, idx));
    write_rows_csv(run.dir / "reconstructions.csv", test, {{"x", x}, {"r", r}}, true);
    fmt::print("wrote {}: the first {} test samples (x) and their reconstructions (r) by {}, in "
               "the data's units\n",
               (run.dir / "reconstructions.csv").string(), n, trained_at(t));
    return 0;
  }
  write_png(run.dir / "reconstructions.png", reconstruction_figure(inference, test, n));
  if (inference.denoising())
    fmt::print("wrote {}: the first {} test images, the same with {}'s training noise (seed {}) and "
               "its reconstructions of the noisy ones, by {}\n",
               (run.dir / "reconstructions.png").string(), n, t.model->name, run.settings.train.seed,
               trained_at(t));
  else
    fmt::print("wrote {}: the first {} test images over their reconstructions by {}\n",
               (run.dir / "reconstructions.png").string(), n, trained_at(t));
  return 0;
}

int encode_command(const Run& run) {
  Trained t = load_trained(run);
  const Split& test = test_split(t);
  std::int64_t n = run.cli.count > 0 ? std::min(run.cli.count, test.count) : test.count;
  Inference inference = make_inference(run, t);
  Tensor codes = inference.encode(test, n);
  write_codes_csv(run.dir / "codes.csv", codes, test);
  fmt::print("wrote {}: {} codes of {} dimensions (index, label, z1..z{})\n",
             (run.dir / "codes.csv").string(), n, codes.shape()[1], codes.shape()[1]);
  return 0;
}

int interpolate_command(const Run& run) {
  Trained t = load_trained(run);
  if (!test_split(t).is_image())
    throw UsageError("interpolate draws images, and these samples are rows of a table; use "
                     "'encode' for their codes");
  auto steps = static_cast<int>(std::max<std::int64_t>(count_or(run, 10), 2));
  Inference inference = make_inference(run, t);
  write_png(run.dir / "interpolation.png",
            interpolation_figure(inference, test_split(t), 8, steps, decode_class(run, t)));
  fmt::print("wrote {}: per row, a test image, {} decodes along the line between the codes, and "
             "the other image\n",
             (run.dir / "interpolation.png").string(), steps);
  return 0;
}

int anomaly_command(const Run& run) {
  Trained t = load_trained(run);
  const Split& test = test_split(t);
  Inference inference = make_inference(run, t);
  std::vector<double> scores = inference.anomaly_scores(test);
  write_scores_csv(run.dir / "anomaly.csv", scores, test);
  std::vector<std::int64_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) {
    return scores[static_cast<std::size_t>(a)] > scores[static_cast<std::size_t>(b)];
  });
  order.resize(static_cast<std::size_t>(std::min<std::int64_t>(count_or(run, 16), test.count)));
  if (test.is_image()) write_png(run.dir / "anomalies.png", images_figure(test, order, 8));
  auto names = class_names(t.data);
  fmt::print("scored {} test images with {} (loss per image; higher = more unusual)\n",
             scores.size(), trained_at(t));
  for (std::size_t r = 0; r < std::min<std::size_t>(order.size(), 5); ++r) {
    auto i = static_cast<std::size_t>(order[r]);
    std::string label = test.labels.empty() ? "" : names.empty() ? std::to_string(test.labels[i])
                                                                 : names[test.labels[i] % names.size()];
    fmt::print("  #{:<2} test image {:>5}  {:<12} score {:.4g}\n", r + 1, i, label, scores[i]);
  }
  measure_detection(run, test, scores);
  if (test.is_image())
    fmt::print("wrote {} (every score) and {} (the top {})\n", (run.dir / "anomaly.csv").string(),
               (run.dir / "anomalies.png").string(), order.size());
  else
    fmt::print("wrote {} (every score)\n", (run.dir / "anomaly.csv").string());
  return 0;
}

}  // namespace graphrun::cli
