// qfx quant: the PrepareQat pass and the QAT switches (see include/qfx/quant/passes.h).
#include <set>

#include "absl/strings/str_cat.h"
#include "qfx/quant/eager.h"
#include "qfx/quant/fused_modules.h"
#include "qfx/quant/observer.h"
#include "qfx/quant/qat_modules.h"
#include "src/quant/prepare_internal.h"

namespace qfx {
namespace quant {
namespace {

absl::StatusOr<std::shared_ptr<nn::Module>> WeightFakeQuant(const fx::Node& n, const QConfig& q) {
  if (!q.weight.fake_quant) {
    return absl::InvalidArgumentError(absl::StrCat("PrepareQat: node %", n.name(), " (", n.target().path,
                                                   "): weight spec ", q.weight.ToString(),
                                                   " must be a fake-quant spec for QAT (use a _qat "
                                                   "preset, or fake_quant = true in the rule file)"));
  }
  return MakeObserverOrFakeQuantize(q.weight);
}

// Replaces a matched chain (or a single Conv2d / Linear) by its QAT module at the first node's path.
absl::Status Swap(fx::GraphModule& gm, const std::vector<fx::Node*>& chain, Fusion f, const QConfig& q) {
  fx::Node* first = chain.front();
  std::shared_ptr<nn::Module> qat;
  if (f == Fusion::kBnReLU) {
    qat = MakeFused("BNReLU2d", gm.shared_submodule(first->target().path), std::make_shared<nn::ReLU>());
  } else {
    QFX_ASSIGN_OR_RETURN(std::shared_ptr<nn::Module> wfq, WeightFakeQuant(*first, q));
    nn::Module* m = gm.submodule(first->target().path);
    if (auto* conv = dynamic_cast<nn::Conv2d*>(m)) {
      std::shared_ptr<nn::BatchNormBase> bn;
      if (f == Fusion::kConvBn || f == Fusion::kConvBnReLU) {
        bn = std::dynamic_pointer_cast<nn::BatchNormBase>(gm.shared_submodule(chain[1]->target().path));
      }
      qat = std::make_shared<QatConv2d>(*conv, bn, f == Fusion::kConvBnReLU || f == Fusion::kConvReLU, wfq);
    } else if (auto* linear = dynamic_cast<nn::Linear*>(m)) {
      qat = std::make_shared<QatLinear>(*linear, f == Fusion::kLinearReLU, wfq);
    } else {
      return absl::InternalError(absl::StrCat("PrepareQat: %", first->name(), " is not a Conv2d or Linear"));
    }
  }
  qat->train(gm.is_training());
  QFX_RETURN_IF_ERROR(gm.ReplaceSubmodule(first->target().path, qat));
  chain.back()->ReplaceAllUsesWith(first);
  for (size_t i = chain.size(); i-- > 1;) QFX_RETURN_IF_ERROR(gm.graph().EraseNode(chain[i]));
  return absl::OkStatus();
}

absl::Status FuseAndSwapForQat(fx::GraphModule& gm, const BackendConfig& backend, const QConfigMapping& mapping) {
  auto qconfigs = mapping.Assign(gm);
  std::set<const fx::Node*> done;
  const std::vector<fx::Node*> nodes = gm.graph().nodes();
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
    fx::Node* n = *it;
    if (done.count(n) || !qconfigs[n].has_value()) continue;
    std::vector<fx::Node*> chain;
    const BackendPattern* p = MatchPattern(backend, gm, n, /*fusion=*/true, &chain);
    if (p != nullptr && p->fusion == Fusion::kLinearBn) p = nullptr;  // BN after Linear stays separate in QAT
    bool ok = p != nullptr;
    for (const fx::Node* c : chain) ok = ok && !done.count(c) && qconfigs[c].has_value();
    if (!ok) {
      chain = {n};
      nn::Module* m = n->op() == fx::Opcode::kCallModule ? gm.submodule(n->target().path) : nullptr;
      if (!dynamic_cast<nn::Conv2d*>(m) && !dynamic_cast<nn::Linear*>(m)) continue;
    }
    for (const fx::Node* c : chain) done.insert(c);
    QFX_RETURN_IF_ERROR(Swap(gm, chain, ok ? p->fusion : Fusion::kNone, *qconfigs[chain.front()]));
    if (ok) chain.front()->meta.fusion = p->name;
  }
  QFX_RETURN_IF_ERROR(gm.DeleteUnusedSubmodules());
  return gm.Lint();
}

}  // namespace

absl::StatusOr<PrepareReport> PrepareQat(fx::GraphModule& gm, const PrepareOptions& options) {
  if (!gm.is_training()) {
    return absl::FailedPreconditionError("PrepareQat prepares for training: call train() on the model first");
  }
  const BackendConfig& backend = *options.config.backend;
  QFX_RETURN_IF_ERROR(FuseAndSwapForQat(gm, backend, options.config.mapping));
  return internal::InsertObservers(gm, backend, options.config.mapping);
}

// One implementation for traced and eager models: a GraphModule is a module tree too.
void FreezeBnStats(fx::GraphModule& gm, bool freeze) { FreezeBnStatsIn(gm, freeze); }
void EnableObservers(fx::GraphModule& gm, bool on) { EnableObserversIn(gm, on); }
void EnableFakeQuant(fx::GraphModule& gm, bool on) { EnableFakeQuantIn(gm, on); }

}  // namespace quant
}  // namespace qfx
