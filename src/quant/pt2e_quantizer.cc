// qfx quant: PT2E annotations and the built-in quantizers (see include/qfx/quant/pt2e.h), after PyTorch
// 2.x's xnnpack_quantizer.py / xnnpack_quantizer_utils.py and x86_inductor_quantizer.py.
//
// A pattern is annotated at its first node (conv2d, linear, add, cat, a pool) with the config the most
// specific rule gives that node; nodes already annotated (by an earlier pattern or an earlier quantizer of
// a ComposableQuantizer) are left alone. A rule giving none leaves the node unannotated with a note, so it
// stays float (unless a quantizer composed later annotates it) and the dump says which rule kept it.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "qfx/nn/ops.h"
#include "qfx/quant/pt2e.h"
#include "src/quant/pt2e_internal.h"

namespace qfx {
namespace quant {
namespace {

using internal::IsOp;
using internal::IsOpNode;
using internal::NodeArg;

std::string EdgeString(const EdgeOrNode& e) {
  if (e.producer == nullptr) return "(none)";
  if (e.consumer == nullptr) return absl::StrCat("%", e.producer->name());
  return absl::StrCat("%", e.consumer->name(), "'s input %", e.producer->name());
}

bool IsAnnotated(const fx::Node* n) {
  const QuantizationAnnotation* a = FindAnnotation(n);
  return a != nullptr && a->annotated;
}
// The single user of `n` that is one of `clamps` (the conv-relu / add-relu patterns), or nullptr.
fx::Node* ClampFollower(const fx::Node* n, const std::vector<OpId>& clamps) {
  if (n->users().size() != 1) return nullptr;
  fx::Node* u = n->users()[0];
  for (OpId op : clamps) {
    if (IsOp(u, op) && !IsAnnotated(u)) return u;
  }
  return nullptr;
}
bool OutputQuantized(const fx::Node* n) {
  const QuantizationAnnotation* a = FindAnnotation(n);
  return a != nullptr && a->output_qspec.has_value();
}

// The types of every module enclosing a node's scope ("ResNet" excluded: the root has no path).
std::vector<std::string> EnclosingTypes(fx::GraphModule& gm, const std::string& path) {
  std::vector<std::string> types;
  for (size_t dot = 0; dot != std::string::npos;) {
    dot = path.find('.', dot + 1);
    const std::string prefix = path.substr(0, dot);
    if (nn::Module* m = gm.submodule(prefix)) types.push_back(m->type_name());
  }
  return types;
}

class Annotator {
 public:
  Annotator(const QuantizationConfig& c, const std::vector<OpId>& clamps) : c_(c), clamps_(clamps) {}

  // conv2d(-batch_norm) / linear (-clamp): input, weight (and bias with a spec), output at the clamp when
  // there is one. A batch norm is still there only for QAT (PTQ folds it first): it joins the pattern.
  void Weighted(fx::Node* n) {
    QuantizationAnnotation& a = Claim(n);
    fx::Node* x = NodeArg(n, 0);
    fx::Node* w = NodeArg(n, 1);
    fx::Node* b = NodeArg(n, 2);
    if (x && c_.input_activation) a.input_qspec_map.emplace_back(x, *c_.input_activation);
    if (w && c_.weight) a.input_qspec_map.emplace_back(w, *c_.weight);
    if (b && c_.bias) a.input_qspec_map.emplace_back(b, *c_.bias);
    fx::Node* end = n;
    if (IsOp(n, OpId::kConv2d) && n->users().size() == 1 && IsOp(n->users()[0], OpId::kBatchNorm) &&
        !IsAnnotated(n->users()[0])) {
      end = n->users()[0];
      Claim(end);
    }
    Output(end, ClampFollower(end, clamps_));
  }

  // add(-clamp) / mul on two tensors.
  void Binary(fx::Node* n) {
    fx::Node* x = NodeArg(n, 0);
    fx::Node* y = NodeArg(n, 1);
    if (!x || !y) return;  // a scalar operand: no int8 kernel here, the node stays float
    QuantizationAnnotation& a = Claim(n);
    if (c_.input_activation) {
      a.input_qspec_map.emplace_back(x, *c_.input_activation);
      if (y != x) a.input_qspec_map.emplace_back(y, *c_.input_activation);
    }
    Output(n, IsOp(n, OpId::kAdd) ? ClampFollower(n, clamps_) : nullptr);
  }

  // cat: every input and the output share the first input edge's qparams.
  void Cat(fx::Node* n) {
    const auto* list = std::get_if<std::vector<fx::Node*>>(&n->args()[0]);
    if (!list || list->empty() || !c_.input_activation) return;
    QuantizationAnnotation& a = Claim(n);
    const EdgeOrNode first{(*list)[0], n};
    a.input_qspec_map.emplace_back((*list)[0], *c_.input_activation);
    for (size_t i = 1; i < list->size(); ++i) {
      if ((*list)[i] != (*list)[0]) a.input_qspec_map.emplace_back((*list)[i], SharedQuantizationSpec{first});
    }
    a.output_qspec = SharedQuantizationSpec{first};
  }

  // Pools: own input spec, output shared with it (xnnpack's max_pool2d / adaptive_avg_pool2d).
  void Pool(fx::Node* n) {
    fx::Node* x = NodeArg(n, 0);
    if (!x || !c_.input_activation) return;
    QuantizationAnnotation& a = Claim(n);
    if (OutputQuantized(x)) {
      a.input_qspec_map.emplace_back(x, SharedQuantizationSpec{EdgeOrNode{x, nullptr}});
    } else {
      a.input_qspec_map.emplace_back(x, *c_.input_activation);
    }
    a.output_qspec = SharedQuantizationSpec{EdgeOrNode{x, n}};
  }

  // Reshape-like ops and lone clamps after a quantized producer: input and output share its qparams.
  void Propagate(fx::Node* n) {
    fx::Node* x = NodeArg(n, 0);
    if (!x || !OutputQuantized(x)) return;
    QuantizationAnnotation& a = Claim(n);
    a.input_qspec_map.emplace_back(x, SharedQuantizationSpec{EdgeOrNode{x, nullptr}});
    a.output_qspec = SharedQuantizationSpec{EdgeOrNode{x, nullptr}};
  }

 private:
  QuantizationAnnotation& Claim(fx::Node* n) {
    QuantizationAnnotation& a = AnnotationOf(n);
    a.annotated = true;
    a.note.clear();
    return a;
  }
  void Output(fx::Node* n, fx::Node* clamp) {
    if (!c_.output_activation) return;
    if (clamp != nullptr) {
      QuantizationAnnotation& ca = Claim(clamp);
      ca.output_qspec = *c_.output_activation;
      return;
    }
    AnnotationOf(n).output_qspec = *c_.output_activation;
  }

  const QuantizationConfig& c_;
  const std::vector<OpId>& clamps_;
};

bool IsPool(const fx::Node* n) {
  return IsOp(n, OpId::kMaxPool2d) || IsOp(n, OpId::kAvgPool2d) || IsOp(n, OpId::kAdaptiveAvgPool2d);
}

QuantizationSpec Activation(QDType dtype, bool is_qat, bool is_dynamic) {
  QuantizationSpec s;
  s.observer.dtype = dtype;
  s.observer.qscheme = QScheme::kPerTensorAffine;
  s.observer.quant_min = dtype == QDType::kQInt8 ? -128 : 0;
  s.observer.quant_max = dtype == QDType::kQInt8 ? 127 : 255;
  s.observer.kind = is_qat || is_dynamic ? ObserverKind::kMovingAverageMinMax : ObserverKind::kHistogramPt2;
  s.observer.fake_quant = is_qat;
  s.is_dynamic = is_dynamic;
  return s;
}

QuantizationSpec Weight(int64_t quant_min, bool per_channel, bool is_qat) {
  QuantizationSpec s;
  s.observer.dtype = QDType::kQInt8;
  s.observer.qscheme = per_channel ? QScheme::kPerChannelSymmetric : QScheme::kPerTensorSymmetric;
  s.observer.kind = per_channel
                        ? (is_qat ? ObserverKind::kMovingAveragePerChannelMinMax : ObserverKind::kPerChannelMinMax)
                        : (is_qat ? ObserverKind::kMovingAverageMinMax : ObserverKind::kMinMax);
  s.observer.quant_min = quant_min;
  s.observer.quant_max = 127;
  s.observer.ch_axis = 0;
  s.observer.fake_quant = is_qat;
  return s;
}

}  // namespace

std::string SpecString(const QuantizationSpecBase& spec) {
  return std::visit(
      [](const auto& s) -> std::string {
        using T = std::decay_t<decltype(s)>;
        if constexpr (std::is_same_v<T, QuantizationSpec>) {
          return absl::StrCat(s.observer.ToString(), s.is_dynamic ? " dynamic" : "");
        } else if constexpr (std::is_same_v<T, SharedQuantizationSpec>) {
          return absl::StrCat("shared with ", EdgeString(s.edge_or_node));
        } else if constexpr (std::is_same_v<T, DerivedQuantizationSpec>) {
          std::vector<std::string> from;
          for (const EdgeOrNode& e : s.derived_from) from.push_back(EdgeString(e));
          return absl::StrCat("derived(", QDTypeName(s.dtype), ") from ", absl::StrJoin(from, ", "));
        } else {
          return absl::StrCat("fixed(", QDTypeName(s.dtype), ", scale ", s.scale, ", zero_point ", s.zero_point, ")");
        }
      },
      spec);
}

QuantizationAnnotation& AnnotationOf(fx::Node* n) {
  if (!n->meta.annotation) n->meta.annotation = std::make_shared<QuantizationAnnotation>();
  return *n->meta.annotation;
}
const QuantizationAnnotation* FindAnnotation(const fx::Node* n) { return n->meta.annotation.get(); }

absl::Status ComposableQuantizer::Annotate(fx::GraphModule& gm) {
  for (auto& q : quantizers_) QFX_RETURN_IF_ERROR(q->Annotate(gm));
  return absl::OkStatus();
}
absl::Status ComposableQuantizer::Validate(fx::GraphModule& gm) {
  for (auto& q : quantizers_) QFX_RETURN_IF_ERROR(q->Validate(gm));
  return absl::OkStatus();
}

PatternQuantizer& PatternQuantizer::set_global(std::optional<QuantizationConfig> c) {
  global_ = std::move(c);
  return *this;
}
PatternQuantizer& PatternQuantizer::set_module_type(const std::string& type, std::optional<QuantizationConfig> c) {
  types_.emplace_back(type, std::move(c));
  return *this;
}
PatternQuantizer& PatternQuantizer::set_module_name(const std::string& name, std::optional<QuantizationConfig> c) {
  names_.emplace_back(name, std::move(c));
  return *this;
}
PatternQuantizer& PatternQuantizer::set_operator_type(OpId op, std::optional<QuantizationConfig> c) {
  ops_.emplace_back(op, std::move(c));
  return *this;
}

const QuantizationConfig* PatternQuantizer::ConfigFor(fx::GraphModule& gm, const fx::Node* n, std::string* rule) const {
  const std::string& path = n->meta.scope.path;
  const std::optional<QuantizationConfig>* best = nullptr;
  size_t best_len = 0;
  for (const auto& [name, c] : names_) {  // the longest matching name; a later equal one wins
    const bool inside = path == name || (path.size() > name.size() && path.compare(0, name.size(), name) == 0 &&
                                         path[name.size()] == '.');
    if (inside && name.size() >= best_len) {
      best = &c, best_len = name.size();
      *rule = absl::StrCat("module_name '", name, "'");
    }
  }
  if (best == nullptr && !path.empty()) {
    const std::vector<std::string> enclosing = EnclosingTypes(gm, path);
    for (const auto& [type, c] : types_) {
      if (std::find(enclosing.begin(), enclosing.end(), type) != enclosing.end()) {
        best = &c;
        *rule = absl::StrCat("module_type '", type, "'");
      }
    }
  }
  if (best == nullptr && IsOpNode(n)) {
    for (const auto& [op, c] : ops_) {
      if (op == n->target().op) {
        best = &c;
        *rule = absl::StrCat("operator_type '", nn::GetOpSchema(op).name, "'");
      }
    }
  }
  if (best == nullptr && global_.has_value()) {
    best = &*global_;
    *rule = "global";
  }
  if (best == nullptr) {
    *rule = "no rule";
    return nullptr;
  }
  return best->has_value() ? &**best : nullptr;
}

absl::Status PatternQuantizer::Annotate(fx::GraphModule& gm) {
  for (fx::Node* n : gm.graph().nodes()) {
    if (!IsOpNode(n) || IsAnnotated(n)) continue;
    const OpId op = n->target().op;
    const bool pattern = op == OpId::kConv2d || op == OpId::kLinear || op == OpId::kAdd || op == OpId::kMul ||
                         op == OpId::kCat || IsPool(n) ||
                         std::find(propagated_.begin(), propagated_.end(), op) != propagated_.end();
    if (!pattern) continue;
    std::string rule;
    const QuantizationConfig* c = ConfigFor(gm, n, &rule);
    if (c == nullptr) {
      // Not claimed (a quantizer composed after this one may still annotate it); the note says why not here.
      AnnotationOf(n).note = rule == "no rule"
                                 ? absl::StrCat(name_, ": no config (no global config and no rule matches)")
                                 : absl::StrCat(name_, ": ", rule, " gives no config");
      continue;
    }
    Annotator an(*c, fused_clamps_);
    if (op == OpId::kConv2d || op == OpId::kLinear) {
      an.Weighted(n);
    } else if (op == OpId::kAdd || op == OpId::kMul) {
      an.Binary(n);
    } else if (op == OpId::kCat) {
      an.Cat(n);
    } else if (IsPool(n)) {
      an.Pool(n);
    } else {
      an.Propagate(n);
    }
  }
  return absl::OkStatus();
}

absl::Status PatternQuantizer::Validate(fx::GraphModule& gm) {
  for (fx::Node* n : gm.graph()) {
    const QuantizationAnnotation* a = FindAnnotation(n);
    if (a == nullptr) continue;
    for (const auto& [input, spec] : a->input_qspec_map) {
      if (const auto* s = std::get_if<QuantizationSpec>(&spec)) {
        const absl::Status ok = ValidateSpec(s->observer);
        if (!ok.ok())
          return absl::InvalidArgumentError(
              absl::StrCat(name_, ": %", n->name(), "'s input %", input->name(), ": ", ok.message()));
      }
    }
  }
  return absl::OkStatus();
}

QuantizationConfig get_symmetric_quantization_config(bool is_per_channel, bool is_qat, bool is_dynamic) {
  QuantizationConfig c;
  QuantizationSpec act = Activation(QDType::kQInt8, is_qat, is_dynamic);
  act.observer.eps = 1.f / 4096;  // 2^-12, as xnnpack's config
  c.input_activation = act;
  if (!is_dynamic) c.output_activation = act;
  c.weight = Weight(-127, is_per_channel, is_qat);
  c.weight->observer.eps = 1.f / 4096;
  c.is_qat = is_qat;
  return c;
}

QuantizationConfig get_default_x86_inductor_quantization_config(bool is_qat) {
  QuantizationConfig c;
  c.input_activation = c.output_activation = Activation(QDType::kQUInt8, is_qat, false);
  c.weight = Weight(-128, true, is_qat);
  c.is_qat = is_qat;
  return c;
}

absl::StatusOr<std::shared_ptr<PatternQuantizer>> MakeQuantizer(const std::string& name, bool per_channel,
                                                                bool is_qat) {
  if (name == "xnnpack") {
    auto q = std::make_shared<XNNPACKQuantizer>();
    q->set_global(get_symmetric_quantization_config(per_channel, is_qat));
    return std::shared_ptr<PatternQuantizer>(q);
  }
  if (name == "x86_inductor") {
    auto q = std::make_shared<X86InductorQuantizer>();
    QuantizationConfig c = get_default_x86_inductor_quantization_config(is_qat);
    if (!per_channel) c.weight = Weight(-128, false, is_qat);
    q->set_global(c);
    return std::shared_ptr<PatternQuantizer>(q);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown quantizer '", name, "': the built-ins are xnnpack and x86_inductor"));
}

}  // namespace quant
}  // namespace qfx
