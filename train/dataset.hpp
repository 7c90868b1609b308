// Data sets: training and test splits of samples of one shape, from MNIST-layout IDX folders,
// CIFAR-10's binary batches, NumPy .npy/.npz files, CSV tables or folders of images (one
// subfolder per class). Samples keep their type in memory (60000 Fashion-MNIST images are 47 MB
// as bytes, 188 MB as floats) and are normalized per batch on the way out.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace graphrun {

// How samples are scaled on their way into a batch. `automatic` is `scale` for 8-bit data and
// `none` for floats.
enum class Normalize { automatic, none, scale, standardize };
const char* to_string(Normalize n);
Normalize parse_normalize(const std::string& text);  // throws std::invalid_argument

// The per-feature map a batch goes through: value -> (value - offset[j]) / scale[j]. Fitted on
// the training split only (standardize: mean and deviation; scale of floats: minimum and range)
// and stored in the checkpoint, so every verb feeds the model what it was trained on.
struct Normalization {
  // Fitted sets say which; a Split built by hand keeps automatic: 8-bit data / 255, floats as is.
  Normalize mode = Normalize::automatic;
  std::vector<float> offset, scale;  // one per feature; empty for none and for 8-bit scale (/255)

  std::string to_json() const;
  // Throws std::invalid_argument for text that to_json did not write, or for another feature count.
  static Normalization from_json(const std::string& text, std::int64_t features);
  friend bool operator==(const Normalization&, const Normalization&) = default;
};

// One part of a data set: `count` samples of `shape`, sample-major.
struct Split {
  std::int64_t count = 0;
  std::vector<std::int64_t> shape;   // one sample's: {C, H, W} for images, {D} for tables
  std::vector<std::uint8_t> bytes;   // count * features() values when the data are 8-bit,
  std::vector<float> floats;         // else here
  std::vector<std::int64_t> labels;  // count class indices, or empty when the set has none
  Normalization normalization;

  std::int64_t features() const;
  bool is_bytes() const { return floats.empty(); }
  // Images are [C, H, W] with C = 1 (grey) or 3 (RGB); anything else is a table of features.
  bool is_image() const { return shape.size() == 3 && (shape[0] == 1 || shape[0] == 3); }
  std::int64_t channels() const { return is_image() ? shape[0] : 1; }
  std::int64_t height() const { return is_image() ? shape[1] : 1; }
  std::int64_t width() const { return is_image() ? shape[2] : features(); }

  // Writes indices.size() rows of features() normalized values, in parallel over rows. T is float
  // or double. Throws std::out_of_range (naming the index) before writing anything if an index is
  // outside [0, count).
  template <class T>
  void fill_batch(std::span<const std::int64_t> indices, T* out) const;
  // Undoes the normalization of rows of model output or input, then maps them to [0, 1] for
  // pictures (8-bit data: / 255). In place.
  void to_display(std::span<float> rows) const;
  // The same rows in the data's own units (undoes the normalization only).
  void to_data_units(std::span<float> rows) const;
};

struct Dataset {
  std::string name;           // the spec it was loaded from
  std::filesystem::path dir;  // the folder its files came from
  Split train, test;
  std::vector<std::string> class_names;  // when the files name them (image folders, CIFAR, CSV)

  // Refits nothing: sets the normalization both splits use (a checkpoint's).
  void set_normalization(const Normalization& n);
};

// Where a data set comes from: the [data] section of a model file.
struct DataSpec {
  // "fashion-mnist" (also ""), "mnist", "cifar-10" under <root>, or a path: an IDX folder (four
  // MNIST-layout files), a CIFAR-10 folder (data_batch_*.bin), an image folder (one subfolder per
  // class; with train/ and test/ subfolders, those are the splits), or a .npy, .npz or .csv file.
  // <root> is $GRAPHRUN_DATA_ROOT when set and non-empty, else /usr/share/datasets.
  std::string dataset = "fashion-mnist";
  std::string train, test;          // files or folders; `train` set replaces `dataset`
  double test_fraction = 0;         // held out of the training samples (seeded) when no test set
  std::string labels;               // CSV: a column; .npy: a labels .npy beside it; .npz: an array
  std::vector<std::int64_t> classes;  // train on these classes only (the test keeps every class)
  Normalize normalize = Normalize::automatic;
  std::uint64_t seed = 1;           // for test_fraction
};

// Loads a data set. `train_limit` / `test_limit` keep only the first N samples (-1 = all; a limit
// over the count keeps all), after the class filter and the held-out fraction. The normalization is
// fitted on the training split as loaded. Throws DataError naming the files looked for when the
// set is missing, or the offending file (and line, record or image) when it is malformed; IoError
// when a file cannot be read; std::invalid_argument for a limit below -1 or a bad option.
Dataset load_dataset(const DataSpec& spec, std::int64_t train_limit = -1,
                     std::int64_t test_limit = -1);
Dataset load_dataset(const std::string& dataset = "fashion-mnist", std::int64_t train_limit = -1,
                     std::int64_t test_limit = -1);

}  // namespace graphrun
