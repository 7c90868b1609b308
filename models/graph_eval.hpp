// The graph-file evaluator: walks the statements of a parsed file in order, resolving names
// (locals, then the file's values, then [model] options, then B and D) and building nodes. Used
// by graph_model.cpp; public so tests can drive it, not meant as an API of its own.
#pragma once

#include <graphrun/graph/graph.hpp>
#include <graphrun/models/graph_syntax.hpp>
#include <graphrun/models/model.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace graphrun {

// A value while a graph file is built: a number, a string, a tensor (a graph value), a list, or a
// parameter initialiser.
struct GraphVal {
  enum class Kind { number, string, tensor, list, init };
  Kind kind = Kind::number;
  double number = 0;
  // A number computed from B, or a tensor with a batch dimension: its size changes with the last
  // batch of an epoch, so it may only stand where compile re-infers it.
  bool batch = false;
  std::string text;
  Value tensor;
  std::vector<GraphVal> items;
  Init init;

  static GraphVal num(double v, bool batch = false);
  static GraphVal str(std::string s);
  static GraphVal of(Value v, bool batch);
};

class GraphBuilder {
 public:
  // `graph` may be null: then only numbers can be computed (schedules).
  GraphBuilder(std::shared_ptr<const GraphSyntax> syntax, std::map<std::string, GraphVal> options,
               Graph* graph, std::int64_t batch, SampleShape sample);

  void run();            // every statement, in order
  void fill(Model& m);   // the roles into a Model; a missing one is an error

  // A schedule's value at `step` (its expression over `step` and the options).
  double schedule_value(const Statement& s, std::int64_t step);

 private:
  struct Binding {
    GraphVal value;
    SourcePos pos;
  };
  using Scope = std::map<std::string, Binding>;
  struct Call {
    std::string function;
    SourcePos pos;
  };

  [[noreturn]] void fail(SourcePos pos, const std::string& message) const;
  void statement(const Statement& s);
  void input_images(const Statement& s);  // input x [B, C, H, W]
  // Fails at pos unless name is new in scope and neither a [model] option nor B, D or step.
  void check_new_name(const Scope& scope, const std::string& name, SourcePos pos);
  void bind(Scope& scope, const std::string& name, GraphVal v, SourcePos pos);
  // An assignment statement: one name, or a list unpacked into several (`a, b = f(x)`).
  void assign(Scope& scope, const Statement& s, Scope* local);
  GraphVal eval(const Expr& e, Scope* local);
  GraphVal lookup(const Expr& e, Scope* local);
  GraphVal call(const Expr& e, Scope* local);
  GraphVal call_function(const Statement& def, const Expr& e, std::vector<GraphVal> args);
  GraphVal apply_op(const struct OpDef& op, const Expr& e, std::vector<GraphVal> args,
                    const std::vector<std::string>& names);
  GraphVal constant_tensor(const GraphVal& v, SourcePos pos);
  GraphVal arithmetic(const std::string& op, GraphVal a, GraphVal b, SourcePos pos);
  GraphVal param(const std::string& name, const Shape& shape, Init init, SourcePos pos);
  GraphVal moving_average(const std::string& name, Value value, double momentum, Init init, SourcePos pos);
  void fill_updates(Model& m);
  Shape shape_of(const std::vector<ExprPtr>& dims, Scope* local, bool allow_batch, bool* batched);
  std::int64_t integer(const GraphVal& v, SourcePos pos, const std::string& what);
  Value tensor(const GraphVal& v, SourcePos pos, const std::string& what);
  void at(SourcePos pos);  // nodes built from now on record this place
  void fill_labels(Model& m);  // an input named y: the labels
  std::vector<std::string> visible_names(const Scope* local) const;

  std::shared_ptr<const GraphSyntax> syntax_;
  std::map<std::string, GraphVal> options_;
  Graph* graph_;
  std::int64_t batch_;
  SampleShape sample_;  // {C, H, W} for images, {D} for tables
  std::int64_t features_;
  // For input x [B, C, H, W]: the graph's input, rows [B, D], and the images the file sees.
  Value x_rows_, x_images_;
  Scope globals_;
  std::map<std::string, const Statement*> functions_;
  std::map<std::string, std::pair<Value, SourcePos>> params_;
  struct Buffer {
    Value buffer;
    double momentum;
    SourcePos pos;
  };
  std::map<std::string, Buffer> buffers_;  // moving averages, by name
  struct UpdateCandidate {
    Value buffer, value;
    double momentum;
    SourcePos pos;
  };
  std::vector<UpdateCandidate> update_candidates_;  // every moving_average call, in order
  std::vector<Call> calls_;
  // Roles.
  std::map<std::string, std::pair<GraphVal, SourcePos>> roles_;
  std::vector<std::pair<std::string, GraphVal>> terms_;
  std::vector<const Statement*> schedules_;
  std::string prior_;
  std::int64_t step_ = 0;
  std::int64_t calls_made_ = 0;
};

}  // namespace graphrun
