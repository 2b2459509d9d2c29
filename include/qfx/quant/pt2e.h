// qfx quant: the PT2E flow, after PyTorch 2.x's torch.ao.quantization.quantizer and quantize_pt2e.
//
//   Export         modules inlined into an op-level graph: every leaf module that computes a registered
//                  op (Conv2d, Linear, BatchNorm2d, ReLU, MaxPool2d, ...) becomes a call_function of that
//                  op with its parameters and buffers as get_attr nodes; each node keeps the module it came
//                  from (meta.scope: PyTorch's nn_module_stack[-1]) so quantizers select by name or type.
//   Quantizer      a backend's Annotate(graph): a QuantizationAnnotation per node (meta.annotation) with one
//                  spec per input edge and one for the output; then Validate.
//   PreparePt2e    eval conv -> batch_norm folded, the quantizer run, observers inserted from the annotations:
//                  edges and outputs that share (SharedQuantizationSpec, or an input edge whose producer's
//                  output spec has the same dtype) get one observer; derived and fixed specs get none.
//   PrepareQatPt2e the same with fake-quant specs and batch norms kept; conv2d(-batch_norm) / linear with a
//                  fake-quantized weight become QAT modules (ConvBn2d simulates the folding) for training.
//   ConvertPt2e    the Q/DQ reference representation: each activation observer becomes quantize ->
//                  dequantize; each conv2d / linear whose weight edge is observed becomes a reference module
//                  holding the int8 weight and its per-channel (or per-tensor) scales, which dequantizes it
//                  in its forward; it runs in float.
//   LowerPt2e      Q/DQ patterns to the int8 kernels of the FX flow (QuantizedConv2d / Linear, q_add, q_cat,
//                  share-qparams ops on quint8), so the result saves as a .qfx file. qint8 activations with
//                  zero point z are the same real values as quint8 with z + 128: they lower to quint8.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "qfx/fx/graph_module.h"
#include "qfx/quant/observer.h"
#include "qfx/quant/qconfig.h"

namespace qfx {
namespace quant {

// Export: the op-level graph of `model` (traced, then every module with a registered op inlined).
absl::StatusOr<std::shared_ptr<fx::GraphModule>> Export(std::shared_ptr<nn::Module> model,
                                                        const std::vector<Shape>& example_input_shapes);
// Export's second half on a graph that exists (a .qfx file's fp32 graph): its modules inlined in place.
absl::Status InlineModules(fx::GraphModule& gm);

// ----- Annotations (torch.ao.quantization.quantizer.quantizer) -----
// An input edge (producer -> consumer) or, with consumer null, the producer's output.
struct EdgeOrNode {
  const fx::Node* producer = nullptr;
  const fx::Node* consumer = nullptr;
  bool operator==(const EdgeOrNode& o) const { return producer == o.producer && consumer == o.consumer; }
};
// dtype, quant_min / quant_max, qscheme and ch_axis live in `observer` (with the observer or fake-quant
// kind, PyTorch's observer_or_fake_quant_ctr); is_dynamic marks run-time activation quantization.
struct QuantizationSpec {
  ObserverSpec observer;
  bool is_dynamic = false;
};
struct SharedQuantizationSpec {
  EdgeOrNode edge_or_node;
};
// qparams computed at convert from the observers of `derived_from` (e.g. an int32 bias: input scale times
// weight scale per channel).
struct DerivedQuantizationSpec {
  std::vector<EdgeOrNode> derived_from;
  std::function<QParams(const std::vector<QParams>&)> derive_qparams_fn;
  QDType dtype = QDType::kQInt32;
  int64_t quant_min = -(int64_t{1} << 31), quant_max = (int64_t{1} << 31) - 1;
  QScheme qscheme = QScheme::kPerChannelSymmetric;
  int64_t ch_axis = 0;
};
struct FixedQParamsQuantizationSpec {
  QDType dtype = QDType::kQUInt8;
  float scale = 1.f / 256;
  int64_t zero_point = 0;
  int64_t quant_min = 0, quant_max = 255;
  QScheme qscheme = QScheme::kPerTensorAffine;
};
using QuantizationSpecBase =
    std::variant<QuantizationSpec, SharedQuantizationSpec, DerivedQuantizationSpec, FixedQParamsQuantizationSpec>;
std::string SpecString(const QuantizationSpecBase& spec);  // for dumps and errors

struct QuantizationAnnotation {
  std::vector<std::pair<const fx::Node*, QuantizationSpecBase>> input_qspec_map;  // in argument order
  std::optional<QuantizationSpecBase> output_qspec;
  bool annotated = false;  // claimed by a pattern (later patterns leave the node alone)
  std::string note;        // why a claimed node has no specs ("XNNPACKQuantizer: module_name 'fc' gives no config")
};
// The annotation of a node (created empty when absent).
QuantizationAnnotation& AnnotationOf(fx::Node* n);
const QuantizationAnnotation* FindAnnotation(const fx::Node* n);

// PyTorch's QuantizationConfig: the specs a quantizer gives a pattern's edges (bias: none keeps it float).
struct QuantizationConfig {
  std::optional<QuantizationSpec> input_activation, output_activation, weight;
  std::optional<QuantizationSpecBase> bias;
  bool is_qat = false;
};

class Quantizer {
 public:
  virtual ~Quantizer() = default;
  virtual absl::Status Annotate(fx::GraphModule& gm) = 0;
  // Checks the annotations; PreparePt2e calls it after Annotate.
  virtual absl::Status Validate(fx::GraphModule& /*gm*/) { return absl::OkStatus(); }
};

// Runs its quantizers in order (each leaves nodes others annotated alone).
class ComposableQuantizer : public Quantizer {
 public:
  explicit ComposableQuantizer(std::vector<std::shared_ptr<Quantizer>> quantizers)
      : quantizers_(std::move(quantizers)) {}
  absl::Status Annotate(fx::GraphModule& gm) override;
  absl::Status Validate(fx::GraphModule& gm) override;

 private:
  std::vector<std::shared_ptr<Quantizer>> quantizers_;
};

// The built-in quantizers' configs: set_global, set_module_type (module type name, "Conv2d"),
// set_module_name (dotted path; the module and everything inside it), set_operator_type (an op); the most
// specific wins: module name, then module type, then operator type, then global. A null config (none)
// keeps the matching nodes float.
class PatternQuantizer : public Quantizer {
 public:
  explicit PatternQuantizer(std::string name) : name_(std::move(name)) {}
  PatternQuantizer& set_global(std::optional<QuantizationConfig> c);
  PatternQuantizer& set_module_type(const std::string& type, std::optional<QuantizationConfig> c);
  PatternQuantizer& set_module_name(const std::string& name, std::optional<QuantizationConfig> c);
  PatternQuantizer& set_operator_type(OpId op, std::optional<QuantizationConfig> c);
  absl::Status Annotate(fx::GraphModule& gm) override;
  absl::Status Validate(fx::GraphModule& gm) override;

 protected:
  // The clamps fused into a preceding conv / linear / add pattern (its output annotated at the clamp):
  // XNNPACK fuses relu only (hardtanh shares its input's qparams instead), x86 relu, relu6 and hardtanh.
  std::vector<OpId> fused_clamps_ = {OpId::kRelu};
  // The ops that take their input's qparams when their producer's output is quantized (XNNPACK's
  // _is_share_obs_or_fq_op list; x86 Inductor has none beyond its pool and cat patterns).
  std::vector<OpId> propagated_ = {OpId::kRelu,          OpId::kRelu6,   OpId::kHardtanh,      OpId::kMean,
                                   OpId::kFlatten,       OpId::kReshape, OpId::kMethodReshape, OpId::kMethodView,
                                   OpId::kMethodFlatten, OpId::kDropout};

 private:
  // The config of node `n` (nullptr: keep float) and the rule that chose it, for reports.
  const QuantizationConfig* ConfigFor(fx::GraphModule& gm, const fx::Node* n, std::string* rule) const;
  std::string name_;
  std::optional<std::optional<QuantizationConfig>> global_;
  std::vector<std::pair<std::string, std::optional<QuantizationConfig>>> types_, names_;
  std::vector<std::pair<OpId, std::optional<QuantizationConfig>>> ops_;
};

// The patterns both built-ins annotate, as PyTorch's xnnpack_quantizer_utils: conv2d(-clamp) and
// linear(-clamp) (input, weight, output; bias float unless the config gives a spec),
// add(-relu) and mul (both tensor inputs and the output), cat (inputs and output share the first input's
// qparams), pools (max_pool2d, avg_pool2d, adaptive_avg_pool2d: output shares the input edge's qparams), and
// for XNNPACK share-qparams ops after a quantized producer (relu, hardtanh, mean, flatten, reshape, view,
// dropout: input edge and output share the producer's qparams).
//
// XNNPACKQuantizer: qint8 activations [-128, 127] (histogram for PTQ, moving average for QAT, eps 2^-12),
// qint8 symmetric weights [-127, 127] per channel or per tensor.
class XNNPACKQuantizer : public PatternQuantizer {
 public:
  XNNPACKQuantizer() : PatternQuantizer("XNNPACKQuantizer") {}
};
QuantizationConfig get_symmetric_quantization_config(bool is_per_channel = true, bool is_qat = false,
                                                     bool is_dynamic = false);

// X86InductorQuantizer: quint8 [0, 255] activations (histogram), qint8 per-channel symmetric weights
// [-128, 127]. Unlike PyTorch's, it annotates the outputs of conv / linear patterns: PyTorch leaves them
// float for Inductor to fuse into the next op, qfx's int8 kernels write quint8.
class X86InductorQuantizer : public PatternQuantizer {
 public:
  X86InductorQuantizer() : PatternQuantizer("X86InductorQuantizer") {
    fused_clamps_ = {OpId::kRelu, OpId::kRelu6, OpId::kHardtanh};
    propagated_.clear();
  }
};
QuantizationConfig get_default_x86_inductor_quantization_config(bool is_qat = false);

// What PreparePt2e did, for dumps and tests: the observers, which annotated nodes each serves, and per
// op node left float, why.
struct Pt2eReport {
  int observers = 0;
  // Observer path -> the edges and outputs it observes ("%conv2d", "%add <- %conv2d", ...), in graph order.
  std::vector<std::pair<std::string, std::vector<std::string>>> groups;
  std::vector<std::pair<std::string, std::string>> left_float;  // node name, reason
};
// The report as text (one line per observer, then the float nodes), for qfx dump and errors.
std::string FormatReport(const Pt2eReport& report);
// The graph with each annotated node's specs after it, for qfx dump --stage annotated.
std::string FormatAnnotated(const fx::Graph& graph);

// Folds eval conv2d -> batch_norm, annotates with `quantizer`, validates the annotations against the
// quantizer and qfx's int8 kernels (what `qfx dump --stage annotated` shows).
absl::Status AnnotatePt2e(fx::GraphModule& gm, Quantizer& quantizer);
// AnnotatePt2e, then observers inserted from the annotations.
absl::StatusOr<Pt2eReport> PreparePt2e(fx::GraphModule& gm, Quantizer& quantizer);
// For quantization-aware training (quantizers with is_qat configs: fake-quant specs): batch norms stay,
// conv2d(-batch_norm) / linear with a fake-quantized weight become QAT modules (QatConv2d / QatLinear) at
// their module paths, and the graph is put in training mode. Train it, freeze the observers, eval(), then
// ConvertPt2e and LowerPt2e as after PreparePt2e.
absl::StatusOr<Pt2eReport> PrepareQatPt2e(fx::GraphModule& gm, Quantizer& quantizer);
// The Q/DQ reference representation (see the banner); runs in float.
absl::Status ConvertPt2e(fx::GraphModule& gm);
// The Q/DQ graph lowered to the int8 kernels; fails naming any Q/DQ pattern with no int8 lowering.
absl::Status LowerPt2e(fx::GraphModule& gm);

// The quantizer a name gives ("xnnpack", "x86_inductor"), with its default global config (per_channel
// false: per-tensor weights); an error listing the names otherwise.
absl::StatusOr<std::shared_ptr<PatternQuantizer>> MakeQuantizer(const std::string& name, bool per_channel = true,
                                                                bool is_qat = false);

}  // namespace quant
}  // namespace qfx
