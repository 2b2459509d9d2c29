// qfx train: GraphForward, a GraphModule's forward on the tape (see include/qfx/train/graph_tape.h).
#include "qfx/train/graph_tape.h"

#include <cmath>
#include <unordered_map>
#include <unordered_set>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "qfx/nn/modules.h"
#include "qfx/nn/ops.h"
#include "qfx/quant/observer.h"
#include "qfx/quant/qat_modules.h"
#include "qfx/train/ops.h"

namespace qfx {
namespace train {
namespace {

// A node's value during a taped forward: a Var where the graph has a tensor, else the constant.
using ag::Value;

// The ops whose backward is a case of Runner::Function rather than their registration.
bool HasTapeCase(OpId op) {
  // stateful: the generator, the running statistics
  return op == OpId::kDropout || op == OpId::kStochasticDepth || op == OpId::kBatchNorm;
}

// An op has a backward when its registration gives one (a derivative or a vjp) or Runner::Function has it.
bool HasBackward(OpId op) {
  if (op == OpId::kNumOps) return false;
  const nn::OpSchema& s = nn::GetOpSchema(op);
  return s.derivative != nullptr || s.vjp != nullptr || HasTapeCase(op);
}

// Modules trained by a case of Runner::Module rather than through the op their kind computes.
bool IsSpecialModule(nn::Module& m) {
  return dynamic_cast<quant::QatConv2d*>(&m) || dynamic_cast<quant::QatLinear*>(&m) ||
         dynamic_cast<quant::FakeQuantize*>(&m) || dynamic_cast<quant::Observer*>(&m) ||
         dynamic_cast<nn::BatchNormBase*>(&m) || dynamic_cast<nn::Identity*>(&m);
}

// Why `m` has no backward, or "" when it has one (recursing into Sequential / fused modules).
std::string Unsupported(nn::Module& m) {
  if (IsSpecialModule(m) || HasBackward(nn::ModuleOp(m))) return "";
  if (auto* seq = dynamic_cast<nn::Sequential*>(&m)) {
    for (const auto& [name, child] : seq->named_children()) {
      const std::string why = Unsupported(*child);
      if (!why.empty()) return why;
    }
    return "";
  }
  return absl::StrCat("module type ", m.type_name(),
                      " has no backward (differentiable: ", absl::StrJoin(DifferentiableModuleTypes(), ", "), ")");
}

class Runner {
 public:
  Runner(fx::GraphModule& module, Tape& tape, std::mt19937_64& rng) : module_(module), tape_(tape), rng_(rng) {}

  Var Module(nn::Module& m, const Var& x);
  Var Function(OpId op, const std::vector<Value>& args);

 private:
  Var Param(const Tensor& p) { return p.defined() ? tape_.Param(p) : Var{}; }
  Var FakeQuant(nn::Module& m, const Var& x);
  Var QatConv(quant::QatConv2d& m, const Var& x);
  Var BatchNorm(nn::BatchNormBase& bn, const Var& x);

  fx::GraphModule& module_;
  Tape& tape_;
  std::mt19937_64& rng_;
};

Var Runner::FakeQuant(nn::Module& m, const Var& x) {
  if (auto* fq = dynamic_cast<quant::FakeQuantize*>(&m)) {
    fq->UpdateQParams(x.value);  // the ordinary forward's observation; the fake-quantization is recorded here
    return fq->fake_quant_enabled() ? ag::fake_quantize(tape_, x, fq->qparams()) : x;
  }
  if (auto* obs = dynamic_cast<quant::Observer*>(&m)) {
    (*obs)(x.value);
    return x;
  }
  return Module(m, x);
}

Var Runner::BatchNorm(nn::BatchNormBase& bn, const Var& x) {
  if (bn.is_training()) bn.num_batches_tracked.data<int64_t>()[0] += 1;
  return ag::batch_norm(tape_, x, bn.running_mean, bn.running_var, Param(bn.weight), Param(bn.bias), bn.is_training(),
                        bn.momentum, bn.eps);
}

// PyTorch's _forward_approximate: y = bn(conv(x, fq(w * s)) / s + b), s = gamma / sqrt(running_var + eps).
Var Runner::QatConv(quant::QatConv2d& m, const Var& x) {
  Var y;
  if (!m.bn) {
    y = ag::conv2d(tape_, x, FakeQuant(*m.weight_fake_quant, Param(m.weight)), Param(m.bias), m.options);
  } else {
    const int64_t c = m.out_channels;
    Tensor running_std = Tensor::Uninitialized({c});
    for (int64_t i = 0; i < c; ++i) {
      running_std.data<float>()[i] = std::sqrt(m.bn->running_var.data<float>()[i] + static_cast<float>(m.bn->eps));
    }
    const Var scale = ag::div(tape_, Param(m.bn->weight), Tape::Constant(running_std));
    const Var scaled = ag::mul(tape_, Param(m.weight), ag::reshape(tape_, scale, {c, 1, 1, 1}));
    y = ag::conv2d(tape_, x, FakeQuant(*m.weight_fake_quant, scaled), Var{}, m.options);
    y = ag::div(tape_, y, ag::reshape(tape_, scale, {1, c, 1, 1}));
    if (m.bias.defined()) y = ag::add(tape_, y, ag::reshape(tape_, Param(m.bias), {1, c, 1, 1}));
    y = BatchNorm(*m.bn, y);
  }
  return m.relu ? ag::relu(tape_, y) : y;
}

Var Runner::Module(nn::Module& m, const Var& x) {
  if (auto* q = dynamic_cast<quant::QatConv2d*>(&m)) return QatConv(*q, x);
  if (auto* q = dynamic_cast<quant::QatLinear*>(&m)) {
    const Var y = ag::linear(tape_, x, FakeQuant(*q->weight_fake_quant, Param(q->weight)), Param(q->bias));
    return q->relu ? ag::relu(tape_, y) : y;
  }
  if (dynamic_cast<quant::FakeQuantize*>(&m) || dynamic_cast<quant::Observer*>(&m)) return FakeQuant(m, x);
  if (auto* bn = dynamic_cast<nn::BatchNormBase*>(&m)) return BatchNorm(*bn, x);
  if (dynamic_cast<nn::Identity*>(&m)) return x;
  if (auto* seq = dynamic_cast<nn::Sequential*>(&m)) {
    Var y = x;
    for (const auto& [name, child] : seq->named_children()) y = Module(*child, y);
    return y;
  }
  if (auto* mha = dynamic_cast<nn::MultiheadAttention*>(&m); mha && mha->is_training() && mha->dropout > 0) {
    ThrowInvalid("MultiheadAttention: attention dropout (", mha->dropout,
                 ") in training is not supported; build it "
                 "with dropout 0");
  }
  std::vector<OpArg> op_args;
  const OpId op = nn::ModuleOp(m, &op_args);
  if (!HasBackward(op)) ThrowInvalid(Unsupported(m));
  std::vector<Value> args = {x};  // the op the module computes, its tensors (weights) as parameters
  for (const OpArg& a : op_args) {
    const auto* t = std::get_if<Tensor>(&a);
    args.push_back(t ? Value(Param(*t)) : ConstantAs<Value>(a));
  }
  return Function(op, args);
}

template <typename T>
const T& Get(const std::vector<Value>& args, size_t i, const char* want) {
  if (i < args.size()) {
    if (const T* v = std::get_if<T>(&args[i])) return *v;
  }
  ThrowInvalid("argument ", i, " must be ", want);
}

double Number(const std::vector<Value>& args, size_t i) {
  if (i < args.size() && std::holds_alternative<int64_t>(args[i]))
    return static_cast<double>(std::get<int64_t>(args[i]));
  return Get<double>(args, i, "a number");
}

Var OptVar(const std::vector<Value>& args, size_t i) {
  return i < args.size() && std::holds_alternative<Var>(args[i]) ? std::get<Var>(args[i]) : Var{};
}

Tensor OptTensor(const std::vector<Value>& args, size_t i) { return OptVar(args, i).value; }

// The constant arguments after the input, as the registry's functions take them.
std::vector<OpArg> Constants(const std::vector<Value>& args) {
  std::vector<OpArg> out;
  for (size_t i = 1; i < args.size(); ++i) out.push_back(ConstantAs<OpArg>(args[i]));
  return out;
}

Var Runner::Function(OpId op, const std::vector<Value>& a) {
  auto x = [&]() { return Get<Var>(a, 0, "a tensor"); };
  if (nn::GetOpSchema(op).derivative != nullptr) return ag::elementwise(tape_, x(), op, Constants(a));
  if (nn::GetOpSchema(op).vjp != nullptr) return ag::apply(tape_, op, a);
  switch (op) {
    case OpId::kDropout:
      return ag::dropout(tape_, x(), Number(a, 1), Get<bool>(a, 2, "a bool"), rng_);
    case OpId::kStochasticDepth:
      return ag::stochastic_depth(tape_, x(), Number(a, 1),
                                  static_cast<F::StochasticDepthMode>(Get<int64_t>(a, 2, "an integer")),
                                  Get<bool>(a, 3, "a bool"), rng_);
    case OpId::kBatchNorm:
      return ag::batch_norm(tape_, x(), OptTensor(a, 1), OptTensor(a, 2), OptVar(a, 3), OptVar(a, 4),
                            Get<bool>(a, 5, "a bool"), Number(a, 6), Number(a, 7));
    default:
      ThrowInvalid("op ", nn::GetOpSchema(op).name, " has no backward (quantized ops run only after convert)");
  }
}

std::string Where(const fx::Node& n) {
  return absl::StrCat("%", n.name(), " : ", fx::OpcodeName(n.op()), "[target=", n.target_string(), "]");
}

}  // namespace

std::vector<std::string> DifferentiableModuleTypes() {
  std::vector<std::string> types;
  for (const std::string& name : nn::ModuleKindNames()) {
    const nn::ModuleKind* kind = nn::FindModuleKind(name);
    if (HasBackward(kind->op)) types.push_back(name);
  }
  for (const char* t : {"BatchNorm1d", "BatchNorm2d", "Identity", "Sequential", "ConvReLU2d", "LinearReLU", "BNReLU2d",
                        "ConvBn2d", "ConvBnReLU2d", "FakeQuantize", "observers"}) {
    if (std::find(types.begin(), types.end(), t) == types.end()) types.push_back(t);
  }
  return types;
}

absl::Status GraphForward::CheckDifferentiable() const {
  std::vector<std::string> problems;
  for (fx::Node* n : module_.graph()) {
    if (n->op() == fx::Opcode::kCallModule) {
      nn::Module* m = module_.submodule(n->target().path);
      const std::string why = m == nullptr ? "no such module" : Unsupported(*m);
      if (!why.empty()) problems.push_back(absl::StrCat(Where(*n), ": ", why));
    } else if ((n->op() == fx::Opcode::kCallFunction || n->op() == fx::Opcode::kCallMethod) &&
               !HasBackward(n->target().op)) {
      problems.push_back(absl::StrCat(Where(*n), ": quantized op with no backward (train before convert)"));
    }
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("the model cannot be trained; these nodes have no backward:\n  ", absl::StrJoin(problems, "\n  ")));
}

absl::StatusOr<Var> GraphForward::Run(Tape& tape, const Tensor& x) {
  QFX_RETURN_IF_ERROR(CheckDifferentiable());
  std::unordered_set<const void*> params;
  for (const auto& [name, p] : module_.named_parameters()) params.insert(p.raw_data());
  Runner runner(module_, tape, rng_);
  std::unordered_map<const fx::Node*, Value> env;
  auto resolve = [&](const fx::Argument& arg) -> Value {
    if (auto* n = std::get_if<fx::Node*>(&arg)) return env.at(*n);
    if (auto* list = std::get_if<std::vector<fx::Node*>>(&arg)) {
      std::vector<Var> vars;
      for (fx::Node* n : *list) vars.push_back(std::get<Var>(env.at(n)));
      return vars;
    }
    return ConstantAs<Value>(arg);
  };
  for (fx::Node* n : module_.graph()) {
    Value value;
    const absl::Status s = CatchErrors([&] {
      std::vector<Value> args;
      for (const fx::Argument& a : n->args()) args.push_back(resolve(a));
      switch (n->op()) {
        case fx::Opcode::kPlaceholder:
          value = Tape::Constant(x);
          break;
        case fx::Opcode::kGetAttr: {
          const Tensor t = module_.tensor_at(n->target().path);
          if (!t.defined()) ThrowInvalid("attribute '", n->target().path, "' does not exist");
          value = params.count(t.raw_data()) ? tape.Param(t) : Tape::Constant(t);
          break;
        }
        case fx::Opcode::kCallModule: {
          if (args.size() != 1 || !std::holds_alternative<Var>(args[0])) {
            ThrowInvalid("training runs modules that take one tensor");
          }
          value = runner.Module(*module_.submodule(n->target().path), std::get<Var>(args[0]));
          break;
        }
        case fx::Opcode::kCallFunction:
        case fx::Opcode::kCallMethod:
          nn::FollowModuleMode(n->target().op, module_.is_training(), args);  // as fx::Interpreter does
          value = runner.Function(n->target().op, args);
          break;
        case fx::Opcode::kOutput:
          value = args.at(0);
          break;
      }
    });
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("while training through ", Where(*n), ": ", s.message()));
    if (const Var* v = std::get_if<Var>(&value)) QFX_RETURN_IF_ERROR(fx::CheckSpecialized(*n, v->value));
    if (n->op() == fx::Opcode::kOutput) {
      if (!std::holds_alternative<Var>(value)) return absl::InvalidArgumentError("the graph's output is not a tensor");
      return std::get<Var>(value);
    }
    env[n] = std::move(value);
  }
  return absl::InvalidArgumentError("the graph has no output node");
}

}  // namespace train
}  // namespace qfx
