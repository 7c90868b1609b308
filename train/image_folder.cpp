#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <graphrun/train/atomic_file.hpp>
#include <graphrun/train/idx.hpp>
#include <graphrun/train/image_folder.hpp>
#include <graphrun/train/read_file.hpp>
#include <limits>
#include <span>
#include <string>
#include <system_error>
#include <vector>

// Static, so this copy cannot clash with another stb_image linked into the same program (the
// tests have their own). Only the formats graphrun documents are compiled in: every other
// decoder would be attack surface for files nobody meant to train on.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
// Zeroed allocations: a corrupt progressive JPEG that never sends some blocks' coefficients left
// stb decoding whatever its buffer held, so one file read twice gave different pixels (found by
// fuzz_image_folder). With zeroed buffers those blocks decode as zeros, the same every time.
#define STBI_MALLOC(size) std::calloc(1, size)
#define STBI_REALLOC(p, size) std::realloc(p, size)
#define STBI_FREE(p) std::free(p)
// Debian's stb_image shifts a 32-bit value by 32 in stbi__grow_buffer_unsafe on some corrupt JPEGs
// (found by fuzz_image_folder under UBSan): x86 masks the count, so the file decodes to garbage
// or is refused, and ASan saw nothing read or written out of bounds. Not ours to fix: UBSan's
// shift check is off for stb's functions alone.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("shift"))), apply_to = function)
#endif
#include <stb/stb_image.h>
#if defined(__clang__)
#pragma clang attribute pop
#endif

namespace graphrun {
namespace {

namespace fs = std::filesystem;

// stb_image takes the file's length as an int; real images are far smaller than this anyway.
constexpr std::uintmax_t kMaxImageFileBytes = std::uintmax_t{1} << 30;

struct ImageFile {
  fs::path path;
  std::int64_t label = 0;
};

struct ImageSize {
  int width = 0, height = 0;
  friend bool operator==(const ImageSize&, const ImageSize&) = default;
};

bool hidden(const fs::path& path) { return path.filename().string().starts_with('.'); }

// Debian 12's stb_image (a 2022-09 snapshot) writes past a Huffman table when a JPEG's DHT
// segment gives one table more than 256 codes; stb checks it only since v2.28. Found by
// fuzz_image_folder. Such a file is refused before stb reads it: the segments are walked as stb
// walks them (bytes between segments skipped as padding; a DHT's tables read while its length
// lasts, bytes past the end read as 0, as stbi__get8 does; a scan's entropy-coded data runs to
// the first run of 0xFF followed by neither 0x00 nor a restart marker), erring towards looking
// at more.
// Returns the offset of the bad table, or -1.
std::int64_t oversized_jpeg_huffman_table(std::span<const std::uint8_t> b) {
  const auto n = static_cast<std::int64_t>(b.size());
  auto at = [&](std::int64_t i) -> int { return i < n ? b[static_cast<std::size_t>(i)] : 0; };
  // stb takes any run of 0xFF bytes before a marker, the start-of-image marker included.
  if (at(0) != 0xFF) return -1;
  std::int64_t pos = 1;
  while (pos < n && at(pos) == 0xFF) ++pos;
  if (at(pos++) != 0xD8) return -1;  // not a JPEG
  while (pos < n) {
    if (at(pos) != 0xFF) {  // stb skips padding between segments while it looks for the frame
      ++pos;
      continue;
    }
    while (pos < n && at(pos) == 0xFF) ++pos;
    if (pos >= n) return -1;
    const int marker = at(pos++);
    if (marker == 0xD9) return -1;                                      // end of image
    if ((marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) continue;  // no length
    const std::int64_t length = at(pos) << 8 | at(pos + 1);
    if (marker == 0xC4) {
      std::int64_t left = length - 2, p = pos + 2;
      while (left > 0) {
        const std::int64_t table = p;
        int codes = 0;
        for (int i = 0; i < 16; ++i) codes += at(p + 1 + i);
        if (codes > 256) return table;
        p += 17 + codes;
        left -= 17 + codes;
      }
    }
    pos += length;
    // After a scan's header, its entropy-coded data: 0xFF, any more 0xFF, then 0x00 is a data
    // byte and a restart marker is passed over; anything else is the next marker.
    while (marker == 0xDA && pos < n) {
      if (at(pos) != 0xFF) {
        ++pos;
        continue;
      }
      std::int64_t next = pos + 1;
      while (next < n && at(next) == 0xFF) ++next;
      const int c = at(next);
      if (next < n && (c == 0 || (c >= 0xD0 && c <= 0xD7))) {
        pos = next + 1;
        continue;
      }
      pos = next - 1;  // its last 0xFF: the loop above reads the marker
      break;
    }
  }
  return -1;
}

// Two things stb does with a PNG's IDAT (image data) chunks, and what is done first instead:
// - an IDAT of length 0 as the first made it copy 0 bytes into a null buffer (memcpy(NULL, p,
//   0): undefined behaviour, which UBSan stops on). Such chunks carry nothing and are dropped;
//   the image is the same.
// - it allocates room for an IDAT's stated length before reading it, so a 227-byte file that
//   claims a 1 GiB chunk made it allocate 2 GiB. A data chunk longer than the rest of the file
//   is refused: the file is cut short, and stb would refuse it after the allocation.
// Chunks are walked as stb walks them. Returns the offset of a data chunk that does not fit, or
// -1. Both found by fuzz_image_folder.
std::int64_t fix_png_data_chunks(std::vector<std::uint8_t>& b) {
  static constexpr std::uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (b.size() < 8 || !std::equal(kSignature, kSignature + 8, b.begin())) return -1;
  std::size_t pos = 8;
  while (pos + 8 <= b.size()) {
    const std::uint32_t length = std::uint32_t{b[pos]} << 24 | std::uint32_t{b[pos + 1]} << 16 |
                                 std::uint32_t{b[pos + 2]} << 8 | b[pos + 3];
    const bool data = std::equal(b.begin() + static_cast<std::ptrdiff_t>(pos + 4),
                                 b.begin() + static_cast<std::ptrdiff_t>(pos + 8), "IDAT");
    if (std::uint64_t{length} > b.size() - pos - 8)
      return data ? static_cast<std::int64_t>(pos) : -1;  // stb reads no further chunk
    if (data && length == 0 && pos + 12 <= b.size()) {
      b.erase(b.begin() + static_cast<std::ptrdiff_t>(pos), b.begin() + static_cast<std::ptrdiff_t>(pos + 12));
      continue;
    }
    pos += 12 + std::size_t{length};
  }
  return -1;
}

// A palette BMP whose palette is shorter than its pixel values reach made stb look colours up in
// the unset rest of its palette (a stack array), so one file read twice gave different pixels
// (found by fuzz_image_folder). The palette is completed with black entries before the pixel
// data, moving its offset, so every value has a colour; a palette that would start after the
// pixel data is refused. Sizes are computed as stb computes them. Returns false to refuse.
bool complete_bmp_palette(std::vector<std::uint8_t>& b) {
  if (b.size() < 30 || b[0] != 'B' || b[1] != 'M') return true;
  auto le32 = [&](std::size_t i) {
    return static_cast<std::int32_t>(std::uint32_t{b[i]} | std::uint32_t{b[i + 1]} << 8 |
                                     std::uint32_t{b[i + 2]} << 16 | std::uint32_t{b[i + 3]} << 24);
  };
  const std::int32_t offset = le32(10), header = le32(14);
  const std::size_t bpp_at = header == 12 ? 24 : 28;
  const int bpp = b[bpp_at] | b[bpp_at + 1] << 8;
  if (bpp >= 16 || bpp < 1) return true;  // no palette (or a depth stb refuses)
  const std::int64_t entry = header == 12 ? 3 : 4;
  const std::int64_t entries = header == 12 ? (std::int64_t{offset} - 14 - 24) / 3
                                            : (std::int64_t{offset} - 14 - header) >> 2;
  if (entries < 0) return false;
  const std::int64_t wanted = std::int64_t{1} << std::min(bpp, 8);
  if (entries == 0 || entries >= wanted || offset < 0 || static_cast<std::uint64_t>(offset) > b.size())
    return true;  // stb refuses an empty palette itself
  const std::int64_t added = (wanted - entries) * entry;
  b.insert(b.begin() + offset, static_cast<std::size_t>(added), std::uint8_t{0});
  const auto moved = static_cast<std::uint32_t>(offset + added);
  for (int k = 0; k < 4; ++k) b[10 + static_cast<std::size_t>(k)] = static_cast<std::uint8_t>(moved >> (8 * k));
  return true;
}

// What Debian's stb_image would mishandle: refused with a DataError naming the file, or made
// safe in memory (empty PNG data chunks removed, a short BMP palette completed).
void make_safe_for_stb(std::vector<std::uint8_t>& bytes, const fs::path& path) {
  if (std::int64_t table = oversized_jpeg_huffman_table(bytes); table >= 0)
    throw DataError(fmt::format("{}: corrupt JPEG: the Huffman table at byte {} has more than "
                                "256 codes", path.string(), table));
  if (std::int64_t chunk = fix_png_data_chunks(bytes); chunk >= 0)
    throw DataError(fmt::format("{}: corrupt PNG: the image data chunk at byte {} is longer than "
                                "the rest of the file", path.string(), chunk));
  if (!complete_bmp_palette(bytes))
    throw DataError(fmt::format("{}: corrupt BMP: its pixel data starts before its palette",
                                path.string()));
}

bool has_image_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

// The visible entries of `dir` that `keep` accepts, sorted by name.
template <class Keep>
std::vector<fs::path> entries(const fs::path& dir, Keep keep) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  std::vector<fs::path> found;
  for (; !ec && it != end; it.increment(ec))
    if (!hidden(it->path()) && keep(*it)) found.push_back(it->path());
  if (ec) throw IoError(fmt::format("cannot list folder '{}': {}", dir.string(), ec.message()));
  std::sort(found.begin(), found.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  return found;
}

// Entries are followed through symlinks, so a folder of links to images works too.
std::vector<fs::path> image_files(const fs::path& dir) {
  return entries(dir, [](const fs::directory_entry& e) {
    std::error_code ec;
    return has_image_extension(e.path()) && e.is_regular_file(ec);
  });
}

std::vector<fs::path> subfolders(const fs::path& dir) {
  return entries(dir, [](const fs::directory_entry& e) {
    std::error_code ec;
    return e.is_directory(ec);
  });
}

std::string reason() {
  const char* why = stbi_failure_reason();
  return why ? why : "unknown error";
}

// The files to read, in order, with their classes; fills `class_names` for the class layout.
std::vector<ImageFile> list_images(const fs::path& root, std::vector<std::string>& class_names) {
  std::error_code ec;
  auto status = fs::status(root, ec);
  if (ec || !fs::exists(status))
    throw IoError(fmt::format("cannot read image folder '{}': {}", root.string(),
                              ec ? ec.message() : "no such file or directory"));
  if (!fs::is_directory(status))
    throw DataError(fmt::format("{}: not a folder (an image folder holds one subfolder per class)",
                                root.string()));
  std::vector<fs::path> classes = subfolders(root);
  std::vector<fs::path> loose = image_files(root);
  std::vector<ImageFile> files;
  if (classes.empty()) {
    if (loose.empty())
      throw DataError(fmt::format(
          "{}: no images: expected PNG, JPEG or BMP files, or one subfolder of them per class",
          root.string()));
    for (auto& path : loose) files.push_back({std::move(path), 0});
    return files;
  }
  // Images beside class folders have no class; guessing one would mislabel them silently.
  if (!loose.empty())
    throw DataError(fmt::format(
        "{}: holds both class folders ('{}') and images outside them ('{}'); move every image "
        "into its class folder, or remove the subfolders for an unlabelled set",
        root.string(), classes.front().filename().string(), loose.front().filename().string()));
  for (std::size_t label = 0; label < classes.size(); ++label) {
    auto images = image_files(classes[label]);
    if (images.empty())
      throw DataError(fmt::format("{}: class folder holds no images (PNG, JPEG or BMP files)",
                                  classes[label].string()));
    class_names.push_back(classes[label].filename().string());
    for (auto& path : images) files.push_back({std::move(path), static_cast<std::int64_t>(label)});
  }
  return files;
}

}  // namespace

SampleArray read_image_folder(const fs::path& root) {
  SampleArray out;
  std::vector<ImageFile> files = list_images(root, out.class_names);

  // First only the headers: sizes are checked and the channel count chosen before any pixel is
  // decoded or any memory is reserved for them.
  ImageSize size;
  bool colour = false;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const fs::path& path = files[i].path;
    auto bytes = read_file_bytes(path, kMaxImageFileBytes, "an image");
    make_safe_for_stb(bytes, path);
    ImageSize s;
    int components = 0;
    if (!stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &s.width, &s.height,
                               &components))
      throw DataError(fmt::format("{}: not a readable PNG, JPEG or BMP image ({})", path.string(),
                                  reason()));
    if (s.width < 1 || s.height < 1)  // stb's BMP header reading can report a negative height
      throw DataError(fmt::format("{}: corrupt image header: {}x{} pixels", path.string(),
                                  s.width, s.height));
    if (s.width > kImageMaxSide || s.height > kImageMaxSide)
      throw DataError(fmt::format("{}: image is {}x{} pixels; graphrun reads sides up to {}",
                                  path.string(), s.width, s.height, kImageMaxSide));
    if (i == 0)
      size = s;
    else if (s != size)
      throw DataError(fmt::format(
          "{}: image is {}x{} pixels, but {} (the first image) is {}x{}; all images of a data "
          "set must have one size",
          path.string(), s.width, s.height, files[0].path.string(), size.width, size.height));
    colour |= components >= 3;
  }

  const int channels = colour ? 3 : 1;
  const auto plane = static_cast<std::uint64_t>(size.width) * static_cast<std::uint64_t>(size.height);
  const std::uint64_t per_image = plane * static_cast<std::uint64_t>(channels);
  if (per_image * files.size() > kImageFolderMaxBytes)
    throw DataError(fmt::format(
        "{}: {} images of {}x{}x{} bytes are more than the {} bytes graphrun reads from one "
        "image folder",
        root.string(), files.size(), channels, size.width, size.height, kImageFolderMaxBytes));
  out.shape = {static_cast<std::int64_t>(files.size()), channels, size.height, size.width};
  out.bytes.resize(per_image * files.size());
  if (!out.class_names.empty()) out.labels.reserve(files.size());

  for (std::size_t i = 0; i < files.size(); ++i) {
    const fs::path& path = files[i].path;
    auto bytes = read_file_bytes(path, kMaxImageFileBytes, "an image");  // again: holding every file between the passes could be GBs
    make_safe_for_stb(bytes, path);  // the file may have changed since
    ImageSize s;
    int components = 0;
    // stb converts to `channels`: it repeats grey into RGB, drops alpha, and reduces 16 bits to 8.
    stbi_uc* pixels = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &s.width,
                                            &s.height, &components, channels);
    if (pixels == nullptr)
      throw DataError(fmt::format("{}: cannot decode the image ({})", path.string(), reason()));
    if (s != size) {
      stbi_image_free(pixels);
      throw DataError(fmt::format("{}: image decodes to {}x{} pixels, but its header said {}x{}",
                                  path.string(), s.width, s.height, size.width, size.height));
    }
    // stb interleaves channels per pixel (RGBRGB...); samples are channel-planar.
    std::uint8_t* sample = out.bytes.data() + i * per_image;
    for (std::uint64_t p = 0; p < plane; ++p)
      for (int c = 0; c < channels; ++c) sample[c * plane + p] = pixels[p * channels + c];
    stbi_image_free(pixels);
    if (!out.class_names.empty()) out.labels.push_back(files[i].label);
  }
  return out;
}

bool is_image_folder(const fs::path& path) {
  try {
    std::error_code ec;
    if (!fs::is_directory(path, ec)) return false;
    if (!image_files(path).empty()) return true;
    for (const auto& folder : subfolders(path))
      if (!image_files(folder).empty()) return true;
    return false;
  } catch (const std::exception&) {  // an unreadable folder is not one we can read images from
    return false;
  }
}

}  // namespace graphrun
