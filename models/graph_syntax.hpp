// Graph files, step 1 of 3: text -> syntax tree with positions. Knows no op, no option and no
// role: names are resolved when the tree is built (graph_model.hpp).
//
// A graph file is a model file whose `[graph]` section holds the model itself:
//
//   [model]                     options with defaults, overridable as --model.KEY VALUE
//   latent = 20
//   [graph]
//   input x [B, D]              B: the batch, D: the features of the data
//   def dense(v, n, name) = v @ param(name + ".w", [cols(v), n], xavier_uniform) + param(name + ".b", [n], zeros)
//   mu = dense(x, latent, "mu")
//   role loss = ...
//   [train] / [data]            as in every model file
//
// The grammar of the [graph] section (one statement a line; newlines inside ( ) and [ ] and
// after a binary operator or comma continue the line):
//
//   statement  = "input" NAME shape | "param" NAME shape init | "def" NAME "(" [names] ")" body
//              | "role" NAME "=" expr | "term" NAME "=" expr | "schedule" NAME "=" expr
//              | "prior" NAME | NAME {"," NAME} "=" expr
//   body       = "=" expr | "{" { NAME {"," NAME} "=" expr } "return" expr "}"
//   shape      = "[" [expr {"," expr}] "]"          init = NAME ["(" expr ")"]
//   expr       = term {("+" | "-") term}            term = unary {("*" | "/" | "@") unary}
//   unary      = "-" unary | primary                primary = NUMBER | STRING | NAME
//              | NAME "(" [arg {"," arg}] ")" | "(" expr ")" | "[" [expr {"," expr}] "]"
//   arg        = expr | NAME "=" expr
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace graphrun {

// Where something stands in a graph file; line and column count from 1.
struct SourcePos {
  int line = 0, column = 0;
};

// A graph file that cannot be read or built. what() is "file:line:column: message", then the
// line and a caret under the column.
class GraphFileError : public std::invalid_argument {
 public:
  GraphFileError(const std::string& what, std::string file, SourcePos pos)
      : std::invalid_argument(what), file_(std::move(file)), pos_(pos) {}
  const std::string& file() const { return file_; }
  SourcePos pos() const { return pos_; }

 private:
  std::string file_;
  SourcePos pos_;
};

struct Expr {
  enum class Kind { number, string, name, call, list, unary, binary };
  Kind kind = Kind::number;
  SourcePos pos;
  double number = 0;
  std::string text;  // string value, name, callee, or the operator ("-", "+", "*", "/", "@")
  std::vector<std::unique_ptr<Expr>> args;  // call arguments, list items, operands
  std::vector<std::string> arg_names;       // call: "" for a positional argument
};
using ExprPtr = std::unique_ptr<Expr>;

struct Statement {
  enum class Kind { input, param, def, assign, role, term, schedule, prior };
  Kind kind = Kind::assign;
  SourcePos pos;
  std::string name;  // the name declared, assigned, or the role
  SourcePos name_pos;
  std::vector<ExprPtr> shape;  // input, param
  std::string init;            // param: the initialiser's name
  ExprPtr init_arg;            // param: its argument, if any
  ExprPtr value;               // assign, role, term, schedule; def: the returned expression
  std::vector<std::string> params;  // def
  std::vector<std::unique_ptr<Statement>> body;  // def (block form): its assignments
  // assign of a list to several names, `a, b = f(x)`: every name with its position (the first
  // is also `name`); empty for one name.
  std::vector<std::pair<std::string, SourcePos>> unpack;
};
using StatementPtr = std::unique_ptr<Statement>;

// A `key = value` line of [model], [train] or [data].
struct Setting {
  std::string section, key, value;
  int line = 0;
  std::string comment;  // the line's '#' comment, trimmed: a [model] key's help
};

struct GraphSyntax {
  std::string file;                    // the name errors give
  std::string graph_text;              // the [graph] section, verbatim (what a checkpoint records)
  std::vector<Setting> settings;       // in file order
  std::vector<StatementPtr> statements;
  std::vector<std::string> lines;      // the whole file, for caret errors
};

// Limits that keep a hostile file from exhausting the parser or the builder.
inline constexpr std::size_t kMaxGraphFileBytes = 1 << 20;
inline constexpr int kMaxExprDepth = 64;

// Parses a whole graph file. Throws GraphFileError for a syntax error, a line outside any
// section, an unknown section, or a file without a [graph] section.
GraphSyntax parse_graph_file(std::string_view text, const std::string& file);

// True when `text` has a [graph] section: such a file is a graph file whatever its name (a run's
// config.ini of a graph model is one).
bool has_graph_section(std::string_view text);

// "file:line:column: message" with the line and a caret under the column.
std::string located(const std::vector<std::string>& lines, const std::string& file, SourcePos pos,
                    const std::string& message);

}  // namespace graphrun
