// qfx quant: ConvertPt2e and LowerPt2e (see include/qfx/quant/pt2e.h), after PyTorch 2.x's convert_pt2e.
//
// Convert: each conv2d / linear whose weight edge is observed, and each QAT module PrepareQatPt2e made,
// becomes a call of a reference module (int8 weight, per-channel or per-tensor scales, float bias; it
// dequantizes the weight in its forward), placed at the conv's module path; every other observer becomes quantize ->
// dequantize. qint8 activations with zero point z become quint8 with z + 128: the same real values on the same grid,
// what the kernels take. Lower: a reference conv / linear followed by a clamp and a quantize gets a quantize ->
// dequantize of its own with the clamp's output qparams (the clamp then folds into the int8 epilogue), and the FX
// flow's Lower does the rest. Any reference layer or dequantize -> op -> quantize chain left is an error naming it.
#include <cmath>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "qfx/nn/ops.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/pt2e.h"
#include "qfx/quant/qat_modules.h"
#include "qfx/quant/quantized_modules.h"
#include "src/quant/layers_internal.h"
#include "src/quant/pt2e_internal.h"

namespace qfx {
namespace quant {
namespace {

using internal::IsObserverNode;
using internal::IsOp;
using internal::NodeArg;

struct WeightedPlan {
  fx::Node* node;
  std::string path;
  QuantizedLayer layer;
};

// A DerivedQuantizationSpec on the bias must give what the kernels use: scale = input scale x weight scale
// (per channel), zero point 0. Anything else would be ignored silently, so it is an error.
absl::Status CheckDerivedBias(fx::GraphModule& gm, fx::Node* n, const QParams& weight_qp) {
  const QuantizationAnnotation* a = FindAnnotation(n);
  const fx::Node* b = NodeArg(n, 2);
  if (a == nullptr || b == nullptr) return absl::OkStatus();
  for (const auto& entry : a->input_qspec_map) {  // not a structured binding: the lambda below captures spec
    const QuantizationSpecBase& spec = entry.second;
    const auto* d = std::get_if<DerivedQuantizationSpec>(&spec);
    if (entry.first != b || d == nullptr) continue;
    fx::Node* x_obs = NodeArg(n, 0);
    const fx::Node* w = NodeArg(NodeArg(n, 1), 0);
    auto fail = [&](const std::string& why) {
      return absl::InvalidArgumentError(
          absl::StrCat("ConvertPt2e: %", n->name(), "'s bias is annotated ", SpecString(spec), ": ", why));
    };
    if (!IsObserverNode(gm, x_obs)) return fail("its input is not observed");
    QFX_ASSIGN_OR_RETURN(QParams x_qp, internal::ObserverQParams(gm.submodule(x_obs->target().path)));
    std::vector<QParams> from;
    for (const EdgeOrNode& e : d->derived_from) {
      if (e.producer == NodeArg(x_obs, 0)) {
        from.push_back(x_qp);
      } else if (e.producer == w) {
        from.push_back(weight_qp);
      } else {
        return fail("qfx's kernels derive a bias from the input and weight edges only");
      }
    }
    if (!d->derive_qparams_fn) return fail("it has no derive_qparams_fn");
    QParams got;
    QFX_RETURN_IF_ERROR(CatchErrors([&] { got = d->derive_qparams_fn(from); }));
    for (size_t c = 0; c < weight_qp.scale.size(); ++c) {
      const float want = x_qp.scale[0] * weight_qp.scale[c];
      const size_t i = got.scale.size() == 1 ? 0 : c;
      if (i >= got.scale.size() || std::fabs(got.scale[i] - want) > 1e-6f * want ||
          (i < got.zero_point.size() && got.zero_point[i] != 0)) {
        return fail(absl::StrCat("channel ", c, " derives scale ", i < got.scale.size() ? got.scale[i] : 0.f,
                                 ", but the int8 kernels use input scale x weight scale = ", want,
                                 " with zero point 0"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<QuantizedLayer> LayerFor(fx::GraphModule& gm, fx::Node* n, fx::Node* w_obs) {
  fx::Node* w = NodeArg(w_obs, 0);
  fx::Node* b = NodeArg(n, 2);
  auto fail = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("ConvertPt2e: %", n->name(), ": ", why));
  };
  if (w->op() != fx::Opcode::kGetAttr) return fail("its observed weight is not a parameter (get_attr)");
  if (b != nullptr && b->op() != fx::Opcode::kGetAttr)
    return fail("its bias is not a float parameter (an observed or computed bias has no int8 kernel)");
  const Tensor weight = gm.tensor_at(w->target().path);
  const Tensor bias = b ? gm.tensor_at(b->target().path) : Tensor();
  QFX_ASSIGN_OR_RETURN(QParams qp, internal::ObserverQParams(gm.submodule(w_obs->target().path)));
  QFX_RETURN_IF_ERROR(CheckDerivedBias(gm, n, qp));
  absl::StatusOr<QuantizedLayer> layer = QuantizeLayer(weight, bias, qp);
  if (!layer.ok()) return fail(std::string(layer.status().message()));
  if (IsOp(n, OpId::kLinear)) {
    layer->is_conv = false;
    layer->in_channels = weight.size(1);
    return layer;
  }
  const std::optional<nn::Size2> stride = internal::PairValue(n->args()[3]),
                                 padding = internal::PairValue(n->args()[4]),
                                 dilation = internal::PairValue(n->args()[5]);
  const auto* groups = std::get_if<int64_t>(&n->args()[6]);
  if (!stride || !padding || !dilation || groups == nullptr || weight.dim() != 4) {
    return fail(absl::StrCat(
        "qfx's int8 conv takes strides, padding and dilation of two integers each and a 4-d "
        "weight; this one has ",
        FormatArgument(n->args()[3]), " / ", FormatArgument(n->args()[4]), " / ", FormatArgument(n->args()[5]),
        " and weight ", weight.ToString(), " (leave it unannotated to keep it float)"));
  }
  layer->in_channels = weight.size(1) * *groups;
  layer->kernel = nn::Size2(weight.size(2), weight.size(3));
  layer->stride = *stride;
  layer->padding = *padding;
  layer->dilation = *dilation;
  layer->groups = *groups;
  return layer;
}

// A QAT module's int8 layer (batch norm folded, the weight quantized on the grid it trained on), or none
// for other modules.
absl::StatusOr<std::optional<QuantizedLayer>> QatLayer(fx::GraphModule& gm, const fx::Node* n) {
  nn::Module* m = gm.submodule(n->target().path);
  std::shared_ptr<nn::Module> fq;
  if (auto* conv = dynamic_cast<QatConv2d*>(m)) fq = conv->weight_fake_quant;
  if (auto* linear = dynamic_cast<QatLinear*>(m)) fq = linear->weight_fake_quant;
  if (fq == nullptr) return std::optional<QuantizedLayer>();
  ObserverSpec spec;
  if (auto* f = dynamic_cast<FakeQuantize*>(fq.get())) spec = f->observer().spec();
  if (auto* o = dynamic_cast<Observer*>(fq.get())) spec = o->spec();
  absl::StatusOr<QuantizedLayer> layer = internal::LayerOf(m, spec);
  if (!layer.ok())
    return absl::InvalidArgumentError(absl::StrCat("ConvertPt2e: %", n->name(), ": ", layer.status().message()));
  return std::optional<QuantizedLayer>(*std::move(layer));
}

absl::Status ConvertWeighted(fx::GraphModule& gm) {
  std::map<std::string, int> reads, used;
  for (fx::Node* n : gm.graph()) {
    if (n->op() == fx::Opcode::kGetAttr) reads[n->target().path]++;
  }
  std::vector<WeightedPlan> plans;
  for (fx::Node* n : gm.graph()) {  // every weight is read before any module is replaced
    if (n->op() == fx::Opcode::kCallModule) {
      QFX_ASSIGN_OR_RETURN(std::optional<QuantizedLayer> qat, QatLayer(gm, n));
      if (qat) plans.push_back({n, n->target().path, *std::move(qat)});
      continue;
    }
    if (!IsOp(n, OpId::kConv2d) && !IsOp(n, OpId::kLinear)) continue;
    fx::Node* w_obs = NodeArg(n, 1);
    if (!IsObserverNode(gm, w_obs)) continue;
    QFX_ASSIGN_OR_RETURN(QuantizedLayer layer, LayerFor(gm, n, w_obs));
    const std::string& scope = n->meta.scope.path;
    const fx::Node* w = NodeArg(w_obs, 0);
    std::string path = !scope.empty() && w->target().path == scope + ".weight" && reads[w->target().path] == 1
                           ? scope
                           : absl::StrCat(n->name(), "_int8");
    if (used[path]++ > 0 || (path != scope && gm.submodule(path) != nullptr))
      path = absl::StrCat(path, "_", used[path]);
    plans.push_back({n, path, std::move(layer)});
  }
  for (WeightedPlan& p : plans) {
    QFX_RETURN_IF_ERROR(gm.ReplaceSubmodule(p.path, std::make_shared<ReferenceWeighted>(std::move(p.layer))));
    fx::Node* call;
    {
      auto point = gm.graph().InsertingBefore(p.node);
      call = gm.graph().CallModule(p.path, {p.node->args()[0]});
    }
    call->meta.scope = p.node->meta.scope;
    call->meta.tensor = p.node->meta.tensor;
    call->meta.annotation = p.node->meta.annotation;
    p.node->ReplaceAllUsesWith(call);
    QFX_RETURN_IF_ERROR(gm.graph().EraseNode(p.node));
  }
  gm.graph().EliminateDeadCode();
  return absl::OkStatus();
}

absl::Status ReplaceActivationObservers(fx::GraphModule& gm) {
  for (fx::Node* n : gm.graph().nodes()) {
    if (!IsObserverNode(gm, n)) continue;
    absl::StatusOr<QParams> qp = internal::ObserverQParams(gm.submodule(n->target().path));
    if (!qp.ok())
      return absl::Status(qp.status().code(), absl::StrCat("ConvertPt2e: %", n->name(), ": ", qp.status().message()));
    int64_t zp = qp->zero_point.empty() ? 0 : qp->zero_point[0];
    // Full ranges, or reduce_range's halves (PreparePt2e checked which): stored over the dtype's full range.
    const bool full = qp->quant_max - qp->quant_min == 255 || qp->quant_max - qp->quant_min == 127;
    if (qp->dtype == QDType::kQInt8 && full && qp->quant_min < 0) {
      zp += 128;  // the same grid as quint8
    } else if (qp->dtype != QDType::kQUInt8 || !full || qp->quant_min != 0) {
      return absl::InvalidArgumentError(absl::StrCat("ConvertPt2e: %", n->name(), " observes ", QDTypeName(qp->dtype),
                                                     " [", qp->quant_min, ", ", qp->quant_max,
                                                     "]: activations must be full-range 8-bit"));
    }
    if (qp->scale.size() != 1)
      return absl::InvalidArgumentError(absl::StrCat("ConvertPt2e: %", n->name(), ": activations must be per tensor"));
    const fx::ModuleScope scope = n->meta.scope;
    QFX_ASSIGN_OR_RETURN(fx::Node * dq,
                         internal::ReplaceWithQuantDequant(gm, n, QuantInfo{qp->scale[0], static_cast<int32_t>(zp)}));
    dq->meta.scope = scope;
    NodeArg(dq, 0)->meta.scope = scope;
  }
  return absl::OkStatus();
}

bool IsReference(fx::GraphModule& gm, const fx::Node* n) {
  return n->op() == fx::Opcode::kCallModule && dynamic_cast<ReferenceWeighted*>(gm.submodule(n->target().path));
}

// conv -> clamp -> quantize: a quantize -> dequantize with the same qparams between conv and clamp.
void SplitClamps(fx::GraphModule& gm) {
  for (fx::Node* n : gm.graph().nodes()) {
    if (!IsReference(gm, n) || n->users().size() != 1) continue;
    fx::Node* clamp = n->users()[0];
    if (clamp->op() != fx::Opcode::kCallFunction || nn::GetOpSchema(clamp->target().op).clamp == nullptr) continue;
    if (clamp->users().size() != 1 || !IsOp(clamp->users()[0], OpId::kQuantize)) continue;
    const fx::Node* q_out = clamp->users()[0];
    fx::Node* dq;
    {
      auto point = gm.graph().InsertingAfter(n);
      fx::Node* q = gm.graph().CallFunction(OpId::kQuantize, {n, q_out->args()[1], q_out->args()[2]});
      q->meta.qparams = q_out->meta.qparams;
      dq = gm.graph().CallFunction(OpId::kDequantize, {q});
    }
    clamp->ReplaceInputWith(n, dq);
  }
}

absl::Status CheckLowered(fx::GraphModule& gm) {
  std::vector<std::string> left;
  for (fx::Node* n : gm.graph()) {
    if (IsReference(gm, n)) {
      left.push_back(
          absl::StrCat("%", n->name(), " (", n->target().path,
                       ": its input or output is not quantized; annotate both, or neither to keep it float)"));
      continue;
    }
    if (n->op() != fx::Opcode::kCallFunction && n->op() != fx::Opcode::kCallMethod) continue;
    if (nn::GetOpSchema(n->target().op).role == nn::QuantRole::kQuantized) continue;
    const QuantizationAnnotation* a = FindAnnotation(n);
    if (a == nullptr || (!a->output_qspec && a->input_qspec_map.empty())) continue;  // float by the quantizer
    bool dq_input = false;
    for (fx::Node* in : n->inputs()) dq_input |= IsOp(in, OpId::kDequantize);
    const bool q_output = n->users().size() == 1 && IsOp(n->users()[0], OpId::kQuantize);
    if (dq_input && q_output)
      left.push_back(absl::StrCat("%", n->name(), " (", n->target_string(), ": no int8 kernel for this pattern)"));
  }
  if (left.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("LowerPt2e: annotated for int8 but not lowered: ", absl::StrJoin(left, "; ")));
}

}  // namespace

absl::Status ConvertPt2e(fx::GraphModule& gm) {
  QFX_RETURN_IF_ERROR(ConvertWeighted(gm));
  QFX_RETURN_IF_ERROR(ReplaceActivationObservers(gm));
  QFX_RETURN_IF_ERROR(gm.DeleteUnusedSubmodules());
  return gm.Lint();
}

absl::Status LowerPt2e(fx::GraphModule& gm) {
  SplitClamps(gm);
  QFX_RETURN_IF_ERROR(Lower(gm, PrepareReport{}));
  return CheckLowered(gm);
}

}  // namespace quant
}  // namespace qfx
