// qfx quant: the graph passes that turn a traced GraphModule into an observed one, PyTorch's fuse_fx and
// prepare_fx. Each is one function returning a Status; each lints the graph when done.
//
//   Fuse     eval-mode Conv+BN(+ReLU), Conv+ReLU, Linear+BN, Linear+ReLU, BN+ReLU: batch norm folded into
//            the weights, the rest replaced by ConvReLU2d / LinearReLU / BNReLU2d at the first module's path.
//   Prepare  inserts observers (activation_post_process_<N> call_module nodes) where PyTorch's prepare_fx
//            would: each quantized pattern decides only its own input and output observers; outputs of
//            share-qparams ops (pools, relu, flatten, reshape...) share their input's observer module.
#pragma once

#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "qfx/fx/graph_module.h"
#include "qfx/quant/backend.h"
#include "qfx/quant/qconfig_mapping.h"

namespace qfx {
namespace quant {

struct FuseOptions {
  const BackendConfig* backend = DefaultBackend();  // GetBackendConfig("qnnpack") for another
  // When given, nodes whose qconfig is none are not fused (they stay exactly as they were).
  const QConfigMapping* mapping = nullptr;
};
absl::Status Fuse(fx::GraphModule& module, const FuseOptions& options);

// Why a node stays in float after Prepare.
enum class FloatReason : uint8_t { kNoRule, kQConfigNone, kNoKernel, kNotAnOp };
const char* FloatReasonText(FloatReason r);  // "no qconfig rule", "qconfig none", "no int8 kernel", ...

struct PrepareOptions {
  QuantConfig config;  // the mapping and the backend
};

// What Prepare decided: typed state keyed by node for Convert (nodes stay owned by their graph, erased or
// not), and the same by node name and module path for people (dumps, messages, tests).
struct PrepareReport {
  // Quantized patterns by the node that ends them, with the backend pattern ("conv-relu", ...); a fused
  // module is named by the chain fused into it ("conv-bn-relu" for conv -> bn -> relu, whose bn was folded).
  std::unordered_map<const fx::Node*, const BackendPattern*> anchors;
  // Weighted modules' weight specs, by their call_module node (convert quantizes the weights with them).
  std::unordered_map<const fx::Node*, ObserverSpec> weights;

  // For people: anchors by node name with the pattern name, weight specs by module path.
  std::map<std::string, std::string> quantized;
  std::map<std::string, ObserverSpec> weight_specs;
  // Every other op node and why it stays float.
  std::map<std::string, FloatReason> left_float;
  // User rules that matched no node (warnings).
  std::vector<std::string> warnings;
  int observers = 0;
};

// Fuses (for PTQ), then inserts observers. A qconfig the backend's kernels cannot honour for a quantized
// node is an error naming the node and the constraint; nothing falls back silently.
absl::StatusOr<PrepareReport> Prepare(fx::GraphModule& module, const PrepareOptions& options);

// Dynamic quantization (the `dynamic` preset, or rule files whose qconfigs use a quint8 "placeholder"
// activation observer): every Linear module, and every functional linear on parameters (get_attr weight
// and bias; it becomes a call of a new module named `<node>_dynamic`), whose qconfig is dynamic becomes a
// DynamicQuantizedLinear with its weight quantized by the qconfig's weight observer; everything else stays
// float. Needs no
// calibration. A mapping that mixes dynamic and static qconfigs is an error (quantize in two passes).
struct DynamicReport {
  std::vector<std::string> quantized;             // module paths
  std::map<std::string, std::string> left_float;  // node name -> why
  std::vector<std::string> warnings;
};
// True when the mapping gives some node of `module` a dynamic qconfig.
bool HasDynamicQConfig(const QConfigMapping& mapping, fx::GraphModule& module);
absl::StatusOr<DynamicReport> QuantizeDynamic(fx::GraphModule& module, const QuantConfig& config);

// For quantization-aware training (the module must be in training mode): Conv+BN(+ReLU), Conv+ReLU and
// Linear+ReLU become ConvBn2d / ConvBnReLU2d / ConvReLU2d / LinearReLU QAT modules, other Conv2d and Linear
// modules QAT Conv2d / Linear, each with a weight fake-quant from its qconfig; BN+ReLU fuses as for PTQ;
// then fake-quant modules are inserted where Prepare inserts observers. Weight and activation specs must
// be fake-quant specs (the *_qat presets, or fake_quant = true in a rule file).
absl::StatusOr<PrepareReport> PrepareQat(fx::GraphModule& module, const PrepareOptions& options);

// Convert, first half: the reference quantized graph. Observer / fake-quant nodes become quantize ->
// dequantize with their qparams; each quantized Conv2d / Linear (plain, fused or QAT, batch norm folded)
// becomes a ReferenceWeighted module with int8 weights quantized by its weight spec. It runs in float.
absl::Status ConvertToReference(fx::GraphModule& module, const PrepareReport& report);
// Convert, second half: dequantize -> op -> quantize chains become int8 ops on quint8 tensors; quantize
// stays at the graph inputs and dequantize where float resumes. Fails naming any quantized pattern that
// could not be lowered.
absl::Status Lower(fx::GraphModule& module, const PrepareReport& report);
// Both.
absl::Status Convert(fx::GraphModule& module, const PrepareReport& report);

// Freezes (or unfreezes) batch-norm statistics of every QAT conv module, as PyTorch's freeze_bn_stats.
void FreezeBnStats(fx::GraphModule& module, bool freeze = true);
// Turns observation / fake quantization on or off in every FakeQuantize module.
void EnableObservers(fx::GraphModule& module, bool on);
void EnableFakeQuant(fx::GraphModule& module, bool on);

}  // namespace quant
}  // namespace qfx
