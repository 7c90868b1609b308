#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/op.hpp>
#include <graphrun/models/graph_eval.hpp>
#include <graphrun/models/graph_model.hpp>
#include <graphrun/ops/ops.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

namespace graphrun {
namespace {

constexpr int kMaxCallDepth = 32;
// Calls can fan out (f calls g twice, g calls h twice, ...): bound their number, not only depth.
constexpr std::int64_t kMaxCalls = 100000;
constexpr int kMaxNodes = 1000000;
constexpr int kMaxGradNodes = kMaxNodes / 10;
constexpr double kMaxDimension = 1 << 24;
constexpr double kMaxParameterElements = 1 << 28;
// full() holds its values in the graph as it is built, so its limit is far below a parameter's.
constexpr double kMaxConstantElements = 1 << 20;

const char* kind_name(GraphVal::Kind k) {
  switch (k) {
    case GraphVal::Kind::number: return "a number";
    case GraphVal::Kind::string: return "a string";
    case GraphVal::Kind::tensor: return "a tensor";
    case GraphVal::Kind::list: return "a list";
    case GraphVal::Kind::init: return "an initialiser";
  }
  return "?";
}

const std::map<std::string, Init>& named_inits() {
  static const std::map<std::string, Init> inits = {
      {"zeros", Init::zeros()},           {"xavier_uniform", Init::xavier_uniform()},
      {"xavier_normal", Init::xavier_normal()}, {"he_uniform", Init::he_uniform()},
      {"he_normal", Init::he_normal()}};
  return inits;
}

// Functions of numbers only; with a tensor argument the call goes to the op of that name.
const std::map<std::string, double (*)(double)>& numeric_unary() {
  static const std::map<std::string, double (*)(double)> f = {
      {"exp", [](double x) { return std::exp(x); }},   {"log", [](double x) { return std::log(x); }},
      {"sqrt", [](double x) { return std::sqrt(x); }}, {"abs", [](double x) { return std::fabs(x); }},
      {"floor", [](double x) { return std::floor(x); }}, {"ceil", [](double x) { return std::ceil(x); }}};
  return f;
}

const std::vector<std::string>& builtin_functions() {
  static const std::vector<std::string> names = {"param", "moving_average", "dim", "tensor", "full", "eye", "arange", "grad", "normal", "uniform", "constant",
                                                 "min", "max", "warmup", "exp", "log", "sqrt",
                                                 "abs", "floor", "ceil"};
  return names;
}

const std::vector<std::string>& role_names() {
  static const std::vector<std::string> names = {"loss", "code", "reconstruction", "decoded",
                                                 "log_weight", "corrupted"};
  return names;
}

}  // namespace

GraphVal GraphVal::num(double v, bool batch) {
  GraphVal g;
  g.number = v;
  g.batch = batch;
  return g;
}
GraphVal GraphVal::str(std::string s) {
  GraphVal g;
  g.kind = Kind::string;
  g.text = std::move(s);
  return g;
}
GraphVal GraphVal::of(Value v, bool batch) {
  GraphVal g;
  g.kind = Kind::tensor;
  g.tensor = v;
  g.batch = batch;
  return g;
}

GraphBuilder::GraphBuilder(std::shared_ptr<const GraphSyntax> syntax,
                           std::map<std::string, GraphVal> options, Graph* graph,
                           std::int64_t batch, SampleShape sample)
    : syntax_(std::move(syntax)), options_(std::move(options)), graph_(graph), batch_(batch),
      sample_(std::move(sample)),
      features_(std::accumulate(sample_.begin(), sample_.end(), std::int64_t{1}, std::multiplies<>())) {}

void GraphBuilder::fail(SourcePos pos, const std::string& message) const {
  std::string text = located(syntax_->lines, syntax_->file, pos, message);
  for (auto it = calls_.rbegin(); it != calls_.rend(); ++it)
    text += fmt::format("\n  in {}() called at {}:{}:{}", it->function, syntax_->file, it->pos.line,
                        it->pos.column);
  throw GraphFileError(text, syntax_->file, pos);
}

void GraphBuilder::at(SourcePos pos) {
  if (!graph_) return;
  if (graph_->size() > kMaxNodes) fail(pos, fmt::format("the graph grows past {} nodes", kMaxNodes));
  graph_->set_origin(fmt::format("{}:{}:{}", syntax_->file, pos.line, pos.column));
}

void GraphBuilder::run() {
  for (const auto& s : syntax_->statements) statement(*s);
  if (graph_) graph_->set_origin("");
}

// The data always arrive as rows [B, D] (every verb and the trainer bind them so); a file that
// asks for images gets a view of them, and its sizes C, H and W are bound from the data when
// they are new names, or checked against them when they are known.
void GraphBuilder::input_images(const Statement& s) {
  if (sample_.size() != 3)
    fail(s.pos, fmt::format("input x [B, C, H, W] views the samples as images, but the data are "
                            "rows of D = {} values; declare input x [B, D]",
                            features_));
  GraphVal b = eval(*s.shape[0], nullptr);
  if (!b.batch || b.kind != GraphVal::Kind::number || b.number != static_cast<double>(batch_))
    fail(s.shape[0]->pos, "the first dimension of x is the batch, B");
  Shape shape{batch_};
  for (std::size_t k = 1; k < 4; ++k) {
    const Expr& d = *s.shape[k];
    const std::int64_t size = sample_[k - 1];
    const bool known = d.kind != Expr::Kind::name || globals_.count(d.text) || options_.count(d.text) ||
                       d.text == "B" || d.text == "D";
    if (!known) {
      bind(globals_, d.text, GraphVal::num(static_cast<double>(size)), d.pos);
    } else if (std::int64_t v = integer(eval(d, nullptr), d.pos, "a dimension"); v != size) {
      fail(d.pos, fmt::format("dimension {} of x is {} here, but the data's images are [{}, {}, {}] "
                              "(C, H, W)",
                              k, v, sample_[0], sample_[1], sample_[2]));
    }
    shape.push_back(size);
  }
  at(s.pos);
  x_rows_ = graph_->input("x", {batch_, features_});
  // -1, not B: the batch is inferred again when the program runs a smaller last batch.
  x_images_ = reshape(x_rows_, {-1, shape[1], shape[2], shape[3]});
  bind(globals_, "x", GraphVal::of(x_images_, true), s.name_pos);
}

void GraphBuilder::assign(Scope& scope, const Statement& s, Scope* local) {
  GraphVal v = eval(*s.value, local);
  if (s.unpack.empty()) return bind(scope, s.name, std::move(v), s.name_pos);
  if (v.kind != GraphVal::Kind::list || v.items.size() != s.unpack.size())
    fail(s.value->pos, fmt::format("{} names are unpacked from {}; it must be a list of {} (a function "
                                   "returns several values as [a, b])",
                                   s.unpack.size(),
                                   v.kind == GraphVal::Kind::list ? fmt::format("a list of {}", v.items.size()) : kind_name(v.kind),
                                   s.unpack.size()));
  for (std::size_t i = 0; i < s.unpack.size(); ++i)
    bind(scope, s.unpack[i].first, std::move(v.items[i]), s.unpack[i].second);
}

void GraphBuilder::check_new_name(const Scope& scope, const std::string& name, SourcePos pos) {
  // A function's locals hide the file's values of the same name, as its arguments do: whether
  // a file value of that name exists when the function is called must not decide if it builds.
  if (auto it = scope.find(name); it != scope.end())
    fail(pos, fmt::format("'{}' is already assigned on line {}; values are assigned once (name this one anew)",
                          name, it->second.pos.line));
  if (options_.count(name)) fail(pos, fmt::format("'{}' is a [model] option; choose another name", name));
  if (name == "B" || name == "D" || name == "step")
    fail(pos, fmt::format("'{}' is a built-in name (B: batch, D: features, step: schedules)", name));
}

void GraphBuilder::bind(Scope& scope, const std::string& name, GraphVal v, SourcePos pos) {
  check_new_name(scope, name, pos);
  scope[name] = {std::move(v), pos};
}

void GraphBuilder::statement(const Statement& s) {
  using K = Statement::Kind;
  switch (s.kind) {
    case K::input: {
      if (s.name == "x" && s.shape.size() == 4) {
        input_images(s);
        break;
      }
      bool batched = false;
      Shape shape = shape_of(s.shape, nullptr, true, &batched);
      at(s.pos);
      Value v;
      try {
        v = graph_->input(s.name, shape);
      } catch (const std::invalid_argument& e) {
        fail(s.name_pos, e.what());
      }
      bind(globals_, s.name, GraphVal::of(v, batched), s.name_pos);
      break;
    }
    case K::param: {
      Shape shape = shape_of(s.shape, nullptr, false, nullptr);
      Init init;
      auto named = named_inits().find(s.init);
      if (s.init_arg) {
        double v = eval(*s.init_arg, nullptr).number;
        if (s.init == "normal") init = Init::normal(v);
        else if (s.init == "uniform") init = Init::uniform(v);
        else if (s.init == "constant") init = Init::constant(v);
        else fail(s.pos, fmt::format("'{}' takes no argument; normal, uniform and constant do", s.init));
      } else if (named != named_inits().end()) {
        init = named->second;
      } else {
        std::vector<std::string> names{"normal", "uniform", "constant"};
        for (const auto& [n, i] : named_inits()) names.push_back(n);
        std::string hint = closest_name(s.init, names);
        fail(s.pos, fmt::format("unknown initialiser '{}'{}; there are {}", s.init,
                                hint.empty() ? "" : " (did you mean '" + hint + "'?)", fmt::join(names, ", ")));
      }
      bind(globals_, s.name, param(s.name, shape, init, s.name_pos), s.name_pos);
      break;
    }
    case K::def:
      if (functions_.count(s.name))
        fail(s.name_pos, fmt::format("function '{}' is defined twice (first on line {})", s.name,
                                     functions_.at(s.name)->pos.line));
      functions_[s.name] = &s;
      break;
    case K::assign: assign(globals_, s, nullptr); break;
    case K::role: {
      if (std::find(role_names().begin(), role_names().end(), s.name) == role_names().end()) {
        std::string hint = closest_name(s.name, role_names());
        fail(s.name_pos, fmt::format("unknown role '{}'{}; roles are {} (and term NAME = ...)", s.name,
                                     hint.empty() ? "" : " (did you mean '" + hint + "'?)",
                                     fmt::join(role_names(), ", ")));
      }
      if (roles_.count(s.name))
        fail(s.name_pos, fmt::format("role {} is given twice (first on line {})", s.name, roles_.at(s.name).second.line));
      GraphVal v = eval(*s.value, nullptr);
      v = GraphVal::of(tensor(v, s.value->pos, "role " + s.name), v.batch);  // a number becomes a constant
      roles_[s.name] = {v, s.value->pos};
      break;
    }
    case K::term: {
      for (const auto& [name, v] : terms_)
        if (name == s.name) fail(s.name_pos, fmt::format("term '{}' is given twice", s.name));
      GraphVal v = eval(*s.value, nullptr);
      v = GraphVal::of(tensor(v, s.value->pos, "term " + s.name), v.batch);
      const Shape& shape = v.tensor.shape();
      if (!shape.empty() && !(shape.size() == 1 && shape[0] == batch_)) {
        if (numel(shape) != 1)
          fail(s.value->pos, fmt::format("term {} must be one value (a scalar or [1]) or one value a "
                                         "sample [B], got {}", s.name, to_string(shape)));
        at(s.value->pos);
        v.tensor = sum(v.tensor);  // a [1] parameter's value, say: reported as the scalar it is
      }
      terms_.emplace_back(s.name, v);
      break;
    }
    case K::schedule: {
      schedule_value(s, 0);  // checks it is a number now
      if (graph_) {
        // Checked before the graph sees a second input of a name given before.
        check_new_name(globals_, s.name, s.name_pos);
        at(s.pos);
        bind(globals_, s.name, GraphVal::of(graph_->input(s.name, {}), false), s.name_pos);
      }
      schedules_.push_back(&s);
      break;
    }
    case K::prior:
      if (s.name != "normal") fail(s.name_pos, fmt::format("unknown prior '{}'; the one prior is normal (N(0, I))", s.name));
      prior_ = s.name;
      break;
  }
}

double GraphBuilder::schedule_value(const Statement& s, std::int64_t step) {
  step_ = step;
  Scope local;
  local["step"] = {GraphVal::num(static_cast<double>(step)), s.pos};
  GraphVal v = eval(*s.value, &local);
  if (v.kind != GraphVal::Kind::number)
    fail(s.value->pos, fmt::format("a schedule is a number computed from step and the options, not {}", kind_name(v.kind)));
  if (v.batch) fail(s.value->pos, "a schedule cannot depend on the batch size B");
  return v.number;
}

// The first call of a name declares its buffer; later calls (a decoder built again for another
// role) get the same buffer back. Each call's value is a candidate, and fill_updates() keeps the
// first one the loss depends on: the average follows the batches training sees.
GraphVal GraphBuilder::moving_average(const std::string& name, Value value, double momentum, Init init,
                                      SourcePos pos) {
  if (!graph_) fail(pos, "a schedule computes numbers only");
  Value buffer;
  auto it = buffers_.find(name);
  if (it != buffers_.end()) {
    const Node& n = it->second.buffer.node();
    if (n.shape != value.shape() || to_string(n.init) != to_string(init) || it->second.momentum != momentum)
      fail(pos, fmt::format("moving average '{}' was declared on line {} over {} with momentum {} and {}; "
                            "here over {} with momentum {} and {}", name, it->second.pos.line,
                            to_string(n.shape), it->second.momentum, to_string(n.init),
                            to_string(value.shape()), momentum, to_string(init)));
    buffer = it->second.buffer;
  } else {
    if (static_cast<double>(numel(value.shape())) > kMaxParameterElements)
      fail(pos, fmt::format("moving average '{}' of shape {} is over {} elements", name,
                            to_string(value.shape()), kMaxParameterElements));
    at(pos);
    try {
      buffer = graph_->buffer(name, value.shape(), init);
    } catch (const std::invalid_argument& ex) {
      fail(pos, ex.what());
    }
    buffers_[name] = {buffer, momentum, pos};
  }
  update_candidates_.push_back({buffer, value, momentum, pos});
  return GraphVal::of(buffer, false);
}

GraphVal GraphBuilder::param(const std::string& name, const Shape& shape, Init init, SourcePos pos) {
  if (!graph_) fail(pos, "a schedule computes numbers only");
  if (auto it = params_.find(name); it != params_.end()) {
    const Node& n = it->second.first.node();
    if (n.shape != shape || to_string(n.init) != to_string(init))
      fail(pos, fmt::format("parameter '{}' was declared on line {} as {} {}; here as {} {}", name,
                            it->second.second.line, to_string(n.shape), to_string(n.init),
                            to_string(shape), to_string(init)));
    return GraphVal::of(it->second.first, false);  // the same weights again
  }
  double elements = 1;
  for (auto d : shape) elements *= static_cast<double>(d);
  if (elements > kMaxParameterElements)
    fail(pos, fmt::format("parameter '{}' of shape {} is over {} elements", name, to_string(shape), kMaxParameterElements));
  at(pos);
  Value v;
  try {
    v = graph_->parameter(name, shape, init);
  } catch (const std::invalid_argument& e) {
    fail(pos, e.what());
  }
  params_[name] = {v, pos};
  return GraphVal::of(v, false);
}

Shape GraphBuilder::shape_of(const std::vector<ExprPtr>& dims, Scope* local, bool allow_batch,
                             bool* batched) {
  Shape shape;
  if (dims.size() > static_cast<std::size_t>(kMaxRank))
    fail(dims[kMaxRank]->pos, fmt::format("shapes have at most {} dimensions", kMaxRank));
  for (const auto& d : dims) {
    GraphVal v = eval(*d, local);
    if (v.batch && !allow_batch)
      fail(d->pos, "a parameter's shape cannot depend on the batch size B");
    if (v.batch && batched) *batched = true;
    shape.push_back(integer(v, d->pos, "a dimension"));
    if (shape.back() < 1) fail(d->pos, fmt::format("a dimension must be at least 1, got {}", shape.back()));
  }
  return shape;
}

std::int64_t GraphBuilder::integer(const GraphVal& v, SourcePos pos, const std::string& what) {
  if (v.kind != GraphVal::Kind::number) fail(pos, fmt::format("{} must be a number, not {}", what, kind_name(v.kind)));
  if (v.number != std::floor(v.number) || std::fabs(v.number) > kMaxDimension)
    fail(pos, fmt::format("{} must be a whole number of at most {}, got {}", what, kMaxDimension, v.number));
  return static_cast<std::int64_t>(v.number);
}

Value GraphBuilder::tensor(const GraphVal& v, SourcePos pos, const std::string& what) {
  if (v.kind == GraphVal::Kind::tensor) return v.tensor;
  if (v.kind == GraphVal::Kind::number) {
    if (v.batch)
      fail(pos, fmt::format("{}: B is the batch size, which changes at the last batch of an epoch; a "
                            "graph cannot compute with it (mean over the batch instead of dividing by B)", what));
    if (!graph_) fail(pos, "a schedule computes numbers only");
    at(pos);
    return graph_->scalar(v.number);
  }
  fail(pos, fmt::format("{} must be a tensor, not {}", what, kind_name(v.kind)));
}

std::vector<std::string> GraphBuilder::visible_names(const Scope* local) const {
  std::vector<std::string> names{"B", "D"};
  if (local)
    for (const auto& [n, b] : *local) names.push_back(n);
  for (const auto& [n, b] : globals_) names.push_back(n);
  for (const auto& [n, v] : options_) names.push_back(n);
  for (const auto& [n, i] : named_inits()) names.push_back(n);
  return names;
}

GraphVal GraphBuilder::lookup(const Expr& e, Scope* local) {
  const std::string& n = e.text;
  if (local)
    if (auto it = local->find(n); it != local->end()) return it->second.value;
  if (auto it = globals_.find(n); it != globals_.end()) return it->second.value;
  if (auto it = options_.find(n); it != options_.end()) return it->second;
  if (n == "B") return GraphVal::num(static_cast<double>(batch_), true);
  if (n == "D") return GraphVal::num(static_cast<double>(features_));
  if (n == "true" || n == "false") return GraphVal::num(n == "true" ? 1 : 0);
  if (auto it = named_inits().find(n); it != named_inits().end()) {
    GraphVal v;
    v.kind = GraphVal::Kind::init;
    v.init = it->second;
    return v;
  }
  if (functions_.count(n) || op_registry().find(n))
    fail(e.pos, fmt::format("'{}' is a function: call it as {}(...)", n, n));
  std::string hint = closest_name(n, visible_names(local));
  fail(e.pos, fmt::format("unknown name '{}'{}", n, hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
}

GraphVal GraphBuilder::eval(const Expr& e, Scope* local) {
  switch (e.kind) {
    case Expr::Kind::number: return GraphVal::num(e.number);
    case Expr::Kind::string: return GraphVal::str(e.text);
    case Expr::Kind::name: return lookup(e, local);
    case Expr::Kind::call: return call(e, local);
    case Expr::Kind::list: {
      GraphVal v;
      v.kind = GraphVal::Kind::list;
      for (const auto& item : e.args) v.items.push_back(eval(*item, local));
      return v;
    }
    case Expr::Kind::unary: {
      GraphVal x = eval(*e.args[0], local);
      if (x.kind == GraphVal::Kind::number) return GraphVal::num(-x.number, x.batch);
      Value t = tensor(x, e.args[0]->pos, "the operand of '-'");
      at(e.pos);
      return GraphVal::of(neg(t), x.batch);
    }
    case Expr::Kind::binary: {
      GraphVal a = eval(*e.args[0], local);
      GraphVal b = eval(*e.args[1], local);
      return arithmetic(e.text, std::move(a), std::move(b), e.pos);
    }
  }
  fail(e.pos, "unknown expression");
}

GraphVal GraphBuilder::arithmetic(const std::string& op, GraphVal a, GraphVal b, SourcePos pos) {
  using K = GraphVal::Kind;
  if (op == "+" && a.kind == K::string && b.kind == K::string) return GraphVal::str(a.text + b.text);
  if (a.kind == K::number && b.kind == K::number) {
    if (op == "@") fail(pos, "'@' multiplies matrices, not numbers");
    double x = a.number, y = b.number;
    double r = op == "+" ? x + y : op == "-" ? x - y : op == "*" ? x * y : x / y;
    if (!std::isfinite(r)) fail(pos, fmt::format("{} {} {} is not a finite number", x, op, y));
    return GraphVal::num(r, a.batch || b.batch);
  }
  Value x = tensor(a, pos, fmt::format("the left operand of '{}'", op));
  Value y = tensor(b, pos, fmt::format("the right operand of '{}'", op));
  at(pos);
  try {
    Value r = op == "+" ? add(x, y) : op == "-" ? sub(x, y) : op == "*" ? mul(x, y)
            : op == "/" ? div(x, y) : matmul(x, y);
    return GraphVal::of(r, a.batch || b.batch);
  } catch (const std::invalid_argument& e) {
    fail(pos, e.what());
  }
}

GraphVal GraphBuilder::call(const Expr& e, Scope* local) {
  const std::string& name = e.text;
  std::vector<GraphVal> args;
  for (const auto& a : e.args) args.push_back(eval(*a, local));
  bool named = std::any_of(e.arg_names.begin(), e.arg_names.end(), [](const auto& n) { return !n.empty(); });
  auto all_numbers = [&] {
    return !args.empty() && std::all_of(args.begin(), args.end(), [](const GraphVal& v) { return v.kind == GraphVal::Kind::number; });
  };
  auto arity = [&](std::size_t n, const std::string& form) {
    if (args.size() != n || named) fail(e.pos, fmt::format("{} is called as {}", name, form));
  };
  if (auto f = functions_.find(name); f != functions_.end()) {
    if (named) fail(e.pos, fmt::format("{}() takes positional arguments", name));
    return call_function(*f->second, e, std::move(args));
  }
  if (name == "param") {
    arity(3, "param(\"name\", [dims], init)");
    if (args[0].kind != GraphVal::Kind::string) fail(e.args[0]->pos, "a parameter's name is a string");
    if (args[1].kind != GraphVal::Kind::list) fail(e.args[1]->pos, "a parameter's shape is a list: [rows, cols]");
    if (args[2].kind != GraphVal::Kind::init)
      fail(e.args[2]->pos, "the third argument is an initialiser: zeros, he_uniform, normal(0.01), ...");
    Shape shape;
    for (const auto& d : args[1].items) {
      if (d.batch) fail(e.args[1]->pos, "a parameter's shape cannot depend on the batch size B");
      shape.push_back(integer(d, e.args[1]->pos, "a dimension"));
      if (shape.back() < 1) fail(e.args[1]->pos, "a dimension must be at least 1");
    }
    if (shape.size() > static_cast<std::size_t>(kMaxRank)) fail(e.args[1]->pos, "too many dimensions");
    return param(args[0].text, shape, args[2].init, e.pos);
  }
  if (name == "moving_average") {
    const std::string form = "moving_average(\"name\", value, momentum) or moving_average(\"name\", value, momentum, init)";
    if (named || args.size() < 3 || args.size() > 4) fail(e.pos, fmt::format("moving_average is called as {}", form));
    if (args[0].kind != GraphVal::Kind::string) fail(e.args[0]->pos, "a moving average's name is a string");
    Value value = tensor(args[1], e.args[1]->pos, "the value a moving average follows");
    // A batch of 1 cannot tell a reduced value from a row; compile would catch that one later.
    if (args[1].batch && batch_ > 1 && !value.shape().empty() && value.shape()[0] == batch_)
      fail(e.args[1]->pos, fmt::format("the value a moving average follows cannot have the batch's size B, "
                                       "which changes at the last batch of an epoch: reduce over the batch "
                                       "first (mean(v, axes=[0], keepdims=1)); got {}", to_string(value.shape())));
    if (args[2].kind != GraphVal::Kind::number || args[2].batch || !(args[2].number > 0 && args[2].number <= 1))
      fail(e.args[2]->pos, "a moving average's momentum is a number in (0, 1]: the weight of each step's value");
    Init init = Init::zeros();
    if (args.size() == 4) {
      if (args[3].kind != GraphVal::Kind::init)
        fail(e.args[3]->pos, "the fourth argument is an initialiser: zeros, constant(1), ...");
      init = args[3].init;
    }
    return moving_average(args[0].text, value, args[2].number, init, e.pos);
  }
  if (name == "dim") {
    arity(2, "dim(tensor, axis)");
    Value t = tensor(args[0], e.args[0]->pos, "dim's first argument");
    auto rank = static_cast<std::int64_t>(t.shape().size());
    std::int64_t axis = integer(args[1], e.args[1]->pos, "the axis");
    if (axis < -rank || axis >= rank) fail(e.args[1]->pos, fmt::format("axis {} is outside a tensor of shape {}", axis, to_string(t.shape())));
    if (axis < 0) axis += rank;
    return GraphVal::num(static_cast<double>(t.shape()[static_cast<std::size_t>(axis)]), axis == 0 && args[0].batch);
  }
  if (name == "tensor") {
    arity(1, "tensor([1, 2, 3]) or tensor([[1, 2], [3, 4]])");
    return constant_tensor(args[0], e.args[0]->pos);
  }
  if (name == "full") {
    arity(2, "full([dims], value)");
    if (args[0].kind != GraphVal::Kind::list) fail(e.args[0]->pos, "full's shape is a list: [rows, cols]");
    if (args[0].items.empty()) fail(e.args[0]->pos, "full's shape needs at least one dimension");
    if (args[0].items.size() > static_cast<std::size_t>(kMaxRank)) fail(e.args[0]->pos, "too many dimensions");
    Shape shape;
    double elements = 1;
    for (const auto& d : args[0].items) {
      if (d.batch) fail(e.args[0]->pos, "a constant's shape cannot depend on the batch size B");
      shape.push_back(integer(d, e.args[0]->pos, "a dimension"));
      if (shape.back() < 1) fail(e.args[0]->pos, "a dimension must be at least 1");
      elements *= static_cast<double>(shape.back());
    }
    if (elements > kMaxConstantElements)
      fail(e.args[0]->pos, fmt::format("full() of shape {} is over {} elements", to_string(shape), kMaxConstantElements));
    if (args[1].kind != GraphVal::Kind::number) fail(e.args[1]->pos, "full's value is a number");
    if (args[1].batch) fail(e.args[1]->pos, "a constant cannot depend on the batch size B");
    if (!graph_) fail(e.pos, "a schedule computes numbers only");
    at(e.pos);
    return GraphVal::of(graph_->constant(shape, std::vector<double>(static_cast<std::size_t>(elements), args[1].number)), false);
  }
  if (name == "eye") {
    arity(1, "eye(n): the n x n identity matrix");
    const std::int64_t n = integer(args[0], e.args[0]->pos, "eye's size");
    if (args[0].batch) fail(e.args[0]->pos, "a constant's shape cannot depend on the batch size B");
    if (n < 1) fail(e.args[0]->pos, "eye's size must be at least 1");
    if (static_cast<double>(n) * static_cast<double>(n) > kMaxConstantElements)
      fail(e.args[0]->pos, fmt::format("eye({}) is over {} elements", n, kMaxConstantElements));
    if (!graph_) fail(e.pos, "a schedule computes numbers only");
    at(e.pos);
    std::vector<double> values(static_cast<std::size_t>(n * n), 0.0);
    for (std::int64_t i = 0; i < n; ++i) values[static_cast<std::size_t>(i * n + i)] = 1.0;
    return GraphVal::of(graph_->constant({n, n}, values), false);
  }
  if (name == "arange") {
    // NumPy's: [start, stop) in steps, ceil((stop - start) / step) values.
    const std::string form = "arange(n), arange(start, stop) or arange(start, stop, step)";
    if (named || args.empty() || args.size() > 3) fail(e.pos, fmt::format("arange is called as {}", form));
    double bound[3] = {0, 0, 1};
    for (std::size_t i = 0; i < args.size(); ++i) {
      if (args[i].kind != GraphVal::Kind::number) fail(e.args[i]->pos, "arange's arguments are numbers");
      if (args[i].batch) fail(e.args[i]->pos, "a constant's shape cannot depend on the batch size B");
      bound[args.size() == 1 ? 1 : i] = args[i].number;
    }
    const double start = bound[0], stop = bound[1], step = bound[2];
    if (step == 0 || !std::isfinite(start) || !std::isfinite(stop) || !std::isfinite(step))
      fail(e.pos, "arange's step is a finite number other than 0, and its bounds finite");
    const double count = std::ceil((stop - start) / step);
    if (!(count >= 1))
      fail(e.pos, fmt::format("arange({}, {}, {}) is empty", start, stop, step));
    if (count > kMaxConstantElements)
      fail(e.pos, fmt::format("arange({}, {}, {}) is over {} elements", start, stop, step, kMaxConstantElements));
    if (!graph_) fail(e.pos, "a schedule computes numbers only");
    at(e.pos);
    const auto n = static_cast<std::int64_t>(count);
    std::vector<double> values(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) values[static_cast<std::size_t>(i)] = start + static_cast<double>(i) * step;
    return GraphVal::of(graph_->constant({n}, values), false);
  }
  if (name == "grad") {
    arity(2, "grad(y, x): the gradient of the sum of y's elements with respect to x, shaped like x");
    Value y = tensor(args[0], e.args[0]->pos, "what grad differentiates");
    Value x = tensor(args[1], e.args[1]->pos, "what grad differentiates with respect to");
    at(e.pos);
    // A backward pass has a few nodes for each forward one, and at() checks the total only after
    // grad() returns: nested grads would otherwise double the graph past any limit in one call.
    if (graph_->size() > kMaxGradNodes)
      fail(e.pos, fmt::format("grad() of a graph of {} nodes: a backward pass needs room, at most {} "
                              "nodes before it (grad of grad of ... doubles the graph each time)",
                              graph_->size(), kMaxGradNodes));
    // Summing y gives each sample the gradient of its own outputs (a vector-Jacobian product
    // with ones), as long as nothing between x and y mixes the batch's rows.
    try {
      return GraphVal::of(graphrun::grad(y.shape().empty() ? y : sum(y), {x})[0], args[1].batch);
    } catch (const std::exception& err) {
      fail(e.pos, err.what());
    }
  }
  if (name == "normal" || name == "uniform" || name == "constant") {
    arity(1, fmt::format("{}(number)", name));
    double v = args[0].kind == GraphVal::Kind::number ? args[0].number : 0;
    if (args[0].kind != GraphVal::Kind::number) fail(e.args[0]->pos, "an initialiser's argument is a number");
    GraphVal g;
    g.kind = GraphVal::Kind::init;
    g.init = name == "normal" ? Init::normal(v) : name == "uniform" ? Init::uniform(v) : Init::constant(v);
    return g;
  }
  if ((name == "min" || name == "max") && all_numbers()) {
    if (named) fail(e.pos, fmt::format("{}() takes positional arguments", name));
    GraphVal r = args[0];
    for (const auto& a : args) {
      r.number = name == "min" ? std::min(r.number, a.number) : std::max(r.number, a.number);
      r.batch = r.batch || a.batch;
    }
    return r;
  }
  if (name == "warmup") {
    arity(2, "warmup(step, steps): 0 to 1 linearly over `steps`, 1 when steps is 0");
    if (!all_numbers()) fail(e.pos, "warmup takes numbers");
    double s = args[0].number, n = args[1].number;
    return GraphVal::num(n > 0 ? std::min(1.0, s / n) : 1.0);
  }
  if (auto f = numeric_unary().find(name); f != numeric_unary().end() && all_numbers()) {
    arity(1, fmt::format("{}(x)", name));
    double r = f->second(args[0].number);
    if (!std::isfinite(r)) fail(e.pos, fmt::format("{}({}) is not a finite number", name, args[0].number));
    return GraphVal::num(r, args[0].batch);
  }
  if (const OpDef* op = op_registry().find(name)) return apply_op(*op, e, std::move(args), e.arg_names);
  std::vector<std::string> names = builtin_functions();
  for (const auto& [n, f] : functions_) names.push_back(n);
  for (const OpDef* op : op_registry().all()) names.push_back(op->name);
  std::string hint = closest_name(name, names);
  fail(e.pos, fmt::format("unknown function or op '{}'{}{}", name,
                          hint.empty() ? "" : " (did you mean '" + hint + "'?)",
                          hint.empty() ? "; graphrun --list-ops lists the ops" : ""));
}

// A constant tensor from numbers, a list of them, or a list of equal lists (row-major).
GraphVal GraphBuilder::constant_tensor(const GraphVal& v, SourcePos pos) {
  Shape shape;
  std::vector<double> values;
  auto number = [&](const GraphVal& n) {
    if (n.kind != GraphVal::Kind::number) fail(pos, fmt::format("tensor() takes numbers, not {}", kind_name(n.kind)));
    if (n.batch) fail(pos, "a constant cannot depend on the batch size B");
    values.push_back(n.number);
  };
  if (v.kind == GraphVal::Kind::list && !v.items.empty() && v.items[0].kind == GraphVal::Kind::list) {
    shape = {static_cast<std::int64_t>(v.items.size()), static_cast<std::int64_t>(v.items[0].items.size())};
    for (const auto& row : v.items) {
      if (row.kind != GraphVal::Kind::list || row.items.size() != v.items[0].items.size())
        fail(pos, "tensor() takes rows of equal length");
      for (const auto& n : row.items) number(n);
    }
  } else if (v.kind == GraphVal::Kind::list) {
    shape = {static_cast<std::int64_t>(v.items.size())};
    for (const auto& n : v.items) number(n);
  } else {
    number(v);
  }
  if (values.empty()) fail(pos, "tensor() needs at least one number");
  if (!graph_) fail(pos, "a schedule computes numbers only");
  at(pos);
  return GraphVal::of(graph_->constant(shape, values), false);
}

GraphVal GraphBuilder::call_function(const Statement& def, const Expr& e, std::vector<GraphVal> args) {
  if (args.size() != def.params.size())
    fail(e.pos, fmt::format("{}() takes {} arguments ({}), got {}", def.name, def.params.size(),
                            fmt::join(def.params, ", "), args.size()));
  if (calls_.size() >= static_cast<std::size_t>(kMaxCallDepth))
    fail(e.pos, fmt::format("calls nest deeper than {} (does {}() call itself?)", kMaxCallDepth, def.name));
  if (++calls_made_ > kMaxCalls)
    fail(e.pos, fmt::format("the graph calls functions more than {} times", kMaxCalls));
  calls_.push_back({def.name, e.pos});
  Scope local;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (local.count(def.params[i])) fail(def.pos, fmt::format("parameter '{}' is named twice", def.params[i]));
    local[def.params[i]] = {std::move(args[i]), def.pos};
  }
  for (const auto& s : def.body) assign(local, *s, &local);
  GraphVal result = eval(*def.value, &local);
  calls_.pop_back();
  return result;
}

GraphVal GraphBuilder::apply_op(const OpDef& op, const Expr& e, std::vector<GraphVal> args,
                                const std::vector<std::string>& names) {
  if (!graph_) fail(e.pos, fmt::format("a schedule computes numbers only; '{}' is an op", op.name));
  std::vector<Value> inputs;
  Attrs attrs;
  bool batched = false;
  std::vector<std::string> declared;
  for (const auto& a : op.attributes) declared.push_back(a.name);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const GraphVal& v = args[i];
    SourcePos pos = e.args[i]->pos;
    if (names[i].empty()) {
      auto add_input = [&](const GraphVal& item) {
        inputs.push_back(tensor(item, pos, fmt::format("input {} of {}", inputs.size() + 1, op.name)));
        batched = batched || item.batch;
      };
      if (v.kind == GraphVal::Kind::list)
        for (const auto& item : v.items) add_input(item);
      else
        add_input(v);
      continue;
    }
    const AttrSpec* spec = nullptr;
    for (const auto& a : op.attributes)
      if (a.name == names[i]) spec = &a;
    if (!spec) {
      std::string hint = closest_name(names[i], declared);
      fail(pos, fmt::format("{} has no attribute '{}'{}; its attributes: {}", op.name, names[i],
                            hint.empty() ? "" : " (did you mean '" + hint + "'?)",
                            declared.empty() ? "none" : fmt::format("{}", fmt::join(declared, ", "))));
    }
    if (attrs.has(names[i])) fail(pos, fmt::format("attribute '{}' is given twice", names[i]));
    const AttrValue* like = spec->default_value ? &*spec->default_value : nullptr;
    auto whole = [&](const GraphVal& item) -> std::int64_t {
      if (item.batch && !spec->batch_inferred)
        fail(pos, fmt::format("{}'s '{}' cannot depend on the batch size B, which changes at the last "
                              "batch of an epoch", op.name, names[i]));
      return item.batch ? -1 : integer(item, pos, fmt::format("attribute '{}'", names[i]));
    };
    if (v.kind == GraphVal::Kind::list) {
      std::vector<std::int64_t> ints;
      for (const auto& item : v.items) ints.push_back(whole(item));
      if (std::count(ints.begin(), ints.end(), -1) > 1 && spec->batch_inferred)
        fail(pos, fmt::format("{}'s '{}' may hold one inferred size (-1 or one that depends on B)", op.name, names[i]));
      attrs.set(names[i], ints);
    } else if (v.kind == GraphVal::Kind::number) {
      bool as_double = like ? std::holds_alternative<double>(*like) : v.number != std::floor(v.number);
      if (like && std::holds_alternative<std::vector<std::int64_t>>(*like))
        attrs.set(names[i], std::vector<std::int64_t>{whole(v)});
      else if (as_double) attrs.set(names[i], v.number);
      else attrs.set(names[i], whole(v));
    } else {
      fail(pos, fmt::format("attribute '{}' must be a number or a list of numbers, not {}", names[i], kind_name(v.kind)));
    }
  }
  for (const auto& a : op.attributes) {
    if (attrs.has(a.name)) continue;
    if (!a.default_value) fail(e.pos, fmt::format("{} needs the attribute '{}' (as {}=...)", op.name, a.name, a.name));
    attrs.set(a.name, *a.default_value);
  }
  at(e.pos);
  try {
    return GraphVal::of(graph_->apply(op, inputs, attrs), batched);
  } catch (const std::invalid_argument& ex) {
    fail(e.pos, ex.what());
  }
}

void GraphBuilder::fill(Model& m) {
  Graph& g = *graph_;
  SourcePos end{static_cast<int>(syntax_->lines.size()), 1};
  auto role = [&](const std::string& name, const char* why) -> Value {
    auto it = roles_.find(name);
    if (it == roles_.end()) fail(end, fmt::format("the graph gives no 'role {} = ...' ({})", name, why));
    return it->second.first.tensor;
  };
  auto input = [&](const std::string& name, const char* why) -> Value {
    auto it = globals_.find(name);
    if (it == globals_.end() || it->second.value.kind != GraphVal::Kind::tensor ||
        it->second.value.tensor.node().kind != NodeKind::input)
      fail(end, fmt::format("the graph declares no 'input {} [...]' ({})", name, why));
    return it->second.value.tensor;
  };
  auto batch_rows = [&](const std::string& what, Value v, std::size_t rank) {
    const Shape& s = v.shape();
    if (s.size() != rank || s[0] != batch_)
      fail(roles_.count(what) ? roles_.at(what).second : end,
           fmt::format("role {} must have shape [B{}] (one row a sample), got {}", what,
                       rank == 2 ? ", K" : "", to_string(s)));
  };
  m.x = x_rows_.valid() ? x_rows_ : input("x", "the data batch, [B, D]");
  // Outputs shaped like the images x was viewed as go back to rows, as the data came.
  auto as_rows = [&](const char* what) {
    auto it = roles_.find(what);
    if (it == roles_.end() || !x_images_.valid() || it->second.first.kind != GraphVal::Kind::tensor) return;
    Value& v = it->second.first.tensor;
    if (v.shape() == x_images_.shape()) {
      at(it->second.second);
      v = reshape(v, {-1, features_});
    }
  };
  for (const char* what : {"reconstruction", "decoded", "corrupted"}) as_rows(what);
  m.z = input("z", "the decoder's own input for sampling and interpolation, [B, K]");
  if (m.x.shape().size() != 2 || m.x.shape()[1] != features_)
    fail(end, fmt::format("input x must be [B, D] = [{}, {}], got {}", batch_, features_, to_string(m.x.shape())));
  at(end);
  m.per_sample_loss = role("loss", "the loss of each sample, [B], in nats");
  batch_rows("loss", m.per_sample_loss, 1);
  m.loss = mean(m.per_sample_loss);
  m.code = role("code", "the code or posterior mean, [B, K]");
  batch_rows("code", m.code, 2);
  m.reconstruction = role("reconstruction", "the decoder's mean for x, [B, D]");
  m.decoded = role("decoded", "the decoder's mean for the input z, [B, D]");
  for (const auto& [what, v] : {std::pair{"reconstruction", m.reconstruction}, {"decoded", m.decoded}})
    if (v.shape() != m.x.shape())
      fail(roles_.at(what).second, fmt::format("role {} must have x's shape {}, got {}", what,
                                               to_string(m.x.shape()), to_string(v.shape())));
  for (const auto& [name, v] : terms_)  // shapes checked at the statement
    m.terms[name] = v.tensor.shape().empty() ? v.tensor : mean(v.tensor);
  if (roles_.count("log_weight")) {
    m.log_weight = role("log_weight", "log p(x, z) - log q(z | x) of each sample, [B]");
    batch_rows("log_weight", m.log_weight, 1);
  }
  if (roles_.count("corrupted")) {  // a denoising model's noisy input, shown by reconstruct
    m.corrupted = role("corrupted", "x as the model corrupts it in training");
    if (m.corrupted.shape() != m.x.shape())
      fail(roles_.at("corrupted").second, fmt::format("role corrupted must have x's shape {}, got {}",
                                                      to_string(m.x.shape()), to_string(m.corrupted.shape())));
  }
  fill_labels(m);
  fill_updates(m);
  m.has_prior = prior_ == "normal";
  g.set_origin("");
  // Each schedule evaluates its expression again at every step, over a builder of its own that
  // keeps the syntax and the options alive.
  for (const Statement* s : schedules_) {
    auto numbers = std::make_shared<GraphBuilder>(syntax_, options_, nullptr, batch_, sample_);
    m.schedules.push_back({s->name, [numbers, s](std::int64_t step) { return numbers->schedule_value(*s, step); }});
  }
}

// Per buffer, the first candidate value the loss depends on, else the first one.
void GraphBuilder::fill_updates(Model& m) {
  std::vector<char> feeds_loss(static_cast<std::size_t>(graph_->size()), 0);
  std::vector<int> stack{m.loss.id()};
  while (!stack.empty()) {
    const int id = stack.back();
    stack.pop_back();
    if (feeds_loss[static_cast<std::size_t>(id)]) continue;
    feeds_loss[static_cast<std::size_t>(id)] = 1;
    for (int in : graph_->node(id).inputs) stack.push_back(in);
  }
  auto feeds = [&](const UpdateCandidate& c) { return feeds_loss[static_cast<std::size_t>(c.value.id())] != 0; };
  std::vector<const UpdateCandidate*> chosen;  // in the order the buffers were declared
  for (const UpdateCandidate& c : update_candidates_) {
    auto known = std::find_if(chosen.begin(), chosen.end(), [&](const UpdateCandidate* k) { return k->buffer == c.buffer; });
    if (known == chosen.end())
      chosen.push_back(&c);
    else if (feeds(c) && !feeds(**known))
      *known = &c;
  }
  for (const UpdateCandidate* c : chosen) {
    at(c->pos);
    m.updates.push_back({c->buffer, moving_average_update(c->buffer, c->value, c->momentum)});
  }
}

// An input named y is the labels: [B, C] one-hot, or [B] class indices.
void GraphBuilder::fill_labels(Model& m) {
  auto it = globals_.find("y");
  if (it == globals_.end() || it->second.value.kind != GraphVal::Kind::tensor ||
      it->second.value.tensor.node().kind != NodeKind::input)
    return;
  m.y = it->second.value.tensor;
  const Shape& s = m.y.shape();
  if (s.empty() || s.size() > 2 || s[0] != batch_)
    fail(it->second.pos, fmt::format("input y is the labels: [B, classes] one-hot or [B] class "
                                     "indices, got {}", to_string(s)));
}

}  // namespace graphrun
