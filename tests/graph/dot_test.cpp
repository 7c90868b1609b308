// Graphviz export: op names, shape-labelled edges, backward nodes in their own colour, and text
// that dot itself accepts.
#include <graphrun/graph/autodiff.hpp>
#include <graphrun/graph/dot.hpp>
#include <graphrun/ops/ops.hpp>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <filesystem>
#include <unistd.h>

namespace graphrun {
namespace {

struct Model {
  Graph g;
  Value x, w, loss, dw;
  Model() {
    x = g.input("x", {8, 4});
    w = g.parameter("w", {4, 3}, Init::xavier_uniform());
    loss = mean(sigmoid(matmul(x, w)));
    dw = grad(loss, {w})[0];
  }
};

TEST_CASE("to_dot names ops, labels edges with shapes and colours backward nodes",
          "[graph][dot]") {
  Model m;
  auto forward = to_dot(m.g, {m.loss});
  INFO(forward);
  CHECK_THAT(forward, Catch::StartsWith("digraph"));
  CHECK_THAT(forward, Catch::Contains("matmul"));
  CHECK_THAT(forward, Catch::Contains("sigmoid"));
  CHECK_THAT(forward, Catch::Contains("mean"));
  CHECK_THAT(forward, Catch::Contains("label=\"[8, 4]\""));  // x -> matmul
  CHECK_THAT(forward, Catch::Contains("label=\"[8, 3]\""));  // matmul -> sigmoid
  CHECK_THAT(forward, !Catch::Contains("#cfe2f3"));           // no backward node drawn
  CHECK_THAT(forward, !Catch::Contains("sigmoid_backward"));

  auto both = to_dot(m.g, {m.loss, m.dw});
  INFO(both);
  CHECK_THAT(both, Catch::Contains("sigmoid_backward"));
  CHECK_THAT(both, Catch::Contains("#cfe2f3"));
  CHECK_THAT(both, Catch::Contains("#d9ead3"));  // the parameter
  // The backward ops dw needs are blue: spread_like (mean), sigmoid_backward, matmul.
  auto count = [](const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
    return n;
  };
  CHECK(count(both, "#cfe2f3") == 3);
  CHECK(count(both, "fillcolor=white, label=matmul") == 1);  // the forward one
  // With no outputs the whole graph is drawn, including the dx matmul grad() built but
  // nobody reads.
  auto all = to_dot(m.g);
  int backward_ops = 0;
  for (int id = 0; id < m.g.size(); ++id)
    if (m.g.node(id).backward && m.g.node(id).kind == NodeKind::op) ++backward_ops;
  CHECK(count(all, "#cfe2f3") == static_cast<std::size_t>(backward_ops));
  CHECK(count(all, "->") > count(both, "->"));
}

TEST_CASE("dot accepts the exported text", "[graph][dot]") {
  if (std::system("command -v dot > /dev/null 2>&1") != 0) {
    WARN("graphviz 'dot' is not installed; skipped");
    return;
  }
  Model m;
  m.g.set_label(m.loss, "loss \"quoted\"");
  auto dir = std::filesystem::temp_directory_path();
  auto in = dir / fmt::format("graphrun-dot-{}.dot", ::getpid());
  auto out = dir / fmt::format("graphrun-dot-{}.svg", ::getpid());
  {
    std::ofstream f(in);
    f << to_dot(m.g);
  }
  int rc = std::system(fmt::format("dot -Tsvg '{}' -o '{}' 2>/dev/null", in.string(), out.string()).c_str());
  CHECK(rc == 0);
  CHECK(std::filesystem::file_size(out) > 1000);
  std::ifstream svg(out);
  std::string text((std::istreambuf_iterator<char>(svg)), {});
  CHECK_THAT(text, Catch::Contains("sigmoid_backward"));
  std::filesystem::remove(in);
  std::filesystem::remove(out);
}

}  // namespace
}  // namespace graphrun
