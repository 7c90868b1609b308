// Test helpers for the core: tensors from literal values, one-shot compile-and-run, and the
// message of an expected exception.
#pragma once

#include <graphrun/graph/op.hpp>
#include <graphrun/graph/program.hpp>
#include <graphrun/graph/random.hpp>

#include <catch2/catch.hpp>

#include <cstring>
#include <functional>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace graphrun::testing {

// A tensor of `shape` holding `values` (row-major), converted to `dtype`.
inline Tensor make_tensor(const Shape& shape, const std::vector<double>& values,
                          DType dtype = DType::f32) {
  Tensor t(DType::f64, shape);
  REQUIRE(static_cast<std::int64_t>(values.size()) == t.numel());
  std::copy(values.begin(), values.end(), t.data<double>());
  return dtype == DType::f64 ? t : t.to(dtype);
}

inline std::vector<double> to_vector(const Tensor& t) {
  std::vector<double> out(static_cast<std::size_t>(t.numel()));
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = t.item(static_cast<std::int64_t>(i));
  return out;
}

// Compiles `outputs`, binds `values` by name (shapes from the tensors), runs once and returns
// a copy of every output.
inline std::vector<Tensor> run_graph(const Graph& graph, const std::vector<Value>& outputs,
                                     const ParameterStore& values, DType dtype = DType::f32,
                                     const RunOptions& options = {}) {
  ParameterStore converted;
  ShapeMap shapes;
  for (const auto& [name, t] : values) {
    converted.emplace(name, t.dtype() == dtype ? t : t.to(dtype));
    shapes[name] = t.shape();
  }
  Program p = compile_program(graph, outputs, shapes, {dtype, false});
  for (const auto& [name, shape] : p.bindings()) p.bind(name, converted.at(name));
  p.run(options);
  std::vector<Tensor> out;
  for (std::size_t i = 0; i < p.num_outputs(); ++i) out.push_back(p.output(i).clone());
  return out;
}

// Every output of a program's last run, as raw bytes: for bit-for-bit comparisons.
inline std::vector<std::vector<char>> output_bytes(const Program& p) {
  std::vector<std::vector<char>> out;
  for (std::size_t i = 0; i < p.num_outputs(); ++i) {
    Tensor t = p.output(i);
    const char* raw = static_cast<const char*>(t.raw());
    out.emplace_back(raw, raw + t.bytes());
  }
  return out;
}

// One output's values as doubles.
inline std::vector<double> run_values(const Graph& graph, Value output,
                                      const ParameterStore& values, DType dtype = DType::f32,
                                      const RunOptions& options = {}) {
  return to_vector(run_graph(graph, {output}, values, dtype, options)[0]);
}

// The what() of the exception `f` throws as E; fails the test when nothing or another type is
// thrown.
template <class E>
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("expected an exception");
  return {};
}

// Element-wise approximate comparison with a readable failure.
inline void check_close(const std::vector<double>& got, const std::vector<double>& want,
                        double tolerance = 1e-6) {
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == Approx(want[i]).margin(tolerance).epsilon(tolerance));
  }
}

// A float64 tensor of `shape` with values uniform in `range`, from the counter-based generator
// keyed by (seed, stream): the same values on every run.
inline Tensor random_tensor(const Shape& shape, std::pair<double, double> range, std::uint32_t stream,
                            std::uint64_t seed) {
  Tensor t(DType::f64, shape);
  auto v = t.values<double>();
  for (std::size_t i = 0; i < v.size(); ++i)
    v[i] = range.first + (range.second - range.first) * random_uniform({seed, 0, stream}, i);
  return t;
}

template <class T>
void cube_kernel(const KernelArgs<T>& a) {
  for (std::int64_t i = 0; i < a.out_numel(); ++i) a.out[i] = a.in[0][i] * a.in[0][i] * a.in[0][i];
}

// y = x^3, defined in tests and never registered; `grad` decides what autodiff sees.
inline OpDef cube_op(GradRule grad) {
  OpDef d;
  d.name = "test_cube";
  d.summary = "y = x^3";
  d.arity = 1;
  d.shape = [](std::span<const Shape> in, const Attrs&) { return in[0]; };
  d.f32 = cube_kernel<float>;
  d.f64 = cube_kernel<double>;
  d.grad = std::move(grad);
  return d;
}

}  // namespace graphrun::testing
