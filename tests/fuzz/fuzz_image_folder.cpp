// libFuzzer target for the images of an image folder (PNG, JPEG, BMP through stb_image): see
// check_image_folder in image_folder_check.hpp. A broken check, an exception other than
// DataError, a crash, a sanitizer report or memory beyond -rss_limit_mb is a finding.
#include <cstdio>
#include <cstdlib>

#include "fuzz/image_folder_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string problem = graphrun::fuzz::check_image_folder(graphrun::fuzz::fuzz_dir(), data, size);
  if (!problem.empty()) {
    std::fprintf(stderr, "fuzz_image_folder: %s\n", problem.c_str());
    std::abort();
  }
  return 0;
}
