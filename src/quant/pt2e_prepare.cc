// qfx quant: PreparePt2e (see include/qfx/quant/pt2e.h), after PyTorch 2.x's prepare_pt2e and its
// _get_edge_or_node_to_group_id.
//
//   1. eval conv2d -> batch_norm pairs are folded (the conv module at its path becomes the folded one);
//   2. the quantizer annotates and validates;
//   3. every annotated edge and output is a point; points join groups (one observer each):
//        SharedQuantizationSpec(x)    joins x's group;
//        an input edge's spec         joins its producer's output group when the producer's output is
//                                     annotated, else the group of an earlier edge from the same producer
//                                     with an equal spec;
//      an edge whose producer's output is observed joins that group too (PyTorch would requantize between
//      them; qfx has no requantize kernel); joining two groups whose specs differ in dtype or range is an
//      error naming both;
//   4. each group with a spec gets an observer (or fake-quant) module activation_post_process_<N>, called
//      after the producer of each of its points; derived specs get none (the kernels derive the int32 bias).
// The constraints of qfx's int8 kernels are checked on every spec first: activations 8-bit per tensor over
// the full range, weights qint8 symmetric on axis 0, no dynamic activations, biases derived or float.
// PrepareQatPt2e keeps batch norms (the quantizers' conv-bn patterns end at the batch norm), inserts
// fake-quant modules the same way, then makes each conv2d(-batch_norm) / linear whose weight is
// fake-quantized a QAT module at its module path (QatConv2d simulates the folding as PyTorch's conv-bn QAT
// rewrite does: fq(w * gamma / sigma), conv, / (gamma / sigma) + b, batch norm), so training runs it.
#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "qfx/nn/modules.h"
#include "qfx/quant/fused_modules.h"
#include "qfx/quant/pt2e.h"
#include "qfx/quant/qat_modules.h"
#include "src/quant/pt2e_internal.h"

namespace qfx {
namespace quant {
namespace {

using internal::IsObserverNode;
using internal::IsOp;
using internal::NodeArg;

using Key = std::pair<const fx::Node*, const fx::Node*>;  // producer, consumer (null: the output)

bool IsWeighted(const fx::Node* n) { return IsOp(n, OpId::kConv2d) || IsOp(n, OpId::kLinear); }
std::string PointString(const Key& k) {
  return k.second == nullptr ? absl::StrCat("%", k.first->name())
                             : absl::StrCat("%", k.second->name(), " <- %", k.first->name());
}

// ----- 1. batch norm folding -----
absl::Status FoldBatchNorms(fx::GraphModule& gm) {
  std::map<std::string, int> weight_reads;
  for (fx::Node* n : gm.graph()) {
    if (n->op() == fx::Opcode::kGetAttr) weight_reads[n->target().path]++;
  }
  for (fx::Node* bn_node : gm.graph().nodes()) {
    if (!IsOp(bn_node, OpId::kBatchNorm)) continue;
    fx::Node* conv_node = NodeArg(bn_node, 0);
    if (!IsOp(conv_node, OpId::kConv2d) || conv_node->users().size() != 1) continue;
    const auto* training = std::get_if<bool>(&bn_node->args()[5]);
    if (training == nullptr || *training) continue;
    const std::string& path = conv_node->meta.scope.path;
    fx::Node* w = NodeArg(conv_node, 1);
    auto* conv = dynamic_cast<nn::Conv2d*>(gm.submodule(path));
    auto* bn = dynamic_cast<nn::BatchNormBase*>(gm.submodule(bn_node->meta.scope.path));
    if (conv == nullptr || bn == nullptr || w == nullptr || w->target().path != path + ".weight" ||
        weight_reads[w->target().path] != 1) {
      continue;  // a functional conv or a shared module: the batch norm stays
    }
    QFX_RETURN_IF_ERROR(gm.ReplaceSubmodule(path, FoldBatchNorm(*conv, *bn)));
    if (NodeArg(conv_node, 2) == nullptr) {
      auto point = gm.graph().InsertingBefore(conv_node);
      fx::Node* bias = gm.graph().GetAttr(path + ".bias");
      bias->meta.scope = conv_node->meta.scope;
      conv_node->set_arg(2, bias);
    }
    bn_node->ReplaceAllUsesWith(conv_node);
    QFX_RETURN_IF_ERROR(gm.graph().EraseNode(bn_node));
  }
  gm.graph().EliminateDeadCode();
  return gm.DeleteUnusedSubmodules();
}

// ----- 3. the kernels' constraints -----
absl::Status Refuse(const fx::Node* n, const std::string& where, const QuantizationSpecBase& spec,
                    const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("PreparePt2e: %", n->name(), where, " is annotated ", SpecString(spec),
                                                 ", which qfx's int8 kernels cannot honour: ", why));
}

absl::Status CheckActivation(const fx::Node* n, const std::string& where, const QuantizationSpecBase& base) {
  const auto* s = std::get_if<QuantizationSpec>(&base);
  if (const auto* f = std::get_if<FixedQParamsQuantizationSpec>(&base)) {
    const bool full = (f->dtype == QDType::kQUInt8 && f->quant_min == 0 && f->quant_max == 255) ||
                      (f->dtype == QDType::kQInt8 && f->quant_min == -128 && f->quant_max == 127);
    return full ? absl::OkStatus() : Refuse(n, where, base, "fixed activation qparams must cover a full 8-bit range");
  }
  if (std::holds_alternative<DerivedQuantizationSpec>(base))
    return Refuse(n, where, base, "only a conv2d / linear bias may be derived");
  if (s == nullptr) return absl::OkStatus();  // shared: checked at its group's spec
  if (s->is_dynamic) {
    return Refuse(n, where, base,
                  "activations are quantized statically here (for dynamic int8 Linear use the FX flow's "
                  "`dynamic` preset)");
  }
  if (s->observer.dtype != QDType::kQUInt8 && s->observer.dtype != QDType::kQInt8)
    return Refuse(n, where, base, "activations must be quint8 or qint8");
  if (IsPerChannel(s->observer.qscheme)) return Refuse(n, where, base, "activations must be per tensor");
  absl::StatusOr<std::pair<int64_t, int64_t>> range = QuantRange(s->observer);
  if (!range.ok()) return Refuse(n, where, base, std::string(range.status().message()));
  const bool reduced = s->observer.reduce_range && !s->observer.quant_min && !s->observer.quant_max;
  if (range->second - range->first != 255 && !reduced) {
    return Refuse(n, where, base,
                  "activations must use the full 8-bit range ([0, 255] or [-128, 127]; reduce_range is accepted: "
                  "it narrows the qparams, not the stored range)");
  }
  return absl::OkStatus();
}

absl::Status CheckWeight(const fx::Node* n, const QuantizationSpecBase& base) {
  const auto* s = std::get_if<QuantizationSpec>(&base);
  if (s == nullptr) return Refuse(n, "'s weight", base, "a weight needs its own QuantizationSpec");
  if (s->observer.dtype != QDType::kQInt8 || !IsSymmetric(s->observer.qscheme) || s->observer.ch_axis != 0)
    return Refuse(n, "'s weight", base, "weights must be qint8, symmetric, per tensor or per channel on axis 0");
  absl::StatusOr<std::pair<int64_t, int64_t>> range = QuantRange(s->observer);
  if (!range.ok() || range->first < -128 || range->second > 127)
    return Refuse(n, "'s weight", base, "weights must lie in [-128, 127]");
  if (s->is_dynamic) return Refuse(n, "'s weight", base, "weights are not dynamic");
  return absl::OkStatus();
}

absl::Status CheckAnnotation(const fx::Node* n, const QuantizationAnnotation& a) {
  for (const auto& [input, spec] : a.input_qspec_map) {
    const bool weight = IsWeighted(n) && input == NodeArg(n, 1);
    const bool bias = IsWeighted(n) && input == NodeArg(n, 2);
    if (weight) {
      QFX_RETURN_IF_ERROR(CheckWeight(n, spec));
    } else if (bias) {
      if (!std::holds_alternative<DerivedQuantizationSpec>(spec))
        return Refuse(n, "'s bias", spec,
                      "the kernels quantize the bias to int32 with input scale x weight scale: "
                      "give it a DerivedQuantizationSpec or no spec");
    } else {
      QFX_RETURN_IF_ERROR(CheckActivation(n, absl::StrCat("'s input %", input->name()), spec));
    }
    const std::vector<fx::Node*> inputs = n->inputs();
    if (std::find(inputs.begin(), inputs.end(), input) == inputs.end()) {
      return absl::InvalidArgumentError(absl::StrCat("PreparePt2e: %", n->name(), " has an input spec for %",
                                                     input->name(), ", which is not one of its inputs"));
    }
  }
  if (a.output_qspec) QFX_RETURN_IF_ERROR(CheckActivation(n, "'s output", *a.output_qspec));
  return absl::OkStatus();
}

// ----- 3. groups -----
class Groups {
 public:
  absl::Status Build(fx::Graph& g) {
    for (fx::Node* n : g) {
      const QuantizationAnnotation* a = FindAnnotation(n);
      if (a == nullptr) continue;
      if (a->output_qspec) Add({n, nullptr}, &*a->output_qspec);
      for (const auto& [input, spec] : a->input_qspec_map) Add({input, n}, &spec);
    }
    for (const Key& k : order_) QFX_RETURN_IF_ERROR(Join(k));
    // An edge is observed where its producer's output is, when that is observed: a shared edge (cat's
    // inputs) joins its producer's output group too. PyTorch would requantize between the two groups
    // instead; qfx has no requantize kernel, so they share (as the FX flow's cat does), which needs the same
    // dtype and range (Union says so otherwise).
    for (const Key& k : order_) {
      if (k.second == nullptr || !specs_.count({k.first, nullptr}) || Derived(k)) continue;
      QFX_RETURN_IF_ERROR(Union({k.first, nullptr}, k));
    }
    return absl::OkStatus();
  }

  bool Derived(const Key& k) const { return std::holds_alternative<DerivedQuantizationSpec>(*specs_.at(k)); }
  Key Find(Key k) {
    while (parent_.at(k) != k) k = parent_[k] = parent_.at(parent_.at(k));
    return k;
  }
  const std::vector<Key>& order() const { return order_; }
  // The concrete spec of a group's root (QuantizationSpec or fixed), or nullptr.
  const QuantizationSpecBase* Spec(const Key& root) const {
    auto it = concrete_.find(root);
    return it == concrete_.end() ? nullptr : it->second.second;
  }
  const Key& SpecSource(const Key& root) const { return concrete_.at(root).first; }

 private:
  void Add(const Key& k, const QuantizationSpecBase* spec) {
    if (specs_.emplace(k, spec).second) {
      order_.push_back(k);
      parent_[k] = k;
      if (std::holds_alternative<QuantizationSpec>(*spec) ||
          std::holds_alternative<FixedQParamsQuantizationSpec>(*spec))
        concrete_[k] = {k, spec};
    }
  }

  absl::Status Join(const Key& k) {
    const QuantizationSpecBase& spec = *specs_.at(k);
    if (const auto* shared = std::get_if<SharedQuantizationSpec>(&spec)) {
      const Key target{shared->edge_or_node.producer, shared->edge_or_node.consumer};
      if (!specs_.count(target)) {
        return absl::InvalidArgumentError(absl::StrCat("PreparePt2e: ", PointString(k), " shares the qparams of ",
                                                       target.first ? PointString(target) : "nothing",
                                                       ", which is not annotated"));
      }
      return Union(target, k);
    }
    if (k.second == nullptr || !std::holds_alternative<QuantizationSpec>(spec)) return absl::OkStatus();
    const Key output{k.first, nullptr};
    if (specs_.count(output)) return Union(output, k);
    for (const Key& e : order_) {  // an earlier edge from the same producer with an equal spec
      if (e == k) break;
      if (e.first != k.first || e.second == nullptr) continue;
      const auto* other = std::get_if<QuantizationSpec>(specs_.at(e));
      const auto& mine = std::get<QuantizationSpec>(spec);
      if (other && other->observer == mine.observer && other->is_dynamic == mine.is_dynamic) return Union(e, k);
    }
    return absl::OkStatus();
  }

  static bool Compatible(const QuantizationSpecBase& a, const QuantizationSpecBase& b) {
    auto dtype_range = [](const QuantizationSpecBase& s) -> std::tuple<QDType, int64_t, int64_t> {
      if (const auto* f = std::get_if<FixedQParamsQuantizationSpec>(&s)) return {f->dtype, f->quant_min, f->quant_max};
      const auto& q = std::get<QuantizationSpec>(s);
      absl::StatusOr<std::pair<int64_t, int64_t>> r = QuantRange(q.observer);
      return {q.observer.dtype, r.ok() ? r->first : 0, r.ok() ? r->second : 0};
    };
    return dtype_range(a) == dtype_range(b);
  }

  // Joins b's group into a's (a's spec stays the group's).
  absl::Status Union(const Key& a, const Key& b) {
    const Key ra = Find(a), rb = Find(b);
    if (ra == rb) return absl::OkStatus();
    const auto ca = concrete_.find(ra), cb = concrete_.find(rb);
    if (ca != concrete_.end() && cb != concrete_.end() && !Compatible(*ca->second.second, *cb->second.second)) {
      return absl::InvalidArgumentError(
          absl::StrCat("PreparePt2e: conflicting annotations: ", PointString(b), " (", SpecString(*cb->second.second),
                       " from ", PointString(cb->second.first), ") must share qparams with ", PointString(a), " (",
                       SpecString(*ca->second.second), " from ", PointString(ca->second.first),
                       "), but their dtypes or ranges differ; give them the same dtype"));
    }
    parent_[rb] = ra;
    if (ca == concrete_.end() && cb != concrete_.end()) concrete_[ra] = cb->second;
    concrete_.erase(rb);
    return absl::OkStatus();
  }

  std::map<Key, const QuantizationSpecBase*> specs_;
  std::map<Key, Key> parent_;
  std::map<Key, std::pair<Key, const QuantizationSpecBase*>> concrete_;
  std::vector<Key> order_;
};

ObserverSpec ObserverSpecOf(const QuantizationSpecBase& s) {
  if (const auto* q = std::get_if<QuantizationSpec>(&s)) return q->observer;
  const auto& f = std::get<FixedQParamsQuantizationSpec>(s);
  ObserverSpec o;
  o.kind = ObserverKind::kFixedQParams;
  o.dtype = f.dtype;
  o.qscheme = f.qscheme;
  o.quant_min = f.quant_min;
  o.quant_max = f.quant_max;
  o.fixed_scale = f.scale;
  o.fixed_zero_point = f.zero_point;
  return o;
}

// ----- 4. observers -----
class Inserter {
 public:
  Inserter(fx::GraphModule& gm, Groups& groups, Pt2eReport& report) : gm_(gm), groups_(groups), report_(report) {}

  absl::Status Run() {
    for (const Key& k : groups_.order()) {
      if (groups_.Derived(k)) continue;
      QFX_ASSIGN_OR_RETURN(std::string path, PathOf(groups_.Find(k)));
      Describe(path, k);
      if (k.second == nullptr) {
        ObserveOutput(const_cast<fx::Node*>(k.first), path);
      } else if (!observed_outputs_.count(k.first)) {
        ObserveEdge(k, path);
      }
    }
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<std::string> PathOf(const Key& root) {
    auto it = paths_.find(root);
    if (it != paths_.end()) return it->second;
    const QuantizationSpecBase* spec = groups_.Spec(root);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("PreparePt2e: ", PointString(root),
                                                     " shares qparams only with shared specs: no spec gives them"));
    }
    absl::StatusOr<std::shared_ptr<nn::Module>> obs = MakeObserverOrFakeQuantize(ObserverSpecOf(*spec));
    if (!obs.ok()) {
      return absl::Status(obs.status().code(), absl::StrCat("PreparePt2e: ", PointString(groups_.SpecSource(root)),
                                                            ": ", obs.status().message()));
    }
    std::string path;
    do {
      path = absl::StrCat("activation_post_process_", next_++);
    } while (gm_.submodule(path) != nullptr);
    QFX_RETURN_IF_ERROR(gm_.SetSubmodule(path, *std::move(obs)));
    report_.observers++;
    report_.groups.emplace_back(path, std::vector<std::string>{});
    return paths_[root] = path;
  }

  void Describe(const std::string& path, const Key& k) {
    for (auto& [p, points] : report_.groups) {
      if (p == path) points.push_back(PointString(k));
    }
  }

  fx::Node* ObserverAfter(fx::Node* n, const std::string& path) {
    auto point = gm_.graph().InsertingAfter(n);
    fx::Node* obs = gm_.graph().CallModule(path, {n});
    obs->meta.tensor = n->meta.tensor;
    obs->meta.scope = n->meta.scope;
    return obs;
  }

  void ObserveOutput(fx::Node* n, const std::string& path) {
    const std::vector<fx::Node*> users = n->users();
    fx::Node* obs = ObserverAfter(n, path);
    for (fx::Node* u : users) u->ReplaceInputWith(n, obs);
    observed_outputs_.insert(n);
  }

  void ObserveEdge(const Key& k, const std::string& path) {
    auto* producer = const_cast<fx::Node*>(k.first);
    auto* consumer = const_cast<fx::Node*>(k.second);
    fx::Node*& obs = edge_observers_[{producer, path}];
    if (obs == nullptr) obs = ObserverAfter(producer, path);
    consumer->ReplaceInputWith(producer, obs);
  }

  fx::GraphModule& gm_;
  Groups& groups_;
  Pt2eReport& report_;
  std::map<Key, std::string> paths_;
  std::set<const fx::Node*> observed_outputs_;
  std::map<std::pair<fx::Node*, std::string>, fx::Node*> edge_observers_;
  int next_ = 0;
};

void ReportFloat(fx::GraphModule& gm, Pt2eReport& report) {
  for (fx::Node* n : gm.graph()) {
    const bool op = n->op() == fx::Opcode::kCallFunction || n->op() == fx::Opcode::kCallMethod;
    if (!op && n->op() != fx::Opcode::kCallModule) continue;
    if (n->op() == fx::Opcode::kCallModule) {
      nn::Module* m = gm.submodule(n->target().path);
      if (IsObserverModule(m) || dynamic_cast<QatConv2d*>(m) || dynamic_cast<QatLinear*>(m)) continue;
    }
    const QuantizationAnnotation* a = FindAnnotation(n);
    if (a != nullptr && (a->output_qspec || !a->input_qspec_map.empty())) continue;
    std::string why;
    if (a != nullptr && !a->note.empty()) {
      why = a->note;
    } else if (n->op() == fx::Opcode::kCallModule) {
      why = "a module with no registered op (Export keeps it whole)";
    } else {
      why = absl::StrCat("not annotated by the quantizer (no pattern of it covers this ", n->target_string(),
                         ", or its producer is float)");
    }
    report.left_float.emplace_back(n->name(), why);
  }
}

absl::Status AnnotateAndCheck(fx::GraphModule& gm, Quantizer& quantizer) {
  QFX_RETURN_IF_ERROR(quantizer.Annotate(gm));
  QFX_RETURN_IF_ERROR(quantizer.Validate(gm));
  for (fx::Node* n : gm.graph()) {
    if (const QuantizationAnnotation* a = FindAnnotation(n)) QFX_RETURN_IF_ERROR(CheckAnnotation(n, *a));
  }
  return absl::OkStatus();
}

absl::StatusOr<Pt2eReport> InsertObservers(fx::GraphModule& gm) {
  Groups groups;
  QFX_RETURN_IF_ERROR(groups.Build(gm.graph()));
  Pt2eReport report;
  QFX_RETURN_IF_ERROR(Inserter(gm, groups, report).Run());
  return report;
}

// ----- QAT: conv2d(-batch_norm) and linear with a fake-quantized weight become QAT modules -----
absl::Status SwapToQat(fx::GraphModule& gm, fx::Node* n) {
  fx::Node* fq_node = NodeArg(n, 1);
  if (fq_node == nullptr || fq_node->op() != fx::Opcode::kCallModule) return absl::OkStatus();
  auto fq = gm.shared_submodule(fq_node->target().path);
  fx::Node* w = NodeArg(fq_node, 0);
  const std::string& path = n->meta.scope.path;
  if (!IsObserverModule(fq.get()) || w == nullptr || w->target().path != path + ".weight") {
    return absl::InvalidArgumentError(absl::StrCat(
        "PrepareQatPt2e: %", n->name(), ": QAT needs the weight of a Conv2d / Linear module, fake-quantized"));
  }
  std::shared_ptr<nn::Module> qat;
  fx::Node* last = n;
  if (auto* conv = dynamic_cast<nn::Conv2d*>(gm.submodule(path))) {
    std::shared_ptr<nn::BatchNormBase> bn;
    if (n->users().size() == 1 && IsOp(n->users()[0], OpId::kBatchNorm)) {
      bn = std::dynamic_pointer_cast<nn::BatchNormBase>(gm.shared_submodule(n->users()[0]->meta.scope.path));
      if (bn) last = n->users()[0];
    }
    qat = std::make_shared<QatConv2d>(*conv, bn, /*relu=*/false, fq);
  } else if (auto* linear = dynamic_cast<nn::Linear*>(gm.submodule(path))) {
    qat = std::make_shared<QatLinear>(*linear, /*relu=*/false, fq);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("PrepareQatPt2e: %", n->name(), ": no Conv2d / Linear at '", path, "' owns its weight"));
  }
  QFX_RETURN_IF_ERROR(gm.ReplaceSubmodule(path, qat));
  fx::Node* call;
  {
    auto point = gm.graph().InsertingBefore(n);
    call = gm.graph().CallModule(path, {n->args()[0]});
  }
  call->meta.scope = {path, qat->type_name()};
  call->meta.tensor = last->meta.tensor;
  call->meta.annotation = last == n ? n->meta.annotation : last->meta.annotation;
  last->ReplaceAllUsesWith(call);
  if (last != n) QFX_RETURN_IF_ERROR(gm.graph().EraseNode(last));
  return gm.graph().EraseNode(n);
}

}  // namespace

absl::Status AnnotatePt2e(fx::GraphModule& gm, Quantizer& quantizer) {
  QFX_RETURN_IF_ERROR(FoldBatchNorms(gm));
  return AnnotateAndCheck(gm, quantizer);
}

absl::StatusOr<Pt2eReport> PreparePt2e(fx::GraphModule& gm, Quantizer& quantizer) {
  QFX_RETURN_IF_ERROR(AnnotatePt2e(gm, quantizer));
  QFX_ASSIGN_OR_RETURN(Pt2eReport report, InsertObservers(gm));
  ReportFloat(gm, report);
  QFX_RETURN_IF_ERROR(gm.Lint());
  return report;
}

absl::StatusOr<Pt2eReport> PrepareQatPt2e(fx::GraphModule& gm, Quantizer& quantizer) {
  QFX_RETURN_IF_ERROR(AnnotateAndCheck(gm, quantizer));
  QFX_ASSIGN_OR_RETURN(Pt2eReport report, InsertObservers(gm));
  for (fx::Node* n : gm.graph().nodes()) {
    if (n->erased() || (!IsOp(n, OpId::kConv2d) && !IsOp(n, OpId::kLinear))) continue;
    if (IsObserverNode(gm, NodeArg(n, 1))) QFX_RETURN_IF_ERROR(SwapToQat(gm, n));
  }
  gm.graph().EliminateDeadCode();
  QFX_RETURN_IF_ERROR(gm.DeleteUnusedSubmodules());
  ReportFloat(gm, report);
  gm.train(true);
  QFX_RETURN_IF_ERROR(gm.Lint());
  return report;
}

std::string FormatReport(const Pt2eReport& report) {
  std::string s = absl::StrCat(report.observers, " observers\n");
  for (const auto& [path, points] : report.groups)
    absl::StrAppend(&s, "  ", path, ": ", absl::StrJoin(points, ", "), "\n");
  if (!report.left_float.empty()) absl::StrAppend(&s, "float:\n");
  for (const auto& [node, why] : report.left_float) absl::StrAppend(&s, "  %", node, ": ", why, "\n");
  return s;
}

std::string FormatAnnotated(const fx::Graph& graph) {
  std::string s;
  for (fx::Node* n : graph) {
    absl::StrAppend(&s, fx::Graph::FormatNode(*n), "\n");
    const QuantizationAnnotation* a = FindAnnotation(n);
    if (a == nullptr) continue;
    for (const auto& [input, spec] : a->input_qspec_map)
      absl::StrAppend(&s, "    input %", input->name(), ": ", SpecString(spec), "\n");
    if (a->output_qspec) absl::StrAppend(&s, "    output: ", SpecString(*a->output_qspec), "\n");
    if (!a->note.empty()) absl::StrAppend(&s, "    float: ", a->note, "\n");
  }
  return s;
}

}  // namespace quant
}  // namespace qfx
