// Elementwise unary ops: one registration each, with formula, kernel and gradient rule together.
#include <graphrun/ops/fast_math.hpp>
#include <graphrun/ops/kernel_util.hpp>
#include <graphrun/ops/ops.hpp>

#include <cmath>

namespace graphrun {
namespace ops {
namespace {

template <class T, class F>
void unary_kernel(const KernelArgs<T>& a) {
  unary_map(a, F{});
}

template <class F>
OpDef unary(std::string name, std::string summary, GradRule grad,
            std::vector<std::pair<double, double>> ranges = {{-2.0, 2.0}}) {
  OpDef d;
  d.name = std::move(name);
  d.summary = std::move(summary);
  d.arity = 1;
  d.shape = same_shape;
  d.f32 = unary_kernel<float, F>;
  d.f64 = unary_kernel<double, F>;
  d.f32_run = unary_run<float, F>;
  d.f64_run = unary_run<double, F>;
  d.grad = std::move(grad);
  d.elementwise = true;
  d.samples = {{{{3, 5}}, {}, ranges}, {{{2, 3, 4}}, {}, ranges}};
  return d;
}

using R = std::vector<Value>;

struct Neg { template <class T> T operator()(T x) const { return -x; } };
struct Exp {
  double operator()(double x) const { return std::exp(x); }
  float operator()(float x) const { return fast_exp(x); }
};
struct Log { template <class T> T operator()(T x) const { return std::log(x); } };
struct Sqrt { template <class T> T operator()(T x) const { return std::sqrt(x); } };
struct Square { template <class T> T operator()(T x) const { return x * x; } };
struct Abs { template <class T> T operator()(T x) const { return std::abs(x); } };
struct Sign {
  template <class T> T operator()(T x) const { return static_cast<T>((x > 0) - (x < 0)); }
};
struct Relu { template <class T> T operator()(T x) const { return x > 0 ? x : T(0); } };
struct Sigmoid {
  // Written on e^-|x| so neither branch overflows.
  template <class T> T operator()(T x) const {
    T e = exp_of(-std::abs(x));
    return x >= 0 ? T(1) / (T(1) + e) : e / (T(1) + e);
  }
};
struct Tanh { template <class T> T operator()(T x) const { return std::tanh(x); } };
// Accurate where the plain formulas cancel (log(1 + x) and e^x - 1 near 0, sinh x / x) or
// overflow: hyperbolic latent spaces (poincare_vae) and stable likelihoods need them.
struct Log1p { template <class T> T operator()(T x) const { return std::log1p(x); } };
struct Expm1 { template <class T> T operator()(T x) const { return std::expm1(x); } };
struct Sinh { template <class T> T operator()(T x) const { return std::sinh(x); } };
struct Cosh { template <class T> T operator()(T x) const { return std::cosh(x); } };
struct Atanh { template <class T> T operator()(T x) const { return std::atanh(x); } };
struct Asinh { template <class T> T operator()(T x) const { return std::asinh(x); } };
struct Acosh { template <class T> T operator()(T x) const { return std::acosh(x); } };
struct Softplus {
  template <class T> T operator()(T x) const { return std::max(x, T(0)) + log1p_exp_neg(std::abs(x)); }
};

const OpRegistration registrations[] = {
    OpRegistration(unary<Neg>("neg", "y = -x; any shape",
                              [](const GradContext& c) { return R{neg(c.grad, c.where)}; })),
    OpRegistration(unary<Exp>("exp", "y = e^x; any shape",
                              [](const GradContext& c) { return R{mul(c.grad, c.output, c.where)}; })),
    OpRegistration(unary<Log>("log", "y = ln x (x > 0); any shape",
                              [](const GradContext& c) { return R{div(c.grad, c.inputs[0], c.where)}; },
                              {{0.3, 3.0}})),
    OpRegistration(unary<Sqrt>("sqrt", "y = sqrt(x) (x > 0); any shape",
                               [](const GradContext& c) {
                                 return R{div(c.grad, c.output * 2.0, c.where)};
                               },
                               {{0.3, 3.0}})),
    OpRegistration(unary<Square>("square", "y = x^2; any shape",
                                 [](const GradContext& c) {
                                   return R{mul(c.grad, c.inputs[0] * 2.0, c.where)};
                                 })),
    OpRegistration(unary<Abs>("abs", "y = |x|; dy/dx = sign(x), 0 at 0; any shape",
                              [](const GradContext& c) {
                                return R{mul(c.grad, sign(c.inputs[0], c.where), c.where)};
                              })),
    OpRegistration(unary<Sign>("sign", "y = -1, 0 or 1 by the sign of x; derivative 0 almost "
                                       "everywhere; any shape",
                               [](const GradContext& c) { return R{c.grad * 0.0}; })),
    OpRegistration(unary<Relu>("relu", "y = max(x, 0); dy/dx = 1 for x > 0, else 0; any shape",
                               [](const GradContext& c) {
                                 // From the output (y > 0 exactly where x > 0), so a fused
                                 // bias + relu need not store its pre-activation.
                                 return R{relu_backward(c.grad, c.output, c.where)};
                               })),
    OpRegistration(unary<Sigmoid>("sigmoid", "y = 1 / (1 + e^-x), stable for any x; any shape",
                                  [](const GradContext& c) {
                                    return R{sigmoid_backward(c.grad, c.output, c.where)};
                                  },
                                  {{-4.0, 4.0}})),
    OpRegistration(unary<Tanh>("tanh", "y = tanh x; any shape",
                               [](const GradContext& c) {
                                 return R{tanh_backward(c.grad, c.output, c.where)};
                               })),
    OpRegistration(unary<Log1p>("log1p", "y = ln(1 + x) (x > -1), accurate near 0; any shape",
                                [](const GradContext& c) { return R{div(c.grad, c.inputs[0] + 1.0, c.where)}; },
                                {{-0.5, 3.0}})),
    OpRegistration(unary<Expm1>("expm1", "y = e^x - 1, accurate near 0; any shape",
                                [](const GradContext& c) { return R{mul(c.grad, c.output + 1.0, c.where)}; })),
    OpRegistration(unary<Sinh>("sinh", "y = sinh x; any shape",
                               [](const GradContext& c) { return R{mul(c.grad, cosh(c.inputs[0], c.where), c.where)}; })),
    OpRegistration(unary<Cosh>("cosh", "y = cosh x; any shape",
                               [](const GradContext& c) { return R{mul(c.grad, sinh(c.inputs[0], c.where), c.where)}; })),
    OpRegistration(unary<Atanh>("atanh", "y = artanh x (-1 < x < 1); any shape",
                                [](const GradContext& c) {
                                  return R{div(c.grad, 1.0 - square(c.inputs[0], c.where), c.where)};
                                },
                                {{-0.8, 0.8}})),
    OpRegistration(unary<Asinh>("asinh", "y = arsinh x; any shape",
                                [](const GradContext& c) {
                                  return R{div(c.grad, sqrt(square(c.inputs[0], c.where) + 1.0, c.where), c.where)};
                                })),
    OpRegistration(unary<Acosh>("acosh", "y = arcosh x (x >= 1); any shape",
                                [](const GradContext& c) {
                                  return R{div(c.grad, sqrt(square(c.inputs[0], c.where) - 1.0, c.where), c.where)};
                                },
                                {{1.2, 3.0}})),
    OpRegistration(unary<Softplus>("softplus", "y = ln(1 + e^x), stable for any x; any shape",
                                   [](const GradContext& c) {
                                     return R{mul(c.grad, sigmoid(c.inputs[0], c.where), c.where)};
                                   },
                                   {{-4.0, 4.0}})),
};

}  // namespace
}  // namespace ops

namespace {
Value unary_node(const char* name, Value x, Loc at) {
  return x.graph().apply(ops::op(name), {x}, {}, at);
}
}  // namespace

Value neg(Value x, Loc at) { return unary_node("neg", x, at); }
Value exp(Value x, Loc at) { return unary_node("exp", x, at); }
Value log1p(Value x, Loc at) { return unary_node("log1p", x, at); }
Value expm1(Value x, Loc at) { return unary_node("expm1", x, at); }
Value sinh(Value x, Loc at) { return unary_node("sinh", x, at); }
Value cosh(Value x, Loc at) { return unary_node("cosh", x, at); }
Value atanh(Value x, Loc at) { return unary_node("atanh", x, at); }
Value asinh(Value x, Loc at) { return unary_node("asinh", x, at); }
Value acosh(Value x, Loc at) { return unary_node("acosh", x, at); }
Value log(Value x, Loc at) { return unary_node("log", x, at); }
Value sqrt(Value x, Loc at) { return unary_node("sqrt", x, at); }
Value square(Value x, Loc at) { return unary_node("square", x, at); }
Value abs(Value x, Loc at) { return unary_node("abs", x, at); }
Value sign(Value x, Loc at) { return unary_node("sign", x, at); }
Value relu(Value x, Loc at) { return unary_node("relu", x, at); }
Value sigmoid(Value x, Loc at) { return unary_node("sigmoid", x, at); }
Value tanh(Value x, Loc at) { return unary_node("tanh", x, at); }
Value softplus(Value x, Loc at) { return unary_node("softplus", x, at); }

}  // namespace graphrun
