// qfx quant: the Prepare pass (see include/qfx/quant/passes.h). Structure after PyTorch's prepare_fx,
// without its failure modes: patterns are matched once (longest first, from the end of the graph), every
// quantized pattern is checked against the backend's dtype constraints (an error, not a silent skip), and
// each pattern inserts only its own input and output observers.
#include <set>

#include "absl/strings/str_cat.h"
#include "qfx/quant/observer.h"
#include "qfx/quant/passes.h"
#include "src/quant/prepare_internal.h"

namespace qfx {
namespace quant {

const char* FloatReasonText(FloatReason r) {
  switch (r) {
    case FloatReason::kNoRule:
      return "no qconfig rule applies";
    case FloatReason::kQConfigNone:
      return "qconfig is none";
    case FloatReason::kNoKernel:
      return "no int8 kernel for this op in the backend";
    case FloatReason::kNotAnOp:
      return "not an op";
  }
  return "?";
}

namespace {

struct Match {
  const BackendPattern* pattern = nullptr;
  std::vector<fx::Node*> chain;
  QConfig qconfig;
};

std::string Where(const std::string& backend, const fx::Node& n) {
  return absl::StrCat("Prepare (", backend, "): node %", n.name(), " (", fx::OpcodeName(n.op()),
                      "[target=", n.target_string(), "])");
}

absl::Status CheckConstraints(const BackendConfig& b, const Match& m) {
  const fx::Node& n = *m.chain.back();
  const ObserverSpec& a = m.qconfig.activation;
  if (a.kind == ObserverKind::kPlaceholder || a.kind == ObserverKind::kNoop) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(b.name, n), ": activation observer '", ObserverKindName(a.kind), "' (", QDTypeName(a.dtype),
        ") must be a quint8 observer: the ", b.name,
        " backend has no static kernel for it (a quint8 placeholder is a dynamic qconfig: use qfx quantize, "
        "which quantizes those dynamically, with no calibration)"));
  }
  if (a.kind != ObserverKind::kReuseInput && a.dtype != b.activation_dtype) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(b.name, n), ": activation dtype ", QDTypeName(a.dtype), " must be ", QDTypeName(b.activation_dtype),
        ": the ", b.name, " int8 kernels take ", QDTypeName(b.activation_dtype), " activations"));
  }
  if (!m.pattern->weighted) return absl::OkStatus();
  const ObserverSpec& w = m.qconfig.weight;
  if (w.dtype != b.weight_dtype) {
    return absl::InvalidArgumentError(absl::StrCat(Where(b.name, n), ": weight dtype ", QDTypeName(w.dtype),
                                                   " must be ", QDTypeName(b.weight_dtype), " for the ", b.name,
                                                   " int8 kernels"));
  }
  if (b.symmetric_weights && !IsSymmetric(w.qscheme)) {
    return absl::InvalidArgumentError(absl::StrCat(Where(b.name, n), ": weight qscheme ", QSchemeName(w.qscheme),
                                                   " must be symmetric (zero point 0) for the ", b.name,
                                                   " int8 kernels: use per_channel_symmetric or per_tensor_symmetric"));
  }
  return absl::OkStatus();
}

class Preparer {
 public:
  Preparer(fx::GraphModule& gm, const BackendConfig& backend, const QConfigMapping& mapping, PrepareReport& report)
      : gm_(gm), backend_(backend), mapping_(mapping), report_(report) {}

  absl::Status Run() {
    qconfigs_ = mapping_.Assign(gm_, &report_.warnings);
    QFX_RETURN_IF_ERROR(FindMatches());
    for (fx::Node* n : gm_.graph().nodes()) {
      auto it = match_of_.find(n);
      if (it == match_of_.end()) continue;
      const Match& m = matches_[it->second];
      if (n == m.chain.front()) QFX_RETURN_IF_ERROR(ObserveInputs(m));
      if (n == m.chain.back()) QFX_RETURN_IF_ERROR(ObserveOutput(m));
    }
    return gm_.Lint();
  }

 private:
  // Matches prepare patterns from the end of the graph; a pattern needs a qconfig on all of its nodes.
  absl::Status FindMatches() {
    const std::vector<fx::Node*> nodes = gm_.graph().nodes();
    for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
      fx::Node* n = *it;
      const bool is_op = n->op() == fx::Opcode::kCallFunction || n->op() == fx::Opcode::kCallMethod ||
                         n->op() == fx::Opcode::kCallModule;
      if (!is_op || match_of_.count(n)) continue;
      Match m;
      if (!MatchWithQConfig(n, &m)) {
        report_.left_float[n->name()] =
            !qconfigs_[n].has_value()
                ? (mapping_.global().has_value() ? FloatReason::kQConfigNone : FloatReason::kNoRule)
                : FloatReason::kNoKernel;
        continue;
      }
      QFX_RETURN_IF_ERROR(CheckConstraints(backend_, m));
      for (fx::Node* c : m.chain) match_of_[c] = matches_.size();
      report_.anchors[n] = m.pattern;
      const std::string& fusion = m.chain.front()->meta.fusion;  // a fused module: the chain it came from
      report_.quantized[n->name()] = fusion.empty() ? m.pattern->name : fusion;
      if (m.pattern->weighted) {
        report_.weights[m.chain.front()] = m.qconfig.weight;
        report_.weight_specs[m.chain.front()->target().path] = m.qconfig.weight;
      }
      matches_.push_back(std::move(m));
    }
    return absl::OkStatus();
  }

  bool MatchWithQConfig(fx::Node* n, Match* m) {
    if (!qconfigs_[n].has_value()) return false;
    BackendConfig one = backend_;
    for (const BackendPattern& p : backend_.patterns) {
      if (p.fusion != Fusion::kNone) continue;
      one.patterns = {p};
      std::vector<fx::Node*> chain;
      if (MatchPattern(one, gm_, n, /*fusion=*/false, &chain) == nullptr) continue;
      bool ok = true;
      for (fx::Node* c : chain) ok = ok && !match_of_.count(c) && qconfigs_[c].has_value();
      if (!ok) continue;
      *m = Match{&p, chain, *qconfigs_[n]};
      return true;
    }
    return false;
  }

  static bool IsObserver(fx::GraphModule& gm, const fx::Node* n) {
    return n->op() == fx::Opcode::kCallModule && IsObserverModule(gm.submodule(n->target().path));
  }

  absl::StatusOr<fx::Node*> InsertObserver(fx::Node* value, std::shared_ptr<nn::Module> module) {
    const std::string path = absl::StrCat("activation_post_process_", report_.observers++);
    QFX_RETURN_IF_ERROR(gm_.SetSubmodule(path, std::move(module)));
    fx::Node* after = value;
    if (value->op() == fx::Opcode::kPlaceholder) {  // observers go after the last placeholder
      for (fx::Node* n : gm_.graph()) {
        if (n->op() == fx::Opcode::kPlaceholder) after = n;
      }
    }
    auto point = gm_.graph().InsertingAfter(after);
    return gm_.graph().CallModule(path, {value});
  }

  // The observer node of a value, inserting one from `spec` when it has none yet.
  absl::StatusOr<fx::Node*> Observed(fx::Node* value, const ObserverSpec& spec) {
    if (IsObserver(gm_, value)) return value;
    auto it = observer_of_.find(value);
    if (it != observer_of_.end()) return it->second;
    QFX_ASSIGN_OR_RETURN(std::shared_ptr<nn::Module> obs, MakeObserverOrFakeQuantize(spec));
    QFX_ASSIGN_OR_RETURN(fx::Node * node, InsertObserver(value, obs));
    observer_of_[value] = node;
    return node;
  }

  absl::Status ObserveInputs(const Match& m) {
    fx::Node* first = m.chain.front();
    const size_t count =
        first->op() == fx::Opcode::kCallModule ? std::min<size_t>(1, first->args().size()) : first->args().size();
    for (size_t i = 0; i < count; ++i) {
      const fx::Argument& a = first->args()[i];
      // A parameter that an int8 op reads as its input (BERT's narrow of an embedding table) or as a binary op's
      // operand (ViT's x + pos_embedding) is observed as an activation, as PyTorch 1.13 observes a get_attr node
      // (float output) that feeds a quint8 input; other parameter arguments (a functional layer_norm's weight and
      // bias) stay float.
      const auto* v = std::get_if<fx::Node*>(&a);
      const bool activation = i == 0 || m.pattern->observation == ObservationType::kBinary;
      if (v && ((*v)->op() != fx::Opcode::kGetAttr || activation)) {
        QFX_ASSIGN_OR_RETURN(fx::Node * obs, Observed(*v, InputSpec(m)));
        first->set_arg(i, obs);
      } else if (const auto* list = std::get_if<std::vector<fx::Node*>>(&a)) {
        std::vector<fx::Node*> observed;
        for (fx::Node* v : *list) {
          QFX_ASSIGN_OR_RETURN(fx::Node * obs, Observed(v, InputSpec(m)));
          observed.push_back(obs);
        }
        first->set_arg(i, observed);
      }
    }
    return absl::OkStatus();
  }

  // Inputs are observed with the consuming pattern's activation spec, except for ops whose own spec only
  // describes their output (fixed qparams, reuse-input): those use the backend preset's activation.
  ObserverSpec InputSpec(const Match& m) const {
    const ObserverSpec& a = m.qconfig.activation;
    if (a.kind != ObserverKind::kFixedQParams && a.kind != ObserverKind::kReuseInput) return a;
    ObserverSpec s = mapping_.global() ? mapping_.global()->activation : PresetQConfig(backend_.name)->activation;
    if (s.kind == ObserverKind::kFixedQParams || s.kind == ObserverKind::kReuseInput)
      s = PresetQConfig(backend_.name)->activation;
    return s;
  }

  int TensorArgs(const fx::Node* n) const {
    int count = 0;
    for (const fx::Argument& a : n->args()) count += std::holds_alternative<fx::Node*>(a);
    return count;
  }

  absl::Status ObserveOutput(const Match& m) {
    fx::Node* last = m.chain.back();
    bool share = m.pattern->observation == ObservationType::kShareInputObserver ||
                 m.qconfig.activation.kind == ObserverKind::kReuseInput ||
                 (m.pattern->observation == ObservationType::kBinary && TensorArgs(m.chain.front()) < 2);
    std::shared_ptr<nn::Module> module;
    fx::Node* input = nullptr;
    if (share && !m.chain.front()->args().empty()) {
      if (const auto* v = std::get_if<fx::Node*>(&m.chain.front()->args()[0])) input = *v;
      if (const auto* list = std::get_if<std::vector<fx::Node*>>(&m.chain.front()->args()[0]); list && !list->empty()) {
        input = list->front();
      }
    }
    if (input != nullptr && IsObserver(gm_, input)) {
      module = gm_.shared_submodule(input->target().path);
      QFX_RETURN_IF_ERROR(ShareWithListInputs(m, module));
    } else {
      QFX_ASSIGN_OR_RETURN(module, MakeObserverOrFakeQuantize(share ? InputSpec(m) : m.qconfig.activation));
    }
    const std::vector<fx::Node*> users = last->users();
    QFX_ASSIGN_OR_RETURN(fx::Node * obs, InsertObserver(last, module));
    for (fx::Node* u : users) u->ReplaceInputWith(last, obs);
    observer_of_[last] = obs;
    return absl::OkStatus();
  }

  // PyTorch 1.13's _maybe_make_input_output_share_observers for a list input (cat): every input's observer
  // becomes the first input's, so all of cat's inputs and its output calibrate one observer and q_cat
  // copies bytes (inception's branches; the fixtures' qparams show it).
  absl::Status ShareWithListInputs(const Match& m, const std::shared_ptr<nn::Module>& module) {
    const auto* list = std::get_if<std::vector<fx::Node*>>(&m.chain.front()->args()[0]);
    if (list == nullptr) return absl::OkStatus();
    for (fx::Node* v : *list) {
      if (IsObserver(gm_, v)) QFX_RETURN_IF_ERROR(gm_.SetSubmodule(v->target().path, module));
    }
    return absl::OkStatus();
  }

  fx::GraphModule& gm_;
  const BackendConfig& backend_;
  const QConfigMapping& mapping_;
  PrepareReport& report_;
  std::unordered_map<const fx::Node*, MaybeQConfig> qconfigs_;
  std::vector<Match> matches_;
  std::unordered_map<const fx::Node*, size_t> match_of_;
  std::unordered_map<const fx::Node*, fx::Node*> observer_of_;
};

}  // namespace

namespace internal {

absl::StatusOr<PrepareReport> InsertObservers(fx::GraphModule& gm, const BackendConfig& backend,
                                              const QConfigMapping& mapping) {
  PrepareReport report;
  QFX_RETURN_IF_ERROR(Preparer(gm, backend, mapping, report).Run());
  return report;
}

}  // namespace internal

// The mapping is applied to two graphs: Fuse asks it which nodes of the unfused graph stay float (those it
// does not fuse), InsertObservers assigns qconfigs on the fused graph, as PyTorch's prepare_fx does (rules
// for fused module types, object-type order counts after fusion).
absl::StatusOr<PrepareReport> Prepare(fx::GraphModule& gm, const PrepareOptions& options) {
  FuseOptions fuse;
  fuse.backend = options.config.backend;
  fuse.mapping = &options.config.mapping;
  QFX_RETURN_IF_ERROR(Fuse(gm, fuse));
  return internal::InsertObservers(gm, *options.config.backend, options.config.mapping);
}

}  // namespace quant
}  // namespace qfx
