#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <graphrun/train/atomic_file.hpp>
#include <graphrun/train/cifar.hpp>
#include <graphrun/train/read_file.hpp>
#include <string>
#include <system_error>
#include <vector>

namespace graphrun {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxTrainBatches = 5;
constexpr const char* kSubfolder = "cifar-10-batches-bin";
constexpr const char* kTestBatch = "test_batch.bin";
constexpr const char* kMetaFile = "batches.meta.txt";

const std::vector<std::string>& standard_names() {
  static const std::vector<std::string> names = {"airplane", "automobile", "bird",  "cat",
                                                 "deer",     "dog",        "frog",  "horse",
                                                 "ship",     "truck"};
  return names;
}

std::string train_batch(int i) { return fmt::format("data_batch_{}.bin", i); }

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// Records are appended to `out`, so the five training batches land in one buffer reserved once.
void append_records(std::span<const std::uint8_t> bytes, std::string_view name, SampleArray& out) {
  std::size_t records = bytes.size() / kCifarRecordBytes;
  std::size_t left = bytes.size() % kCifarRecordBytes;
  if (bytes.empty())
    throw DataError(fmt::format("'{}': CIFAR-10 batch is empty", name));
  if (left != 0)
    throw DataError(fmt::format(
        "'{}': {} bytes are {} whole CIFAR-10 records of {} bytes and {} bytes over; a batch "
        "holds whole records (1 label byte, 3072 pixel bytes)",
        name, bytes.size(), records, kCifarRecordBytes, left));
  // Labels first: a bad file is refused before its pixels are copied.
  for (std::size_t r = 0; r < records; ++r) {
    std::uint8_t label = bytes[r * kCifarRecordBytes];
    if (label >= kCifarClasses)
      throw DataError(fmt::format(
          "'{}': record {} (byte {}) has label {}; CIFAR-10 labels are 0 to 9 (is this a "
          "CIFAR-100 file, with two label bytes?)",
          name, r, r * kCifarRecordBytes, label));
  }
  out.labels.reserve(out.labels.size() + records);
  out.bytes.reserve(out.bytes.size() + records * kCifarPixelBytes);
  for (std::size_t r = 0; r < records; ++r) {
    const std::uint8_t* rec = bytes.data() + r * kCifarRecordBytes;
    out.labels.push_back(rec[0]);
    out.bytes.insert(out.bytes.end(), rec + 1, rec + kCifarRecordBytes);
  }
  out.shape = {static_cast<std::int64_t>(out.labels.size()), kCifarChannels, kCifarSide,
               kCifarSide};
}

SampleArray read_batches(const std::vector<fs::path>& files) {
  std::uint64_t total = 0;
  for (const auto& f : files) {
    std::error_code ec;
    total += fs::file_size(f, ec);  // a failure shows again, with its message, in read_file
  }
  SampleArray out;
  out.bytes.reserve(static_cast<std::size_t>(
      std::min<std::uint64_t>(total / kCifarRecordBytes * kCifarPixelBytes,
                              kMaxTrainBatches * kCifarMaxFileBytes)));
  for (const auto& f : files) append_records(read_file_bytes(f, kCifarMaxFileBytes, "a CIFAR-10 batch"), f.string(), out);
  return out;
}

std::vector<std::string> read_meta(const fs::path& path) {
  auto bytes = read_file_bytes(path, kCifarMaxFileBytes, "a CIFAR-10 batch");
  std::string text(bytes.begin(), bytes.end());
  std::vector<std::string> names;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    names.push_back(line);
    start = end + 1;
  }
  while (!names.empty() && names.back().empty()) names.pop_back();
  if (names.size() != static_cast<std::size_t>(kCifarClasses))
    throw DataError(fmt::format("'{}': names {} classes, one a line; CIFAR-10 has {}",
                                path.string(), names.size(), kCifarClasses));
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i].empty())
      throw DataError(fmt::format("'{}': line {} is blank; it should name class {}", path.string(),
                                  i + 1, i));
  return names;
}

bool holds_batches(const fs::path& dir) {
  return is_file(dir / train_batch(1)) || is_file(dir / kTestBatch);
}

}  // namespace

SampleArray parse_cifar_batch(std::span<const std::uint8_t> bytes, std::string_view name) {
  SampleArray out;
  append_records(bytes, name, out);
  out.class_names = standard_names();
  return out;
}

bool is_cifar10_folder(const fs::path& dir) {
  return holds_batches(dir) || holds_batches(dir / kSubfolder);
}

Cifar10 read_cifar10(const fs::path& dir) {
  fs::path folder = dir;
  if (!holds_batches(dir) && holds_batches(dir / kSubfolder)) folder = dir / kSubfolder;
  std::vector<fs::path> train;
  for (int i = 1; i <= kMaxTrainBatches; ++i)
    if (is_file(folder / train_batch(i))) train.push_back(folder / train_batch(i));
  fs::path test = folder / kTestBatch;
  std::vector<std::string> missing;
  if (!is_file(folder / train_batch(1))) missing.push_back(train_batch(1));
  if (!is_file(test)) missing.push_back(kTestBatch);
  if (!missing.empty()) {
    std::error_code ec;
    std::string where = fs::is_directory(dir, ec) ? "" : " (the folder does not exist)";
    throw DataError(fmt::format(
        "no CIFAR-10 binary data set in '{}'{}: looked in it and in '{}' for {} (up to {}) and "
        "{}; '{}' lacks {}",
        dir.string(), where, (dir / kSubfolder).string(), train_batch(1),
        train_batch(kMaxTrainBatches), kTestBatch, folder.string(), fmt::join(missing, " and ")));
  }
  // A gap (batches 1, 2 and 4) is more likely a failed copy than a deliberate subset.
  for (int i = 2; i <= kMaxTrainBatches; ++i)
    if (is_file(folder / train_batch(i)) && !is_file(folder / train_batch(i - 1)))
      throw DataError(fmt::format("'{}': {} is there but {} is not; the training batches must be "
                                  "data_batch_1.bin up to some data_batch_k.bin, without gaps",
                                  folder.string(), train_batch(i), train_batch(i - 1)));
  Cifar10 out;
  out.train = read_batches(train);
  out.test = read_batches({test});
  std::vector<std::string> names = standard_names();
  if (fs::path meta = folder / kMetaFile; is_file(meta)) names = read_meta(meta);
  out.train.class_names = names;
  out.test.class_names = names;
  return out;
}

}  // namespace graphrun
