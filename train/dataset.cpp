#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <graphrun/graph/parallel.hpp>
#include <graphrun/train/dataset.hpp>
#include <graphrun/train/idx.hpp>
#include <optional>
#include <stdexcept>

namespace graphrun {
namespace {

constexpr const char* kDefaultRoot = "/usr/share/datasets";

struct SetLocation {
  std::filesystem::path dir;
  std::string install_hint;  // how to get the set, empty for a user's folder
};

SetLocation locate(const std::string& spec) {
  const char* env = std::getenv("GRAPHRUN_DATA_ROOT");
  std::filesystem::path root = (env && *env) ? env : kDefaultRoot;
  if (spec.empty() || spec == "fashion-mnist")
    return {root / "fashion-mnist",
            "install it with `apt-get install dataset-fashion-mnist`, or set GRAPHRUN_DATA_ROOT "
            "to a folder holding fashion-mnist/"};
  if (spec == "mnist")
    return {root / "mnist",
            "put the four MNIST files there, or set GRAPHRUN_DATA_ROOT to a folder holding mnist/"};
  return {spec, ""};
}

// The plain file when present, else the .gz one, else nothing.
std::optional<std::filesystem::path> find_file(const std::filesystem::path& dir,
                                               const std::string& stem) {
  for (auto name : {stem, stem + ".gz"}) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(dir / name, ec)) return dir / name;
  }
  return std::nullopt;
}

[[noreturn]] void missing(const std::string& spec, const SetLocation& where,
                          const std::string& stem) {
  auto path = (where.dir / stem).string();
  std::string msg = fmt::format(
      "data set '{}' not found: looked for '{}' and '{}.gz' (a data set folder holds "
      "train-images-idx3-ubyte and t10k-images-idx3-ubyte, plain or .gz, labels optional)",
      spec.empty() ? "fashion-mnist" : spec, path, path);
  std::error_code ec;
  if (!std::filesystem::is_directory(where.dir, ec))
    msg += fmt::format("; the folder '{}' does not exist", where.dir.string());
  if (!where.install_hint.empty()) msg += "; " + where.install_hint;
  throw DataError(msg);
}

std::int64_t kept(std::int64_t count, std::int64_t limit) {
  return limit < 0 ? count : std::min(count, limit);
}

Split load_split(const std::string& spec, const SetLocation& where, const std::string& prefix,
                 std::int64_t limit) {
  std::string image_stem = prefix + "-images-idx3-ubyte";
  auto image_path = find_file(where.dir, image_stem);
  if (!image_path) missing(spec, where, image_stem);
  IdxArray images = read_idx(*image_path);
  if (images.dims.size() != 3)
    throw DataError(fmt::format("'{}': images must be 3-D (count x rows x cols), the file is {}-D",
                                image_path->string(), images.dims.size()));
  Split split;
  split.rows = images.dims[1];
  split.cols = images.dims[2];
  split.count = kept(images.dims[0], limit);
  split.pixels = std::move(images.data);
  split.pixels.resize(static_cast<std::size_t>(split.count * split.features()));
  split.pixels.shrink_to_fit();

  auto label_path = find_file(where.dir, prefix + "-labels-idx1-ubyte");
  if (!label_path) return split;
  IdxArray labels = read_idx(*label_path);
  if (labels.dims.size() != 1 || labels.dims[0] != images.dims[0])
    throw DataError(
        fmt::format("'{}': expected {} labels (one per image in '{}') as a 1-D file, "
                    "found a {}-D file with {} entries",
                    label_path->string(), images.dims[0], image_path->string(), labels.dims.size(),
                    labels.data.size()));
  split.labels = std::move(labels.data);
  split.labels.resize(static_cast<std::size_t>(split.count));
  split.labels.shrink_to_fit();
  return split;
}

}  // namespace

template <class T>
void Split::fill_batch(std::span<const std::int64_t> indices, T* out) const {
  for (std::size_t r = 0; r < indices.size(); ++r)
    if (indices[r] < 0 || indices[r] >= count)
      throw std::out_of_range(
          fmt::format("fill_batch: index {} (batch row {}) is outside the {} "
                      "images of this split",
                      indices[r], r, count));
  const auto n = static_cast<std::size_t>(features());
  // Blocks of 16 rows: a row of 784 pixels (under 1 us here) is too little work for a task of its
  // own.
  parallel_for(static_cast<std::int64_t>(indices.size()), 16, [&](std::int64_t first, std::int64_t end) {
    for (auto r = static_cast<std::size_t>(first); r != static_cast<std::size_t>(end); ++r) {
      const std::uint8_t* src = pixels.data() + static_cast<std::size_t>(indices[r]) * n;
      T* dst = out + r * n;
      // A division, not a 256-entry table: the same correctly rounded values, and the loop
      // vectorizes instead of gathering.
      for (std::size_t j = 0; j < n; ++j) dst[j] = static_cast<T>(src[j]) / T(255);
    }
  });
}

template void Split::fill_batch<float>(std::span<const std::int64_t>, float*) const;
template void Split::fill_batch<double>(std::span<const std::int64_t>, double*) const;

Dataset load_dataset(const std::string& spec, std::int64_t train_limit, std::int64_t test_limit) {
  if (train_limit < -1 || test_limit < -1)
    throw std::invalid_argument(
        fmt::format("load_dataset '{}': limits must be -1 (all) or a "
                    "count, got train {} and test {}",
                    spec, train_limit, test_limit));
  SetLocation where = locate(spec);
  // Check both image files up front, so a missing set is reported before any slow read.
  for (const char* prefix : {"train", "t10k"}) {
    std::string stem = std::string(prefix) + "-images-idx3-ubyte";
    if (!find_file(where.dir, stem)) missing(spec, where, stem);
  }
  Dataset ds;
  ds.name = spec.empty() ? "fashion-mnist" : spec;
  ds.dir = where.dir;
  ds.train = load_split(spec, where, "train", train_limit);
  ds.test = load_split(spec, where, "t10k", test_limit);
  if (ds.train.rows != ds.test.rows || ds.train.cols != ds.test.cols)
    throw DataError(fmt::format(
        "data set '{}' in '{}': training images are {}x{} but test "
        "images are {}x{}",
        ds.name, where.dir.string(), ds.train.rows, ds.train.cols, ds.test.rows, ds.test.cols));
  return ds;
}

}  // namespace graphrun
