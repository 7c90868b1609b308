#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <graphrun/train/atomic_file.hpp>
#include <graphrun/train/csv.hpp>
#include <graphrun/train/read_file.hpp>
#include <graphrun/train/idx.hpp>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace graphrun {
namespace {

// Cells longer than this are cut short in messages: a runaway quote can make one cell the whole
// file.
constexpr std::size_t kShownCellChars = 40;
// Header names listed in a message about a missing label column; wide tables list the rest as
// a count.
constexpr std::size_t kListedColumns = 20;

struct Cell {
  std::string text;  // unquoted and, outside quotes, without surrounding spaces
  std::int64_t line = 0;
};

// One row as the tokenizer hands it over. Cells past `size` are left over from longer rows and
// kept only so that their strings' buffers are reused.
struct Row {
  std::vector<Cell> cells;
  std::size_t size = 0;
  std::int64_t line = 0;
  bool blank = false;  // nothing but spaces on the line
};

// A cell as it may appear in a message: control bytes escaped, long text cut short.
std::string shown(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < kShownCellChars; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f)
      out += fmt::format("\\x{:02x}", c);
    else
      out += static_cast<char>(c);
  }
  if (text.size() > kShownCellChars) out += "...";
  return out;
}

bool ends_with_ci(std::string_view text, std::string_view suffix) {
  if (text.size() < suffix.size()) return false;
  return std::equal(suffix.begin(), suffix.end(), text.end() - suffix.size(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
  });
}

char choose_separator(std::string_view text, std::string_view name) {
  if (ends_with_ci(name, ".tsv")) return '\t';
  std::string_view first_line = text.substr(0, text.find('\n'));
  bool tabs = first_line.find('\t') != std::string_view::npos;
  bool commas = first_line.find(',') != std::string_view::npos;
  return tabs && !commas ? '\t' : ',';
}

// Splits the text into rows of cells, RFC 4180 style. Errors name the line a cell starts on.
class Tokenizer {
 public:
  Tokenizer(std::string_view text, char separator, std::string_view name)
      : text_(text), separator_(separator), name_(name) {}

  // Reads the next row into `row`; false at the end of the text.
  bool next(Row& row) {
    if (pos_ >= text_.size()) return false;
    row.size = 0;
    row.line = line_;
    bool any_quoted = false;
    for (;;) {
      if (row.size == row.cells.size()) row.cells.emplace_back();
      Cell& cell = row.cells[row.size++];
      cell.line = line_;
      any_quoted |= read_cell(cell.text, row.size);
      if (pos_ < text_.size() && text_[pos_] == separator_) {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size()) {  // at '\n'
        ++pos_;
        ++line_;
      }
      break;
    }
    row.blank = row.size == 1 && !any_quoted && row.cells[0].text.empty();
    return true;
  }

 private:
  bool is_space(char c) const { return c == ' ' || (c == '\t' && separator_ != '\t'); }

  void skip_spaces() {
    while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;
  }

  // A '\r' ends a line only before '\n' or at the end: elsewhere it is kept in the cell.
  bool at_line_end(std::size_t i) const {
    return i == text_.size() || text_[i] == '\n' ||
           (text_[i] == '\r' && (i + 1 == text_.size() || text_[i + 1] == '\n'));
  }

  // Reads one cell into `out`, leaving pos_ at the separator, the '\n' or the end; returns whether
  // it was quoted.
  bool read_cell(std::string& out, std::size_t column) {
    out.clear();
    skip_spaces();
    if (pos_ < text_.size() && text_[pos_] == '"') {
      read_quoted(out, column);
      return true;
    }
    std::size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != separator_ && text_[pos_] != '\n') ++pos_;
    std::size_t end = pos_;
    if (end > start && text_[end - 1] == '\r' && at_line_end(end - 1)) --end;
    while (end > start && is_space(text_[end - 1])) --end;
    out.assign(text_.substr(start, end - start));
    return false;
  }

  void read_quoted(std::string& out, std::size_t column) {
    std::int64_t opened = line_;
    ++pos_;
    for (;;) {
      std::size_t quote = text_.find('"', pos_);
      if (quote == std::string_view::npos)
        throw DataError(fmt::format("{}:{}: column {}: the quote that opens this cell is never closed",
                                    name_, opened, column));
      std::string_view piece = text_.substr(pos_, quote - pos_);
      line_ += std::count(piece.begin(), piece.end(), '\n');
      out.append(piece);
      pos_ = quote + 1;
      if (pos_ < text_.size() && text_[pos_] == '"') {  // "" stands for one quote
        out += '"';
        ++pos_;
        continue;
      }
      break;
    }
    skip_spaces();
    if (pos_ < text_.size() && text_[pos_] == '\r' && at_line_end(pos_)) ++pos_;
    if (pos_ < text_.size() && text_[pos_] != separator_ && text_[pos_] != '\n')
      throw DataError(fmt::format(
          "{}:{}: column {}: text after the closing quote of \"{}\" (inside quotes, write a "
          "quote as \"\")",
          name_, line_, column, shown(out)));
  }

  std::string_view text_;
  char separator_;
  std::string_view name_;
  std::size_t pos_ = 0;
  std::int64_t line_ = 1;
};

// Parses a feature cell; returns what is wrong with it, or "" when `value` holds the number.
std::string number_problem(std::string_view cell, float& value) {
  if (cell.empty()) return "empty cell (a missing value?)";
  std::string_view digits = cell;
  // from_chars refuses a leading '+', which spreadsheets and printf("%+f") write.
  if (digits.size() > 1 && digits[0] == '+' && digits[1] != '+' && digits[1] != '-')
    digits.remove_prefix(1);
  const char* end = digits.data() + digits.size();
  auto [stop, ec] = std::from_chars(digits.data(), end, value);
  if (ec == std::errc::invalid_argument || stop != end) {
    std::string problem = fmt::format("'{}' is not a number", shown(cell));
    if (cell.find(';') != std::string_view::npos)
      problem += " (cells are separated by commas or tabs, not semicolons)";
    return problem;
  }
  if (ec == std::errc::result_out_of_range) {
    // Too close to zero for float32 is not an error: the nearest float is.
    double wide = 0;
    auto [wide_stop, wide_ec] = std::from_chars(digits.data(), end, wide);
    if (wide_ec == std::errc() && std::fabs(wide) <= std::numeric_limits<float>::max()) {
      value = static_cast<float>(wide);
      return "";
    }
    auto exponent = cell.find_last_of("eE");
    if (wide_ec == std::errc::result_out_of_range && exponent != std::string_view::npos &&
        exponent + 1 < cell.size() && cell[exponent + 1] == '-') {
      value = cell[0] == '-' ? -0.0f : 0.0f;
      return "";
    }
    return fmt::format("'{}' is beyond the float32 range (about ±3.4e38)", shown(cell));
  }
  if (!std::isfinite(value)) return fmt::format("'{}' is not a finite number", shown(cell));
  return "";
}

bool is_number(std::string_view cell) {
  float ignored = 0;
  return number_problem(cell, ignored).empty();
}

// A label cell that is a class index: digits, optionally followed by ".0" as pandas writes
// integer columns that once held a NaN. Returns nullopt for anything else; a value too large for
// int64 comes back as the int64 maximum, to be refused as too many classes.
std::optional<std::int64_t> class_index(std::string_view cell) {
  auto dot = cell.find('.');
  std::string_view whole = cell.substr(0, dot);
  if (whole.empty() || !std::all_of(whole.begin(), whole.end(), [](char c) {
        return c >= '0' && c <= '9';
      }))
    return std::nullopt;
  if (dot != std::string_view::npos) {
    std::string_view fraction = cell.substr(dot + 1);
    if (!std::all_of(fraction.begin(), fraction.end(), [](char c) { return c == '0'; }))
      return std::nullopt;
  }
  std::int64_t value = 0;
  auto [stop, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), value);
  if (ec == std::errc::result_out_of_range) return std::numeric_limits<std::int64_t>::max();
  return value;
}

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// Edit distance ignoring case, for suggesting the header name a mistyped label column meant.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> previous(b.size() + 1), current(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t substitute = previous[j - 1] + (lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitute});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::string column_list(const std::vector<std::string>& header) {
  std::string out;
  for (std::size_t i = 0; i < header.size() && i < kListedColumns; ++i)
    out += fmt::format("{}'{}'", i ? ", " : "", shown(header[i]));
  if (header.size() > kListedColumns)
    out += fmt::format(" and {} more", header.size() - kListedColumns);
  return out;
}

std::string suggestion(const std::vector<std::string>& header, std::string_view wanted) {
  // Long names are not worth comparing (and a hostile header could make it quadratic).
  constexpr std::size_t kMaxCompared = 256;
  if (wanted.size() > kMaxCompared) return "";
  std::size_t best = std::numeric_limits<std::size_t>::max();
  const std::string* closest = nullptr;
  for (const auto& name : header) {
    if (name.size() > kMaxCompared) continue;
    std::size_t d = edit_distance(wanted, name);
    if (d < best) {
      best = d;
      closest = &name;
    }
  }
  // More than half the letters changed is a different name, not a typo.
  if (closest == nullptr || best > std::max<std::size_t>(1, wanted.size() / 2)) return "";
  return fmt::format(" (did you mean '{}'?)", shown(*closest));
}

// Which column holds the labels, from CsvOptions::label_column and the first line.
class LabelColumn {
 public:
  explicit LabelColumn(std::string_view spec) : spec_(spec) {
    constexpr std::size_t kMaxDigits = 9;  // more columns than that cannot fit the value cap
    if (!spec.empty() && spec.size() <= kMaxDigits &&
        std::all_of(spec.begin(), spec.end(), [](char c) { return c >= '0' && c <= '9'; }))
      std::from_chars(spec.data(), spec.data() + spec.size(), number_.emplace());
  }

  bool given() const { return !spec_.empty(); }
  // The column a number names, which the header test skips: label cells may be names.
  bool numbered(std::size_t column) const { return number_ && *number_ == column; }

  std::optional<std::size_t> resolve(const std::vector<std::string>& header, std::size_t width,
                                     std::string_view name) const {
    if (!given()) return std::nullopt;
    auto named = std::find(header.begin(), header.end(), spec_);
    if (named != header.end()) return static_cast<std::size_t>(named - header.begin());
    if (number_) {
      if (*number_ < width) return *number_;
      std::string listing = header.empty() ? "" : ": " + column_list(header);
      throw DataError(fmt::format(
          "{}: there is no label column {} (numbers count from 0): the file has {} columns, 0 to "
          "{}{}",
          name, *number_, width, width - 1, listing));
    }
    if (header.empty())
      throw DataError(fmt::format(
          "{}: label column '{}' is a name, but the file has no header (every cell of line 1 is "
          "a number); give the label column's number instead, counting from 0",
          name, shown(spec_)));
    throw DataError(fmt::format("{}: no column is named '{}'{}; the header has {}", name,
                                shown(spec_), suggestion(header, spec_), column_list(header)));
  }

 private:
  std::string spec_;
  std::optional<std::size_t> number_;
};

// Turns the label cells into class indices: the integers themselves, or positions of names.
void assign_labels(SampleArray& out, const std::vector<Cell>& cells, const std::string& column,
                   std::string_view name) {
  bool integers = std::all_of(cells.begin(), cells.end(),
                              [](const Cell& c) { return class_index(c.text).has_value(); });
  out.labels.reserve(cells.size());
  if (integers) {
    for (const auto& cell : cells) {
      std::int64_t index = *class_index(cell.text);
      if (index >= kCsvMaxClasses)
        throw DataError(fmt::format(
            "{}:{}: {}: class {} is too large: integer labels are class indices, at most {}",
            name, cell.line, column, shown(cell.text), kCsvMaxClasses - 1));
      out.labels.push_back(index);
    }
    return;
  }
  std::vector<std::string> names;
  names.reserve(cells.size());
  for (const auto& cell : cells) names.push_back(cell.text);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  if (names.size() > static_cast<std::size_t>(kCsvMaxClasses))
    throw DataError(fmt::format("{}: {} holds {} distinct labels; graphrun takes at most {} classes",
                                name, column, names.size(), kCsvMaxClasses));
  for (const auto& cell : cells)
    out.labels.push_back(std::lower_bound(names.begin(), names.end(), cell.text) - names.begin());
  out.class_names = std::move(names);
}

}  // namespace

SampleArray parse_csv(std::string_view text, std::string_view name, const CsvOptions& options) {
  constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";
  if (text.starts_with(kUtf8Bom)) text.remove_prefix(kUtf8Bom.size());
  Tokenizer tokenizer(text, choose_separator(text, name), name);

  // Blank lines are skipped only when nothing follows them, so the next row after one is an error.
  Row row;
  std::int64_t blank_line = 0;
  auto next_row = [&] {
    while (tokenizer.next(row)) {
      if (row.blank) {
        if (blank_line == 0) blank_line = row.line;
        continue;
      }
      if (blank_line != 0)
        throw DataError(fmt::format(
            "{}:{}: blank line inside the table (line {} follows); blank lines may only end the "
            "file",
            name, blank_line, row.line));
      return true;
    }
    return false;
  };
  if (!next_row()) throw DataError(fmt::format("{}: no rows: the file is empty", name));
  Row first = row;
  std::size_t width = first.size;

  LabelColumn label_spec(options.label_column);
  bool has_header = false;
  for (std::size_t c = 0; c < width && !has_header; ++c)
    if (!label_spec.numbered(c) && !is_number(first.cells[c].text)) has_header = true;
  std::vector<std::string> header;
  if (has_header)
    for (std::size_t c = 0; c < width; ++c) header.push_back(first.cells[c].text);
  std::optional<std::size_t> label = label_spec.resolve(header, width, name);

  auto column_name = [&](std::size_t c) {
    return has_header ? fmt::format("column {} ('{}')", c + 1, shown(header[c]))
                      : fmt::format("column {}", c + 1);
  };
  std::size_t features = width - (label ? 1 : 0);
  if (features == 0)
    throw DataError(fmt::format("{}: no feature columns: the only column, {}, holds the labels",
                                name, column_name(*label)));

  SampleArray out;
  std::vector<Cell> label_cells;
  std::int64_t rows = 0;
  auto take = [&](const Row& r) {
    if (r.size != width)
      throw DataError(fmt::format("{}:{}: {} cell{}, expected {} as on line {}", name, r.line,
                                  r.size, r.size == 1 ? "" : "s", width, first.line));
    if (out.floats.size() + features > kCsvMaxValues)
      throw DataError(fmt::format("{}:{}: the table holds more than the {} values graphrun reads "
                                  "from one file",
                                  name, r.line, kCsvMaxValues));
    for (std::size_t c = 0; c < width; ++c) {
      const Cell& cell = r.cells[c];
      if (label && c == *label) {
        if (cell.text.empty())
          throw DataError(
              fmt::format("{}:{}: {}: the label is empty", name, cell.line, column_name(c)));
        label_cells.push_back(cell);
        continue;
      }
      float value = 0;
      std::string problem = number_problem(cell.text, value);
      if (!problem.empty())
        throw DataError(fmt::format("{}:{}: {}: {}", name, cell.line, column_name(c), problem));
      out.floats.push_back(value);
    }
    ++rows;
  };
  if (!has_header) take(first);
  while (next_row()) take(row);
  if (rows == 0)
    throw DataError(fmt::format("{}: no data rows, only the header on line {}", name, first.line));

  out.shape = {rows, static_cast<std::int64_t>(features)};
  if (label) assign_labels(out, label_cells, column_name(*label), name);
  return out;
}

SampleArray read_csv(const std::filesystem::path& path, const CsvOptions& options) {
  const auto bytes = read_file_bytes(path, kCsvMaxFileBytes, "a table");
  return parse_csv(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                   path.string(), options);
}

}  // namespace graphrun
