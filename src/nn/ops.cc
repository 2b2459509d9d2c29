// qfx nn: the op registry (see include/qfx/nn/ops.h). Each entry decodes positional OpArgs and calls
// the functional op in qfx::F, so eager code, traced graphs and loaded graphs run the same kernels.
#include "qfx/nn/ops.h"

#include "qfx/nn/functional.h"

namespace qfx {
namespace nn {
namespace {

const char* Kind(const OpArg& a) {
  switch (a.index()) {
    case 0:
      return "None";
    case 1:
      return "a tensor";
    case 2:
      return "an integer";
    case 3:
      return "a number";
    case 4:
      return "a bool";
    case 5:
      return "a list of integers";
    default:
      return "a list of tensors";
  }
}

// Typed access to argument i of op `op` with an error naming both.
struct Args {
  const char* op;
  const std::vector<OpArg>& v;

  template <typename T>
  const T& Get(size_t i, const char* want) const {
    if (i < v.size()) {
      if (const T* x = std::get_if<T>(&v[i])) return *x;
    }
    ThrowInvalid(op, ": argument ", i, " must be ", want, ", got ", i < v.size() ? Kind(v[i]) : "nothing");
  }
  Tensor T(size_t i) const { return Get<Tensor>(i, "a tensor"); }
  Tensor OptT(size_t i) const { return i < v.size() && std::holds_alternative<std::monostate>(v[i]) ? Tensor() : T(i); }
  int64_t I(size_t i) const { return Get<int64_t>(i, "an integer"); }
  bool B(size_t i) const { return Get<bool>(i, "a bool"); }
  double D(size_t i) const {
    if (i < v.size() && std::holds_alternative<int64_t>(v[i])) return static_cast<double>(std::get<int64_t>(v[i]));
    return Get<double>(i, "a number");
  }
  std::vector<int64_t> Ints(size_t i) const { return Get<std::vector<int64_t>>(i, "a list of integers"); }
  bool IsTensor(size_t i) const { return i < v.size() && std::holds_alternative<Tensor>(v[i]); }
};

Tensor RunAdd(const std::vector<OpArg>& v) {
  Args a{"add", v};
  return a.IsTensor(1) ? F::add(a.T(0), a.T(1)) : F::add(a.T(0), static_cast<float>(a.D(1)));
}
Tensor RunMul(const std::vector<OpArg>& v) {
  Args a{"mul", v};
  return a.IsTensor(1) ? F::mul(a.T(0), a.T(1)) : F::mul(a.T(0), static_cast<float>(a.D(1)));
}
Tensor RunCat(const std::vector<OpArg>& v) {
  Args a{"cat", v};
  return F::cat(a.Get<std::vector<Tensor>>(0, "a list of tensors"), a.I(1));
}
Tensor RunConv2d(const std::vector<OpArg>& v) {
  Args a{"conv2d", v};
  F::Conv2dOptions o;
  o.stride = a.Ints(3);
  o.padding = a.Ints(4);
  o.dilation = a.Ints(5);
  o.groups = a.I(6);
  return F::conv2d(a.T(0), a.T(1), a.OptT(2), o);
}
Tensor RunBatchNorm(const std::vector<OpArg>& v) {
  Args a{"batch_norm", v};
  return F::batch_norm(a.T(0), a.OptT(1), a.OptT(2), a.OptT(3), a.OptT(4), a.B(5), a.D(6), a.D(7));
}
Tensor RunMaxPool(const std::vector<OpArg>& v) {
  Args a{"max_pool2d", v};
  F::Pool2dOptions o;
  o.kernel_size = a.Ints(1);
  o.stride = a.Ints(2);
  o.padding = a.Ints(3);
  o.dilation = a.Ints(4);
  o.ceil_mode = a.B(5);
  return F::max_pool2d(a.T(0), o);
}
Tensor RunAvgPool(const std::vector<OpArg>& v) {
  Args a{"avg_pool2d", v};
  F::Pool2dOptions o;
  o.kernel_size = a.Ints(1);
  o.stride = a.Ints(2);
  o.padding = a.Ints(3);
  o.ceil_mode = a.B(4);
  o.count_include_pad = a.B(5);
  return F::avg_pool2d(a.T(0), o);
}

#define QFX_UNARY(fn) [](const std::vector<OpArg>& v) { return F::fn(Args{#fn, v}.T(0)); }

const std::vector<OpSchema>& Registry() {
  static const auto* ops = new std::vector<OpSchema>{
      {OpId::kAdd, "add", false, "_operator.add", 2, 2, RunAdd},
      {OpId::kMul, "mul", false, "_operator.mul", 2, 2, RunMul},
      {OpId::kCat, "cat", false, "torch.cat", 2, 2, RunCat},
      {OpId::kFlatten, "flatten", false, "torch.flatten", 3, 3,
       [](const std::vector<OpArg>& v) {
         Args a{"flatten", v};
         return F::flatten(a.T(0), a.I(1), a.I(2));
       }},
      {OpId::kReshape, "reshape", false, "torch.reshape", 2, 2,
       [](const std::vector<OpArg>& v) {
         Args a{"reshape", v};
         return F::reshape(a.T(0), a.Ints(1));
       }},
      {OpId::kMean, "mean", false, "torch.mean", 3, 3,
       [](const std::vector<OpArg>& v) {
         Args a{"mean", v};
         return F::mean(a.T(0), a.Ints(1), a.B(2));
       }},
      {OpId::kRelu, "relu", false, "torch.nn.functional.relu", 1, 1, QFX_UNARY(relu)},
      {OpId::kRelu6, "relu6", false, "torch.nn.functional.relu6", 1, 1, QFX_UNARY(relu6)},
      {OpId::kHardtanh, "hardtanh", false, "torch.nn.functional.hardtanh", 3, 3,
       [](const std::vector<OpArg>& v) {
         Args a{"hardtanh", v};
         return F::hardtanh(a.T(0), static_cast<float>(a.D(1)), static_cast<float>(a.D(2)));
       }},
      {OpId::kHardswish, "hardswish", false, "torch.nn.functional.hardswish", 1, 1, QFX_UNARY(hardswish)},
      {OpId::kHardsigmoid, "hardsigmoid", false, "torch.nn.functional.hardsigmoid", 1, 1, QFX_UNARY(hardsigmoid)},
      {OpId::kSigmoid, "sigmoid", false, "torch.sigmoid", 1, 1, QFX_UNARY(sigmoid)},
      {OpId::kTanh, "tanh", false, "torch.tanh", 1, 1, QFX_UNARY(tanh)},
      {OpId::kSilu, "silu", false, "torch.nn.functional.silu", 1, 1, QFX_UNARY(silu)},
      {OpId::kSoftmax, "softmax", false, "torch.nn.functional.softmax", 2, 2,
       [](const std::vector<OpArg>& v) {
         Args a{"softmax", v};
         return F::softmax(a.T(0), a.I(1));
       }},
      {OpId::kDropout, "dropout", false, "torch.nn.functional.dropout", 3, 3,
       [](const std::vector<OpArg>& v) {
         Args a{"dropout", v};
         return F::dropout(a.T(0), a.D(1), a.B(2));
       }},
      {OpId::kConv2d, "conv2d", false, "torch.conv2d", 7, 7, RunConv2d},
      {OpId::kLinear, "linear", false, "torch._C._nn.linear", 3, 3,
       [](const std::vector<OpArg>& v) {
         Args a{"linear", v};
         return F::linear(a.T(0), a.T(1), a.OptT(2));
       }},
      {OpId::kBatchNorm, "batch_norm", false, "torch.nn.functional.batch_norm", 8, 8, RunBatchNorm},
      {OpId::kMaxPool2d, "max_pool2d", false, "torch.nn.functional.max_pool2d", 6, 6, RunMaxPool},
      {OpId::kAvgPool2d, "avg_pool2d", false, "torch._C._nn.avg_pool2d", 6, 6, RunAvgPool},
      {OpId::kAdaptiveAvgPool2d, "adaptive_avg_pool2d", false, "torch.nn.functional.adaptive_avg_pool2d", 2, 2,
       [](const std::vector<OpArg>& v) {
         Args a{"adaptive_avg_pool2d", v};
         return F::adaptive_avg_pool2d(a.T(0), a.Ints(1));
       }},
      {OpId::kQuantize, "quantize", false, "torch.quantize_per_tensor", 3, 3,
       [](const std::vector<OpArg>& v) {
         Args a{"quantize", v};
         return F::quantize(a.T(0), a.D(1), a.I(2));
       }},
      {OpId::kDequantize, "dequantize", false, "torch.dequantize", 1, 1, QFX_UNARY(dequantize)},
      {OpId::kQAdd, "q_add", false, "torch.ops.quantized.add", 5, 5,
       [](const std::vector<OpArg>& v) {
         Args a{"q_add", v};
         return F::q_add(a.T(0), a.T(1), a.D(2), a.I(3), a.B(4));
       }},
      {OpId::kQMul, "q_mul", false, "torch.ops.quantized.mul", 4, 4,
       [](const std::vector<OpArg>& v) {
         Args a{"q_mul", v};
         return F::q_mul(a.T(0), a.T(1), a.D(2), a.I(3));
       }},
      {OpId::kQCat, "q_cat", false, "torch.ops.quantized.cat", 4, 4,
       [](const std::vector<OpArg>& v) {
         Args a{"q_cat", v};
         return F::q_cat(a.Get<std::vector<Tensor>>(0, "a list of tensors"), a.I(1), a.D(2), a.I(3));
       }},
      {OpId::kQUnary, "q_unary", false, "torch.ops.quantized.unary", 4, 4,
       [](const std::vector<OpArg>& v) {
         Args a{"q_unary", v};
         return F::q_unary(a.T(0), a.I(1), a.D(2), a.I(3));
       }},
      {OpId::kMethodReshape, "reshape", true, "reshape", 2, 2,
       [](const std::vector<OpArg>& v) {
         Args a{"reshape", v};
         return a.T(0).Reshape(a.Ints(1));
       }},
      {OpId::kMethodView, "view", true, "view", 2, 2,
       [](const std::vector<OpArg>& v) {
         Args a{"view", v};
         return a.T(0).View(a.Ints(1));
       }},
      {OpId::kMethodFlatten, "flatten", true, "flatten", 3, 3,
       [](const std::vector<OpArg>& v) {
         Args a{"flatten", v};
         return a.T(0).Flatten(a.I(1), a.I(2));
       }},
  };
  return *ops;
}

}  // namespace

const std::vector<OpSchema>& AllOps() { return Registry(); }

const OpSchema& GetOpSchema(OpId id) {
  const auto& ops = Registry();
  const size_t i = static_cast<size_t>(id);
  if (i >= ops.size() || ops[i].id != id) {
    throw Error(absl::InternalError(absl::StrCat("op registry out of order at id ", i)));
  }
  return ops[i];
}

const OpSchema* FindOp(absl::string_view name, bool is_method) {
  for (const OpSchema& op : Registry()) {
    if (op.name == name && op.is_method == is_method) return &op;
  }
  return nullptr;
}

Tensor RunOp(OpId id, const std::vector<OpArg>& args) {
  const OpSchema& op = GetOpSchema(id);
  const int n = static_cast<int>(args.size());
  if (n < op.min_args || n > op.max_args) {
    ThrowInvalid(op.name, ": takes ", op.min_args, op.max_args == op.min_args ? "" : absl::StrCat("..", op.max_args),
                 " arguments, got ", n);
  }
  return op.run(args);
}

}  // namespace nn
}  // namespace qfx
