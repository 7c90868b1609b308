#include <graphrun/models/graph_syntax.hpp>

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <cmath>

namespace graphrun {
namespace {

struct Token {
  enum class Kind { name, number, string, punct, newline, end };
  Kind kind = Kind::end;
  std::string text;
  double number = 0;
  SourcePos pos;
};

bool name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'; }

std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return "";
  auto e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

// The section a header line opens ("graph" for "[graph]  # ..."), or "" for any other line.
std::string header_of(std::string_view line) {
  std::string t = trim(line.substr(0, line.find('#')));
  if (t.size() < 3 || t.front() != '[' || t.back() != ']') return "";
  std::string name = t.substr(1, t.size() - 2);
  for (char c : name)
    if (!name_char(c)) return "";
  return name;
}

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> lines;
  std::size_t at = 0;
  while (at <= text.size()) {
    auto nl = text.find('\n', at);
    auto line = text.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
    // Every trailing CR, not one: the text written back ends its lines in LF alone and must read
    // the same again ("x = 1\r\r" kept a CR that a second reading dropped).
    while (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.emplace_back(line);
    if (nl == std::string_view::npos) break;
    at = nl + 1;
  }
  return lines;
}

class Parser {
 public:
  Parser(const GraphSyntax& syntax, std::vector<Token> tokens)
      : syntax_(syntax), tokens_(std::move(tokens)) {}

  std::vector<StatementPtr> statements() {
    std::vector<StatementPtr> out;
    for (skip_newlines(); !at(Token::Kind::end); skip_newlines()) {
      out.push_back(statement(false));
      end_of_statement();
    }
    return out;
  }

 private:
  [[noreturn]] void fail(SourcePos pos, const std::string& message) const {
    throw GraphFileError(located(syntax_.lines, syntax_.file, pos, message), syntax_.file, pos);
  }
  const Token& peek(std::size_t ahead = 0) const {
    return tokens_[std::min(next_ + ahead, tokens_.size() - 1)];
  }
  bool at(Token::Kind kind) const { return peek().kind == kind; }
  bool at_punct(std::string_view p) const { return at(Token::Kind::punct) && peek().text == p; }
  bool at_word(std::string_view w) const { return at(Token::Kind::name) && peek().text == w; }
  Token take() { return tokens_[std::min(next_++, tokens_.size() - 1)]; }
  static std::string describe(const Token& t) {
    switch (t.kind) {
      case Token::Kind::newline: return "the end of the line";
      case Token::Kind::end: return "the end of the file";
      case Token::Kind::string: return fmt::format("\"{}\"", t.text);
      default: return fmt::format("'{}'", t.text);
    }
  }
  void expect(std::string_view p, std::string_view what) {
    if (!at_punct(p)) fail(peek().pos, fmt::format("expected '{}' {}, found {}", p, what, describe(peek())));
    take();
  }
  Token expect_name(std::string_view what) {
    if (!at(Token::Kind::name)) fail(peek().pos, fmt::format("expected {}, found {}", what, describe(peek())));
    return take();
  }
  void skip_newlines() {
    while (at(Token::Kind::newline)) take();
  }
  void end_of_statement() {
    if (at(Token::Kind::end)) return;
    if (!at(Token::Kind::newline))
      fail(peek().pos, fmt::format("expected the end of the statement, found {}", describe(peek())));
    take();
  }

  StatementPtr statement(bool in_function) {
    auto s = std::make_unique<Statement>();
    s->pos = peek().pos;
    Token first = expect_name("a statement (input, param, def, role, term, schedule, prior or NAME = ...)");
    const std::string& w = first.text;
    bool keyword = !at_punct("=") && !in_function;
    if (keyword && (w == "input" || w == "param")) {
      s->kind = w == "input" ? Statement::Kind::input : Statement::Kind::param;
      take_name(*s, w == "input" ? "the input's name" : "the parameter's name");
      s->shape = shape();
      if (s->kind == Statement::Kind::param) {
        Token init = expect_name("an initialiser (zeros, he_uniform, normal(0.01), ...)");
        s->init = init.text;
        if (at_punct("(")) {
          take();
          s->init_arg = expr();
          expect(")", "after the initialiser's argument");
        }
      }
    } else if (keyword && w == "def") {
      s->kind = Statement::Kind::def;
      take_name(*s, "the function's name");
      expect("(", "after the function's name");
      while (!at_punct(")")) {
        s->params.push_back(expect_name("a parameter name").text);
        if (!at_punct(")")) expect(",", "between parameters");
      }
      take();
      if (at_punct("{")) block(*s);
      else {
        expect("=", "or '{' after the parameters");
        s->value = expr();
      }
    } else if (keyword && (w == "role" || w == "term" || w == "schedule")) {
      s->kind = w == "role" ? Statement::Kind::role : w == "term" ? Statement::Kind::term : Statement::Kind::schedule;
      take_name(*s, fmt::format("the {}'s name", w));
      expect("=", fmt::format("after the {}'s name", w));
      s->value = expr();
    } else if (keyword && w == "prior") {
      s->kind = Statement::Kind::prior;
      take_name(*s, "the prior (normal)");
    } else {
      s->kind = Statement::Kind::assign;
      s->name = w;
      s->name_pos = first.pos;
      if (at_punct(",")) {
        s->unpack.emplace_back(w, first.pos);
        while (at_punct(",")) {
          take();
          Token t = expect_name("a name to unpack into");
          s->unpack.emplace_back(t.text, t.pos);
        }
      }
      expect("=", fmt::format("after '{}' (statements are input, param, def, role, term, schedule, "
                              "prior, NAME = expression, or NAME, NAME = a list)", w));
      s->value = expr();
    }
    return s;
  }

  void take_name(Statement& s, std::string_view what) {
    Token t = expect_name(what);
    s.name = t.text;
    s.name_pos = t.pos;
  }

  void block(Statement& s) {
    take();  // {
    for (skip_newlines(); !at_word("return"); skip_newlines()) {
      if (at(Token::Kind::end) || at_punct("}"))
        fail(peek().pos, fmt::format("function '{}' ends without 'return'", s.name));
      s.body.push_back(statement(true));
      end_of_statement();
    }
    take();
    s.value = expr();
    skip_newlines();
    expect("}", fmt::format("to close function '{}' after its return", s.name));
  }

  std::vector<ExprPtr> shape() {
    expect("[", "to open the shape");
    std::vector<ExprPtr> dims;
    while (!at_punct("]")) {
      dims.push_back(expr());
      if (!at_punct("]")) expect(",", "between dimensions");
    }
    take();
    return dims;
  }

  ExprPtr node(Expr::Kind kind, SourcePos pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    return e;
  }

  ExprPtr binary(ExprPtr lhs, const Token& op, ExprPtr rhs) {
    auto e = node(Expr::Kind::binary, op.pos);
    e->text = op.text;
    e->args.push_back(std::move(lhs));
    e->args.push_back(std::move(rhs));
    return e;
  }

  struct Depth {
    Depth(Parser& p, SourcePos pos) : p(p) {
      if (++p.depth_ > kMaxExprDepth)
        p.fail(pos, fmt::format("expression nested deeper than {} levels", kMaxExprDepth));
    }
    ~Depth() { --p.depth_; }
    Parser& p;
  };

  ExprPtr expr() {
    Depth d(*this, peek().pos);
    ExprPtr lhs = term();
    while (at_punct("+") || at_punct("-")) {
      Token op = take();
      lhs = binary(std::move(lhs), op, term());
    }
    return lhs;
  }

  ExprPtr term() {
    ExprPtr lhs = unary();
    while (at_punct("*") || at_punct("/") || at_punct("@")) {
      Token op = take();
      lhs = binary(std::move(lhs), op, unary());
    }
    return lhs;
  }

  ExprPtr unary() {
    Depth d(*this, peek().pos);
    if (at_punct("-")) {
      Token op = take();
      auto e = node(Expr::Kind::unary, op.pos);
      e->text = "-";
      e->args.push_back(unary());
      return e;
    }
    return primary();
  }

  ExprPtr primary() {
    Token t = take();
    switch (t.kind) {
      case Token::Kind::number: {
        auto e = node(Expr::Kind::number, t.pos);
        e->number = t.number;
        e->text = t.text;
        return e;
      }
      case Token::Kind::string: {
        auto e = node(Expr::Kind::string, t.pos);
        e->text = t.text;
        return e;
      }
      case Token::Kind::name: {
        if (!at_punct("(")) {
          auto e = node(Expr::Kind::name, t.pos);
          e->text = t.text;
          return e;
        }
        take();
        auto e = node(Expr::Kind::call, t.pos);
        e->text = t.text;
        while (!at_punct(")")) {
          std::string name;
          if (at(Token::Kind::name) && peek(1).kind == Token::Kind::punct && peek(1).text == "=") {
            name = take().text;
            take();
          } else if (!e->arg_names.empty() && !e->arg_names.back().empty()) {
            fail(peek().pos, "a positional argument cannot follow a named one");
          }
          e->arg_names.push_back(name);
          e->args.push_back(expr());
          if (!at_punct(")")) expect(",", fmt::format("between the arguments of '{}'", t.text));
        }
        take();
        return e;
      }
      case Token::Kind::punct:
        if (t.text == "(") {
          ExprPtr e = expr();
          expect(")", "to close '('");
          return e;
        }
        if (t.text == "[") {
          auto e = node(Expr::Kind::list, t.pos);
          while (!at_punct("]")) {
            e->args.push_back(expr());
            if (!at_punct("]")) expect(",", "between list items");
          }
          take();
          return e;
        }
        break;
      default: break;
    }
    fail(t.pos, fmt::format("expected a value (a number, a name, a call, '(' or '['), found {}", describe(t)));
  }

  const GraphSyntax& syntax_;
  std::vector<Token> tokens_;
  std::size_t next_ = 0;
  int depth_ = 0;
};

// Tokens of the [graph] lines. A newline ends a statement unless it falls inside ( ) or [ ], or
// follows an operator, a comma or '=' (so a long expression may continue on the next line).
std::vector<Token> tokenize(const GraphSyntax& syntax, const std::vector<int>& graph_lines) {
  std::vector<Token> out;
  int depth = 0;
  auto fail = [&](SourcePos pos, const std::string& message) {
    throw GraphFileError(located(syntax.lines, syntax.file, pos, message), syntax.file, pos);
  };
  auto continues = [&] {
    if (out.empty() || out.back().kind != Token::Kind::punct) return false;
    const auto& p = out.back().text;
    return p == "+" || p == "-" || p == "*" || p == "/" || p == "@" || p == "," || p == "=" ||
           p == "(" || p == "[";
  };
  for (int number : graph_lines) {
    const std::string& line = syntax.lines[static_cast<std::size_t>(number - 1)];
    std::size_t i = 0;
    while (i < line.size()) {
      char c = line[i];
      SourcePos pos{number, static_cast<int>(i) + 1};
      if (c == '#') break;
      if (c == ' ' || c == '\t' || c == '\r') {
        ++i;
        continue;
      }
      Token t;
      t.pos = pos;
      if (name_start(c)) {
        std::size_t b = i;
        while (i < line.size() && name_char(line[i])) ++i;
        t.kind = Token::Kind::name;
        t.text = line.substr(b, i - b);
        if (t.text.back() == '.') fail(pos, fmt::format("a name cannot end with '.': '{}'", t.text));
      } else if (std::isdigit(static_cast<unsigned char>(c)) ||
                 (c == '.' && i + 1 < line.size() && std::isdigit(static_cast<unsigned char>(line[i + 1])))) {
        std::size_t b = i;
        while (i < line.size() && (std::isdigit(static_cast<unsigned char>(line[i])) || line[i] == '.')) ++i;
        if (i < line.size() && (line[i] == 'e' || line[i] == 'E')) {
          std::size_t e = i + 1;
          if (e < line.size() && (line[e] == '+' || line[e] == '-')) ++e;
          if (e < line.size() && std::isdigit(static_cast<unsigned char>(line[e]))) {
            i = e;
            while (i < line.size() && std::isdigit(static_cast<unsigned char>(line[i]))) ++i;
          }
        }
        t.kind = Token::Kind::number;
        t.text = line.substr(b, i - b);
        auto [end, ec] = std::from_chars(t.text.data(), t.text.data() + t.text.size(), t.number);
        if (ec != std::errc() || end != t.text.data() + t.text.size() || !std::isfinite(t.number))
          fail(pos, fmt::format("'{}' is not a number", t.text));
        if (i < line.size() && name_start(line[i]))
          fail(SourcePos{number, static_cast<int>(i) + 1}, "a number runs into a name (missing '*'?)");
      } else if (c == '"') {
        auto close = line.find('"', i + 1);
        if (close == std::string::npos) fail(pos, "a string is not closed on its line");
        t.kind = Token::Kind::string;
        t.text = line.substr(i + 1, close - i - 1);
        i = close + 1;
      } else if (std::string_view("()[]{},=+-*/@").find(c) != std::string_view::npos) {
        t.kind = Token::Kind::punct;
        t.text = std::string(1, c);
        ++i;
        if (c == '(' || c == '[') ++depth;
        if ((c == ')' || c == ']') && --depth < 0) fail(pos, fmt::format("'{}' closes nothing", c));
      } else {
        fail(pos, fmt::format("unexpected character '{}'", c));
      }
      out.push_back(std::move(t));
    }
    if (depth == 0 && !continues() && !out.empty() && out.back().kind != Token::Kind::newline)
      out.push_back({Token::Kind::newline, "", 0, {number, static_cast<int>(line.size()) + 1}});
  }
  SourcePos end{static_cast<int>(syntax.lines.size()), 1};
  if (depth > 0) fail(end, "the file ends inside '(' or '['");
  out.push_back({Token::Kind::end, "", 0, end});
  return out;
}

}  // namespace

std::string located(const std::vector<std::string>& lines, const std::string& file, SourcePos pos,
                    const std::string& message) {
  std::string out = fmt::format("{}:{}:{}: {}", file, pos.line, pos.column, message);
  if (pos.line >= 1 && pos.line <= static_cast<int>(lines.size())) {
    const std::string& line = lines[static_cast<std::size_t>(pos.line - 1)];
    std::string caret(static_cast<std::size_t>(std::max(pos.column - 1, 0)), ' ');
    for (std::size_t i = 0; i < caret.size() && i < line.size(); ++i)
      if (line[i] == '\t') caret[i] = '\t';
    out += fmt::format("\n  {}\n  {}^", line, caret);
  }
  return out;
}

bool has_graph_section(std::string_view text) {
  for (const auto& line : split_lines(text.substr(0, std::min(text.size(), kMaxGraphFileBytes))))
    if (header_of(line) == "graph") return true;
  return false;
}

GraphSyntax parse_graph_file(std::string_view text, const std::string& file) {
  GraphSyntax syntax;
  syntax.file = file;
  if (text.size() > kMaxGraphFileBytes)
    throw GraphFileError(fmt::format("{}: the file has {} bytes; graph files may have at most {}",
                                     file, text.size(), kMaxGraphFileBytes),
                         file, {});
  syntax.lines = split_lines(text);
  std::string section;
  std::vector<int> graph_lines;
  bool seen_graph = false;
  for (std::size_t i = 0; i < syntax.lines.size(); ++i) {
    const std::string& line = syntax.lines[i];
    const int number = static_cast<int>(i) + 1;
    auto fail = [&](int column, const std::string& message) {
      SourcePos pos{number, column};
      throw GraphFileError(located(syntax.lines, file, pos, message), file, pos);
    };
    if (line.find('\0') != std::string::npos) fail(1, "the line holds a NUL byte");
    if (std::string h = header_of(line); !h.empty()) {
      if (h != "model" && h != "train" && h != "data" && h != "graph")
        fail(static_cast<int>(line.find('[')) + 2,
             fmt::format("unknown section [{}]; graph files have [model], [graph], [train] and [data]", h));
      if (h == "graph" && seen_graph) fail(1, "a second [graph] section");
      seen_graph = seen_graph || h == "graph";
      section = h;
      continue;
    }
    if (section == "graph") {
      graph_lines.push_back(number);
      syntax.graph_text += line + "\n";
      continue;
    }
    std::string content = trim(std::string_view(line).substr(0, line.find('#')));
    if (content.empty()) continue;
    if (section.empty())
      fail(static_cast<int>(line.find_first_not_of(" \t")) + 1,
           "text before the first section; start with [model] or [graph]");
    auto eq = content.find('=');
    if (eq == std::string::npos)
      fail(static_cast<int>(line.find_first_not_of(" \t")) + 1,
           fmt::format("expected 'key = value' in [{}]", section));
    auto hash = line.find('#');
    Setting s{section, trim(content.substr(0, eq)), trim(content.substr(eq + 1)), number,
              hash == std::string::npos ? "" : trim(std::string_view(line).substr(hash + 1))};
    if (s.key.empty()) fail(1, "a setting without a key");
    for (const auto& other : syntax.settings)
      if (other.section == s.section && other.key == s.key)
        fail(static_cast<int>(line.find(s.key)) + 1,
             fmt::format("{}.{} is set twice (first on line {})", s.section, s.key, other.line));
    syntax.settings.push_back(std::move(s));
  }
  // Blank lines closing the section are not part of the graph: a run's config.ini, which puts
  // the section last, then records the same text.
  auto last = syntax.graph_text.find_last_not_of(" \t\r\n");
  syntax.graph_text = last == std::string::npos
                          ? ""
                          : syntax.graph_text.substr(0, syntax.graph_text.find('\n', last) + 1);
  if (!seen_graph)
    throw GraphFileError(fmt::format("{}: no [graph] section: a graph file defines its model there", file),
                         file, {});
  Parser parser(syntax, tokenize(syntax, graph_lines));
  syntax.statements = parser.statements();
  return syntax;
}

}  // namespace graphrun
