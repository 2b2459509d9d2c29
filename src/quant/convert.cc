// qfx quant: Convert = ConvertToReference then Lower (see include/qfx/quant/passes.h).
//
// Reference: every observer / fake-quant node becomes quantize -> dequantize with its qparams, and every
// quantized Conv2d / Linear (plain, fused, QAT) becomes a ReferenceWeighted module with int8 weights.
// Lower: each dequantize -> op -> quantize chain becomes one op on quint8 tensors — QuantizedConv2d /
// QuantizedLinear modules, q_add / q_mul / q_cat / q_unary functions, and share-qparams ops (pools, relu,
// flatten, reshape) running directly on quantized tensors. Every pattern Prepare quantized must lower;
// one that does not is an error naming it.
#include <set>

#include "absl/strings/str_cat.h"
#include "qfx/quant/fused_modules.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/qat_modules.h"
#include "qfx/quant/quantized_modules.h"
#include "src/quant/layers_internal.h"

namespace qfx {
namespace quant {
namespace {

bool IsObserverNode(fx::GraphModule& gm, const fx::Node* n) {
  return n->op() == fx::Opcode::kCallModule && IsObserverModule(gm.submodule(n->target().path));
}

absl::StatusOr<QParams> ConvertQParams(nn::Module* m, const fx::Node& n) {
  absl::StatusOr<QParams> qp = internal::ActivationQParams(m);
  if (!qp.ok())
    return absl::Status(qp.status().code(), absl::StrCat("Convert: %", n.name(), ": ", qp.status().message()));
  return qp;
}

absl::Status ReplaceObservers(fx::GraphModule& gm) {
  for (fx::Node* n : gm.graph().nodes()) {
    if (!IsObserverNode(gm, n)) continue;
    QFX_ASSIGN_OR_RETURN(QParams qp, ConvertQParams(gm.submodule(n->target().path), *n));
    QFX_RETURN_IF_ERROR(
        internal::ReplaceWithQuantDequant(gm, n, QuantInfo{qp.scale[0], static_cast<int32_t>(qp.zero_point[0])})
            .status());
  }
  return absl::OkStatus();
}

}  // namespace

namespace internal {

// The qparams a QAT fake-quant module last fake-quantized with (what the trained model computes), or
// null before its first forward. Convert uses these, not a fresh calculation: PyTorch's convert recomputes
// qparams with the observer's formula, which for the fused moving-average fake-quant differs from the
// formula training used (ATen's ChooseQuantizationParams), so PyTorch's int8 model can drift from the
// fake-quant model it came from — by whole grid steps for narrow ranges such as 2- or 4-bit weights.
const QParams* TrainedQParams(nn::Module* m) {
  auto* fq = dynamic_cast<FakeQuantize*>(m);
  return fq != nullptr && !fq->qparams().scale.empty() ? &fq->qparams() : nullptr;
}

absl::StatusOr<QParams> ObserverQParams(nn::Module* m) {
  QParams qp;
  QFX_RETURN_IF_ERROR(CatchErrors([&] {
    if (const QParams* trained = TrainedQParams(m))
      qp = *trained;
    else if (auto* fq = dynamic_cast<FakeQuantize*>(m))
      qp = fq->CalculateQParams();
    else if (auto* obs = dynamic_cast<Observer*>(m))
      qp = obs->CalculateQParams();
    else
      ThrowInvalid("not an observer");
  }));
  return qp;
}

absl::StatusOr<QParams> ActivationQParams(nn::Module* m) {
  QFX_ASSIGN_OR_RETURN(QParams qp, ObserverQParams(m));
  if (qp.scale.size() != 1 || qp.dtype != QDType::kQUInt8)
    return absl::InvalidArgumentError("activations must be per-tensor quint8");
  return qp;
}

absl::StatusOr<fx::Node*> ReplaceWithQuantDequant(fx::GraphModule& gm, fx::Node* n, QuantInfo q) {
  fx::Node* input = std::get<fx::Node*>(n->args()[0]);
  fx::Node* dq;
  {
    auto point = gm.graph().InsertingBefore(n);
    fx::Node* quantize =
        gm.graph().CallFunction(OpId::kQuantize, {input, static_cast<double>(q.scale), int64_t{q.zero_point}});
    quantize->meta.qparams = q;
    dq = gm.graph().CallFunction(OpId::kDequantize, {quantize});
  }
  n->ReplaceAllUsesWith(dq);
  QFX_RETURN_IF_ERROR(gm.graph().EraseNode(n));
  return dq;
}

// The float weight, bias and shape of a weighted module as convert sees it (QAT batch norms folded).
absl::StatusOr<QuantizedLayer> LayerOf(nn::Module* m, const ObserverSpec& spec) {
  bool relu = false;
  if (auto* fused = dynamic_cast<FusedSequential*>(m)) {
    relu = true;
    m = &(*fused)[0];
  }
  QuantizedLayer l;
  if (auto* conv = dynamic_cast<nn::Conv2d*>(m)) {
    QFX_ASSIGN_OR_RETURN(l, QuantizeLayer(conv->weight, conv->bias, spec));
    const nn::Conv2dArgs args = conv->args();
    l.in_channels = conv->in_channels;
    l.kernel = conv->kernel_size;
    l.stride = args.stride;
    l.padding = args.padding;
    l.dilation = args.dilation;
    l.groups = args.groups;
  } else if (auto* qconv = dynamic_cast<QatConv2d*>(m)) {
    std::shared_ptr<nn::Conv2d> plain;
    const nn::Conv2dArgs args = nn::Conv2dArgsOf(qconv->options, qconv->bias.defined());
    plain = std::make_shared<nn::Conv2d>(qconv->weight.size(1) * qconv->options.groups, qconv->out_channels,
                                         nn::Size2(qconv->weight.size(2), qconv->weight.size(3)), args);
    plain->weight.CopyFrom(qconv->weight);
    if (qconv->bias.defined()) plain->bias.CopyFrom(qconv->bias);
    if (qconv->bn) plain = FoldBatchNorm(*plain, *qconv->bn);
    // Eval-mode QAT conv fake-quantizes w * gamma / sqrt(running_var + eps), the folded weight.
    const QParams* trained = TrainedQParams(qconv->weight_fake_quant.get());
    QFX_ASSIGN_OR_RETURN(l, trained ? QuantizeLayer(plain->weight, plain->bias, *trained)
                                    : QuantizeLayer(plain->weight, plain->bias, spec));
    l.in_channels = plain->in_channels;
    l.kernel = plain->kernel_size;
    l.stride = args.stride;
    l.padding = args.padding;
    l.dilation = args.dilation;
    l.groups = args.groups;
    relu = qconv->relu;
  } else if (auto* linear = dynamic_cast<nn::Linear*>(m)) {
    QFX_ASSIGN_OR_RETURN(l, QuantizeLayer(linear->weight, linear->bias, spec));
    l.is_conv = false;
    l.in_channels = linear->in_features;
  } else if (auto* qlinear = dynamic_cast<QatLinear*>(m)) {
    const QParams* trained = TrainedQParams(qlinear->weight_fake_quant.get());
    QFX_ASSIGN_OR_RETURN(l, trained ? QuantizeLayer(qlinear->weight, qlinear->bias, *trained)
                                    : QuantizeLayer(qlinear->weight, qlinear->bias, spec));
    l.is_conv = false;
    l.in_channels = qlinear->weight.size(1);
    relu = qlinear->relu;
  } else {
    return absl::InternalError(absl::StrCat("Convert: ", m->type_name(), " is not a weighted layer"));
  }
  l.relu = relu;
  return l;
}

}  // namespace internal

absl::Status ConvertToReference(fx::GraphModule& gm, const PrepareReport& report) {
  QFX_RETURN_IF_ERROR(ReplaceObservers(gm));
  for (fx::Node* node : gm.graph()) {  // in graph order, so that the first error is always the same
    auto it = report.weights.find(node);
    if (it == report.weights.end()) continue;
    const ObserverSpec& spec = it->second;
    const std::string& path = node->target().path;
    nn::Module* m = gm.submodule(path);
    if (m == nullptr) return absl::InternalError(absl::StrCat("Convert: weighted module '", path, "' is gone"));
    absl::StatusOr<QuantizedLayer> layer = internal::LayerOf(m, spec);
    if (!layer.ok())
      return absl::Status(layer.status().code(),
                          absl::StrCat("Convert: module '", path, "': ", layer.status().message()));
    QFX_RETURN_IF_ERROR(gm.ReplaceSubmodule(path, std::make_shared<ReferenceWeighted>(*std::move(layer))));
  }
  QFX_RETURN_IF_ERROR(gm.DeleteUnusedSubmodules());
  return gm.Lint();
}

absl::Status Convert(fx::GraphModule& gm, const PrepareReport& report) {
  QFX_RETURN_IF_ERROR(ConvertToReference(gm, report));
  return Lower(gm, report);
}

}  // namespace quant
}  // namespace qfx
