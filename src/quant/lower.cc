// qfx quant: the Lower pass (see include/qfx/quant/passes.h and convert.cc). Which lowering a node gets is
// its op's QuantRole in the registry (src/nn/ops.cc); qparams come from the nodes' typed metadata.
#include <algorithm>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/quantized_modules.h"

namespace qfx {
namespace quant {
namespace {

using nn::QuantRole;

bool IsCall(const fx::Node* n, OpId op) {
  return n != nullptr && n->op() == fx::Opcode::kCallFunction && n->target().op == op;
}

class Lowerer {
 public:
  Lowerer(fx::GraphModule& gm, const PrepareReport& report) : gm_(gm), report_(report) {}

  absl::Status Run() {
    for (fx::Node* n : gm_.graph().nodes()) {
      if (n->erased()) continue;
      QFX_RETURN_IF_ERROR(LowerNode(n));
    }
    gm_.graph().EliminateDeadCode();
    std::vector<std::string> missing;
    for (const auto& [node, pattern] : report_.anchors) {
      if (!lowered_.count(node)) missing.push_back(absl::StrCat("%", node->name(), " (", pattern->name, ")"));
    }
    if (!missing.empty()) {
      std::sort(missing.begin(), missing.end());
      return absl::InternalError(absl::StrCat("Lower: node ", absl::StrJoin(missing, ", "),
                                              " was prepared for int8 but has no int8 lowering"));
    }
    QFX_RETURN_IF_ERROR(gm_.DeleteUnusedSubmodules());
    return gm_.Lint();
  }

 private:
  // The node producing the quantized value that `n` dequantizes, or nullptr.
  static fx::Node* QuantizedSource(const fx::Argument& a) {
    const auto* n = std::get_if<fx::Node*>(&a);
    return n && IsCall(*n, OpId::kDequantize) ? std::get<fx::Node*>((*n)->args()[0]) : nullptr;
  }
  // The quantize node that is `n`'s only user, or nullptr.
  static fx::Node* OutputQuantize(const fx::Node* n) {
    return n->users().size() == 1 && IsCall(n->users()[0], OpId::kQuantize) ? n->users()[0] : nullptr;
  }
  static absl::StatusOr<QuantInfo> QParamsOf(const fx::Node* n) {
    if (!n->meta.qparams) {
      return absl::InternalError(absl::StrCat("Lower: qparams of %", n->name(),
                                              " are unknown (Lower runs on the graph ConvertToReference made)"));
    }
    return *n->meta.qparams;
  }

  // Routes the users of `q_out` to `value` and removes `q_out`.
  absl::Status Bypass(fx::Node* q_out, fx::Node* value, QuantInfo q) {
    q_out->ReplaceAllUsesWith(value);
    QFX_RETURN_IF_ERROR(gm_.graph().EraseNode(q_out));
    value->meta.qparams = q;
    return absl::OkStatus();
  }

  absl::Status LowerNode(fx::Node* n) {
    if (auto* ref = dynamic_cast<ReferenceWeighted*>(
            n->op() == fx::Opcode::kCallModule ? gm_.submodule(n->target().path) : nullptr)) {
      return LowerWeighted(n, *ref);
    }
    switch (NodeRole(gm_, *n)) {
      case QuantRole::kBinary:
        return n->op() == fx::Opcode::kCallFunction ? LowerBinary(n) : absl::OkStatus();
      case QuantRole::kCat:
        return n->op() == fx::Opcode::kCallFunction ? LowerCat(n) : absl::OkStatus();
      case QuantRole::kShareQParams:
        return LowerShare(n);
      case QuantRole::kTable:
      case QuantRole::kFixedQParams:
        return LowerUnary(n);
      case QuantRole::kObservedFloat:  // quantized in name: the float op between its dequantize and quantize
        lowered_.insert(n);
        return absl::OkStatus();
      case QuantRole::kFloat:
        return HasTableForm(n) ? LowerUnary(n) : absl::OkStatus();
      default:
        return absl::OkStatus();
    }
  }

  // A float elementwise op (SiLU, GELU: PyTorch's backends keep them float) between a dequantize and a
  // quantize computes quantize(op(dequantize(q))) value by value, which is what q_unary's 256-entry table
  // holds: the same bytes without the float detour. An identity-in-eval op (stochastic_depth) is one when
  // its training flag, the last argument, is false.
  bool HasTableForm(const fx::Node* n) const {
    std::vector<OpArg> args;
    const OpId op = NodeOp(gm_, *n, &args);
    if (op == OpId::kNumOps) return false;
    if (nn::IdentityInEval(op)) {
      const bool* training = args.empty() ? nullptr : std::get_if<bool>(&args.back());
      return training != nullptr && !*training;
    }
    return nn::GetOpSchema(op).derivative != nullptr;
  }

  absl::Status LowerWeighted(fx::Node* n, const ReferenceWeighted& ref) {
    fx::Node* src = QuantizedSource(n->args()[0]);
    fx::Node* q_out = OutputQuantize(n);
    if (!src || !q_out) return absl::OkStatus();  // a float island: left as reference
    QFX_ASSIGN_OR_RETURN(QuantInfo in, QParamsOf(src));
    QFX_ASSIGN_OR_RETURN(QuantInfo out, QParamsOf(q_out));
    QFX_RETURN_IF_ERROR(gm_.ReplaceSubmodule(n->target().path, MakeQuantizedWeighted(ref.layer(), in, out)));
    n->set_arg(0, src);
    lowered_.insert(n);
    return Bypass(q_out, n, out);
  }

  // An int8 function node replacing `first` .. `last` (whose output `q_out` quantizes to `out`).
  absl::Status Replace(fx::Node* first, fx::Node* last, fx::Node* q_out, QuantInfo out, OpId op,
                       std::vector<fx::Argument> args) {
    fx::Node* lowered;
    {
      auto point = gm_.graph().InsertingBefore(first);
      lowered = gm_.graph().CallFunction(op, std::move(args));
    }
    lowered_.insert(last);
    QFX_RETURN_IF_ERROR(Bypass(q_out, lowered, out));
    if (last != first) {
      last->ReplaceAllUsesWith(lowered);
      QFX_RETURN_IF_ERROR(gm_.graph().EraseNode(last));
    }
    first->ReplaceAllUsesWith(lowered);
    return gm_.graph().EraseNode(first);
  }

  absl::Status LowerBinary(fx::Node* n) {
    fx::Node* a = QuantizedSource(n->args()[0]);
    fx::Node* b = n->args().size() > 1 ? QuantizedSource(n->args()[1]) : nullptr;
    if (a && n->args().size() == 2 && !std::holds_alternative<fx::Node*>(n->args()[1])) {
      return LowerUnary(n);  // x + number, x * number: a table, as any elementwise op
    }
    if (!a || !b) return absl::OkStatus();
    const bool add = IsCall(n, OpId::kAdd);
    const OpId lowered = add ? OpId::kQAdd : IsCall(n, OpId::kMatmul) ? OpId::kQMatmul : OpId::kQMul;
    fx::Node* last = n;
    if (add && n->users().size() == 1 && NodeOp(gm_, *n->users()[0]) == OpId::kRelu) last = n->users()[0];
    fx::Node* q_out = OutputQuantize(last);
    if (!q_out) return absl::OkStatus();
    QFX_ASSIGN_OR_RETURN(QuantInfo out, QParamsOf(q_out));
    std::vector<fx::Argument> args = {a, b, static_cast<double>(out.scale), int64_t{out.zero_point}};
    if (add) args.push_back(last != n);
    return Replace(n, last, q_out, out, lowered, std::move(args));
  }

  absl::Status LowerCat(fx::Node* n) {
    const auto* list = std::get_if<std::vector<fx::Node*>>(&n->args()[0]);
    fx::Node* q_out = OutputQuantize(n);
    if (!list || !q_out) return absl::OkStatus();
    std::vector<fx::Node*> srcs;
    for (fx::Node* d : *list) {
      fx::Node* s = QuantizedSource(fx::Argument(d));
      if (!s) return absl::OkStatus();
      srcs.push_back(s);
    }
    QFX_ASSIGN_OR_RETURN(QuantInfo out, QParamsOf(q_out));
    return Replace(n, n, q_out, out, OpId::kQCat,
                   {srcs, n->args()[1], static_cast<double>(out.scale), int64_t{out.zero_point}});
  }

  absl::Status LowerShare(fx::Node* n) {
    fx::Node* src = QuantizedSource(n->args()[0]);
    fx::Node* q_out = OutputQuantize(n);
    if (!src || !q_out) return absl::OkStatus();
    QFX_ASSIGN_OR_RETURN(QuantInfo in, QParamsOf(src));
    QFX_ASSIGN_OR_RETURN(QuantInfo out, QParamsOf(q_out));
    // Different qparams (a max pool whose output observer became a cat's, as PyTorch 1.13 shares them; the
    // PT2E flow's unannotated ops): an op that selects values runs on quint8, then requantizes; other ops
    // stay a float detour, and a prepared pattern left unlowered is reported below.
    if (in.scale != out.scale || in.zero_point != out.zero_point) {
      return nn::SelectsValues(NodeOp(gm_, *n)) ? LowerSelectThenRequantize(n, src, q_out, in, out) : absl::OkStatus();
    }
    lowered_.insert(n);
    float lo, hi;
    auto* producer = src->op() == fx::Opcode::kCallModule
                         ? dynamic_cast<QuantizedWeighted*>(gm_.submodule(src->target().path))
                         : nullptr;
    if (producer && src->users().size() == 1 && ClampBounds(n, &lo, &hi)) {
      // conv / linear followed by relu / relu6 / hardtanh: the clamp moves into the epilogue.
      producer->FoldClamp(lo, hi);
      QFX_RETURN_IF_ERROR(Bypass(q_out, src, out));
      n->ReplaceAllUsesWith(src);
      return gm_.graph().EraseNode(n);
    }
    n->set_arg(0, src);
    return Bypass(q_out, n, out);
  }

  // n on quint8 (its input's qparams), then q_unary's identity table (an eval dropout) to q_out's qparams:
  // quantize(op(dequantize(q))) value by value, since op only picks values.
  absl::Status LowerSelectThenRequantize(fx::Node* n, fx::Node* src, fx::Node* q_out, QuantInfo in, QuantInfo out) {
    lowered_.insert(n);
    n->set_arg(0, src);
    n->meta.qparams = in;
    fx::Node* requant;
    {
      auto point = gm_.graph().InsertingAfter(n);
      requant = gm_.graph().CallFunction(OpId::kQUnary,
                                         {n, OpId::kDropout, static_cast<double>(out.scale), int64_t{out.zero_point}});
    }
    return Bypass(q_out, requant, out);
  }

  // The [lo, hi] of a clamp-like op (its registration's clamp), or false.
  bool ClampBounds(const fx::Node* n, float* lo, float* hi) const {
    std::vector<OpArg> args;
    const OpId op = NodeOp(gm_, *n, &args);
    if (op == OpId::kNumOps || nn::GetOpSchema(op).clamp == nullptr) return false;
    return nn::GetOpSchema(op).clamp(args, lo, hi);
  }

  // Table and fixed-qparams ops: q_unary(x, op, scale, zero_point, the op's constant arguments...).
  absl::Status LowerUnary(fx::Node* n) {
    fx::Node* src = QuantizedSource(n->args()[0]);
    fx::Node* q_out = OutputQuantize(n);
    if (!src || !q_out) return absl::OkStatus();
    std::vector<OpArg> op_args;
    const OpId op = NodeOp(gm_, *n, &op_args);
    QFX_ASSIGN_OR_RETURN(QuantInfo out, QParamsOf(q_out));
    std::vector<fx::Argument> args = {src, op, static_cast<double>(out.scale), int64_t{out.zero_point}};
    if (!nn::IdentityInEval(op)) {  // dropout's table is the identity whatever its arguments
      for (const OpArg& a : op_args) QFX_RETURN_IF_ERROR(AppendConstant(n, a, &args));
    }
    return Replace(n, n, q_out, out, OpId::kQUnary, std::move(args));
  }

  static absl::Status AppendConstant(const fx::Node* n, const OpArg& a, std::vector<fx::Argument>* args) {
    if (const auto* d = std::get_if<double>(&a)) {
      args->push_back(*d);
    } else if (const auto* i = std::get_if<int64_t>(&a)) {
      args->push_back(*i);
    } else if (const auto* b = std::get_if<bool>(&a)) {
      args->push_back(*b);
    } else {
      return absl::InternalError(absl::StrCat("Lower: %", n->name(), ": q_unary takes only constant arguments"));
    }
    return absl::OkStatus();
  }

  fx::GraphModule& gm_;
  const PrepareReport& report_;
  std::unordered_set<const fx::Node*> lowered_;
};

}  // namespace

absl::Status Lower(fx::GraphModule& gm, const PrepareReport& report) { return Lowerer(gm, report).Run(); }

}  // namespace quant
}  // namespace qfx
