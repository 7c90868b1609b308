#include <fmt/format.h>
#include <fmt/ranges.h>
#include <zip.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <graphrun/train/atomic_file.hpp>
#include <graphrun/train/npy.hpp>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string>

namespace graphrun {
namespace {

constexpr std::uint8_t kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
// numpy allows 32 dimensions (64 since 2.0); no sample layout graphrun trains on needs more, and
// the cap keeps a hostile header from making us hold thousands of dimensions.
constexpr std::size_t kMaxRank = 32;
// Values are decoded through a buffer of this size, so converting costs no second full copy.
constexpr std::size_t kChunkBytes = std::size_t{1} << 16;
// deflate cannot expand data by more than about 1032:1; a member claiming more is lying.
constexpr std::uint64_t kDeflateMaxRatio = 1032;

enum class Purpose { kSamples, kLabels };
enum class Kind { kUnsigned, kSigned, kFloat, kBool };

struct Dtype {
  std::string descr;
  Kind kind = Kind::kUnsigned;
  std::size_t size = 1;
  bool big_endian = false;
};

struct NpyHeader {
  Dtype dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t count = 0;  // values, the product of the shape
};

// Where the bytes of one .npy come from: memory, a file, or an archive member.
class Source {
 public:
  virtual ~Source() = default;
  // Exactly n bytes into dst, or throws.
  virtual void read(std::uint8_t* dst, std::size_t n) = 0;
  // Called after the last value: throws when the source fails a checksum or holds more bytes.
  virtual void finish() {}
};

class SpanSource : public Source {
 public:
  SpanSource(std::span<const std::uint8_t> bytes, std::string_view name)
      : bytes_(bytes), name_(name) {}
  void read(std::uint8_t* dst, std::size_t n) override {
    // The header check compares the value count with the size first; this is a second guard.
    if (n > bytes_.size() - pos_)
      throw DataError(fmt::format("'{}': data ends at byte {}", name_, bytes_.size()));
    if (n > 0) std::memcpy(dst, bytes_.data() + pos_, n);
    pos_ += n;
  }

 private:
  std::span<const std::uint8_t> bytes_;
  std::string_view name_;
  std::size_t pos_ = 0;
};

class FileSource : public Source {
 public:
  explicit FileSource(const std::filesystem::path& path) : path_(path), in_(path, std::ios::binary) {
    if (!in_)
      throw IoError(fmt::format("cannot open '{}': {}", path_.string(), std::strerror(errno)));
  }
  void read(std::uint8_t* dst, std::size_t n) override {
    in_.read(reinterpret_cast<char*>(dst), static_cast<std::streamsize>(n));
    if (static_cast<std::size_t>(in_.gcount()) != n)
      throw IoError(fmt::format("cannot read '{}': it ended early (did it change while read?)",
                                path_.string()));
  }
  void finish() override {
    if (in_.peek() != std::char_traits<char>::eof())
      throw IoError(fmt::format("cannot read '{}': it grew while read", path_.string()));
  }

 private:
  std::filesystem::path path_;
  std::ifstream in_;
};

std::uint64_t load_uint(const std::uint8_t* p, std::size_t size, bool big_endian) {
  std::uint64_t v = 0;
  if (big_endian)
    for (std::size_t k = 0; k < size; ++k) v = (v << 8) | p[k];
  else
    for (std::size_t k = size; k-- > 0;) v = (v << 8) | p[k];
  return v;
}

std::int64_t load_int(const std::uint8_t* p, std::size_t size, bool big_endian) {
  std::uint64_t v = load_uint(p, size, big_endian);
  if (size < 8 && (v >> (8 * size - 1)) != 0) v |= ~std::uint64_t{0} << (8 * size);
  return static_cast<std::int64_t>(v);
}

double load_float(const std::uint8_t* p, std::size_t size, bool big_endian) {
  std::uint64_t v = load_uint(p, size, big_endian);
  if (size == 4) return std::bit_cast<float>(static_cast<std::uint32_t>(v));
  return std::bit_cast<double>(v);
}

// ----- The header dict -----------------------------------------------------------------------

struct HeaderFields {
  std::optional<std::string> descr;
  std::optional<bool> fortran_order;
  std::optional<std::vector<std::uint64_t>> shape;
};

// A strict reader of the one Python literal an .npy header holds. numpy evaluates it with
// ast.literal_eval; here only what np.save writes is accepted, so a corrupt or crafted header
// fails at the first character that np.save would not have written.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, std::size_t offset, std::string_view name)
      : text_(text), offset_(offset), name_(name) {}

  HeaderFields parse() {
    HeaderFields f;
    skip_space();
    expect('{', "the header must be a dict starting with '{'");
    while (true) {
      skip_space();
      if (peek() == '}') break;
      std::size_t key_at = pos_;
      std::string key = string_literal("a key in quotes");
      skip_space();
      expect(':', fmt::format("expected ':' after key '{}'", key));
      skip_space();
      if (key == "descr") {
        if (f.descr) fail_at(key_at, "key 'descr' appears twice");
        if (peek() == '[')
          fail("'descr' is a list: structured (record) arrays are not supported; save a plain "
               "numeric array");
        f.descr = string_literal("the dtype of 'descr' in quotes");
      } else if (key == "fortran_order") {
        if (f.fortran_order) fail_at(key_at, "key 'fortran_order' appears twice");
        f.fortran_order = boolean("'fortran_order'");
      } else if (key == "shape") {
        if (f.shape) fail_at(key_at, "key 'shape' appears twice");
        f.shape = shape_tuple();
      } else {
        fail_at(key_at, fmt::format("unknown key '{}'; an NPY header holds only 'descr', "
                                    "'fortran_order' and 'shape'",
                                    shorten(key)));
      }
      skip_space();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != '}') fail(fmt::format("expected ',' or '}}' after the value of '{}'", key));
    }
    ++pos_;
    skip_space();
    if (pos_ != text_.size()) fail("unexpected characters after the header dict");
    for (auto [present, key] : {std::pair{f.descr.has_value(), "descr"},
                                {f.fortran_order.has_value(), "fortran_order"},
                                {f.shape.has_value(), "shape"}})
      if (!present) fail(fmt::format("the header has no '{}' key", key));
    return f;
  }

 private:
  [[noreturn]] void fail_at(std::size_t pos, const std::string& what) const {
    throw DataError(fmt::format("'{}': NPY header, byte {}: {}", name_, offset_ + pos, what));
  }
  [[noreturn]] void fail(const std::string& what) const { fail_at(pos_, what); }

  static std::string shorten(std::string_view s) {
    return s.size() <= 40 ? std::string(s) : std::string(s.substr(0, 40)) + "...";
  }

  int peek() const { return pos_ < text_.size() ? static_cast<unsigned char>(text_[pos_]) : -1; }

  void skip_space() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }

  void expect(char c, const std::string& what) {
    if (peek() != static_cast<unsigned char>(c)) fail(what);
    ++pos_;
  }

  // 'text' or "text" of printable ASCII without escapes: all np.save writes in a header.
  std::string string_literal(const std::string& what) {
    int quote = peek();
    if (quote != '\'' && quote != '"') fail("expected " + what);
    std::size_t start = ++pos_;
    while (peek() != quote) {
      int c = peek();
      if (c < 0x20 || c > 0x7e) fail(c < 0 ? "unterminated string" : "unexpected character in a string");
      if (c == '\\') fail("escape sequences are not supported in an NPY header");
      ++pos_;
    }
    std::string s(text_.substr(start, pos_ - start));
    ++pos_;
    return s;
  }

  bool boolean(const std::string& key) {
    for (auto [word, value] : {std::pair{std::string_view("True"), true}, {"False", false}}) {
      if (text_.substr(pos_, word.size()) == word) {
        std::size_t end = pos_ + word.size();
        if (end < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[end])) ||
                                   text_[end] == '_'))
          break;
        pos_ = end;
        return value;
      }
    }
    fail(fmt::format("the value of {} must be True or False", key));
  }

  std::uint64_t dimension() {
    std::size_t start = pos_;
    std::uint64_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      std::uint64_t digit = static_cast<std::uint64_t>(peek() - '0');
      if (v > (static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) - digit) / 10)
        fail_at(start, "a dimension of 'shape' does not fit in 63 bits");
      v = v * 10 + digit;
      ++pos_;
    }
    if (pos_ == start) fail("expected a non-negative whole number in 'shape'");
    if (text_[start] == '0' && pos_ - start > 1)
      fail_at(start, "a dimension of 'shape' has leading zeros");
    if (peek() == 'L') ++pos_;  // Python 2's numpy wrote long integers as 3L
    return v;
  }

  std::vector<std::uint64_t> shape_tuple() {
    expect('(', "the value of 'shape' must be a tuple such as (60000, 784)");
    std::vector<std::uint64_t> dims;
    skip_space();
    if (peek() == ')') {
      ++pos_;
      return dims;
    }
    while (true) {
      if (dims.size() == kMaxRank)
        fail(fmt::format("'shape' has more than {} dimensions", kMaxRank));
      dims.push_back(dimension());
      skip_space();
      if (peek() == ',') {
        ++pos_;
        skip_space();
        if (peek() == ')') break;
        continue;
      }
      if (peek() != ')') fail("expected ',' or ')' in 'shape'");
      if (dims.size() == 1)
        fail("'shape' is a number in parentheses, not a tuple; a 1-D shape is written (n,)");
      break;
    }
    ++pos_;
    return dims;
  }

  std::string_view text_;
  std::size_t offset_;  // of the text in the file, for messages
  std::string_view name_;
  std::size_t pos_ = 0;
};

// ----- Header and size checks ----------------------------------------------------------------

std::string shape_text(const std::vector<std::uint64_t>& dims) {
  if (dims.size() == 1) return fmt::format("({},)", dims[0]);
  return fmt::format("({})", fmt::join(dims, ", "));
}

Dtype parse_descr(const std::string& descr, Purpose purpose, std::string_view name) {
  auto unsupported = [&](std::string_view why) -> DataError {
    std::string_view wanted =
        purpose == Purpose::kSamples
            ? "samples must be '|u1', '<f4', '<f8', '>f4' or '>f8' (e.g. a.astype(np.float32))"
            : "labels must be integers ('<i8', '|u1', ...), '|b1', or whole-number floats";
    return DataError(fmt::format("'{}': NPY header key 'descr': dtype '{}' {}; {}", name, descr,
                                 why, wanted));
  };
  Dtype d;
  d.descr = descr;
  if (descr.size() >= 2 && descr[1] == 'O')
    throw unsupported("is an object array (pickled Python objects)");
  if (descr.size() < 3) throw unsupported("is not a numeric dtype");
  char order = descr[0];
  char kind = descr[1];
  std::string_view digits = std::string_view(descr).substr(2);
  if (order != '<' && order != '>' && order != '|')
    throw unsupported("does not state its byte order ('<', '>' or '|')");
  if (digits.size() != 1 || digits[0] < '1' || digits[0] > '8')
    throw unsupported("is not supported");
  d.size = static_cast<std::size_t>(digits[0] - '0');
  d.big_endian = order == '>';
  bool known = false;
  switch (kind) {
    case 'u':
    case 'i':
      d.kind = kind == 'u' ? Kind::kUnsigned : Kind::kSigned;
      known = d.size == 1 || d.size == 2 || d.size == 4 || d.size == 8;
      break;
    case 'f':
      d.kind = Kind::kFloat;
      if (d.size == 2) throw unsupported("(half precision) is not supported");
      known = d.size == 4 || d.size == 8;
      break;
    case 'b':
      d.kind = Kind::kBool;
      known = d.size == 1;
      break;
    default:
      break;
  }
  if (!known) throw unsupported("is not supported");
  if (order == '|' && d.size != 1) throw unsupported("claims no byte order for a multi-byte type");
  if (purpose == Purpose::kSamples && !(d.kind == Kind::kFloat || (d.kind == Kind::kUnsigned &&
                                                                    d.size == 1)))
    throw unsupported("is not a sample type");
  return d;
}

// Reads and checks the preamble and header; on return the source stands at the first value, and
// the values are known to fill exactly the `total` bytes of the input.
NpyHeader read_header(Source& src, std::uint64_t total, std::string_view name, Purpose purpose) {
  std::uint8_t pre[12] = {};
  std::size_t have = static_cast<std::size_t>(std::min<std::uint64_t>(total, 10));
  src.read(pre, have);
  if (have >= 4 && pre[0] == 'P' && pre[1] == 'K' && pre[2] == 3 && pre[3] == 4)
    throw DataError(fmt::format(
        "'{}': this is a zip archive (an .npz?), not an .npy file; read it as .npz", name));
  if (have < 6 || std::memcmp(pre, kMagic, 6) != 0)
    throw DataError(fmt::format("'{}': not an .npy file (it does not start with \\x93NUMPY)", name));
  if (have < 8)
    throw DataError(fmt::format("'{}': file is {} bytes, too short for an .npy header", name, total));
  int major = pre[6], minor = pre[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0)
    throw DataError(fmt::format(
        "'{}': NPY format version {}.{} at byte 6 is not supported (1.0, 2.0 and 3.0 are)", name,
        major, minor));
  std::size_t len_bytes = major == 1 ? 2 : 4;
  std::size_t preamble = 8 + len_bytes;
  if (total < preamble)
    throw DataError(fmt::format("'{}': file is {} bytes, too short for an .npy header", name, total));
  if (preamble > have) src.read(pre + have, preamble - have);
  std::uint64_t header_len = load_uint(pre + 8, len_bytes, false);
  if (header_len > kNpyMaxHeaderBytes)
    throw DataError(fmt::format(
        "'{}': NPY header length at byte 8 is {} bytes, more than the {} graphrun reads", name,
        header_len, kNpyMaxHeaderBytes));
  if (header_len > total - preamble)
    throw DataError(fmt::format("'{}': file is {} bytes, but its header alone claims {} (truncated)",
                                name, total, preamble + header_len));
  std::string text(static_cast<std::size_t>(header_len), '\0');
  src.read(reinterpret_cast<std::uint8_t*>(text.data()), text.size());
  HeaderFields f = HeaderParser(text, preamble, name).parse();

  NpyHeader h;
  h.dtype = parse_descr(*f.descr, purpose, name);
  if (*f.fortran_order)
    throw DataError(fmt::format(
        "'{}': NPY header key 'fortran_order' is True: the array is stored column-major; save it "
        "in C order, np.save(path, np.ascontiguousarray(a))",
        name));
  const auto& dims = *f.shape;
  if (dims.empty())
    throw DataError(fmt::format("'{}': NPY header key 'shape' is (), a single value; graphrun "
                                "needs an axis of samples",
                                name));
  if (purpose == Purpose::kLabels && !(dims.size() == 1 || (dims.size() == 2 && dims[1] == 1)))
    throw DataError(fmt::format(
        "'{}': NPY header key 'shape' is {}; labels must have shape (N,) or (N, 1)", name,
        shape_text(dims)));
  // The product is checked against the cap step by step, so it cannot overflow.
  std::uint64_t max_count = kNpyMaxBytes / h.dtype.size;
  std::uint64_t count = 1;
  bool over_cap = false;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 0)
      throw DataError(fmt::format("'{}': NPY header key 'shape' is {}: dimension {} is 0", name,
                                  shape_text(dims), i));
    if (over_cap || count > max_count / dims[i])
      over_cap = true;
    else
      count *= dims[i];
  }
  if (over_cap)
    throw DataError(fmt::format(
        "'{}': NPY header key 'shape' is {} of '{}', more than the {} bytes graphrun reads from "
        "one array",
        name, shape_text(dims), h.dtype.descr, kNpyMaxBytes));
  std::uint64_t need = count * h.dtype.size;
  std::uint64_t held = total - preamble - header_len;
  if (held != need) {
    std::string msg = fmt::format(
        "'{}': NPY header claims shape {} of '{}' = {} bytes of values, but the file holds {} "
        "after its {}-byte header",
        name, shape_text(dims), h.dtype.descr, need, held, preamble + header_len);
    msg += held > need ? fmt::format(" ({} trailing bytes)", held - need) : " (truncated)";
    throw DataError(msg);
  }
  for (auto d : dims) h.shape.push_back(static_cast<std::int64_t>(d));
  h.count = count;
  return h;
}

// ----- Values --------------------------------------------------------------------------------

// Calls f(index, pointer to the value's bytes) for each value, reading in chunks.
template <class F>
void for_each_value(Source& src, const NpyHeader& h, F&& f) {
  std::size_t size = h.dtype.size;
  std::size_t per_chunk = kChunkBytes / size;
  std::vector<std::uint8_t> buf(static_cast<std::size_t>(
      std::min<std::uint64_t>(h.count, per_chunk) * size));
  for (std::uint64_t first = 0; first < h.count; first += per_chunk) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(per_chunk, h.count - first));
    src.read(buf.data(), n * size);
    for (std::size_t k = 0; k < n; ++k) f(first + k, buf.data() + k * size);
  }
}

SampleArray load_samples(Source& src, std::uint64_t total, std::string_view name) {
  NpyHeader h = read_header(src, total, name, Purpose::kSamples);
  SampleArray out;
  // N scalars are N samples of one feature.
  out.shape = h.shape.size() == 1 ? std::vector<std::int64_t>{h.shape[0], 1} : h.shape;
  if (h.dtype.kind == Kind::kUnsigned) {
    out.bytes.resize(static_cast<std::size_t>(h.count));
    src.read(out.bytes.data(), out.bytes.size());
  } else {
    out.floats.resize(static_cast<std::size_t>(h.count));
    std::uint64_t per_sample = h.count / static_cast<std::uint64_t>(h.shape[0]);
    auto bad = [&](std::uint64_t i, std::string_view what) {
      return DataError(fmt::format("'{}': element {} (sample {}) is {}; graphrun trains on finite "
                                   "float32 values",
                                   name, i, i / per_sample, what));
    };
    for_each_value(src, h, [&](std::uint64_t i, const std::uint8_t* p) {
      double v = load_float(p, h.dtype.size, h.dtype.big_endian);
      if (std::isnan(v)) throw bad(i, "NaN");
      if (std::isinf(v)) throw bad(i, v > 0 ? "inf" : "-inf");
      if (std::fabs(v) > std::numeric_limits<float>::max())
        throw bad(i, fmt::format("{:g}, outside float32's range", v));
      out.floats[static_cast<std::size_t>(i)] = static_cast<float>(v);
    });
  }
  src.finish();
  return out;
}

std::vector<std::int64_t> load_labels(Source& src, std::uint64_t total, std::string_view name) {
  NpyHeader h = read_header(src, total, name, Purpose::kLabels);
  std::vector<std::int64_t> out(static_cast<std::size_t>(h.count));
  const Dtype& d = h.dtype;
  auto bad = [&](std::uint64_t i, std::string_view what) {
    return DataError(fmt::format("'{}': label {} is {}; class indices are whole numbers >= 0",
                                 name, i, what));
  };
  for_each_value(src, h, [&](std::uint64_t i, const std::uint8_t* p) {
    std::int64_t label = 0;
    switch (d.kind) {
      case Kind::kUnsigned: {
        std::uint64_t v = load_uint(p, d.size, d.big_endian);
        if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          throw bad(i, std::to_string(v));
        label = static_cast<std::int64_t>(v);
        break;
      }
      case Kind::kSigned:
        label = load_int(p, d.size, d.big_endian);
        if (label < 0) throw bad(i, std::to_string(label));
        break;
      case Kind::kBool:
        // numpy stores booleans as 0 and 1; another byte means the file is not what it claims.
        if (p[0] > 1)
          throw DataError(fmt::format("'{}': label {} is byte {} in a boolean array (0 or 1)",
                                      name, i, p[0]));
        label = p[0];
        break;
      case Kind::kFloat: {
        double v = load_float(p, d.size, d.big_endian);
        // 2^63 is exact in double; everything below it that is whole fits in int64.
        if (!(v >= 0 && v < 9223372036854775808.0) || std::floor(v) != v)
          throw bad(i, fmt::format("{:g}", v));
        label = static_cast<std::int64_t>(v);
        break;
      }
    }
    out[static_cast<std::size_t>(i)] = label;
  });
  src.finish();
  return out;
}

std::uint64_t file_size_or_throw(const std::filesystem::path& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) throw IoError(fmt::format("cannot read '{}': {}", path.string(), ec.message()));
  return size;
}

// ----- .npz ----------------------------------------------------------------------------------

std::string zip_code_text(int code) {
  zip_error_t e;
  zip_error_init_with_code(&e, code);
  std::string text = zip_error_strerror(&e);
  zip_error_fini(&e);
  return text;
}

struct ZipDiscard {
  void operator()(zip_t* z) const { zip_discard(z); }
};
struct ZipFileClose {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};

class ZipMemberSource : public Source {
 public:
  ZipMemberSource(zip_file_t* f, std::uint64_t size, std::string name)
      : f_(f), size_(size), name_(std::move(name)) {}
  void read(std::uint8_t* dst, std::size_t n) override {
    while (n > 0) {
      zip_int64_t got = zip_fread(f_.get(), dst, n);
      if (got < 0) throw corrupt();
      if (got == 0)
        throw DataError(fmt::format(
            "'{}': member ends after {} bytes; the archive's directory says {}", name_, pos_,
            size_));
      dst += got;
      n -= static_cast<std::size_t>(got);
      pos_ += static_cast<std::uint64_t>(got);
    }
  }
  // Reading past the end is what makes libzip compare the CRC.
  void finish() override {
    std::uint8_t extra;
    zip_int64_t got = zip_fread(f_.get(), &extra, 1);
    if (got < 0) throw corrupt();
    if (got > 0)
      throw DataError(fmt::format(
          "'{}': member holds more than the {} bytes the archive's directory says", name_, size_));
  }

 private:
  DataError corrupt() const {
    return DataError(fmt::format("'{}': corrupt archive member ({}) after {} bytes", name_,
                                 zip_file_strerror(f_.get()), pos_));
  }

  std::unique_ptr<zip_file_t, ZipFileClose> f_;
  std::uint64_t size_;
  std::string name_;
  std::uint64_t pos_ = 0;
};

// An open .npz: its zip directory, checked, and the members read from it.
class Npz {
 public:
  explicit Npz(const std::filesystem::path& path) : name_(path.string()) {
    size_ = file_size_or_throw(path);
    refuse_empty();
    // libzip's error codes do not separate the file from its content (a corrupt directory can
    // give "No such file"), so readability is settled here and every later failure is the data's.
    if (!std::ifstream(path, std::ios::binary))
      throw IoError(fmt::format("cannot open '{}': {}", name_, std::strerror(errno)));
    int code = 0;
    zip_t* z = zip_open(name_.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (!z)
      throw DataError(fmt::format("'{}': not a readable .npz (zip) archive: {}", name_,
                                  zip_code_text(code)));
    zip_.reset(z);
    list_members();
  }

  Npz(std::span<const std::uint8_t> bytes, std::string_view name)
      : name_(name), size_(bytes.size()) {
    refuse_empty();
    zip_error_t error;
    zip_error_init(&error);
    // libzip never writes to a source opened read-only; its API just takes a non-const pointer.
    zip_source_t* src = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error);
    zip_t* z = src ? zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &error) : nullptr;
    if (!z) {
      if (src) zip_source_free(src);
      std::string why = zip_error_strerror(&error);
      zip_error_fini(&error);
      throw DataError(fmt::format("'{}': not a readable .npz (zip) archive: {}", name_, why));
    }
    zip_error_fini(&error);
    zip_.reset(z);
    list_members();
  }

  std::vector<std::string> array_names() const {
    std::vector<std::string> names;
    for (const auto& m : members_)
      if (is_npy(m)) names.push_back(m.substr(0, m.size() - 4));
    return names;
  }

  SampleArray samples(std::string_view array) {
    auto [source, total, name] = open(array);
    return load_samples(*source, total, name);
  }

  std::vector<std::int64_t> labels(std::string_view array) {
    auto [source, total, name] = open(array);
    return load_labels(*source, total, name);
  }

 private:
  struct Opened {
    std::unique_ptr<Source> source;
    std::uint64_t total;
    std::string name;  // "<archive>/<member>", for messages
  };

  // libzip opens an empty buffer as an empty archive but refuses an empty file; neither is an
  // archive anybody wrote, so both are refused alike.
  void refuse_empty() const {
    if (size_ == 0) throw DataError(fmt::format("'{}': file is empty, not an .npz archive", name_));
  }

  static bool is_npy(std::string_view member) {
    return member.size() >= 4 && member.substr(member.size() - 4) == ".npy";
  }

  void list_members() {
    zip_int64_t n = zip_get_num_entries(zip_.get(), 0);
    if (n < 0) throw DataError(fmt::format("'{}': cannot list the archive", name_));
    std::set<std::string> seen;
    for (zip_int64_t i = 0; i < n; ++i) {
      const char* member = zip_get_name(zip_.get(), static_cast<zip_uint64_t>(i), 0);
      if (!member)
        throw DataError(fmt::format("'{}': entry {} of the archive has no readable name ({})",
                                    name_, i, zip_strerror(zip_.get())));
      // Two members of one name make "which array is x?" depend on the reader.
      if (!seen.insert(member).second)
        throw DataError(fmt::format("'{}': the archive holds two members named '{}'", name_,
                                    member));
      members_.emplace_back(member);
    }
  }

  Opened open(std::string_view array) {
    std::string wanted = std::string(array) + ".npy";
    auto it = std::find(members_.begin(), members_.end(), wanted);
    if (it == members_.end()) it = std::find(members_.begin(), members_.end(), array);
    if (it == members_.end()) {
      auto names = array_names();
      std::string there = names.empty() ? std::string("none")
                                        : fmt::format("'{}'", fmt::join(names, "', '"));
      if (names.size() > 20)
        there = fmt::format("'{}', ... ({} in all)",
                            fmt::join(names.begin(), names.begin() + 20, "', '"), names.size());
      throw DataError(fmt::format("'{}': the archive has no array '{}'; the arrays there are {}",
                                  name_, array, there));
    }
    const std::string& member = *it;
    std::string name = fmt::format("{}/{}", name_, member);
    if (!is_npy(member))
      throw DataError(fmt::format("'{}': archive member '{}' is not an .npy array", name_, member));
    auto index = static_cast<zip_uint64_t>(it - members_.begin());
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(zip_.get(), index, 0, &st) != 0)
      throw DataError(fmt::format("'{}': cannot read the directory entry ({})", name,
                                  zip_strerror(zip_.get())));
    constexpr zip_uint64_t kNeeded =
        ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD | ZIP_STAT_ENCRYPTION_METHOD;
    if ((st.valid & kNeeded) != kNeeded)
      throw DataError(fmt::format("'{}': the archive's directory entry is incomplete", name));
    if (st.encryption_method != ZIP_EM_NONE)
      throw DataError(fmt::format("'{}': member is encrypted", name));
    if (st.comp_method != ZIP_CM_STORE && st.comp_method != ZIP_CM_DEFLATE)
      throw DataError(fmt::format("'{}': member uses zip compression method {}; numpy writes only "
                                  "stored (0) and deflated (8) members",
                                  name, st.comp_method));
    // Every size below comes from the archive's directory and is checked before reading, so no
    // claim of the archive makes us allocate more than its data could hold.
    if (st.size > kNpyMaxBytes + kNpyMaxHeaderBytes + 12)
      throw DataError(fmt::format(
          "'{}': member is {} bytes uncompressed, more than the {} bytes graphrun reads from one "
          "array",
          name, st.size, kNpyMaxBytes));
    if (st.comp_size > size_)
      throw DataError(fmt::format("'{}': member claims {} compressed bytes in a {}-byte archive",
                                  name, st.comp_size, size_));
    if (st.comp_method == ZIP_CM_STORE && st.size != st.comp_size)
      throw DataError(fmt::format(
          "'{}': stored member claims {} bytes uncompressed but {} compressed", name, st.size,
          st.comp_size));
    if (st.comp_method == ZIP_CM_DEFLATE && st.size > st.comp_size * kDeflateMaxRatio + 1024)
      throw DataError(fmt::format(
          "'{}': member claims {} bytes from {} deflated bytes, more than deflate can expand to",
          name, st.size, st.comp_size));
    zip_file_t* f = zip_fopen_index(zip_.get(), index, 0);
    if (!f)
      throw DataError(
          fmt::format("'{}': cannot open the member ({})", name, zip_strerror(zip_.get())));
    Opened o{nullptr, st.size, std::move(name)};
    o.source = std::make_unique<ZipMemberSource>(f, st.size, o.name);
    return o;
  }

  std::string name_;
  std::uint64_t size_ = 0;  // of the archive
  std::unique_ptr<zip_t, ZipDiscard> zip_;
  std::vector<std::string> members_;
};

}  // namespace

SampleArray parse_npy(std::span<const std::uint8_t> bytes, std::string_view name) {
  SpanSource src(bytes, name);
  return load_samples(src, bytes.size(), name);
}

std::vector<std::int64_t> parse_npy_labels(std::span<const std::uint8_t> bytes,
                                           std::string_view name) {
  SpanSource src(bytes, name);
  return load_labels(src, bytes.size(), name);
}

SampleArray read_npy(const std::filesystem::path& path) {
  std::uint64_t size = file_size_or_throw(path);
  FileSource src(path);
  return load_samples(src, size, path.string());
}

std::vector<std::int64_t> read_npy_labels(const std::filesystem::path& path) {
  std::uint64_t size = file_size_or_throw(path);
  FileSource src(path);
  return load_labels(src, size, path.string());
}

std::vector<std::string> npz_names(const std::filesystem::path& path) {
  return Npz(path).array_names();
}

SampleArray read_npz_array(const std::filesystem::path& path, std::string_view name) {
  return Npz(path).samples(name);
}

std::vector<std::int64_t> read_npz_labels(const std::filesystem::path& path,
                                          std::string_view name) {
  return Npz(path).labels(name);
}

std::vector<std::string> parse_npz_names(std::span<const std::uint8_t> archive,
                                         std::string_view archive_name) {
  return Npz(archive, archive_name).array_names();
}

SampleArray parse_npz_array(std::span<const std::uint8_t> archive, std::string_view archive_name,
                            std::string_view name) {
  return Npz(archive, archive_name).samples(name);
}

std::vector<std::int64_t> parse_npz_labels(std::span<const std::uint8_t> archive,
                                           std::string_view archive_name, std::string_view name) {
  return Npz(archive, archive_name).labels(name);
}

}  // namespace graphrun
