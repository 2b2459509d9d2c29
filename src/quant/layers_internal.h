// qfx quant (internal): what the FX and eager converts share — a weighted module's int8 layer, a QAT
// fake-quant's trained qparams, an observer's qparams, and dynamic quantization's Linear.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "qfx/fx/graph_module.h"
#include "qfx/quant/observer.h"
#include "qfx/quant/qconfig_mapping.h"
#include "qfx/quant/quantized_modules.h"

namespace qfx {
namespace quant {
namespace internal {

// The qparams a QAT fake-quant module last fake-quantized with (what the trained model computes), or
// null before its first forward (see convert.cc).
const QParams* TrainedQParams(nn::Module* m);

// The qparams of an observer or fake-quant module (a fake-quant's trained ones when it has run), any dtype
// or scheme; an error for another module or an observer that has none.
absl::StatusOr<QParams> ObserverQParams(nn::Module* m);
// The same for activations, which must be per-tensor quint8; errors say why (Convert and ConvertEager prefix
// where).
absl::StatusOr<QParams> ActivationQParams(nn::Module* m);
// Replaces the observer node `n` by quantize(input, q) -> dequantize (q in the quantize node's meta.qparams)
// and returns the dequantize node.
absl::StatusOr<fx::Node*> ReplaceWithQuantDequant(fx::GraphModule& gm, fx::Node* n, QuantInfo q);

// The int8 layer of a Conv2d / Linear, fused ConvReLU2d / LinearReLU, or QAT module (batch norm folded),
// its weight quantized with `spec` (or the QAT weight fake-quant's trained qparams).
absl::StatusOr<QuantizedLayer> LayerOf(nn::Module* m, const ObserverSpec& spec);

// The DynamicQuantizedLinear for a Linear's float weight [out, in] and bias, quantized with q's weight spec.
absl::StatusOr<std::shared_ptr<DynamicQuantizedLinear>> DynamicLinear(const Tensor& weight, const Tensor& bias,
                                                                      const QConfig& q);

}  // namespace internal
}  // namespace quant
}  // namespace qfx
