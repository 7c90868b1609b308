// What fuzz_image_folder checks on one input, shared with the regression test
// (tests/train/image_folder_test.cpp): the input as the one image of an unlabelled folder and as
// the one image of a one-class folder is refused with DataError by both, naming the file, or read
// the same by both: [1, C, H, W] bytes with C 1 or 3 and sides within kImageMaxSide, and with the
// class folder label 0 of class "c". Returns "" when all behaved, else what went wrong; an
// exception other than DataError escapes, as a finding too.
#pragma once

#include <graphrun/train/image_folder.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "fuzz/checks.hpp"  // attempt, Outcome
#include "fuzz/fuzz_file.hpp"

namespace graphrun::fuzz {

inline std::string image_problem(const SampleArray& a) {
  if (a.shape.size() != 4) return "shape is not [N, C, H, W]";
  if (a.shape[0] != 1) return "one image read as " + std::to_string(a.shape[0]);
  if (a.shape[1] != 1 && a.shape[1] != 3) return "channels other than 1 or 3";
  for (int k : {2, 3})
    if (a.shape[k] < 1 || a.shape[k] > kImageMaxSide) return "a side outside 1.." + std::to_string(kImageMaxSide);
  if (!a.floats.empty()) return "pixels read as floats";
  if (a.bytes.size() != static_cast<std::uint64_t>(a.shape[1] * a.shape[2] * a.shape[3]))
    return "the shape disagrees with the number of pixels";
  return "";
}

inline std::string check_image_folder(const std::filesystem::path& dir, const std::uint8_t* data,
                                      std::size_t size) {
  namespace fs = std::filesystem;
  const fs::path plain = dir / "plain", classes = dir / "classes";
  fs::create_directories(plain);
  fs::create_directories(classes / "c");
  const fs::path one = write_input(plain, "input.png", data, size);
  write_input(classes / "c", "input.png", data, size);

  auto unlabelled = attempt<SampleArray>([&] { return read_image_folder(plain); });
  auto labelled = attempt<SampleArray>([&] { return read_image_folder(classes); });
  if (unlabelled.value.has_value() != labelled.value.has_value())
    return "the two folders disagree: " + unlabelled.error + labelled.error;
  if (!unlabelled.value) {
    if (unlabelled.error.find(one.string()) == std::string::npos)
      return "the error does not name the file: " + unlabelled.error;
    return "";
  }
  const SampleArray& a = *unlabelled.value;
  const SampleArray& b = *labelled.value;
  if (auto p = image_problem(a); !p.empty()) return p;
  if (!a.labels.empty() || !a.class_names.empty()) return "an unlabelled folder gave labels";
  if (a.shape != b.shape || a.bytes != b.bytes) return "the two folders read different pixels";
  if (b.labels != std::vector<std::int64_t>{0} || b.class_names != std::vector<std::string>{"c"})
    return "the class folder's label is not 0 of class \"c\"";
  return "";
}

}  // namespace graphrun::fuzz
