// Hand-built IDX headers and gzip data for the IDX tests, which need files write_idx won't make.
#pragma once

#include <zlib.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

namespace graphrun::testing {

// Built by hand rather than with write_idx, which refuses what these tests need: a header whose
// type, rank or sizes disagree with the data after it, or claim absurd sizes with no data at all.
inline std::vector<std::uint8_t> idx_header(std::uint8_t type, std::vector<std::uint32_t> dims) {
  std::vector<std::uint8_t> b = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(d >> shift));
  return b;
}

// One gzip member of arbitrary bytes, independent of the library's writer, so malformed files,
// multi-member files and bombs can be made. The level only changes the header's XFL byte here: the
// deflate stream of every test input is the same at 6 and 9, and 6 is faster on the 64 MiB bomb.
inline std::vector<std::uint8_t> gzip(const std::vector<std::uint8_t>& raw) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<std::uint8_t> out(deflateBound(&z, static_cast<uLong>(raw.size())));
  z.next_in = const_cast<Bytef*>(raw.data());
  z.avail_in = static_cast<uInt>(raw.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace graphrun::testing
