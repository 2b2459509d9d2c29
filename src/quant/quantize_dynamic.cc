// qfx quant: QuantizeDynamic — dynamic quantization of Linear modules (see include/qfx/quant/passes.h).
#include "absl/strings/str_cat.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/quantized_modules.h"
#include "src/quant/layers_internal.h"

namespace qfx {
namespace quant {
namespace {

// A call_function linear whose weight (and bias, if any) are get_attr nodes: the tensors, or false.
bool FunctionalLinearTensors(fx::GraphModule& gm, const fx::Node& n, Tensor* weight, Tensor* bias) {
  if (n.op() != fx::Opcode::kCallFunction || n.target().op != OpId::kLinear || n.args().size() < 2) return false;
  auto attr = [&](const fx::Argument& a, Tensor* out) {
    auto* const* node = std::get_if<fx::Node*>(&a);
    if (node == nullptr || (*node)->op() != fx::Opcode::kGetAttr) return false;
    *out = gm.tensor_at((*node)->target().path);
    return out->defined();
  };
  if (!attr(n.args()[1], weight)) return false;
  *bias = Tensor();
  return n.args().size() < 3 || std::holds_alternative<std::monostate>(n.args()[2]) || attr(n.args()[2], bias);
}

// Replaces `n` (a functional linear) by a call of a new DynamicQuantizedLinear module named after it.
absl::StatusOr<std::string> ReplaceFunctionalLinear(fx::GraphModule& gm, fx::Node* n, const Tensor& weight,
                                                    const Tensor& bias, const QConfig& q) {
  QFX_ASSIGN_OR_RETURN(std::shared_ptr<DynamicQuantizedLinear> module, internal::DynamicLinear(weight, bias, q));
  std::string path = n->name() + "_dynamic";
  for (int k = 1; gm.submodule(path) != nullptr; ++k) path = absl::StrCat(n->name(), "_dynamic_", k);
  QFX_RETURN_IF_ERROR(gm.ReplaceSubmodule(path, std::move(module)));
  fx::Node* call;
  {
    auto point = gm.graph().InsertingBefore(n);
    call = gm.graph().CallModule(path, {n->args()[0]});
  }
  n->ReplaceAllUsesWith(call);
  QFX_RETURN_IF_ERROR(gm.graph().EraseNode(n));
  return path;
}

}  // namespace

namespace internal {

// The DynamicQuantizedLinear for a Linear's float weight [out, in] and bias, quantized with q's weight spec.
absl::StatusOr<std::shared_ptr<DynamicQuantizedLinear>> DynamicLinear(const Tensor& weight, const Tensor& bias,
                                                                      const QConfig& q) {
  if (weight.dim() != 2) return absl::InvalidArgumentError(absl::StrCat("weight ", weight.ToString(), " must be 2-d"));
  if (q.weight.dtype != QDType::kQInt8) {
    return absl::InvalidArgumentError(
        absl::StrCat("dynamic weight dtype must be qint8, got ", QDTypeName(q.weight.dtype)));
  }
  QFX_ASSIGN_OR_RETURN(QuantizedLayer layer, QuantizeLayer(weight, bias, q.weight));
  layer.in_channels = weight.size(1);
  layer.out_channels = weight.size(0);
  // fbgemm's linear_dynamic always quantizes activations with reduce_range on x86.
  return std::make_shared<DynamicQuantizedLinear>(layer, /*reduce_range=*/true);
}

}  // namespace internal

bool HasDynamicQConfig(const QConfigMapping& mapping, fx::GraphModule& module) {
  for (const auto& [node, q] : mapping.Assign(module)) {
    if (q && IsDynamic(*q)) return true;
  }
  return false;
}

absl::StatusOr<DynamicReport> QuantizeDynamic(fx::GraphModule& module, const QuantConfig& config) {
  DynamicReport report;
  const auto assigned = config.mapping.Assign(module, &report.warnings);
  for (fx::Node* n : module.graph()) {
    auto it = assigned.find(n);
    if (n->op() == fx::Opcode::kPlaceholder || n->op() == fx::Opcode::kOutput || n->op() == fx::Opcode::kGetAttr)
      continue;
    if (it == assigned.end() || !it->second) {
      report.left_float[n->name()] = "qconfig none";
      continue;
    }
    const QConfig& q = *it->second;
    if (!IsDynamic(q)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "%", n->name(), " gets a static qconfig (activation ", q.activation.ToString(),
          ") in a mapping with dynamic "
          "qconfigs; qfx quantizes a model either dynamically or statically: split the rules into two files"));
    }
    Tensor fw, fb;
    if (FunctionalLinearTensors(module, *n, &fw, &fb)) {
      absl::StatusOr<std::string> path = ReplaceFunctionalLinear(module, n, fw, fb, q);
      if (!path.ok())
        return absl::Status(path.status().code(), absl::StrCat("%", n->name(), ": ", path.status().message()));
      report.quantized.push_back(*path);
      continue;
    }
    auto* linear =
        n->op() == fx::Opcode::kCallModule ? dynamic_cast<nn::Linear*>(module.submodule(n->target().path)) : nullptr;
    if (linear == nullptr) {
      report.left_float[n->name()] = "dynamic quantization covers Linear modules and linear calls on parameters only";
      continue;
    }
    absl::StatusOr<std::shared_ptr<DynamicQuantizedLinear>> m =
        internal::DynamicLinear(linear->weight, linear->bias, q);
    if (!m.ok()) return absl::Status(m.status().code(), absl::StrCat("%", n->name(), ": ", m.status().message()));
    QFX_RETURN_IF_ERROR(module.ReplaceSubmodule(n->target().path, *std::move(m)));
    report.quantized.push_back(n->target().path);
  }
  module.graph().EliminateDeadCode();  // the functional weights' get_attr nodes
  QFX_RETURN_IF_ERROR(module.DeleteUnusedSubmodules());
  QFX_RETURN_IF_ERROR(module.Lint());
  return report;
}

}  // namespace quant
}  // namespace qfx
