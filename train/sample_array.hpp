// Samples as a file holds them, before graphrun makes a data set of them: N samples of one shape,
// 8-bit or float32, with optional integer labels. Every reader of a data format (IDX, NumPy, CSV,
// CIFAR-10, image folders) returns one; train/dataset.cpp turns them into training and test splits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace graphrun {

struct SampleArray {
  // [N, ...]: [N, C, H, W] for images (C = 1 grey, 3 RGB), [N, D] for tables.
  std::vector<std::int64_t> shape;
  // Exactly one of these holds N * (product of shape[1:]) values, sample-major: 8-bit data stays
  // 8-bit (scaled per batch), everything else is float32.
  std::vector<std::uint8_t> bytes;
  std::vector<float> floats;
  // Empty, or one class index >= 0 per sample.
  std::vector<std::int64_t> labels;
  // Optional names of the classes, indexed by label (an image folder's subfolders, CSV label text).
  std::vector<std::string> class_names;

  bool is_bytes() const { return floats.empty(); }
  std::int64_t count() const { return shape.empty() ? 0 : shape[0]; }
  std::int64_t sample_size() const {
    std::int64_t n = 1;
    for (std::size_t i = 1; i < shape.size(); ++i) n *= shape[i];
    return n;
  }
};

}  // namespace graphrun
