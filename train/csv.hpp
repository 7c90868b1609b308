// Tables of numbers as spreadsheets and pandas write them: one sample per line, one float32
// feature per cell, optionally one cell holding the sample's class.
//
// The dialect, chosen so that files people actually have load without options:
// - Cells are separated by commas; by tabs instead when the name ends in ".tsv" (any case) or the
//   first line holds tabs and no commas. Semicolons are not separators.
// - RFC 4180 quoting in every cell: "a,b" is one cell, "" inside quotes is one quote, and a quoted
//   cell may span lines. Spaces around an unquoted cell are ignored.
// - A UTF-8 byte order mark, CRLF line ends and blank lines at the end are tolerated. A blank line
//   before the last row is an error: in a one-column file it would silently drop a sample.
// - '#' has no special meaning (no comment lines): numpy.savetxt's "# a,b" header is read as a
//   header whose first column is named "# a".
// - The first line is a header when any of its cells (other than a label column given by number)
//   is not a number.
// Error messages read "name:LINE: column C ('header name'): ...", with lines and columns counted
// from 1 as an editor shows them; a quoted cell that spans lines is reported at its first line.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include <graphrun/train/sample_array.hpp>

namespace graphrun {

// The most float32 values one table may hold (2 GiB), checked row by row while parsing.
inline constexpr std::uint64_t kCsvMaxValues = std::uint64_t{1} << 29;
// The largest file read_csv reads (4 GiB); it is held in memory whole while parsing.
inline constexpr std::uint64_t kCsvMaxFileBytes = std::uint64_t{1} << 32;
// Class indices run from 0 to kCsvMaxClasses - 1, and label names may have this many values.
inline constexpr std::int64_t kCsvMaxClasses = 10000;

struct CsvOptions {
  // Which column holds the labels: empty for none; otherwise a header name, or a 0-based column
  // number written in digits (meant for files without a header; a header name wins when a
  // header holds the same digits).
  std::string label_column;
};

// Parses a table held in memory; `name` stands for the file in error messages and decides the
// separator (see above). Returns shape [N, D] in `floats`, D = the number of columns other than
// the label column. With a label column, `labels` holds one class per row:
// - when every label cell is a non-negative integer ("3", also "3.0"), that integer, below
//   kCsvMaxClasses, and `class_names` stays empty;
// - otherwise the labels are names: the class is the position of the name among the sorted
//   distinct names (byte order), which `class_names` lists; at most kCsvMaxClasses of them.
// Throws DataError naming the line and column for: a feature cell that is empty, not a number,
// NaN, infinite or beyond float32 range (values too small for float32 become 0 or subnormal);
// an empty label cell; a row whose cell count differs from the first line's; an unclosed quote
// or text after a closing quote; a label column that does not exist (the message lists the
// header and the closest name); no feature column; no data row; more than kCsvMaxValues values.
SampleArray parse_csv(std::string_view text, std::string_view name, const CsvOptions& options);

// Reads a file with parse_csv, naming it by its path. Throws IoError when it cannot be read,
// DataError when it is larger than kCsvMaxFileBytes or its content is wrong.
SampleArray read_csv(const std::filesystem::path& path, const CsvOptions& options);

}  // namespace graphrun
