// What fuzz_cifar checks on one input, shared with the regression test
// (tests/train/cifar_test.cpp): parse_cifar_batch accepts exactly the inputs of whole records with
// labels 0..9 and returns their pixels unchanged, and read_cifar10 on a folder holding the input
// as its training and test batch returns the same. Returns "" when all behaved, else what went
// wrong; an exception other than DataError escapes, as a finding too.
#pragma once

#include <graphrun/train/cifar.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "fuzz/checks.hpp"  // attempt, Outcome
#include "fuzz/fuzz_file.hpp"

namespace graphrun::fuzz {

inline std::string check_cifar(const std::filesystem::path& dir, const std::uint8_t* data,
                               std::size_t size) {
  auto folder = dir / "cifar";
  std::filesystem::create_directories(folder);
  write_input(folder, "data_batch_1.bin", data, size);
  write_input(folder, "test_batch.bin", data, size);
  std::string name = (folder / "data_batch_1.bin").string();

  bool valid = size > 0 && size % kCifarRecordBytes == 0;
  std::size_t records = size / kCifarRecordBytes;
  for (std::size_t r = 0; valid && r < records; ++r)
    if (data[r * kCifarRecordBytes] > 9) valid = false;

  auto mem = attempt<SampleArray>([&] { return parse_cifar_batch({data, size}, name); });
  if (!mem.value) return valid ? "a valid batch was refused: " + mem.error : "";
  if (!valid) return "an invalid batch was accepted";
  const SampleArray& a = *mem.value;
  std::vector<std::int64_t> shape = {static_cast<std::int64_t>(records), 3, 32, 32};
  if (a.shape != shape) return "wrong shape";
  if (a.labels.size() != records || a.bytes.size() != records * kCifarPixelBytes ||
      !a.floats.empty())
    return "sizes disagree with the record count";
  if (a.class_names.size() != 10) return "not ten class names";
  for (std::size_t r = 0; r < records; ++r) {
    const std::uint8_t* rec = data + r * kCifarRecordBytes;
    if (a.labels[r] != rec[0]) return "a label changed";
    if (std::memcmp(a.bytes.data() + r * kCifarPixelBytes, rec + 1, kCifarPixelBytes) != 0)
      return "pixels changed";
  }
  auto set = attempt<Cifar10>([&] { return read_cifar10(folder); });
  if (!set.value) return "read_cifar10 refused a valid batch: " + set.error;
  for (const SampleArray* s : {&set.value->train, &set.value->test})
    if (s->shape != a.shape || s->bytes != a.bytes || s->labels != a.labels ||
        s->class_names != a.class_names)
      return "read_cifar10 and parse_cifar_batch disagree";
  return "";
}

}  // namespace graphrun::fuzz
