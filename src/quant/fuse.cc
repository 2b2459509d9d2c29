// qfx quant: the Fuse pass (see include/qfx/quant/passes.h).
#include <set>

#include "absl/strings/str_cat.h"
#include "qfx/quant/fused_modules.h"
#include "qfx/quant/passes.h"

namespace qfx {
namespace quant {
namespace {

template <typename T>
const T* ModuleAt(fx::GraphModule& gm, const fx::Node* n) {
  return n->op() == fx::Opcode::kCallModule ? dynamic_cast<const T*>(gm.submodule(n->target().path)) : nullptr;
}

// The module that replaces a matched chain.
absl::StatusOr<std::shared_ptr<nn::Module>> FusedModule(fx::GraphModule& gm, Fusion f,
                                                        const std::vector<fx::Node*>& chain) {
  const auto relu = [] { return std::make_shared<nn::ReLU>(); };
  const nn::BatchNormBase* bn = chain.size() > 1 ? ModuleAt<nn::BatchNormBase>(gm, chain[1]) : nullptr;
  switch (f) {
    case Fusion::kConvBn:
      return std::shared_ptr<nn::Module>(FoldBatchNorm(*ModuleAt<nn::Conv2d>(gm, chain[0]), *bn));
    case Fusion::kConvBnReLU:
      return std::shared_ptr<nn::Module>(
          MakeFused("ConvReLU2d", FoldBatchNorm(*ModuleAt<nn::Conv2d>(gm, chain[0]), *bn), relu()));
    case Fusion::kLinearBn:
      return std::shared_ptr<nn::Module>(FoldBatchNorm(*ModuleAt<nn::Linear>(gm, chain[0]), *bn));
    case Fusion::kConvReLU:
    case Fusion::kLinearReLU:
    case Fusion::kBnReLU: {
      const char* type = f == Fusion::kConvReLU ? "ConvReLU2d" : f == Fusion::kLinearReLU ? "LinearReLU" : "BNReLU2d";
      std::shared_ptr<nn::Module> first = gm.shared_submodule(chain[0]->target().path);
      if (!first) return absl::InternalError(absl::StrCat("Fuse: module '", chain[0]->target().path, "' not found"));
      return std::shared_ptr<nn::Module>(MakeFused(type, first, relu()));
    }
    case Fusion::kNone:
      break;
  }
  return absl::InternalError("Fuse: not a fusion pattern");
}

absl::Status FuseChain(fx::GraphModule& gm, const BackendPattern& p, const std::vector<fx::Node*>& chain) {
  QFX_ASSIGN_OR_RETURN(std::shared_ptr<nn::Module> fused, FusedModule(gm, p.fusion, chain));
  chain[0]->meta.fusion = p.name;
  QFX_RETURN_IF_ERROR(gm.ReplaceSubmodule(chain[0]->target().path, fused));
  chain.back()->ReplaceAllUsesWith(chain[0]);
  for (size_t i = chain.size(); i-- > 1;) QFX_RETURN_IF_ERROR(gm.graph().EraseNode(chain[i]));
  return absl::OkStatus();
}

}  // namespace

absl::Status Fuse(fx::GraphModule& gm, const FuseOptions& options) {
  if (gm.is_training()) {
    return absl::FailedPreconditionError(
        "Fuse folds batch norm for inference: call eval() on the model first (QAT fuses with PrepareQat)");
  }
  if (options.backend == nullptr) return absl::InvalidArgumentError("Fuse: FuseOptions::backend is null");
  const BackendConfig& backend = *options.backend;
  std::unordered_map<const fx::Node*, MaybeQConfig> qconfigs;
  if (options.mapping) qconfigs = options.mapping->Assign(gm);
  std::set<const fx::Node*> consumed;
  const std::vector<fx::Node*> nodes = gm.graph().nodes();
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
    if (consumed.count(*it)) continue;
    std::vector<fx::Node*> chain;
    const BackendPattern* p = MatchPattern(backend, gm, *it, /*fusion=*/true, &chain);
    if (p == nullptr) continue;
    bool skip = false;
    for (const fx::Node* n : chain) skip = skip || consumed.count(n) || (options.mapping && !qconfigs[n].has_value());
    if (skip) continue;
    for (const fx::Node* n : chain) consumed.insert(n);
    QFX_RETURN_IF_ERROR(FuseChain(gm, *p, chain));
  }
  QFX_RETURN_IF_ERROR(gm.DeleteUnusedSubmodules());
  return gm.Lint();
}

}  // namespace quant
}  // namespace qfx
