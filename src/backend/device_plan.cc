// qfx backend: a lowered int8 graph as device steps for one input shape (see qfx/backend/device_plan.h).
#include "qfx/backend/device_plan.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "qfx/nn/functional.h"
#include "qfx/nn/geometry.h"
#include "qfx/nn/modules.h"
#include "qfx/nn/ops.h"
#include "qfx/quant/quantized_modules.h"

namespace qfx {
namespace backend {
namespace {

namespace dev = kernels::device;

// A quint8 value of the graph: its logical shape (NCHW or [N, F]), qparams, and where its bytes live.
struct Value {
  Shape shape;
  QuantInfo q;
  int id = -1;  // DevicePlan::values index; aliases (reshapes that keep the bytes) share one
};

// Elementwise ops the plan turns into tables (call_function ops and module types), the CPU computing them.
bool IsElementwiseOp(OpId op) {
  switch (op) {
    case OpId::kRelu:
    case OpId::kRelu6:
    case OpId::kHardtanh:
    case OpId::kHardswish:
    case OpId::kHardsigmoid:
    case OpId::kSigmoid:
    case OpId::kTanh:
    case OpId::kLeakyRelu:
    case OpId::kSilu:
    case OpId::kGelu:
    case OpId::kQUnary:
      return true;
    default:
      return false;
  }
}
bool IsElementwiseModule(const std::string& type) {
  static const char* const kTypes[] = {"ReLU",    "ReLU6", "Hardtanh",  "Hardswish", "Hardsigmoid",
                                       "Sigmoid", "Tanh",  "LeakyReLU", "SiLU",      "GELU"};
  return std::find(std::begin(kTypes), std::end(kTypes), type) != std::end(kTypes);
}

std::pair<int64_t, int64_t> Pair(const std::vector<int64_t>& v, int64_t dflt) {
  if (v.empty()) return {dflt, dflt};
  return v.size() == 1 ? std::make_pair(v[0], v[0]) : std::make_pair(v[0], v[1]);
}

class Planner {
 public:
  Planner(fx::GraphModule& model, const DeviceWeights& weights, DevicePlan& plan)
      : model_(model), weights_(weights), plan_(plan) {}

  absl::Status Run() {
    for (fx::Node* n : model_.graph()) {
      node_ = n;
      const absl::Status thrown = CatchErrors([&] { Visit(*n); });
      if (!thrown.ok()) Error(std::string(thrown.message()));
      if (!status_.ok()) return status_;
    }
    if (!done_) return Fail("the graph has no output");
    return absl::OkStatus();
  }

 private:
  // Records the first error (a status, not an exception, so callers see the node).
  void Error(const std::string& rule) {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(absl::StrCat("device plan: node %", node_->name(), " (",
                                                        fx::OpcodeName(node_->op()), " ", node_->target_string(),
                                                        "): ", rule));
    }
  }
  absl::Status Fail(const std::string& rule) {
    Error(rule);
    return status_;
  }

  void Visit(const fx::Node& n) {
    switch (n.op()) {
      case fx::Opcode::kPlaceholder:
        return Placeholder(n);
      case fx::Opcode::kGetAttr:
        return Error("float parameters are not supported by the device backend: the model must be fully int8");
      case fx::Opcode::kCallModule:
        return CallModule(n);
      case fx::Opcode::kCallFunction:
      case fx::Opcode::kCallMethod:
        return CallOp(n);
      case fx::Opcode::kOutput:
        return Output(n);
    }
  }

  // --- arguments --------------------------------------------------------------------------------------
  const fx::Node* NodeArg(const fx::Node& n, size_t i) {
    if (i < n.args().size()) {
      if (const auto* p = std::get_if<fx::Node*>(&n.args()[i])) return *p;
    }
    Error(absl::StrCat("argument ", i, " must be a value"));
    return nullptr;
  }
  const Value* Input(const fx::Node& n, size_t i) {
    const fx::Node* a = NodeArg(n, i);
    if (a == nullptr) return nullptr;
    auto it = values_.find(a);
    if (it == values_.end()) {
      Error(absl::StrCat("its input %", a->name(), " is not a quint8 value on the device (float ops are not",
                         " supported there: quantize the model fully, or run it on the CPU)"));
      return nullptr;
    }
    return &it->second;
  }
  template <typename T>
  T Const(const fx::Node& n, size_t i, T dflt = T()) {
    if (i >= n.args().size()) return dflt;
    const fx::Argument& a = n.args()[i];
    if constexpr (std::is_same_v<T, double>) {
      if (const auto* v = std::get_if<int64_t>(&a)) return static_cast<double>(*v);
    }
    if (const auto* v = std::get_if<T>(&a)) return *v;
    if (std::holds_alternative<std::monostate>(a)) return dflt;
    Error(absl::StrCat("argument ", i, " has an unexpected type"));
    return dflt;
  }

  // --- values ---------------------------------------------------------------------------------------------
  std::optional<dev::Act> ActOf(const Shape& s) {
    for (int64_t d : s) {
      if (d <= 0 || d > std::numeric_limits<int32_t>::max()) {
        Error(absl::StrCat("shape ", ShapeToString(s), " is empty or too large for the device backend"));
        return std::nullopt;
      }
    }
    if (s.size() == 4) {
      return dev::MakeAct(static_cast<int32_t>(s[0]), static_cast<int32_t>(s[2]), static_cast<int32_t>(s[3]),
                          static_cast<int32_t>(s[1]));
    }
    if (s.size() == 2) return dev::MakeAct(static_cast<int32_t>(s[0]), 1, 1, static_cast<int32_t>(s[1]));
    Error(absl::StrCat("value of shape ", ShapeToString(s), ": the device backend takes NCHW or [N, F] values"));
    return std::nullopt;
  }
  // A new value for node n (one that steps write).
  const Value* Define(const fx::Node& n, const Shape& shape, QuantInfo q) {
    const std::optional<dev::Act> act = ActOf(shape);
    if (!act) return nullptr;
    if (act->Bytes() > (int64_t{1} << 36)) {
      Error(absl::StrCat("activation ", ShapeToString(shape), " is larger than 64 GiB"));
      return nullptr;
    }
    Value v{shape, q, static_cast<int>(plan_.values.size())};
    plan_.values.push_back(DeviceValue{n.name(), *act, 0});
    return &(values_[&n] = v);
  }
  // n's value is `of`'s bytes under another logical shape with the same layout.
  void Alias(const fx::Node& n, const Value& of, const Shape& shape) {
    Value v = of;
    v.shape = shape;
    values_[&n] = v;
  }
  const dev::Act& ActOfValue(const Value& v) const { return plan_.values[v.id].act; }

  Step& AddStep(StepKind kind, const fx::Node& n, std::vector<int> inputs, int output) {
    Step s;
    s.kind = kind;
    s.node = n.name();
    s.inputs = std::move(inputs);
    s.output = output;
    if (output >= 0 && !producer_of_.count(output)) producer_of_[output] = static_cast<int>(plan_.steps.size());
    plan_.steps.push_back(s);
    return plan_.steps.back();
  }

  // --- nodes ----------------------------------------------------------------------------------------------
  void Placeholder(const fx::Node& n) {
    if (input_ != nullptr) return Error("the device backend runs models with one input");
    input_ = &n;
  }

  void CallModule(const fx::Node& n) {
    nn::Module* m = model_.submodule(n.target().path);
    if (m == nullptr) return Error("no such submodule");
    if (auto* q = dynamic_cast<quant::QuantizedWeighted*>(m)) return Weighted(n, *q);
    const Value* x = Input(n, 0);
    if (x == nullptr) return;
    const std::string type = m->type_name();
    if (auto* p = dynamic_cast<nn::MaxPool2d*>(m)) return Pool(n, *x, StepKind::kMaxPool, p->options, {});
    if (auto* p = dynamic_cast<nn::AvgPool2d*>(m)) return Pool(n, *x, StepKind::kAvgPool, p->options, {});
    if (auto* p = dynamic_cast<nn::AdaptiveAvgPool2d*>(m)) return Pool(n, *x, StepKind::kAvgPool, {}, p->output_size);
    if (auto* f = dynamic_cast<nn::Flatten*>(m)) return FlattenTo(n, *x, f->start_dim, f->end_dim);
    if (type == "Identity" || type == "Dropout") return Alias(n, *x, x->shape);
    if (IsElementwiseModule(type)) return Table(n, *x, [&](const Tensor& t) { return m->forward(t); });
    Error(absl::StrCat("module type ", type, " has no device kernel"));
  }

  void CallOp(const fx::Node& n) {
    const OpId op = n.target().op;
    if (op == OpId::kQuantize) return Quantize(n);
    if (op == OpId::kDequantize) return Dequantize(n);
    if (op == OpId::kQAdd || op == OpId::kQMul) return Binary(n, op == OpId::kQMul);
    if (op == OpId::kQCat) return Cat(n);
    if (IsReshapeOp(op) && dequantized_.count(NodeArg(n, 0))) return FloatReshape(n);
    const Value* x = Input(n, 0);
    if (x != nullptr) CallOpOn(n, *x);
  }

  // An op other than the ends and the binary ops, on its quint8 input x.
  void CallOpOn(const fx::Node& n, const Value& x) {
    const OpId op = n.target().op;
    switch (op) {
      case OpId::kMaxPool2d:
      case OpId::kAvgPool2d: {
        F::Pool2dOptions o;
        o.kernel_size = Const<std::vector<int64_t>>(n, 1);
        o.stride = Const<std::vector<int64_t>>(n, 2);
        o.padding = Const<std::vector<int64_t>>(n, 3, {0, 0});
        if (op == OpId::kMaxPool2d) {
          o.dilation = Const<std::vector<int64_t>>(n, 4, {1, 1});
          o.ceil_mode = Const<bool>(n, 5);
        } else {
          o.ceil_mode = Const<bool>(n, 4);
          o.count_include_pad = Const<bool>(n, 5, true);
        }
        return Pool(n, x, op == OpId::kMaxPool2d ? StepKind::kMaxPool : StepKind::kAvgPool, o, {});
      }
      case OpId::kAdaptiveAvgPool2d:
        return Pool(n, x, StepKind::kAvgPool, {}, Const<std::vector<int64_t>>(n, 1));
      case OpId::kFlatten:
      case OpId::kMethodFlatten:
        return FlattenTo(n, x, Const<int64_t>(n, 1, 0), Const<int64_t>(n, 2, -1));
      case OpId::kReshape:
      case OpId::kMethodReshape:
      case OpId::kMethodView:
        return Reshape(n, x, Const<std::vector<int64_t>>(n, 1));
      case OpId::kDropout:
        if (Const<bool>(n, 2)) return Error("dropout in training mode");
        return Alias(n, x, x.shape);
      default:
        break;
    }
    if (IsElementwiseOp(op)) {
      return Table(n, x, [&](const Tensor& t) {
        std::vector<OpArg> args = {t};
        for (size_t i = 1; i < n.args().size(); ++i) args.push_back(ConstantAs<OpArg>(n.args()[i]));
        return nn::RunOp(op, args);
      });
    }
    Error(absl::StrCat("op ", nn::GetOpSchema(op).name, " has no device kernel"));
  }

  void Quantize(const fx::Node& n) {
    const fx::Node* a = NodeArg(n, 0);
    if (a == nullptr) return;
    auto island = dequantized_.find(a);
    if (a != input_ && island == dequantized_.end()) {
      return Error("the device backend quantizes only the model's input and reshapes of dequantized values");
    }
    const double scale = Const<double>(n, 1);
    const int64_t zp = Const<int64_t>(n, 2);
    if (!kernels::ScaleInRange(static_cast<float>(scale)) || zp < 0 || zp > 255) {
      return Error(absl::StrCat("qparams (", scale, ", ", zp, ") are not quint8 qparams"));
    }
    const QuantInfo q{static_cast<float>(scale), static_cast<int32_t>(zp)};
    if (island != dequantized_.end()) return Requantize(n, island->second, q);
    const Value* y = Define(n, plan_.input_shape, q);
    if (y == nullptr) return;
    Step& s = AddStep(StepKind::kQuantize, n, {}, y->id);
    s.quantize.y = ActOfValue(*y);
    s.quantize.inv_scale = 1.0f / q.scale;
    s.quantize.zero_point = q.zero_point;
  }

  void Dequantize(const fx::Node& n) {
    const Value* x = Input(n, 0);
    if (x == nullptr) return;
    if (FeedsOnlyReshapesToQuantize(n)) {
      dequantized_[&n] = *x;
      return;
    }
    for (const fx::Node* u : n.users()) {
      if (u->op() == fx::Opcode::kOutput) continue;
      return Error(absl::StrCat("its user %", u->name(), " (", fx::OpcodeName(u->op()), " ", u->target_string(),
                                ") runs in float, and the device backend runs int8 ops only: quantize that op too,",
                                " or run the model on the CPU"));
    }
    Finish(n, *x, /*to_float=*/true);
  }

  // Float reshapes between a dequantize and quantizes (PyTorch leaves the flatten method float: RegNet's
  // x.flatten(1) before its int8 fc) run on the quint8 bytes; each quantize becomes a requantizing copy,
  // quantize(dequantize(x)) by THE RULES, so the result equals the CPU's float detour byte for byte.
  static bool IsReshapeOp(OpId op) {
    return op == OpId::kFlatten || op == OpId::kMethodFlatten || op == OpId::kReshape || op == OpId::kMethodReshape ||
           op == OpId::kMethodView;
  }
  // Whether every path from n's users ends in a quantize through reshapes only (a loop, not recursion: a
  // graph file may chain any number of reshapes).
  static bool FeedsOnlyReshapesToQuantize(const fx::Node& n) {
    std::vector<const fx::Node*> pending = {&n};
    std::set<const fx::Node*> seen;
    while (!pending.empty()) {
      const fx::Node* v = pending.back();
      pending.pop_back();
      if (v->users().empty()) return false;
      for (const fx::Node* u : v->users()) {
        const bool op = u->op() == fx::Opcode::kCallFunction || u->op() == fx::Opcode::kCallMethod;
        if (!op) return false;
        if (u->target().op == OpId::kQuantize) continue;
        if (!IsReshapeOp(u->target().op)) return false;
        if (seen.insert(u).second) pending.push_back(u);
      }
    }
    return true;
  }
  void FloatReshape(const fx::Node& n) {
    const Value x = dequantized_.at(NodeArg(n, 0));
    CallOpOn(n, x);  // defines n's quint8 value (an alias or a flatten step)
    auto it = values_.find(&n);
    if (it == values_.end()) return;
    dequantized_[&n] = it->second;
    values_.erase(it);  // n itself is a float value: only quantize may read it
  }
  void Requantize(const fx::Node& n, const Value& x, QuantInfo q) {
    const Value* y = Define(n, x.shape, q);
    if (y != nullptr) RequantCopy(n, x, *y, 0);
  }

  void Output(const fx::Node& n) {
    if (done_) return;
    const fx::Node* a = NodeArg(n, 0);
    if (a == nullptr) return;
    const Value* x = Input(n, 0);
    if (x != nullptr) Finish(n, *x, /*to_float=*/false);
  }

  void Finish(const fx::Node& n, const Value& x, bool to_float) {
    Step& s = AddStep(StepKind::kDequantize, n, {x.id}, -1);
    s.dequantize.x = ActOfValue(x);
    s.dequantize.to_float = to_float;
    s.dequantize.scale = x.q.scale;
    s.dequantize.zero_point = x.q.zero_point;
    plan_.output_shape = x.shape;
    plan_.output_float = to_float;
    plan_.output_qparams = x.q;
    done_ = true;
  }

  void Weighted(const fx::Node& n, const quant::QuantizedWeighted& m) {
    const Value* x = Input(n, 0);
    if (x == nullptr) return;
    auto it = weights_.layer_of.find(n.name());
    if (it == weights_.layer_of.end()) return Error("its layer is missing from the device weights");
    const DeviceLayer& l = weights_.layers[it->second];
    if (x->q.scale != l.x_scale || x->q.zero_point != l.x_zero_point) {
      return Error(absl::StrCat("input qparams (", x->q.scale, ", ", x->q.zero_point, ") differ from the (", l.x_scale,
                                ", ", l.x_zero_point, ") the layer was converted for"));
    }
    const bool conv = m.layer().is_conv;
    if ((conv && x->shape.size() != 4) || (!conv && x->shape.size() != 2) || x->shape[1] != l.in_channels) {
      return Error(
          absl::StrCat("input ", ShapeToString(x->shape), " must be [N, ", l.in_channels, conv ? ", H, W]" : "]"));
    }
    Shape out = {x->shape[0], l.out_channels};
    if (conv) {
      const int64_t oh = (x->shape[2] + 2 * l.ph - l.dh * (l.kh - 1) - 1) / l.sh + 1;
      const int64_t ow = (x->shape[3] + 2 * l.pw - l.dw * (l.kw - 1) - 1) / l.sw + 1;
      if (oh <= 0 || ow <= 0)
        return Error(absl::StrCat("input ", ShapeToString(x->shape), " is smaller than the kernel"));
      out = {x->shape[0], l.out_channels, oh, ow};
    }
    const Value* y = Define(n, out, QuantInfo{l.y_scale, l.y_zero_point});
    if (y == nullptr) return;
    Step& s = AddStep(StepKind::kConv, n, {x->id}, y->id);
    s.weights = it->second;
    s.mma = UsesTensorCores(l);
    dev::ConvParams& p = s.conv;
    p.x = ActOfValue(*x);
    p.y = ActOfValue(*y);
    p.kh = l.kh, p.kw = l.kw, p.sh = l.sh, p.sw = l.sw, p.ph = l.ph, p.pw = l.pw, p.dh = l.dh, p.dw = l.dw;
    p.groups = l.groups;
    p.icg = l.in_channels / l.groups;
    p.icgp = (p.icg + 3) / 4 * 4;  // the input bytes a tap reads; the weight's extent is l.weight_icp
    p.x_zero_point = l.x_zero_point;
    p.y_zero_point = l.y_zero_point;
    p.lo = l.lo;
    p.hi = l.hi;
  }

  // Max and average pools (opt), or adaptive average pooling (output_size non-empty).
  void Pool(const fx::Node& n, const Value& x, StepKind kind, const F::Pool2dOptions& opt,
            const std::vector<int64_t>& output_size) {
    if (x.shape.size() != 4) return Error(absl::StrCat("input ", ShapeToString(x.shape), " must be [N, C, H, W]"));
    dev::PoolParams p;
    Shape out = x.shape;
    if (!output_size.empty()) {
      const auto [oh, ow] = Pair(output_size, 1);
      if (oh <= 0 || ow <= 0) return Error("output_size must be positive");
      p.adaptive = true;
      out[2] = oh;
      out[3] = ow;
    } else {
      const auto [kh, kw] = Pair(opt.kernel_size, 1);
      const auto [sh, sw] = Pair(opt.stride, 0);
      const auto [ph, pw] = Pair(opt.padding, 0);
      const auto [dh, dw] = Pair(opt.dilation, 1);
      const int64_t ssh = sh == 0 ? kh : sh, ssw = sw == 0 ? kw : sw;
      if (kh <= 0 || kw <= 0 || ssh <= 0 || ssw <= 0 || dh <= 0 || dw <= 0 || ph < 0 || pw < 0 || 2 * ph > kh ||
          2 * pw > kw || kh > 4096 || kw > 4096) {
        return Error("kernel_size, stride and dilation must be positive and padding at most half the kernel");
      }
      if (kind == StepKind::kAvgPool && (dh != 1 || dw != 1)) return Error("avg_pool2d has no dilation");
      out[2] = nn::PoolOutSize(x.shape[2], kh, ssh, ph, dh, opt.ceil_mode);
      out[3] = nn::PoolOutSize(x.shape[3], kw, ssw, pw, dw, opt.ceil_mode);
      if (out[2] <= 0 || out[3] <= 0) return Error(absl::StrCat("input ", ShapeToString(x.shape), " is too small"));
      p.kh = static_cast<int32_t>(kh), p.kw = static_cast<int32_t>(kw);
      p.sh = static_cast<int32_t>(ssh), p.sw = static_cast<int32_t>(ssw);
      p.ph = static_cast<int32_t>(ph), p.pw = static_cast<int32_t>(pw);
      p.dh = static_cast<int32_t>(dh), p.dw = static_cast<int32_t>(dw);
      p.count_include_pad = opt.count_include_pad;
    }
    const Value* y = Define(n, out, x.q);
    if (y == nullptr) return;
    Step& s = AddStep(kind, n, {x.id}, y->id);
    p.x = ActOfValue(x);
    p.y = ActOfValue(*y);
    p.scale = x.q.scale;
    p.inv_scale = 1.0f / x.q.scale;
    p.zero_point = x.q.zero_point;
    s.pool = p;
  }

  void Binary(const fx::Node& n, bool mul) {
    const Value* a = Input(n, 0);
    const Value* b = Input(n, 1);
    if (a == nullptr || b == nullptr) return;
    if (a->shape.size() != b->shape.size()) return Error("inputs of different ranks do not broadcast on the device");
    Shape out = a->shape;
    for (size_t d = 0; d < out.size(); ++d) {
      if (a->shape[d] != b->shape[d] && a->shape[d] != 1 && b->shape[d] != 1) {
        return Error(
            absl::StrCat("shapes ", ShapeToString(a->shape), " and ", ShapeToString(b->shape), " do not broadcast"));
      }
      out[d] = std::max(a->shape[d], b->shape[d]);
    }
    const double scale = Const<double>(n, 2);
    const int64_t zp = Const<int64_t>(n, 3);
    const Value* y = Define(n, out, QuantInfo{static_cast<float>(scale), static_cast<int32_t>(zp)});
    if (y == nullptr) return;
    if (!mul && FuseIntoConv(n, *a, *b, *y)) return;
    Step& s = AddStep(StepKind::kBinary, n, {a->id, b->id}, y->id);
    dev::BinaryParams& p = s.binary;
    p.a = ActOfValue(*a);
    p.b = ActOfValue(*b);
    p.y = ActOfValue(*y);
    p.mul = mul;
    p.relu = !mul && Const<bool>(n, 4);
    p.a_scale = a->q.scale, p.a_zero_point = a->q.zero_point;
    p.b_scale = b->q.scale, p.b_zero_point = b->q.zero_point;
    p.inv_y_scale = 1.0f / y->q.scale;
    p.y_zero_point = y->q.zero_point;
  }

  // q_add(a, b) as the epilogue of the convolution that produced one operand, when that conv's output has
  // no other use, the shapes are equal, and the other operand exists before the conv runs (the later of
  // two convs takes it). The conv's own output is then never stored.
  bool FuseIntoConv(const fx::Node& n, const Value& a, const Value& b, const Value& y) {
    if (a.shape != b.shape || a.id == b.id) return false;
    auto fusable = [&](size_t arg, const Value& v) -> int {
      const fx::Node* producer = NodeArg(n, arg);
      auto it = producer_of_.find(v.id);
      if (producer == nullptr || producer->users().size() != 1 || it == producer_of_.end()) return -1;
      const Step& s = plan_.steps[it->second];
      return s.kind == StepKind::kConv && !s.conv.add.enabled ? it->second : -1;
    };
    const int sa = fusable(0, a), sb = fusable(1, b);
    const bool into_a = sa >= 0 && sa > StepOf(b.id);
    const bool into_b = !into_a && sb >= 0 && sb > StepOf(a.id);
    if (!into_a && !into_b) return false;
    const Value& conv = into_a ? a : b;
    const Value& residual = into_a ? b : a;
    Step& s = plan_.steps[into_a ? sa : sb];
    s.node = absl::StrCat(s.node, "+", n.name());
    s.inputs.push_back(residual.id);
    s.output = y.id;
    s.conv.y = ActOfValue(y);
    kernels::device::ResidualAdd& add = s.conv.add;
    add.enabled = true;
    add.relu = Const<bool>(n, 4);
    add.conv_scale = conv.q.scale, add.conv_zero_point = conv.q.zero_point;
    add.residual_scale = residual.q.scale, add.residual_zero_point = residual.q.zero_point;
    add.inv_y_scale = 1.0f / y.q.scale, add.y_zero_point = y.q.zero_point;
    producer_of_[y.id] = into_a ? sa : sb;
    return true;
  }
  // The step that writes value v (-1: the plan's input, or none yet).
  int StepOf(int v) const {
    auto it = producer_of_.find(v);
    return it == producer_of_.end() ? -1 : it->second;
  }

  void Cat(const fx::Node& n) {
    if (n.args().empty() || !std::holds_alternative<std::vector<fx::Node*>>(n.args()[0])) {
      return Error("argument 0 must be a list of values");
    }
    std::vector<const Value*> xs;
    for (const fx::Node* a : std::get<std::vector<fx::Node*>>(n.args()[0])) {
      auto it = values_.find(a);
      if (it == values_.end()) return Error(absl::StrCat("input %", a->name(), " is not a quint8 value on the device"));
      xs.push_back(&it->second);
    }
    if (xs.empty()) return Error("q_cat needs at least one input");
    const int64_t rank = static_cast<int64_t>(xs[0]->shape.size());
    int64_t dim = Const<int64_t>(n, 1);
    if (dim < 0) dim += rank;
    if (dim != 1) return Error("the device backend concatenates along channels (dim 1) only");
    Shape base = xs[0]->shape, out = base;
    base[1] = out[1] = 0;
    for (const Value* x : xs) {
      Shape s = x->shape;
      s[1] = 0;
      if (s != base) return Error("inputs differ in a dimension other than the channels");
      out[1] += x->shape[1];
    }
    const QuantInfo q{static_cast<float>(Const<double>(n, 2)), static_cast<int32_t>(Const<int64_t>(n, 3))};
    const Value* y = Define(n, out, q);
    if (y == nullptr) return;
    int32_t offset = 0;
    for (const Value* x : xs) {
      RequantCopy(n, *x, *y, offset);
      offset += ActOfValue(*x).c;
    }
  }

  // y[..., offset + c] = quantize(dequantize(x[..., c])) in y's qparams: q_cat's inputs, requantizations.
  void RequantCopy(const fx::Node& n, const Value& x, const Value& y, int32_t channel_offset) {
    Step& s = AddStep(StepKind::kRequantCopy, n, {x.id}, y.id);
    dev::RequantCopyParams& p = s.copy;
    p.x = ActOfValue(x);
    p.y = ActOfValue(y);
    p.channel_offset = channel_offset;
    p.x_scale = x.q.scale;
    p.x_zero_point = x.q.zero_point;
    p.inv_y_scale = 1.0f / y.q.scale;
    p.y_zero_point = y.q.zero_point;
  }

  // An elementwise op as a table: `fn` (the CPU op) applied to the 256 values of x's qparams.
  template <typename Fn>
  void Table(const fx::Node& n, const Value& x, Fn fn) {
    Tensor in = Tensor::Quantized({256}, DType::kU8, x.q);
    std::iota(in.data<uint8_t>(), in.data<uint8_t>() + 256, 0);
    const Tensor out = fn(in);
    if (!out.is_quantized() || out.dtype() != DType::kU8 || out.numel() != 256) {
      return Error("the op does not map quint8 values to quint8 values elementwise");
    }
    std::array<uint8_t, 256> table;
    std::copy(out.data<uint8_t>(), out.data<uint8_t>() + 256, table.begin());
    const Value* y = Define(n, x.shape, out.quant());
    if (y == nullptr) return;
    Step& s = AddStep(StepKind::kTable, n, {x.id}, y->id);
    s.weights = static_cast<int>(plan_.tables.size());
    plan_.tables.push_back(table);
  }

  void FlattenTo(const fx::Node& n, const Value& x, int64_t start, int64_t end) {
    const int64_t rank = static_cast<int64_t>(x.shape.size());
    if (start < 0) start += rank;
    if (end < 0) end += rank;
    if (start != 1 || end != rank - 1) return Error("the device backend flattens dims 1.. only");
    Reshape(n, x, {x.shape[0], -1});
  }

  void Reshape(const fx::Node& n, const Value& x, std::vector<int64_t> shape) {
    const int64_t numel = NumElements(x.shape);
    int64_t known = 1, infer = -1;
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] == -1 && infer < 0) {
        infer = static_cast<int64_t>(d);
      } else if (shape[d] <= 0) {
        return Error(absl::StrCat("reshape to ", ShapeToString(shape), " is not supported"));
      } else {
        known *= shape[d];
      }
    }
    if (infer >= 0) shape[infer] = known > 0 ? numel / known : 0;
    if (NumElements(shape) != numel) {
      return Error(absl::StrCat("cannot reshape ", ShapeToString(x.shape), " to ", ShapeToString(shape)));
    }
    if (shape == x.shape) return Alias(n, x, shape);
    const bool to_rows = shape.size() == 2 && shape[0] == x.shape[0];
    if (!to_rows) {
      return Error(absl::StrCat("reshape of ", ShapeToString(x.shape), " to ", ShapeToString(shape),
                                ": the device backend reshapes to [N, features] only"));
    }
    if (x.shape.size() == 4 && x.shape[2] == 1 && x.shape[3] == 1) return Alias(n, x, shape);  // same bytes
    if (x.shape.size() != 4) return Error("only NCHW values flatten on the device");
    const Value* y = Define(n, shape, x.q);
    if (y == nullptr) return;
    Step& s = AddStep(StepKind::kFlatten, n, {x.id}, y->id);
    s.flatten.x = ActOfValue(x);
    s.flatten.y = ActOfValue(*y);
  }

  fx::GraphModule& model_;
  const DeviceWeights& weights_;
  DevicePlan& plan_;
  const fx::Node* node_ = nullptr;
  const fx::Node* input_ = nullptr;
  std::map<const fx::Node*, Value> values_;
  std::map<const fx::Node*, Value> dequantized_;  // float reshape islands: the quint8 value each node views
  std::map<int, int> producer_of_;                // value id -> the step that writes it first
  absl::Status status_;
  bool done_ = false;
};

// Places every value in the arena: values live from the step that first writes them to the last step
// that reads them; greedily, largest first, at the lowest 256-byte aligned offset that no overlapping
// live value holds.
void PlaceValues(DevicePlan& plan) {
  const int nv = static_cast<int>(plan.values.size());
  std::vector<int> first(nv, -1), last(nv, -1);
  for (int s = 0; s < static_cast<int>(plan.steps.size()); ++s) {
    const Step& st = plan.steps[s];
    for (int v : st.inputs) last[v] = std::max(last[v], s);
    if (st.output >= 0) {
      if (first[st.output] < 0) first[st.output] = s;
      last[st.output] = std::max(last[st.output], s);
    }
  }
  auto bytes = [&](int v) { return (plan.values[v].act.Bytes() + 255) / 256 * 256; };
  std::vector<int> order(nv);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return bytes(a) > bytes(b); });
  std::vector<int> placed;
  plan.arena_bytes = plan.unshared_bytes = 0;
  for (int v : order) {
    if (first[v] < 0) continue;  // never written: a conv output whose q_add was fused into it
    plan.unshared_bytes += bytes(v);
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (int u : placed) {
      if (first[u] <= last[v] && first[v] <= last[u]) busy.push_back({plan.values[u].offset, bytes(u)});
    }
    std::sort(busy.begin(), busy.end());
    int64_t at = 0;
    for (const auto& [off, len] : busy) {
      if (at + bytes(v) <= off) break;
      at = std::max(at, off + len);
    }
    plan.values[v].offset = at;
    plan.arena_bytes = std::max(plan.arena_bytes, at + bytes(v));
    placed.push_back(v);
  }
}

}  // namespace

const char* StepKindName(StepKind kind) {
  switch (kind) {
    case StepKind::kQuantize:
      return "quantize";
    case StepKind::kDequantize:
      return "dequantize";
    case StepKind::kConv:
      return "conv";
    case StepKind::kMaxPool:
      return "max_pool";
    case StepKind::kAvgPool:
      return "avg_pool";
    case StepKind::kBinary:
      return "binary";
    case StepKind::kRequantCopy:
      return "requant_copy";
    case StepKind::kTable:
      return "table";
    case StepKind::kFlatten:
      return "flatten";
  }
  return "?";
}

absl::StatusOr<DevicePlan> BuildDevicePlan(fx::GraphModule& model, const Shape& shape, const DeviceWeights& weights) {
  if (shape.size() != 4 && shape.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("device plan: input shape ", ShapeToString(shape), " must be NCHW or [N, F]"));
  }
  DevicePlan plan;
  plan.input_shape = shape;
  Planner planner(model, weights, plan);
  QFX_RETURN_IF_ERROR(planner.Run());
  PlaceValues(plan);
  return plan;
}

std::string FormatPlan(const DevicePlan& plan) {
  std::string out =
      absl::StrCat("device plan for ", ShapeToString(plan.input_shape), ": ", plan.steps.size(), " steps, arena ",
                   plan.arena_bytes, " bytes (", plan.unshared_bytes, " without sharing)\n");
  for (const Step& s : plan.steps) {
    absl::StrAppend(&out, "  ", StepKindName(s.kind), s.mma ? " (tensor cores)" : "", " %", s.node);
    if (s.output >= 0) {
      const DeviceValue& v = plan.values[s.output];
      absl::StrAppend(&out, " -> ", v.act.n, "x", v.act.h, "x", v.act.w, "x", v.act.c, " (cp ", v.act.cp, ") @",
                      v.offset);
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace backend
}  // namespace qfx
