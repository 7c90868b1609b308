// Elementwise binary ops: arithmetic with broadcasting, fused backward helpers and the
// elementwise losses.
#include <graphrun/ops/fast_math.hpp>
#include <graphrun/ops/kernel_util.hpp>
#include <graphrun/ops/ops.hpp>

#include <cmath>

namespace graphrun {
namespace ops {
namespace {

using R = std::vector<Value>;

template <class T, class F>
void binary_kernel(const KernelArgs<T>& a) {
  binary_map(a, F{});
}

Shape broadcast_rule(std::span<const Shape> in, const Attrs&) {
  return broadcast_shapes(in[0], in[1]);
}

template <class F>
OpDef binary(std::string name, std::string summary, GradRule grad, bool broadcasting,
             std::vector<std::pair<double, double>> ranges = {{-2.0, 2.0}}) {
  OpDef d;
  d.name = std::move(name);
  d.summary = std::move(summary);
  d.arity = 2;
  d.shape = broadcasting ? ShapeRule(broadcast_rule) : ShapeRule(same_shape);
  d.f32 = binary_kernel<float, F>;
  d.f64 = binary_kernel<double, F>;
  d.f32_run = binary_run<float, F>;
  d.f64_run = binary_run<double, F>;
  d.grad = std::move(grad);
  d.elementwise = true;
  d.samples = {{{{3, 4}, {3, 4}}, {}, ranges}};
  if (broadcasting) {
    d.samples.push_back({{{3, 4}, {4}}, {}, ranges});
    d.samples.push_back({{{3, 4}, {1, 4}}, {}, ranges});
    d.samples.push_back({{{2, 1, 4}, {3, 1}}, {}, ranges});
    d.samples.push_back({{{}, {2, 3}}, {}, ranges});
  }
  return d;
}

// Undoes broadcasting. Always a node: shapes equal at build time may differ once compiled for
// another batch ([1, K] + [B, K] built at B = 1); where they agree, compile runs nothing for it.
Value unbroadcast(Value g, Value like, Loc at) { return sum_to_like(g, like, at); }

struct Add { template <class T> T operator()(T x, T y) const { return x + y; } };
struct Sub { template <class T> T operator()(T x, T y) const { return x - y; } };
struct Mul { template <class T> T operator()(T x, T y) const { return x * y; } };
struct Div { template <class T> T operator()(T x, T y) const { return x / y; } };
struct ReluBackward { template <class T> T operator()(T g, T x) const { return x > 0 ? g : T(0); } };
struct SigmoidBackward { template <class T> T operator()(T g, T y) const { return g * y * (T(1) - y); } };
struct TanhBackward { template <class T> T operator()(T g, T y) const { return g * (T(1) - y * y); } };
struct Mse { template <class T> T operator()(T a, T b) const { return (a - b) * (a - b); } };
struct Bce {
  template <class T> T operator()(T l, T t) const {
    return std::max(l, T(0)) - l * t + log1p_exp_neg(std::abs(l));
  }
};
struct KlNormal {
  template <class T> T operator()(T mu, T lv) const {
    return T(-0.5) * (T(1) + lv - mu * mu - exp_of(lv));
  }
};

GradRule add_grad = [](const GradContext& c) {
  return R{unbroadcast(c.grad, c.inputs[0], c.where), unbroadcast(c.grad, c.inputs[1], c.where)};
};
GradRule sub_grad = [](const GradContext& c) {
  return R{unbroadcast(c.grad, c.inputs[0], c.where),
           unbroadcast(neg(c.grad, c.where), c.inputs[1], c.where)};
};
GradRule mul_grad = [](const GradContext& c) {
  return R{unbroadcast(mul(c.grad, c.inputs[1], c.where), c.inputs[0], c.where),
           unbroadcast(mul(c.grad, c.inputs[0], c.where), c.inputs[1], c.where)};
};
GradRule div_grad = [](const GradContext& c) {
  // d(a/b)/db = -(a/b) / b
  Value ga = div(c.grad, c.inputs[1], c.where);
  Value gb = neg(div(mul(c.grad, c.output, c.where), c.inputs[1], c.where), c.where);
  return R{unbroadcast(ga, c.inputs[0], c.where), unbroadcast(gb, c.inputs[1], c.where)};
};

const OpRegistration registrations[] = {
    OpRegistration(binary<Add>("add", "y = a + b; broadcasting", add_grad, true)),
    OpRegistration(binary<Sub>("sub", "y = a - b; broadcasting", sub_grad, true)),
    OpRegistration(binary<Mul>("mul", "y = a * b; broadcasting", mul_grad, true)),
    OpRegistration(binary<Div>("div", "y = a / b (b != 0); broadcasting", div_grad, true,
                               {{-2.0, 2.0}, {0.5, 2.0}})),
    OpRegistration([] {
      auto d = binary<ReluBackward>(
          "relu_backward", "y = g * (x > 0): the gradient of relu; g, x same shape",
          [](const GradContext& c) { return R{relu_backward(c.grad, c.inputs[1], c.where), Value()}; },
          false);
      d.differentiable = {true, false};  // a step function of x: zero derivative almost everywhere
      return d;
    }()),
    OpRegistration(binary<SigmoidBackward>(
        "sigmoid_backward", "y = g * s * (1 - s): the gradient of sigmoid from its output s; same shapes",
        [](const GradContext& c) {
          Value s = c.inputs[1];
          return R{sigmoid_backward(c.grad, s, c.where),
                   mul(mul(c.grad, c.inputs[0], c.where), 1.0 - s * 2.0, c.where)};
        },
        false, {{-1.0, 1.0}, {0.1, 0.9}})),
    OpRegistration(binary<TanhBackward>(
        "tanh_backward", "y = g * (1 - t^2): the gradient of tanh from its output t; same shapes",
        [](const GradContext& c) {
          Value t = c.inputs[1];
          return R{tanh_backward(c.grad, t, c.where),
                   mul(mul(c.grad, c.inputs[0], c.where), t * -2.0, c.where)};
        },
        false, {{-1.0, 1.0}, {-0.9, 0.9}})),
    OpRegistration(binary<Mse>("mse", "y = (a - b)^2 elementwise; a, b same shape",
                               [](const GradContext& c) {
                                 Value d = mul(c.grad, (c.inputs[0] - c.inputs[1]) * 2.0, c.where);
                                 return R{d, neg(d, c.where)};
                               },
                               false)),
    OpRegistration(binary<Bce>(
        "bce_with_logits",
        "y = max(l, 0) - l*t + ln(1 + e^-|l|) = BCE(sigmoid(l), t), finite for any logit l; "
        "l, t same shape",
        [](const GradContext& c) {
          Value l = c.inputs[0], t = c.inputs[1];
          return R{mul(c.grad, sigmoid(l, c.where) - t, c.where), mul(c.grad, neg(l, c.where), c.where)};
        },
        false, {{-3.0, 3.0}, {0.0, 1.0}})),
    OpRegistration(binary<KlNormal>(
        "kl_normal",
        "y = -0.5 (1 + v - m^2 - e^v) = KL(N(m, e^v) || N(0, 1)) per element; m, v same shape",
        [](const GradContext& c) {
          Value m = c.inputs[0], v = c.inputs[1];
          return R{mul(c.grad, m, c.where), mul(c.grad, (exp(v, c.where) - 1.0) * 0.5, c.where)};
        },
        false)),
};

}  // namespace
}  // namespace ops

namespace {
Value binary_node(const char* name, Value a, Value b, Loc at) {
  return a.graph().apply(ops::op(name), {a, b}, {}, at);
}
}  // namespace

Value add(Value a, Value b, Loc at) { return binary_node("add", a, b, at); }
Value sub(Value a, Value b, Loc at) { return binary_node("sub", a, b, at); }
Value mul(Value a, Value b, Loc at) { return binary_node("mul", a, b, at); }
Value div(Value a, Value b, Loc at) { return binary_node("div", a, b, at); }
Value relu_backward(Value g, Value x, Loc at) { return binary_node("relu_backward", g, x, at); }
Value sigmoid_backward(Value g, Value y, Loc at) { return binary_node("sigmoid_backward", g, y, at); }
Value tanh_backward(Value g, Value y, Loc at) { return binary_node("tanh_backward", g, y, at); }
Value mse(Value a, Value b, Loc at) { return binary_node("mse", a, b, at); }
Value bce_with_logits(Value l, Value t, Loc at) { return binary_node("bce_with_logits", l, t, at); }
Value kl_normal(Value m, Value v, Loc at) { return binary_node("kl_normal", m, v, at); }

Value operator+(Value a, Operand b) { return add(a, b.value, b.where); }
Value operator-(Value a, Operand b) { return sub(a, b.value, b.where); }
Value operator*(Value a, Operand b) { return mul(a, b.value, b.where); }
Value operator/(Value a, Operand b) { return div(a, b.value, b.where); }
Value operator+(Value a, ScalarOperand b) { return add(a, a.graph().scalar(b.value, b.where), b.where); }
Value operator-(Value a, ScalarOperand b) { return sub(a, a.graph().scalar(b.value, b.where), b.where); }
Value operator*(Value a, ScalarOperand b) { return mul(a, a.graph().scalar(b.value, b.where), b.where); }
Value operator/(Value a, ScalarOperand b) { return div(a, a.graph().scalar(b.value, b.where), b.where); }
Value operator+(ScalarOperand a, Value b) { return add(b.graph().scalar(a.value, a.where), b, a.where); }
Value operator-(ScalarOperand a, Value b) { return sub(b.graph().scalar(a.value, a.where), b, a.where); }
Value operator*(ScalarOperand a, Value b) { return mul(b.graph().scalar(a.value, a.where), b, a.where); }
Value operator/(ScalarOperand a, Value b) { return div(b.graph().scalar(a.value, a.where), b, a.where); }
Value operator-(Operand a) { return neg(a.value, a.where); }

}  // namespace graphrun
