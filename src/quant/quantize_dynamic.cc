// qfx quant: QuantizeDynamic — dynamic quantization of Linear modules (see include/qfx/quant/passes.h).
#include "absl/strings/str_cat.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/quantized_modules.h"

namespace qfx {
namespace quant {

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
    if (n->op() == fx::Opcode::kPlaceholder || n->op() == fx::Opcode::kOutput || n->op() == fx::Opcode::kGetAttr) continue;
    if (it == assigned.end() || !it->second) {
      report.left_float[n->name()] = "qconfig none";
      continue;
    }
    const QConfig& q = *it->second;
    if (!IsDynamic(q)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "%", n->name(), " gets a static qconfig (activation ", q.activation.ToString(), ") in a mapping with dynamic "
          "qconfigs; qfx quantizes a model either dynamically or statically: split the rules into two files"));
    }
    auto* linear = n->op() == fx::Opcode::kCallModule ? dynamic_cast<nn::Linear*>(module.submodule(n->target().path)) : nullptr;
    if (linear == nullptr) {
      report.left_float[n->name()] = "dynamic quantization covers Linear modules only";
      continue;
    }
    if (q.weight.dtype != QDType::kQInt8) {
      return absl::InvalidArgumentError(absl::StrCat("%", n->name(), ": dynamic weight dtype must be qint8, got ",
                                                     QDTypeName(q.weight.dtype)));
    }
    absl::StatusOr<QuantizedLayer> layer = QuantizeLayer(linear->weight, linear->bias, q.weight);
    if (!layer.ok()) return absl::Status(layer.status().code(), absl::StrCat("%", n->name(), ": ", layer.status().message()));
    layer->in_channels = linear->in_features;
    layer->out_channels = linear->out_features;
    // fbgemm's linear_dynamic always quantizes activations with reduce_range on x86.
    QFX_RETURN_IF_ERROR(module.ReplaceSubmodule(n->target().path, std::make_shared<DynamicQuantizedLinear>(*layer, true)));
    report.quantized.push_back(n->target().path);
  }
  QFX_RETURN_IF_ERROR(module.Lint());
  return report;
}

}  // namespace quant
}  // namespace qfx
