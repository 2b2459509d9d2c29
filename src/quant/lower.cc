// qfx quant: the Lower pass (see include/qfx/quant/passes.h and convert.cc).
#include <limits>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/quantized_modules.h"

namespace qfx {
namespace quant {
namespace {

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
    for (const auto& [name, pattern] : report_.quantized) {
      if (!lowered_.count(name)) {
        return absl::InternalError(
            absl::StrCat("Lower: node %", name, " (", pattern, ") was prepared for int8 but has no int8 lowering"));
      }
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
  static QuantInfo QuantizeArgs(const fx::Node* q) {
    return {static_cast<float>(std::get<double>(q->args()[1])), static_cast<int32_t>(std::get<int64_t>(q->args()[2]))};
  }
  absl::StatusOr<QuantInfo> QParamsOf(const fx::Node* n) const {
    if (IsCall(n, OpId::kQuantize)) return QuantizeArgs(n);
    auto it = qparams_.find(n);
    if (it == qparams_.end())
      return absl::InternalError(absl::StrCat("Lower: qparams of %", n->name(), " are unknown"));
    return it->second;
  }

  // Routes the users of `q_out` to `value` and removes `q_out`.
  absl::Status Bypass(fx::Node* q_out, fx::Node* value, QuantInfo q) {
    q_out->ReplaceAllUsesWith(value);
    QFX_RETURN_IF_ERROR(gm_.graph().EraseNode(q_out));
    qparams_[value] = q;
    return absl::OkStatus();
  }

  std::string ModuleType(const fx::Node* n) const {
    if (n->op() != fx::Opcode::kCallModule) return "";
    nn::Module* m = gm_.submodule(n->target().path);
    return m ? m->type_name() : "";
  }

  absl::Status LowerNode(fx::Node* n) {
    const std::string type = ModuleType(n);
    if (auto* ref = dynamic_cast<ReferenceWeighted*>(
            n->op() == fx::Opcode::kCallModule ? gm_.submodule(n->target().path) : nullptr)) {
      return LowerWeighted(n, *ref);
    }
    if (IsCall(n, OpId::kAdd) || IsCall(n, OpId::kMul)) return LowerBinary(n);
    if (IsCall(n, OpId::kCat)) return LowerCat(n);
    if (ShareQParamsOps().Matches(gm_, *n)) return LowerShare(n);
    if (int64_t op = UnaryOp(n, type); op >= 0) return LowerUnary(n, op);
    return absl::OkStatus();
  }

  absl::Status LowerWeighted(fx::Node* n, const ReferenceWeighted& ref) {
    fx::Node* src = QuantizedSource(n->args()[0]);
    fx::Node* q_out = OutputQuantize(n);
    if (!src || !q_out) return absl::OkStatus();  // a float island: left as reference
    QFX_ASSIGN_OR_RETURN(QuantInfo in, QParamsOf(src));
    const QuantInfo out = QuantizeArgs(q_out);
    QFX_RETURN_IF_ERROR(gm_.ReplaceSubmodule(n->target().path, MakeQuantizedWeighted(ref.layer(), in, out)));
    n->set_arg(0, src);
    lowered_.insert(n->name());
    return Bypass(q_out, n, out);
  }

  absl::Status LowerBinary(fx::Node* n) {
    fx::Node* a = QuantizedSource(n->args()[0]);
    fx::Node* b = n->args().size() > 1 ? QuantizedSource(n->args()[1]) : nullptr;
    if (!a || !b) return absl::OkStatus();
    fx::Node* last = n;
    bool relu = false;
    if (IsCall(n, OpId::kAdd) && n->users().size() == 1) {
      fx::Node* u = n->users()[0];
      if (IsCall(u, OpId::kRelu) || ModuleType(u) == "ReLU") {
        relu = true;
        last = u;
      }
    }
    fx::Node* q_out = OutputQuantize(last);
    if (!q_out) return absl::OkStatus();
    const QuantInfo out = QuantizeArgs(q_out);
    fx::Node* lowered;
    {
      auto point = gm_.graph().InsertingBefore(n);
      if (IsCall(n, OpId::kAdd)) {
        lowered = gm_.graph().CallFunction(OpId::kQAdd,
                                           {a, b, static_cast<double>(out.scale), int64_t{out.zero_point}, relu});
      } else {
        lowered =
            gm_.graph().CallFunction(OpId::kQMul, {a, b, static_cast<double>(out.scale), int64_t{out.zero_point}});
      }
    }
    lowered_.insert(last->name());
    QFX_RETURN_IF_ERROR(Bypass(q_out, lowered, out));
    if (last != n) QFX_RETURN_IF_ERROR(gm_.graph().EraseNode(last));
    return gm_.graph().EraseNode(n);
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
    const QuantInfo out = QuantizeArgs(q_out);
    fx::Node* lowered;
    {
      auto point = gm_.graph().InsertingBefore(n);
      lowered = gm_.graph().CallFunction(OpId::kQCat,
                                         {srcs, n->args()[1], static_cast<double>(out.scale), int64_t{out.zero_point}});
    }
    lowered_.insert(n->name());
    QFX_RETURN_IF_ERROR(Bypass(q_out, lowered, out));
    return gm_.graph().EraseNode(n);
  }

  absl::Status LowerShare(fx::Node* n) {
    fx::Node* src = QuantizedSource(n->args()[0]);
    fx::Node* q_out = OutputQuantize(n);
    if (!src || !q_out) return absl::OkStatus();
    QFX_ASSIGN_OR_RETURN(QuantInfo in, QParamsOf(src));
    const QuantInfo out = QuantizeArgs(q_out);
    if (in.scale != out.scale || in.zero_point != out.zero_point) {
      return absl::InternalError(
          absl::StrCat("Lower: %", n->name(), " shares its input's qparams but its output observer differs"));
    }
    lowered_.insert(n->name());
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

  // The [lo, hi] of a clamp-like op (relu, relu6, hardtanh), or false.
  bool ClampBounds(const fx::Node* n, float* lo, float* hi) const {
    const std::string type = ModuleType(n);
    *lo = 0.f;
    *hi = std::numeric_limits<float>::infinity();
    if (type == "ReLU" || IsCall(n, OpId::kRelu)) return true;
    if (type == "ReLU6" || IsCall(n, OpId::kRelu6)) {
      *hi = 6.f;
      return true;
    }
    if (type == "Hardtanh") {
      const auto* h = dynamic_cast<const nn::Hardtanh*>(gm_.submodule(n->target().path));
      *lo = h->min_val;
      *hi = h->max_val;
      return true;
    }
    if (IsCall(n, OpId::kHardtanh)) {
      *lo = static_cast<float>(std::get<double>(n->args()[1]));
      *hi = static_cast<float>(std::get<double>(n->args()[2]));
      return true;
    }
    return false;
  }

  static int64_t UnaryOp(const fx::Node* n, const std::string& type) {
    static const std::map<std::string, OpId> modules = {
        {"Hardswish", OpId::kHardswish}, {"Sigmoid", OpId::kSigmoid}, {"Hardsigmoid", OpId::kHardsigmoid},
        {"Tanh", OpId::kTanh},           {"SiLU", OpId::kSilu},       {"Dropout", OpId::kDropout}};
    if (n->op() == fx::Opcode::kCallModule) {
      auto it = modules.find(type);
      return it == modules.end() ? -1 : static_cast<int64_t>(it->second);
    }
    static const std::set<OpId> ops = {OpId::kHardswish, OpId::kSigmoid, OpId::kHardsigmoid,
                                       OpId::kTanh,      OpId::kSilu,    OpId::kDropout};
    return n->op() == fx::Opcode::kCallFunction && ops.count(n->target().op) ? static_cast<int64_t>(n->target().op)
                                                                             : -1;
  }

  absl::Status LowerUnary(fx::Node* n, int64_t op) {
    fx::Node* src = QuantizedSource(n->args()[0]);
    fx::Node* q_out = OutputQuantize(n);
    if (!src || !q_out) return absl::OkStatus();
    const QuantInfo out = QuantizeArgs(q_out);
    fx::Node* lowered;
    {
      auto point = gm_.graph().InsertingBefore(n);
      lowered =
          gm_.graph().CallFunction(OpId::kQUnary, {src, op, static_cast<double>(out.scale), int64_t{out.zero_point}});
    }
    lowered_.insert(n->name());
    QFX_RETURN_IF_ERROR(Bypass(q_out, lowered, out));
    return gm_.graph().EraseNode(n);
  }

  fx::GraphModule& gm_;
  const PrepareReport& report_;
  std::map<const fx::Node*, QuantInfo> qparams_;
  std::set<std::string> lowered_;
};

}  // namespace

absl::Status Lower(fx::GraphModule& gm, const PrepareReport& report) { return Lowerer(gm, report).Run(); }

}  // namespace quant
}  // namespace qfx
