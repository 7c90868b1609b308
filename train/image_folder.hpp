// Folders of images in torchvision's ImageFolder layout:
//   root/cat/001.png  root/cat/002.png  root/dog/a.jpg ...   one subfolder per class, or
//   root/001.png  root/002.png ...                           one unlabelled set.
// Images are PNG, JPEG or BMP, recognised by extension (.png, .jpg, .jpeg, .bmp in any case) and
// decoded with stb_image. Other files, hidden files and folders (names starting with '.') are
// skipped; class folders are not searched recursively.
#pragma once

#include <cstdint>
#include <filesystem>

#include <graphrun/train/sample_array.hpp>

namespace graphrun {

// The longest side graphrun decodes, checked from the image's header before decoding.
inline constexpr int kImageMaxSide = 8192;
// The most pixel bytes (N * C * H * W) one image folder may hold: 2 GiB, like one IDX file.
inline constexpr std::uint64_t kImageFolderMaxBytes = std::uint64_t{1} << 31;

// Reads every image under `root` into shape [N, C, H, W] of bytes, channel-planar (all of an
// image's red values, then green, then blue). Images are ordered by class, then by file name
// (byte order).
// - With subfolders, each is a class: label = position of its name among the sorted subfolder
//   names, which `class_names` lists. Image files directly in `root` are then an error, as is a
//   class folder without images.
// - Without subfolders, the images in `root` form one set without labels or class names.
// C is 1 when every image is grey (or grey with alpha) and 3 when any is colour; grey images are
// then repeated into all three channels. Alpha is dropped, not composited over a background.
// 16-bit PNGs are reduced to 8 bits.
// Throws IoError when `root` or a file cannot be read, DataError naming the file for: an image
// stb cannot read (with stb's reason), what Debian's stb_image would mishandle (a JPEG Huffman
// table of more than 256 codes, a PNG data chunk longer than the file, a BMP palette after its
// pixels), a side below 1 or above kImageMaxSide, a size other than the first image's (naming
// both), more than kImageFolderMaxBytes in all, and `root` holding no images. A BMP palette
// shorter than its pixel values reach is completed with black, and empty PNG data chunks are
// dropped, so every file reads the same every time (fuzz_image_folder checks it).
SampleArray read_image_folder(const std::filesystem::path& root);

// Whether read_image_folder should be given `path`: a folder holding image files, or holding a
// subfolder that holds image files. Looks only at names; never throws.
bool is_image_folder(const std::filesystem::path& path);

}  // namespace graphrun
