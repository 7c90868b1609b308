// Image data sets in the MNIST layout: a folder with four IDX files (plain or .gz)
//   train-images-idx3-ubyte  train-labels-idx1-ubyte  t10k-images-idx3-ubyte t10k-labels-idx1-ubyte
// Pixels stay bytes in memory (60000 Fashion-MNIST images are 47 MB as bytes, 188 MB as floats);
// batches are converted to [0, 1] floating point on the way out.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace graphrun {

// One part of a data set: `count` images of rows x cols bytes, image-major.
struct Split {
  std::int64_t count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // count * rows * cols
  std::vector<std::uint8_t> labels;  // count entries, or empty when the set has no labels

  std::int64_t features() const { return rows * cols; }

  // Writes indices.size() rows of features() values, out[r * features() + j] =
  // pixels[indices[r] * features() + j] / 255, in parallel over rows. T is float or double.
  // Throws std::out_of_range (naming the index) before writing anything if an index is outside
  // [0, count).
  template <class T>
  void fill_batch(std::span<const std::int64_t> indices, T* out) const;
};

struct Dataset {
  std::string name;           // the spec it was loaded from
  std::filesystem::path dir;  // the folder its files came from
  Split train, test;
};

// Loads a data set. `spec` is
//   "fashion-mnist" (also "")  -> <root>/fashion-mnist/  (Debian: apt-get install
//   dataset-fashion-mnist) "mnist"                    -> <root>/mnist/ anything else -> a folder
//   path holding the four files above
// where <root> is $GRAPHRUN_DATA_ROOT when set and non-empty, else /usr/share/datasets.
// Each file may be plain or gzip-compressed (a name with or without ".gz"). The image files are
// required and must be 3-D; label files are optional (missing -> empty labels) and must then hold
// one label per image. `train_limit` / `test_limit` keep only the first N images (-1 = all; a
// limit over the count keeps all). Throws DataError naming the files looked for when the set is
// missing, or the offending file when it is malformed; IoError when a file cannot be read;
// std::invalid_argument for a limit below -1.
Dataset load_dataset(const std::string& spec = "fashion-mnist", std::int64_t train_limit = -1,
                     std::int64_t test_limit = -1);

}  // namespace graphrun
