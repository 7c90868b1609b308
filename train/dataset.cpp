#include <graphrun/graph/parallel.hpp>
#include <graphrun/train/cifar.hpp>
#include <graphrun/train/csv.hpp>
#include <graphrun/train/dataset.hpp>
#include <graphrun/train/idx.hpp>
#include <graphrun/train/image_folder.hpp>
#include <graphrun/train/npy.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>

namespace graphrun {
namespace fs = std::filesystem;
namespace {

constexpr const char* kDefaultRoot = "/usr/share/datasets";

struct SetLocation {
  fs::path path;
  std::string install_hint;  // how to get a named set, empty for a user's path
};

SetLocation locate(const std::string& spec) {
  const char* env = std::getenv("GRAPHRUN_DATA_ROOT");
  fs::path root = (env && *env) ? env : kDefaultRoot;
  if (spec.empty() || spec == "fashion-mnist")
    return {root / "fashion-mnist",
            "install it with `apt-get install dataset-fashion-mnist`, or set GRAPHRUN_DATA_ROOT "
            "to a folder holding fashion-mnist/"};
  if (spec == "mnist")
    return {root / "mnist",
            "put the four MNIST files there, or set GRAPHRUN_DATA_ROOT to a folder holding mnist/"};
  if (spec == "cifar-10")
    return {root / "cifar-10",
            "put CIFAR-10's binary version there (data_batch_1.bin .. data_batch_5.bin, "
            "test_batch.bin), or set GRAPHRUN_DATA_ROOT to a folder holding cifar-10/"};
  return {spec, ""};
}

// The plain file when present, else the .gz one, else nothing.
std::optional<fs::path> find_file(const fs::path& dir, const std::string& stem) {
  for (auto name : {stem, stem + ".gz"}) {
    std::error_code ec;
    if (fs::is_regular_file(dir / name, ec)) return dir / name;
  }
  return std::nullopt;
}

std::string lower_extension(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}

bool is_idx_folder(const fs::path& dir) { return find_file(dir, "train-images-idx3-ubyte").has_value(); }

SampleArray read_idx_images(const fs::path& dir, const std::string& prefix) {
  std::string image_stem = prefix + "-images-idx3-ubyte";
  auto image_path = find_file(dir, image_stem);
  if (!image_path) {
    auto path = (dir / image_stem).string();
    throw DataError(fmt::format("data set '{}' not found: looked for '{}' and '{}.gz' (a data set folder "
                                "holds train-images-idx3-ubyte and t10k-images-idx3-ubyte, plain or "
                                ".gz, labels optional)",
                                dir.string(), path, path));
  }
  IdxArray images = read_idx(*image_path);
  if (images.dims.size() != 3)
    throw DataError(fmt::format("'{}': images must be 3-D (count x rows x cols), the file is {}-D",
                                image_path->string(), images.dims.size()));
  SampleArray a;
  a.shape = {images.dims[0], 1, images.dims[1], images.dims[2]};
  a.bytes = std::move(images.data);
  auto label_path = find_file(dir, prefix + "-labels-idx1-ubyte");
  if (!label_path) return a;
  IdxArray labels = read_idx(*label_path);
  if (labels.dims.size() != 1 || labels.dims[0] != images.dims[0])
    throw DataError(
        fmt::format("'{}': expected {} labels (one per image in '{}') as a 1-D file, "
                    "found a {}-D file with {} entries",
                    label_path->string(), images.dims[0], image_path->string(), labels.dims.size(),
                    labels.data.size()));
  a.labels.assign(labels.data.begin(), labels.data.end());
  return a;
}

// The samples of one file or folder, and its test samples when it holds both.
struct Source {
  SampleArray train;
  std::optional<SampleArray> test;
};

std::vector<std::int64_t> npy_labels_beside(const fs::path& file, const std::string& labels) {
  fs::path p = labels;
  if (p.is_relative()) p = file.parent_path() / p;
  return read_npy_labels(p);
}

SampleArray npz_array(const fs::path& file, const std::vector<std::string>& names,
                      const std::string& x, const std::string& y) {
  SampleArray a = read_npz_array(file, x);
  if (!y.empty() && std::find(names.begin(), names.end(), y) != names.end())
    a.labels = read_npz_labels(file, y);
  return a;
}

// An .npz holds x_train/x_test (Keras' layout, with y_train/y_test), or x (and y), or one array.
Source read_npz_source(const fs::path& file, const std::string& labels) {
  auto names = npz_names(file);
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  if (has("x_train")) {
    Source s{npz_array(file, names, "x_train", labels.empty() ? "y_train" : labels), std::nullopt};
    if (has("x_test")) s.test = npz_array(file, names, "x_test", "y_test");
    return s;
  }
  if (has("x")) return {npz_array(file, names, "x", labels.empty() ? "y" : labels), std::nullopt};
  if (names.size() == 1) return {npz_array(file, names, names[0], labels), std::nullopt};
  throw DataError(fmt::format("'{}': which array holds the samples? An .npz data set holds x_train "
                              "(and x_test, y_train, y_test), or x (and y), or one array; this one "
                              "has {}",
                              file.string(), fmt::join(names, ", ")));
}

Source read_source(const fs::path& path, const DataSpec& spec, const std::string& install_hint) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (is_idx_folder(path)) {
      return {read_idx_images(path, "train"), read_idx_images(path, "t10k")};
    }
    if (is_cifar10_folder(path)) {
      Cifar10 c = read_cifar10(path);
      return {std::move(c.train), std::move(c.test)};
    }
    if (is_image_folder(path / "train") && is_image_folder(path / "test"))
      return {read_image_folder(path / "train"), read_image_folder(path / "test")};
    if (is_image_folder(path)) return {read_image_folder(path), std::nullopt};
    throw DataError(fmt::format(
        "'{}' holds no data set graphrun reads: looked for MNIST-layout IDX files "
        "(train-images-idx3-ubyte, plain or .gz), CIFAR-10 batches (data_batch_1.bin), and "
        "images (PNG, JPEG, BMP) in class subfolders or in train/ and test/",
        path.string()));
  }
  if (!fs::exists(path, ec)) {
    std::string msg = fmt::format("data set '{}' not found: '{}' does not exist", spec.train.empty() ? spec.dataset : spec.train,
                                  path.string());
    if (!install_hint.empty()) msg += "; " + install_hint;
    throw DataError(msg);
  }
  std::string ext = lower_extension(path);
  if (ext == ".npy") {
    SampleArray a = read_npy(path);
    if (!spec.labels.empty()) a.labels = npy_labels_beside(path, spec.labels);
    return {std::move(a), std::nullopt};
  }
  if (ext == ".npz") return read_npz_source(path, spec.labels);
  if (ext == ".csv" || ext == ".tsv") return {read_csv(path, {spec.labels}), std::nullopt};
  throw DataError(fmt::format("'{}': graphrun reads .npy, .npz, .csv and .tsv files, and folders "
                              "(IDX, CIFAR-10, images); not '{}'",
                              path.string(), ext));
}

// A test file of its own: labels come the same way as the training file's.
SampleArray read_test_file(const fs::path& path, const DataSpec& spec) {
  Source s = read_source(path, spec, "");
  if (s.test) throw DataError(fmt::format("'{}': [data] test names a file that holds its own test "
                                          "split; give it as train (or dataset) instead", path.string()));
  return std::move(s.train);
}

// Channel-last images ([N, H, W, C], as PIL and most NumPy code hold them) become planar.
void to_planar(SampleArray& a) {
  const std::int64_t n = a.shape[0], h = a.shape[1], w = a.shape[2], c = a.shape[3];
  auto move = [&](auto& v) {
    auto planar = v;
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t y = 0; y < h; ++y)
        for (std::int64_t x = 0; x < w; ++x)
          for (std::int64_t k = 0; k < c; ++k)
            planar[static_cast<std::size_t>(((i * c + k) * h + y) * w + x)] =
                v[static_cast<std::size_t>(((i * h + y) * w + x) * c + k)];
    v = std::move(planar);
  };
  if (a.is_bytes()) move(a.bytes);
  else move(a.floats);
  a.shape = {n, c, h, w};
}

Split to_split(SampleArray&& a, const std::string& what) {
  if (a.shape.empty() || a.count() == 0) throw DataError(fmt::format("{}: no samples", what));
  if (!a.labels.empty() && static_cast<std::int64_t>(a.labels.size()) != a.count())
    throw DataError(fmt::format("{}: {} labels for {} samples (want one each)", what, a.labels.size(), a.count()));
  auto image_channels = [](std::int64_t c) { return c == 1 || c == 3; };
  if (a.shape.size() == 4 && !image_channels(a.shape[1]) && image_channels(a.shape[3])) to_planar(a);
  Split s;
  s.count = a.count();
  if (a.shape.size() == 1) s.shape = {1};
  else if (a.shape.size() == 3) s.shape = {1, a.shape[1], a.shape[2]};  // [N, H, W]: grey images
  else if (a.shape.size() <= 4) s.shape.assign(a.shape.begin() + 1, a.shape.end());
  else s.shape = {a.sample_size()};
  s.bytes = std::move(a.bytes);
  s.floats = std::move(a.floats);
  s.labels = std::move(a.labels);
  return s;
}

std::int64_t kept(std::int64_t count, std::int64_t limit) {
  return limit < 0 ? count : std::min(count, limit);
}

// Keeps the samples at `rows` (ascending), in that order.
Split select(const Split& s, const std::vector<std::int64_t>& rows) {
  Split out;
  out.count = static_cast<std::int64_t>(rows.size());
  out.shape = s.shape;
  const auto d = static_cast<std::size_t>(s.features());
  auto copy = [&](const auto& from, auto& to) {
    if (from.empty()) return;
    to.resize(rows.size() * d);
    for (std::size_t r = 0; r < rows.size(); ++r)
      std::copy_n(from.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(rows[r]) * d), d,
                  to.begin() + static_cast<std::ptrdiff_t>(r * d));
  };
  copy(s.bytes, out.bytes);
  copy(s.floats, out.floats);
  if (!s.labels.empty())
    for (auto r : rows) out.labels.push_back(s.labels[static_cast<std::size_t>(r)]);
  return out;
}

void truncate(Split& s, std::int64_t limit) {
  std::int64_t n = kept(s.count, limit);
  if (n == s.count) return;
  const auto d = static_cast<std::size_t>(s.features());
  if (!s.bytes.empty()) s.bytes.resize(static_cast<std::size_t>(n) * d);
  if (!s.floats.empty()) s.floats.resize(static_cast<std::size_t>(n) * d);
  if (!s.labels.empty()) s.labels.resize(static_cast<std::size_t>(n));
  s.bytes.shrink_to_fit();
  s.floats.shrink_to_fit();
  s.count = n;
}

// A seeded Fisher-Yates draw of which samples are held out, written out here rather than taken
// from std::shuffle, whose order the standard leaves to the library.
std::pair<Split, Split> hold_out(const Split& s, double fraction, std::uint64_t seed) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(s.count));
  for (std::int64_t i = 0; i < s.count; ++i) order[static_cast<std::size_t>(i)] = i;
  std::mt19937_64 rng(seed);
  for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  auto held = static_cast<std::size_t>(std::llround(fraction * static_cast<double>(s.count)));
  held = std::clamp<std::size_t>(held, 1, order.size() - 1);
  std::vector<std::int64_t> test(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(held));
  std::vector<std::int64_t> train(order.begin() + static_cast<std::ptrdiff_t>(held), order.end());
  std::sort(test.begin(), test.end());
  std::sort(train.begin(), train.end());
  return {select(s, train), select(s, test)};
}

Split only_classes(const Split& s, const std::vector<std::int64_t>& classes, const std::string& what) {
  if (s.labels.empty())
    throw DataError(fmt::format("{}: [data] classes = {} needs labels, and the training samples "
                                "have none",
                                what, fmt::join(classes, ",")));
  std::set<std::int64_t> wanted(classes.begin(), classes.end());
  std::vector<std::int64_t> rows;
  std::set<std::int64_t> seen;
  for (std::int64_t i = 0; i < s.count; ++i)
    if (wanted.count(s.labels[static_cast<std::size_t>(i)])) {
      rows.push_back(i);
      seen.insert(s.labels[static_cast<std::size_t>(i)]);
    }
  for (auto c : wanted)
    if (!seen.count(c))
      throw DataError(fmt::format("{}: [data] classes names class {}, which no training sample has "
                                  "(labels run {} to {})",
                                  what, c, *std::min_element(s.labels.begin(), s.labels.end()),
                                  *std::max_element(s.labels.begin(), s.labels.end())));
  return select(s, rows);
}

Normalization fit(const Split& s, Normalize mode) {
  Normalization n;
  n.mode = mode == Normalize::automatic ? (s.is_bytes() ? Normalize::scale : Normalize::none) : mode;
  if (n.mode == Normalize::none || (n.mode == Normalize::scale && s.is_bytes())) return n;
  const std::int64_t d = s.features();
  auto value = [&](std::int64_t i, std::int64_t j) {
    auto k = static_cast<std::size_t>(i * d + j);
    return s.is_bytes() ? static_cast<double>(s.bytes[k]) : static_cast<double>(s.floats[k]);
  };
  n.offset.resize(static_cast<std::size_t>(d));
  n.scale.resize(static_cast<std::size_t>(d));
  for (std::int64_t j = 0; j < d; ++j) {
    double a = 0, b = 0;  // standardize: mean, deviation; scale: minimum, range
    if (n.mode == Normalize::standardize) {
      for (std::int64_t i = 0; i < s.count; ++i) a += value(i, j);
      a /= static_cast<double>(s.count);
      for (std::int64_t i = 0; i < s.count; ++i) b += (value(i, j) - a) * (value(i, j) - a);
      b = std::sqrt(b / static_cast<double>(s.count));
    } else {
      double lo = value(0, j), hi = lo;
      for (std::int64_t i = 1; i < s.count; ++i) lo = std::min(lo, value(i, j)), hi = std::max(hi, value(i, j));
      a = lo;
      b = hi - lo;
    }
    // A constant feature is only shifted: dividing by its zero spread would make NaNs.
    n.offset[static_cast<std::size_t>(j)] = static_cast<float>(a);
    n.scale[static_cast<std::size_t>(j)] = b > 0 ? static_cast<float>(b) : 1.0f;
  }
  return n;
}

std::string describe(const DataSpec& spec) {
  if (!spec.train.empty()) return spec.train;
  return spec.dataset.empty() ? "fashion-mnist" : spec.dataset;
}

}  // namespace

const char* to_string(Normalize n) {
  switch (n) {
    case Normalize::automatic: return "auto";
    case Normalize::none: return "none";
    case Normalize::scale: return "scale";
    case Normalize::standardize: return "standardize";
  }
  return "?";
}

Normalize parse_normalize(const std::string& text) {
  for (auto n : {Normalize::automatic, Normalize::none, Normalize::scale, Normalize::standardize})
    if (text == to_string(n)) return n;
  throw std::invalid_argument(fmt::format("normalize '{}': use none, scale, standardize or auto", text));
}

std::string Normalization::to_json() const {
  nlohmann::json j = {{"mode", to_string(mode)}, {"offset", offset}, {"scale", scale}};
  return j.dump();
}

Normalization Normalization::from_json(const std::string& text, std::int64_t features) {
  Normalization n;
  try {
    auto j = nlohmann::json::parse(text);
    n.mode = parse_normalize(j.at("mode").get<std::string>());
    n.offset = j.at("offset").get<std::vector<float>>();
    n.scale = j.at("scale").get<std::vector<float>>();
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(fmt::format("normalization '{}': {}", text.substr(0, 60), e.what()));
  }
  if (n.offset.size() != n.scale.size() ||
      (!n.offset.empty() && static_cast<std::int64_t>(n.offset.size()) != features))
    throw std::invalid_argument(fmt::format("normalization of {} features for data of {} features",
                                            n.offset.size(), features));
  return n;
}

std::int64_t Split::features() const {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  return shape.empty() ? 0 : n;
}

template <class T>
void Split::fill_batch(std::span<const std::int64_t> indices, T* out) const {
  for (std::size_t r = 0; r < indices.size(); ++r)
    if (indices[r] < 0 || indices[r] >= count)
      throw std::out_of_range(fmt::format("fill_batch: index {} (batch row {}) is outside the {} "
                                          "samples of this split",
                                          indices[r], r, count));
  const auto n = static_cast<std::size_t>(features());
  const bool per_feature = !normalization.offset.empty();
  const bool divide_255 = is_bytes() && !per_feature &&
                          (normalization.mode == Normalize::scale || normalization.mode == Normalize::automatic);
  // Blocks of 16 rows: a row of 784 pixels (under 1 us here) is too little work for a task of its
  // own.
  parallel_for(static_cast<std::int64_t>(indices.size()), 16, [&](std::int64_t first, std::int64_t end) {
    for (auto r = static_cast<std::size_t>(first); r != static_cast<std::size_t>(end); ++r) {
      const auto at = static_cast<std::size_t>(indices[r]) * n;
      T* dst = out + r * n;
      auto write = [&](const auto* src) {
        // A division, not a 256-entry table: the same correctly rounded values, and the loop
        // vectorizes instead of gathering.
        if (divide_255)
          for (std::size_t j = 0; j < n; ++j) dst[j] = static_cast<T>(src[j]) / T(255);
        else if (per_feature)
          for (std::size_t j = 0; j < n; ++j)
            dst[j] = (static_cast<T>(src[j]) - static_cast<T>(normalization.offset[j])) /
                     static_cast<T>(normalization.scale[j]);
        else
          for (std::size_t j = 0; j < n; ++j) dst[j] = static_cast<T>(src[j]);
      };
      if (is_bytes()) write(bytes.data() + at);
      else write(floats.data() + at);
    }
  });
}

template void Split::fill_batch<float>(std::span<const std::int64_t>, float*) const;
template void Split::fill_batch<double>(std::span<const std::int64_t>, double*) const;

void Split::to_data_units(std::span<float> rows) const {
  const auto n = static_cast<std::size_t>(features());
  if (!normalization.offset.empty()) {
    for (std::size_t i = 0; i < rows.size(); ++i)
      rows[i] = rows[i] * normalization.scale[i % n] + normalization.offset[i % n];
  } else if (is_bytes() && normalization.mode != Normalize::none) {
    for (float& v : rows) v *= 255.0f;
  }
}

void Split::to_display(std::span<float> rows) const {
  if (is_bytes() && normalization.mode != Normalize::none && normalization.offset.empty()) return;
  to_data_units(rows);
  if (is_bytes())
    for (float& v : rows) v /= 255.0f;
}

void Dataset::set_normalization(const Normalization& n) {
  train.normalization = n;
  test.normalization = n;
}

Dataset load_dataset(const DataSpec& spec, std::int64_t train_limit, std::int64_t test_limit) {
  const std::string name = describe(spec);
  if (train_limit < -1 || test_limit < -1)
    throw std::invalid_argument(fmt::format("load_dataset '{}': limits must be -1 (all) or a "
                                            "count, got train {} and test {}",
                                            name, train_limit, test_limit));
  if (!(spec.test_fraction >= 0 && spec.test_fraction < 1))
    throw std::invalid_argument(fmt::format("test_fraction {} is not in [0, 1)", spec.test_fraction));
  SetLocation where = spec.train.empty() ? locate(spec.dataset) : SetLocation{spec.train, ""};
  Source source = [&] {
    try {
      return read_source(where.path, spec, where.install_hint);
    } catch (const DataError& e) {
      // The named sets keep their old message: which files were looked for, and how to get them.
      if (!where.install_hint.empty() && !fs::exists(where.path))
        throw DataError(fmt::format(
            "data set '{}' not found: looked for '{}' (a data set folder holds "
            "train-images-idx3-ubyte and t10k-images-idx3-ubyte, plain or .gz, labels optional); "
            "the folder '{}' does not exist; {}",
            name, (where.path / "train-images-idx3-ubyte").string(), where.path.string(), where.install_hint));
      throw;
    }
  }();
  Dataset ds;
  ds.name = name;
  ds.dir = fs::is_directory(where.path) ? where.path : where.path.parent_path();
  ds.class_names = source.train.class_names;
  const std::string train_what = fmt::format("'{}'", where.path.string());
  ds.train = to_split(std::move(source.train), train_what);
  if (!spec.test.empty()) {
    if (source.test)
      throw std::invalid_argument(fmt::format("[data] test = {}: '{}' holds its own test split",
                                              spec.test, where.path.string()));
    ds.test = to_split(read_test_file(spec.test, spec), fmt::format("'{}'", spec.test));
  } else if (source.test) {
    ds.test = to_split(std::move(*source.test), train_what + " (test split)");
  }
  if (spec.test_fraction > 0) {
    if (ds.test.count > 0)
      throw std::invalid_argument(fmt::format("[data] test_fraction = {}: '{}' has a test split of "
                                              "its own already",
                                              spec.test_fraction, name));
    if (ds.train.count < 2)
      throw DataError(fmt::format("{}: {} sample(s) cannot be split into training and test", train_what, ds.train.count));
    std::tie(ds.train, ds.test) = hold_out(ds.train, spec.test_fraction, spec.seed);
  }
  if (ds.test.count > 0 && ds.test.shape != ds.train.shape)
    throw DataError(fmt::format("data set '{}': training samples are {} but test samples are {}",
                                name, fmt::join(ds.train.shape, "x"), fmt::join(ds.test.shape, "x")));
  if (ds.test.count > 0 && ds.test.is_bytes() != ds.train.is_bytes())
    throw DataError(fmt::format("data set '{}': training samples are {} but test samples are {}", name,
                                ds.train.is_bytes() ? "8-bit" : "float", ds.test.is_bytes() ? "8-bit" : "float"));
  if (!spec.classes.empty()) ds.train = only_classes(ds.train, spec.classes, train_what);
  truncate(ds.train, train_limit);
  truncate(ds.test, test_limit);
  ds.set_normalization(fit(ds.train, spec.normalize));
  return ds;
}

Dataset load_dataset(const std::string& dataset, std::int64_t train_limit, std::int64_t test_limit) {
  DataSpec spec;
  spec.dataset = dataset;
  return load_dataset(spec, train_limit, test_limit);
}

}  // namespace graphrun
