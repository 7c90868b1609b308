// Graph files: the shipped ones train to the same bits as their C++ builders, and faulty files
// are refused with the file, line and column of the fault.
#include <graphrun/graph/gradcheck.hpp>
#include <graphrun/graph/parallel.hpp>
#include <graphrun/graph/parameters.hpp>
#include <graphrun/graph/random.hpp>
#include <graphrun/models/graph_model.hpp>
#include <graphrun/train/trainer.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cstring>
#include <filesystem>

namespace graphrun {
namespace {

namespace fs = std::filesystem;

fs::path shipped(const std::string& name) { return fs::path(GRAPHRUN_SOURCE_DIR) / "models" / name; }

Split noise(std::int64_t count, std::int64_t side, std::uint32_t stream) {
  Split s;
  s.count = count;
  s.shape = {1, side, side};
  s.bytes.resize(static_cast<std::size_t>(count * side * side));
  for (std::size_t i = 0; i < s.bytes.size(); ++i)
    s.bytes[i] = static_cast<std::uint8_t>(255 * random_uniform({9, 0, stream}, i));
  return s;
}

struct Trained {
  EpochReport report;
  ParameterStore params;
};

Trained train(Model& m, const Split& train, const Split& test) {
  TrainConfig config;
  config.batch = 16;
  config.seed = 3;
  Trainer trainer(m, config);
  Trained t;
  t.report = trainer.train_epoch(train, &test);
  for (const auto& [name, tensor] : trainer.parameters()) t.params.emplace(name, tensor.clone());
  return t;
}

void check_same_bits(const Trained& a, const Trained& b) {
  CHECK(a.report.train.loss == b.report.train.loss);
  CHECK(a.report.test.loss == b.report.test.loss);
  CHECK(a.report.train.terms == b.report.train.terms);
  CHECK(a.report.test.terms == b.report.test.terms);
  REQUIRE(a.params.size() == b.params.size());
  for (const auto& [name, t] : a.params) {
    INFO("parameter " << name);
    REQUIRE(b.params.count(name));
    const Tensor& u = b.params.at(name);
    REQUIRE(t.shape() == u.shape());
    CHECK(std::memcmp(t.raw(), u.raw(), t.bytes()) == 0);
  }
}

TEST_CASE("the shipped graph files train to the same bits as their builders", "[models][graphfile]") {
  // 70 images in batches of 16: the last batch has 6, so each graph also runs at another size.
  Split train_split = noise(70, 6, 1), test_split = noise(20, 6, 2);
  const std::int64_t features = 36;
  ModelOptions small = {{"hidden", "12"}};
  for (const std::string name : {"vae", "ae", "dae", "sae"}) {
    ModelOptions options = small;
    options.insert_or_assign(name == "vae" ? "latent" : "code", "3");
    for (int threads : {1, 2}) {
      DYNAMIC_SECTION(name << ".graph at " << threads << " threads") {
        set_num_threads(threads);
        Model builder = build_model(name, options, 16, features);
        Model graph = load_graph_model(shipped(name + ".graph"), options, 16, features);
        CHECK(graph.terms.size() == builder.terms.size());
        CHECK(graph.has_prior == builder.has_prior);
        check_same_bits(train(builder, train_split, test_split), train(graph, train_split, test_split));
        set_num_threads(0);
      }
    }
  }
}

TEST_CASE("a KL warm-up in a graph file is the builder's schedule", "[models][graphfile]") {
  Split train_split = noise(40, 5, 3), test_split = noise(10, 5, 4);
  ModelOptions options = {{"hidden", "10"}, {"latent", "2"}, {"beta", "2"}, {"kl_warmup", "3"}};
  Model builder = build_model("vae", options, 16, 25);
  Model graph = load_graph_model(shipped("vae.graph"), options, 16, 25);
  REQUIRE(graph.schedules.size() == 1);
  for (std::int64_t step : {0, 1, 3, 10})
    CHECK(graph.schedules[0].value(step) == builder.schedules[0].value(step));
  check_same_bits(train(builder, train_split, test_split), train(graph, train_split, test_split));
}

// The message building `text` fails with.
std::string error_of(const std::string& text, const ModelOptions& options = {}) {
  try {
    build_graph_model(parse_graph_text(text, "t.graph"), options, 4, 6);
  } catch (const GraphFileError& e) {
    return e.what();
  } catch (const ModelOptionError& e) {
    return e.what();
  }
  FAIL("expected an error");
  return {};
}

const std::string kRoles = R"(
role loss = sum(square(x - x), axes=[1])
role code = x
role reconstruction = x
role decoded = z
)";

std::string graph(const std::string& body) {
  return "[model]\nk = 2\n[graph]\ninput x [B, D]\ninput z [B, D]\n" + body + kRoles;
}

// A function's local named like a file value hides it, whether the function is called before
// that value is assigned or after (it was an error only after, found writing a variant).
TEST_CASE("a function's locals hide the file's values of the same name", "[models][graphfile]") {
  const std::string f = "def twice(v) {\n  h = v * 2\n  return h\n}\n";
  for (const std::string& body : {f + "h = twice(x)\n", f + "h = relu(x)\nk2 = twice(h)\n"}) {
    INFO(body);
    Model m = build_graph_model(parse_graph_text(graph(body), "t.graph"), {}, 4, 6);
    CHECK(m.terms.empty());
  }
}

// A learnt scale kept as a [1] parameter is reported as the one value it is.
TEST_CASE("a graph file's term of shape [1] is a scalar", "[models][graphfile]") {
  Model m = build_graph_model(
      parse_graph_text(graph("s = param(\"s\", [1], constant(0.5))\nterm sigma = exp(s)\n"), "t.graph"), {}, 4, 6);
  REQUIRE(m.terms.count("sigma") == 1);
  CHECK(m.terms.at("sigma").shape().empty());
}

TEST_CASE("graph file errors name the line and column with a caret", "[models][graphfile]") {
  auto e = error_of(graph("h = softplu(x)\n"));
  CHECK_THAT(e, Catch::Contains("t.graph:6:5: unknown function or op 'softplu' (did you mean 'softplus'?)"));
  CHECK_THAT(e, Catch::Contains("\n  h = softplu(x)\n      ^"));
  CHECK_THAT(error_of(graph("h = relu(xx)\n")), Catch::Contains("6:10: unknown name 'xx' (did you mean 'x'?)"));
  CHECK_THAT(error_of(graph("h = relu(x)\nh = x\n")),
             Catch::Contains("7:1: 'h' is already assigned on line 6"));
  CHECK_THAT(error_of(graph("p = param(\"p\", [2], zeros)\nterm p2 = exp(p)\n")),
             Catch::Contains("t.graph:7:11: term p2 must be one value (a scalar or [1]) or one value a sample [B], got [2]"));
  CHECK_THAT(error_of(graph("def f(v) {\n  a = v\n  a = v * 2\n  return a\n}\nh = f(x)\n")),
             Catch::Contains("8:3: 'a' is already assigned on line 7"));
  // A schedule is a scalar input of the graph: a second one of a name is refused before the
  // graph would throw on the second input (found by fuzz_graph_file).
  CHECK_THAT(error_of(graph("schedule s = step\nschedule s = 2 * step\n")),
             Catch::Contains("7:10: 's' is already assigned on line 6"));
  CHECK_THAT(error_of(graph("h = relu(x)\nschedule h = step\n")),
             Catch::Contains("7:10: 'h' is already assigned on line 6"));
  CHECK_THAT(error_of(graph("h = sum(x, axis=[1])\n")),
             Catch::Contains("sum has no attribute 'axis' (did you mean 'axes'?)"));
  CHECK_THAT(error_of(graph("h = x @ x\n")), Catch::Contains("6:7: matmul (node"));
  CHECK_THAT(error_of(graph("h = x / B\n")), Catch::Contains("B is the batch size"));
  CHECK_THAT(error_of(graph("p = param(\"w\", [B, 2], zeros)\n")),
             Catch::Contains("cannot depend on the batch size B"));
  CHECK_THAT(error_of(graph("h = relu(x\n")), Catch::Contains("the file ends inside '(' or '['"));
  CHECK_THAT(error_of(graph("h = relu(x) relu(x)\n")), Catch::Contains("expected the end of the statement"));
  CHECK_THAT(error_of(graph("role lost = x\n")), Catch::Contains("unknown role 'lost' (did you mean 'loss'?)"));
  CHECK_THAT(error_of(graph(""), {{"kk", "3"}}), Catch::Contains("unknown model option 'kk'"));
  CHECK_THAT(error_of(graph("h = relu(x)\n"), {{"k", "abc"}}), Catch::Contains("'abc' is not a number"));
  CHECK_THAT(error_of("[graph]\ninput x [B, D]\ninput z [B, D]\n"), Catch::Contains("no 'role loss = ...'"));
  CHECK_THAT(error_of("[modle]\n"), Catch::Contains("unknown section [modle]"));
  CHECK_THAT(error_of("[model]\nk = 1\n"), Catch::Contains("no [graph] section"));
}

TEST_CASE("a shape error inside a function names the call site too", "[models][graphfile]") {
  auto e = error_of(graph("def f(v) = v @ param(\"w\", [3, 2], zeros)\nh = f(x)\n"));
  CHECK_THAT(e, Catch::Contains("t.graph:6:14: matmul"));
  CHECK_THAT(e, Catch::Contains("in f() called at t.graph:7:5"));
}

TEST_CASE("graph files are bounded", "[models][graphfile]") {
  CHECK_THAT(error_of(graph("def f(v) = f(v)\nh = f(x)\n")), Catch::Contains("calls nest deeper than 32"));
  std::string deep = "h = " + std::string(200, '(') + "x" + std::string(200, ')') + "\n";
  CHECK_THAT(error_of(graph(deep)), Catch::Contains("nested deeper than 64"));
  CHECK_THAT(error_of(graph("p = param(\"w\", [100000, 100000], zeros)\n")), Catch::Contains("elements"));
  CHECK_THAT(error_of(std::string(kMaxGraphFileBytes + 1, '#')), Catch::Contains("graph files may have at most"));
}

TEST_CASE("schedules compute numbers only", "[models][graphfile]") {
  for (const char* body : {"schedule s = param(\"w\", [2], zeros)\n", "schedule s = tensor([1, 2])\n",
                           "schedule s = relu(x)\n", "schedule s = B\n"}) {
    INFO(body);
    CHECK_THAT(error_of(graph(body)), Catch::Contains("t.graph:6:"));
  }
  auto syntax = parse_graph_text(graph("c = tensor([[1, 2, 3], [4, 5, 6]])\nh = x + reshape(c, shape=[1, 6])\n"), "t.graph");
  CHECK(build_graph_model(syntax, {}, 4, 6).graph->size() > 0);
}

// The values of the constant nodes of `shape` in m's graph.
std::vector<std::vector<double>> constants(const Model& m, const Shape& shape) {
  std::vector<std::vector<double>> found;
  for (int id = 0; id < m.graph->size(); ++id)
    if (const Node& n = m.graph->node(id); n.kind == NodeKind::constant && n.shape == shape) found.push_back(n.values);
  return found;
}

TEST_CASE("full() makes a constant of one value and any shape but the batch's", "[models][graphfile]") {
  Model m = build_graph_model(parse_graph_text(graph("c = full([2, 3], 1.5)\nh = x + reshape(c, shape=[1, 6])\n"), "t.graph"), {}, 4, 6);
  CHECK(constants(m, {2, 3}) == std::vector<std::vector<double>>{std::vector<double>(6, 1.5)});
  CHECK_THAT(error_of(graph("c = full([B, 3], 0)\n")), Catch::Contains("t.graph:6:10: a constant's shape cannot depend on the batch size B"));
  CHECK_THAT(error_of(graph("c = full([2, 3], B)\n")), Catch::Contains("cannot depend on the batch size B"));
  CHECK_THAT(error_of(graph("c = full([2048, 1024], 0)\n")), Catch::Contains("is over 1048576 elements"));
  CHECK_THAT(error_of(graph("c = full([2, 0], 0)\n")), Catch::Contains("at least 1"));
  CHECK_THAT(error_of(graph("c = full(2, 0)\n")), Catch::Contains("full's shape is a list"));
  CHECK_THAT(error_of(graph("c = full([2], x)\n")), Catch::Contains("full's value is a number"));
  CHECK_THAT(error_of(graph("c = full([2])\n")), Catch::Contains("full is called as full([dims], value)"));
  CHECK_THAT(error_of(graph("c = ful([2], 0)\n")), Catch::Contains("did you mean 'full'?"));
}

// grad(y, x) differentiates sum(y): 0.5 x^2 + 3 x gives x + 3 exactly, also at the last
// batch of an epoch (6 rows where the graph was built for 16), and a y that does not read x
// gives zeros shaped like x.
TEST_CASE("grad() in a graph file is the gradient of the sum of its first argument", "[models][graphfile]") {
  const std::string body = "g = grad(square(x) * 0.5 + 3 * x, x)\n"
                           "term off = sum(square(g - x - 3), axes=[1])\n"
                           "term unrelated = sum(square(grad(exp(z), x)), axes=[1])\n"
                           "term value = sum(g, axes=[1])\n";
  Model m = build_graph_model(parse_graph_text(graph(body), "t.graph"), {}, 16, 36);
  TrainConfig config;
  config.batch = 16;
  Trainer trainer(m, config);
  const Split data = noise(70, 6, 5);
  const auto stats = trainer.evaluate(data);
  CHECK(stats.terms.at("off") == 0);
  CHECK(stats.terms.at("unrelated") == 0);
  // Each row's value is its sum of x + 3: 36 pixels of mean ~0.5, so ~126.
  CHECK(stats.terms.at("value") > 36 * 3);

  CHECK_THAT(error_of(graph("g = grad(x)\n")), Catch::Contains("t.graph:6:5: grad is called as grad(y, x)"));
  CHECK_THAT(error_of(graph("g = grad(\"x\", x)\n")), Catch::Contains("what grad differentiates must be a tensor, not a string"));
  CHECK_THAT(error_of(graph("g = grad(x, [1])\n")), Catch::Contains("with respect to must be a tensor, not a list"));
  // Each grad of a grad more than doubles the graph; the limit stops it before a backward pass
  // could outgrow memory.
  std::string nested = "def d(v) = grad(exp(v) * v, x)\na0 = x\n";
  for (int i = 1; i <= 30; ++i) nested += fmt::format("a{} = d(a{})\n", i, i - 1);
  CHECK_THAT(error_of(graph(nested)), Catch::Contains("a backward pass needs room, at most 100000 nodes"));
}

// A gradient penalty is differentiated again in training: its second derivatives through a small
// MLP (tanh, softplus, a product, a sigmoid) agree with central differences in float64.
TEST_CASE("a gradient penalty in a graph file has correct second derivatives", "[models][graphfile]") {
  const std::string text =
      "[graph]\ninput x [B, D]\ninput z [B, D]\n"
      "def net(v) = sigmoid(softplus(tanh(v @ param(\"w1\", [D, 5], xavier_uniform)) @ param(\"w2\", [5, D], xavier_uniform)))\n"
      "h = x @ param(\"e\", [D, D], xavier_uniform)\n"
      "penalty = sum(square(grad(net(h), h)), axes=[1])\n"
      "role loss = sum(square(net(h) - x), axes=[1]) + penalty\n"
      "role code = h\nrole reconstruction = net(h)\nrole decoded = net(z)\n";
  Model m = build_graph_model(parse_graph_text(text, "t.graph"), {}, 3, 4);
  Graph& g = *m.graph;
  ParameterStore values = init_parameters(g, 1, DType::f64);
  Tensor x(DType::f64, {3, 4});
  for (std::int64_t i = 0; i < 12; ++i) x.data<double>()[i] = 0.1 * static_cast<double>(i % 7) - 0.2;
  values.emplace(m.x.node().name, x);
  std::vector<std::string> wrt;
  for (auto& p : g.parameters()) wrt.push_back(p.node().name);
  GradCheckOptions gc;
  gc.eps = 1e-5;
  gc.tolerance = 1e-6;
  GradCheckReport report = check_gradients(g, m.loss, wrt, values, gc);
  INFO(report.to_string());
  CHECK(report.ok());
  CHECK(report.tensors.size() == 3);
}

TEST_CASE("eye(n) is the identity matrix", "[models][graphfile]") {
  Model m = build_graph_model(parse_graph_text(graph("c = eye(3)\nh = x + reshape(c, shape=[1, 9])\n"), "t.graph"), {}, 4, 9);
  CHECK(constants(m, {3, 3}) == std::vector<std::vector<double>>{{1, 0, 0, 0, 1, 0, 0, 0, 1}});
  CHECK_THAT(error_of(graph("c = eye(B)\n")), Catch::Contains("cannot depend on the batch size B"));
  CHECK_THAT(error_of(graph("c = eye(0)\n")), Catch::Contains("at least 1"));
  CHECK_THAT(error_of(graph("c = eye(2000)\n")), Catch::Contains("is over 1048576 elements"));
  CHECK_THAT(error_of(graph("c = eye(2.5)\n")), Catch::Contains("must be a whole number"));
  CHECK_THAT(error_of(graph("c = eye(x)\n")), Catch::Contains("eye's size must be a number"));
}

TEST_CASE("arange counts as NumPy's does", "[models][graphfile]") {
  Model m = build_graph_model(parse_graph_text(graph("c = arange(1, 10, 3)\nd = arange(4)\ne = arange(1, 0, -0.25)\n"
                                                     "h = x + reshape(concat(c, d, e, axis=0), shape=[1, 11])\n"), "t.graph"), {}, 4, 11);
  CHECK(constants(m, {3}) == std::vector<std::vector<double>>{{1, 4, 7}});
  CHECK(constants(m, {4}) == std::vector<std::vector<double>>{{0, 1, 2, 3}, {1, 0.75, 0.5, 0.25}});
  CHECK_THAT(error_of(graph("c = arange(B)\n")), Catch::Contains("cannot depend on the batch size B"));
  CHECK_THAT(error_of(graph("c = arange(0)\n")), Catch::Contains("arange(0, 0, 1) is empty"));
  CHECK_THAT(error_of(graph("c = arange(3, 1)\n")), Catch::Contains("is empty"));
  CHECK_THAT(error_of(graph("c = arange(0, 1, 0)\n")), Catch::Contains("other than 0"));
  CHECK_THAT(error_of(graph("c = arange(3000000)\n")), Catch::Contains("is over 1048576 elements"));
  CHECK_THAT(error_of(graph("c = arange(x)\n")), Catch::Contains("arguments are numbers"));
  CHECK_THAT(error_of(graph("c = arange(1, 2, 3, 4)\n")), Catch::Contains("arange is called as"));
}

// A function returns several values as a list, unpacked by `a, b = ...`, in the file and in a
// function's body alike; the count must match, and each name is assigned once as ever.
TEST_CASE("a list unpacks into several names", "[models][graphfile]") {
  const std::string f = "def split(v) = [slice(v, axis=1, begin=0, end=2), slice(v, axis=1, begin=2, end=6)]\n"
                        "def swap(v) {\n  a, b = split(v)\n  return concat(b, a, axis=1)\n}\n";
  Model m = build_graph_model(
      parse_graph_text(graph(f + "head, tail = split(x)\nw = swap(x)\nterm n = sum(head, axes=[1]) + sum(tail, axes=[1]) - sum(w, axes=[1])\n"),
                       "t.graph"),
      {}, 16, 6);
  TrainConfig config;
  config.batch = 16;
  Trainer trainer(m, config);
  CHECK(trainer.evaluate(noise(20, 3, 7)).terms.at("n") == 0);  // [B, 2] + [B, 4] are x's 6 columns

  CHECK_THAT(error_of(graph(f + "a, b, c = split(x)\n")),
             Catch::Contains("t.graph:11:11: 3 names are unpacked from a list of 2; it must be a list of 3"));
  CHECK_THAT(error_of(graph("a, b = x\n")), Catch::Contains("2 names are unpacked from a tensor"));
  CHECK_THAT(error_of(graph("a, a = [x, x]\n")), Catch::Contains("'a' is already assigned on line 6"));
  CHECK_THAT(error_of(graph("a, = [x]\n")), Catch::Contains("a name to unpack into"));
}

TEST_CASE("a parameter named twice is the same weights", "[models][graphfile]") {
  auto syntax = parse_graph_text(graph("def f(v) = v @ param(\"w\", [D, D], zeros)\na = f(x)\nb = f(z)\n"), "t.graph");
  Model m = build_graph_model(syntax, {}, 4, 6);
  CHECK(m.graph->parameters().size() == 1);
  CHECK_THAT(error_of(graph("a = param(\"w\", [D, D], zeros)\nb = param(\"w\", [D, 2], zeros)\n")),
             Catch::Contains("parameter 'w' was declared on line 6 as [6, 6] zeros; here as [6, 2] zeros"));
}

// A decoder with batch norm serves the loss and two roles; its running average must follow the
// batches training normalises, whichever call comes first in the file.
TEST_CASE("a moving average follows the value the loss depends on", "[models][graphfile][buffer]") {
  const std::string text = R"([graph]
input x [B, D]
input z [B, D]
def centre(v) {
  m = mean(v, axes=[0], keepdims=1)
  return v - if_training(m, moving_average("avg", m, 0.5))
}
role reconstruction = centre(x)
role decoded = centre(z)
role loss = sum(square(centre(x * 2)), axes=[1])
role code = x
)";
  Model m = build_graph_model(parse_graph_text(text, "t.graph"), {}, 16, 9);
  REQUIRE(m.updates.size() == 1);
  CHECK(m.graph->buffers().size() == 1);
  CHECK(m.graph->parameters().empty());
  TrainConfig config;
  config.batch = 16;
  config.optimizer.kind = "sgd";
  Trainer trainer(m, config);
  const Split data = noise(16, 3, 4);
  trainer.train_epoch(data, nullptr);
  // 0.5 of the batch mean of 2 x: the mean of x (the reconstruction's call would give half).
  std::vector<std::int64_t> idx(16);
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<std::int64_t>(i);
  std::vector<double> x(16 * 9);
  data.fill_batch<double>(idx, x.data());
  const Tensor& avg = trainer.parameters().at("avg");
  for (std::int64_t j = 0; j < 9; ++j) {
    double mean = 0;
    for (std::int64_t r = 0; r < 16; ++r) mean += x[static_cast<std::size_t>(r * 9 + j)] / 16;
    CHECK(avg.item(j) == Approx(mean).epsilon(1e-5));
  }
}

TEST_CASE("moving_average refuses what would not be one average", "[models][graphfile][buffer]") {
  // A file whose body starts with a reduced value m [1, D].
  auto with_m = [](const char* body) { return graph(std::string("m = mean(x, axes=[0], keepdims=1)\n").append(body)); };
  CHECK_THAT(error_of(graph("a = moving_average(\"a\", x, 0.1)\n")),
             Catch::Contains("t.graph:6:25: the value a moving average follows cannot have the batch's size B"));
  // A batch of one: the reduced value is [1, D] like a row, and is taken.
  CHECK_NOTHROW(build_graph_model(parse_graph_text(with_m("a = moving_average(\"a\", m, 0.5)\n"), "t.graph"), {}, 1, 6));
  CHECK_THAT(error_of(with_m("a = moving_average(\"a\", m, 0)\n")),
             Catch::Contains("momentum is a number in (0, 1]"));
  CHECK_THAT(error_of(with_m("a = moving_average(\"a\", m, 1.5)\n")), Catch::Contains("(0, 1]"));
  CHECK_THAT(error_of(with_m("a = moving_average(a, m, 0.5)\n")), Catch::Contains("unknown name"));
  CHECK_THAT(error_of(with_m("a = moving_average(\"a\", m, 0.5, 3)\n")), Catch::Contains("an initialiser"));
  CHECK_THAT(error_of(with_m("a = moving_average(\"a\", m)\n")), Catch::Contains("moving_average is called as"));
  CHECK_THAT(error_of(with_m("a = moving_average(\"a\", m, 0.5)\nb = moving_average(\"a\", m, 0.25)\n")),
             Catch::Contains("moving average 'a' was declared on line 7 over [1, 6] with momentum 0.5"));
  CHECK_THAT(error_of(with_m("p = param(\"a\", [1, D], zeros)\na = moving_average(\"a\", m, 0.5)\n")),
             Catch::Contains("already used by"));
  CHECK_THAT(error_of(with_m("a = moving_average(\"a\", m, 0.5)\np = param(\"a\", [1, D], zeros)\n")),
             Catch::Contains("already used by"));
}

TEST_CASE("reshape takes the batch as an inferred size", "[models][graphfile]") {
  auto syntax = parse_graph_text(graph("h = reshape(x, shape=[B, 2, 3])\ng = reshape(h, shape=[B, D])\n"), "t.graph");
  Model m = build_graph_model(syntax, {}, 4, 6);
  CHECK(m.graph->size() > 2);
  CHECK_THAT(error_of(graph("h = reshape(x, shape=[B, B])\n")), Catch::Contains("one inferred size"));
  CHECK_THAT(error_of(graph("h = slice(x, axis=0, begin=0, end=B)\n")), Catch::Contains("cannot depend on the batch"));
}

}  // namespace
}  // namespace graphrun
