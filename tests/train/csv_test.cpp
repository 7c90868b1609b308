#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <graphrun/train/atomic_file.hpp>
#include <graphrun/train/csv.hpp>
#include <graphrun/train/idx.hpp>
#include <string>
#include <vector>

#include "fuzz/csv_check.hpp"
#include "fuzz/replay.hpp"
#include "train/temp_dir.hpp"

using namespace graphrun;
using graphrun::testing::TempDir;
using graphrun::testing::thrown_message;
using Floats = std::vector<float>;
using Labels = std::vector<std::int64_t>;
using Shape = std::vector<std::int64_t>;

namespace {

SampleArray parse(std::string_view text, std::string label = "",
                  std::string_view name = "t.csv") {
  return parse_csv(text, name, CsvOptions{std::move(label)});
}

// The DataError parse_csv gives for `text`, which must name the file.
std::string error(std::string_view text, std::string label = "", std::string_view name = "t.csv") {
  auto msg = thrown_message<DataError>([&] { parse(text, std::move(label), name); });
  CHECK_THAT(msg, Catch::StartsWith(std::string(name) + ":"));
  return msg;
}

}  // namespace

TEST_CASE("CSV without header or labels is a float table", "[csv]") {
  auto a = parse("1,2.5,-3\n4,5e2,+6\n");
  CHECK(a.shape == Shape{2, 3});
  CHECK(a.floats == Floats{1, 2.5f, -3, 4, 500, 6});
  CHECK(a.bytes.empty());
  CHECK(a.labels.empty());
  CHECK(a.class_names.empty());
  CHECK_FALSE(a.is_bytes());
  SECTION("without a final newline, spaces around cells") {
    CHECK(parse(" 1 , 2\n3,4").floats == Floats{1, 2, 3, 4});
  }
  SECTION("tiny values become zero or subnormal, not errors") {
    auto t = parse("1e-50,-1e-400,1e-40\n");
    CHECK(t.floats[0] == 0.0f);
    CHECK(t.floats[1] == 0.0f);
    CHECK(t.floats[2] > 0.0f);
  }
}

TEST_CASE("CSV header, BOM, CRLF, quotes and trailing blank lines", "[csv]") {
  std::string text =
      "\xEF\xBB\xBF"
      "\"width, cm\",\"say \"\"hi\"\"\",label\r\n"
      "1,2,a\r\n"
      "3,\"4\",b\r\n"
      "\r\n"
      "  \n";
  auto a = parse(text, "label");
  CHECK(a.shape == Shape{2, 2});
  CHECK(a.floats == Floats{1, 2, 3, 4});
  CHECK(a.labels == Labels{0, 1});
  CHECK(a.class_names == std::vector<std::string>{"a", "b"});
  SECTION("header names with quotes and commas are found") {
    std::string quoted = "\"width, cm\",\"say \"\"hi\"\"\"\n1,2\n3,4\n";
    auto b = parse(quoted, "say \"hi\"");
    CHECK(b.shape == Shape{2, 1});
    CHECK(b.floats == Floats{1, 3});
    CHECK(b.labels == Labels{2, 4});
    CHECK(b.class_names.empty());
    CHECK(parse(quoted, "width, cm").labels == Labels{1, 3});
  }
  SECTION("a quoted cell may span lines; lines are still counted for messages") {
    auto msg = error("\"a\nb\",c\n1,2\n3,x\n");
    CHECK_THAT(msg, Catch::StartsWith("t.csv:4: column 2 ('c'): 'x' is not a number"));
  }
}

TEST_CASE("CSV separators: tabs by name or by the first line", "[csv]") {
  CHECK(parse("1\t2\n3\t4\n").shape == Shape{2, 2});
  CHECK(parse("1\t2\n3\t4\n", "", "t.TSV").shape == Shape{2, 2});
  // A tab-separated file whose cells hold commas still splits at tabs by its name.
  CHECK(parse("a,b\tc\n1\t2\n", "", "t.tsv").shape == Shape{1, 2});
  CHECK_THAT(error("1;2\n3;4\n"), Catch::Contains("not semicolons"));
}

TEST_CASE("CSV labels as integers are class indices, names are sorted classes", "[csv]") {
  SECTION("integers, by header name") {
    auto a = parse("x,y,class\n0.5,1,3\n0.25,2,0\n1,3,3.0\n", "class");
    CHECK(a.shape == Shape{3, 2});
    CHECK(a.floats == Floats{0.5f, 1, 0.25f, 2, 1, 3});
    CHECK(a.labels == Labels{3, 0, 3});
    CHECK(a.class_names.empty());
  }
  SECTION("names, by 0-based column number in a file without header") {
    auto a = parse("1,setosa,2\n3,virginica,4\n5,setosa,6\n7,versicolor,8\n", "1");
    CHECK(a.shape == Shape{4, 2});
    CHECK(a.floats == Floats{1, 2, 3, 4, 5, 6, 7, 8});
    CHECK(a.labels == Labels{0, 2, 0, 1});
    CHECK(a.class_names == std::vector<std::string>{"setosa", "versicolor", "virginica"});
  }
  SECTION("numbers mixed with names are all names") {
    auto a = parse("1,2\n2,-1\n3,10\n", "1");
    CHECK(a.class_names == std::vector<std::string>{"-1", "10", "2"});
    CHECK(a.labels == Labels{2, 0, 1});
  }
  SECTION("a header name made of digits wins over the column number") {
    auto a = parse("a,0,b\n1,2,3\n", "0");
    CHECK(a.floats == Floats{1, 3});
    CHECK(a.labels == Labels{2});
  }
  SECTION("a column number works with a header too") {
    auto a = parse("a,b\n1,2\n", "0");
    CHECK(a.floats == Floats{2});
    CHECK(a.labels == Labels{1});
  }
}

TEST_CASE("CSV of 1000 rows", "[csv]") {
  TempDir dir;
  std::string text = "f0,f1,f2,label\n";
  for (int i = 0; i < 1000; ++i)
    text += fmt::format("{},{},{},{}\n", i, i * 0.5, -i, i % 7 == 0 ? "seven" : "other");
  graphrun::testing::write_raw<char>(dir / "big.csv", text);
  auto a = read_csv(dir / "big.csv", {"label"});
  REQUIRE(a.shape == Shape{1000, 3});
  REQUIRE(a.floats.size() == 3000);
  CHECK(a.floats[3 * 999] == 999);
  CHECK(a.floats[3 * 999 + 1] == 499.5f);
  CHECK(a.floats[3 * 999 + 2] == -999);
  CHECK(a.class_names == std::vector<std::string>{"other", "seven"});
  CHECK(a.labels[0] == 1);
  CHECK(a.labels[1] == 0);
  CHECK(a.labels[7] == 1);
}

TEST_CASE("CSV feature cells that are not numbers name the line and column", "[csv]") {
  CHECK(error("a,b\n1,2\n3,abc\n") == "t.csv:3: column 2 ('b'): 'abc' is not a number");
  CHECK(error("1,2\n3,abc\n") == "t.csv:2: column 2: 'abc' is not a number");
  CHECK_THAT(error("a,b\n1,nan\n"), Catch::StartsWith("t.csv:2: column 2 ('b'): 'nan' is not a finite"));
  CHECK_THAT(error("a,b\n-inf,1\n"), Catch::StartsWith("t.csv:2: column 1 ('a'): '-inf' is not a finite"));
  CHECK_THAT(error("a,b\n1,\n"), Catch::StartsWith("t.csv:2: column 2 ('b'): empty cell"));
  CHECK_THAT(error("a,b\n1,1e39\n"), Catch::StartsWith("t.csv:2: column 2 ('b'): '1e39' is beyond the float32 range"));
  CHECK_THAT(error("a,b\n1,2x\n"), Catch::StartsWith("t.csv:2: column 2 ('b'): '2x' is not a number"));
  CHECK_THAT(error("a,b\n1,0x10\n"), Catch::Contains("'0x10' is not a number"));
  SECTION("long cells are cut short in the message") {
    auto msg = error("a\n" + std::string(1000, 'z') + "\n");
    CHECK(msg.size() < 120);
    CHECK_THAT(msg, Catch::Contains("zzz...'"));
  }
  SECTION("with a CRLF file the line is the editor's") {
    CHECK_THAT(error("a,b\r\n1,2\r\n3,?\r\n"), Catch::StartsWith("t.csv:3: column 2 ('b')"));
  }
}

TEST_CASE("CSV ragged rows, blank lines and bad quotes are errors with the line", "[csv]") {
  CHECK(error("a,b,c\n1,2,3\n4,5\n") == "t.csv:3: 2 cells, expected 3 as on line 1");
  CHECK(error("1,2,3\n1,2,3,4\n") == "t.csv:2: 4 cells, expected 3 as on line 1");
  CHECK_THAT(error("1\n\n2\n"), Catch::StartsWith("t.csv:2: blank line inside the table"));
  CHECK_THAT(error("\n1\n"), Catch::StartsWith("t.csv:1: blank line"));
  CHECK_THAT(error("a,b\n1,\"2\n"), Catch::StartsWith("t.csv:2: column 2: the quote that opens this cell is never closed"));
  CHECK_THAT(error("a,\"b\"c\n1,2\n"), Catch::StartsWith("t.csv:1: column 2: text after the closing quote"));
  CHECK_THAT(error("x,y\n1,2\n3,4\n", "y2"), Catch::Contains("did you mean 'y'"));
}

TEST_CASE("CSV label column problems name the columns", "[csv]") {
  SECTION("a missing name lists the header and suggests the closest") {
    auto msg = error("sepal_length,sepal_width,species\n1,2,a\n", "Species ");
    CHECK_THAT(msg, Catch::Contains("no column is named 'Species '"));
    CHECK_THAT(msg, Catch::Contains("did you mean 'species'?"));
    CHECK_THAT(msg, Catch::Contains("'sepal_length', 'sepal_width', 'species'"));
    CHECK_THAT(error("a,b\n1,2\n", "zzzzzz"), !Catch::Contains("did you mean"));
  }
  SECTION("a name for a file without header") {
    CHECK_THAT(error("1,2\n3,4\n", "species"), Catch::Contains("has no header"));
  }
  SECTION("a number beyond the columns") {
    CHECK(error("1,2\n3,4\n", "2") ==
          "t.csv: there is no label column 2 (numbers count from 0): the file has 2 columns, 0 to 1");
    CHECK_THAT(error("a,b\n3,4\n", "5"), Catch::EndsWith(": 'a', 'b'"));
  }
  SECTION("an empty label, a label column alone, too large a class") {
    CHECK(error("a,l\n1,x\n2,\n", "l") == "t.csv:3: column 2 ('l'): the label is empty");
    CHECK_THAT(error("l\n1\n", "l"), Catch::Contains("no feature columns"));
    CHECK_THAT(error("a,l\n1,3\n2,10000\n", "l"),
               Catch::StartsWith("t.csv:3: column 2 ('l'): class 10000 is too large"));
    CHECK_THAT(error("a,l\n1,99999999999999999999999\n", "l"), Catch::Contains("too large"));
  }
  SECTION("more than 10000 distinct names") {
    std::string text = "a,l\n";
    for (int i = 0; i <= kCsvMaxClasses; ++i) text += fmt::format("1,n{}\n", i);
    CHECK_THAT(error(text, "l"), Catch::Contains("10001 distinct labels"));
  }
}

TEST_CASE("CSV without data rows is an error", "[csv]") {
  CHECK(error("") == "t.csv: no rows: the file is empty");
  CHECK(error("\xEF\xBB\xBF\n\n") == "t.csv: no rows: the file is empty");
  CHECK(error("a,b\n") == "t.csv: no data rows, only the header on line 1");
}

TEST_CASE("read_csv names the file and throws IoError when it cannot be read", "[csv]") {
  TempDir dir;
  auto path = dir / "bad.csv";
  graphrun::testing::write_raw<char>(path, std::string_view("a,b\n1,oops\n"));
  auto msg = thrown_message<DataError>([&] { read_csv(path, {}); });
  CHECK(msg == path.string() + ":2: column 2 ('b'): 'oops' is not a number");
  CHECK_THROWS_AS(read_csv(dir / "missing.csv", {}), IoError);
  CHECK_THROWS_AS(read_csv(dir.path(), {}), IoError);
}

TEST_CASE("fuzz inputs for CSV are refused cleanly or read consistently", "[csv][fuzz]") {
  graphrun::fuzz::replay("fuzz_csv", graphrun::fuzz::check_csv);
}

TEST_CASE("the CSV fuzz check notices inconsistent tables", "[csv]") {
  SampleArray a = parse("1,2\n", "1");
  CHECK(graphrun::fuzz::csv_problem(a, true) == "");
  a.floats.push_back(3);
  CHECK(graphrun::fuzz::csv_problem(a, true) != "");
}
