// qfx quant: FuseModules and FuseModulesQat, PyTorch's fuse_modules / fuse_modules_qat on the module tree
// (see include/qfx/quant/eager.h).
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "qfx/quant/fused_modules.h"
#include "src/quant/eager_internal.h"

namespace qfx {
namespace quant {
namespace {

using ModulePtr = std::shared_ptr<nn::Module>;

std::string Types(const std::vector<ModulePtr>& mods) {
  std::vector<std::string> names;
  for (const ModulePtr& m : mods) names.push_back(m->type_name());
  return absl::StrCat("(", absl::StrJoin(names, ", "), ")");
}

absl::Status CheckConvBn(const nn::Module& first, int64_t out_channels, const nn::BatchNormBase& bn, bool qat) {
  if (first.is_training() != bn.is_training())
    return absl::FailedPreconditionError("both modules must be in the same mode (train or eval)");
  if (bn.num_features != out_channels) {
    return absl::InvalidArgumentError(absl::StrCat("the batch norm has ", bn.num_features,
                                                   " features but the layer before it has ", out_channels,
                                                   " output channels"));
  }
  if (!qat && bn.is_training()) {
    return absl::FailedPreconditionError(
        "FuseModules folds batch norm for inference: call eval() first (or use FuseModulesQat for QAT)");
  }
  if (qat && !bn.is_training())
    return absl::FailedPreconditionError("FuseModulesQat keeps batch norm training: call train() first");
  return absl::OkStatus();
}

// PyTorch's DEFAULT_OP_LIST_TO_FUSER_METHOD for the 2-d modules qfx has.
absl::StatusOr<ModulePtr> Fuser(const std::vector<ModulePtr>& m, bool qat) {
  const std::string types = Types(m);
  auto* conv = dynamic_cast<nn::Conv2d*>(m[0].get());
  auto* linear = dynamic_cast<nn::Linear*>(m[0].get());
  auto* bn0 = dynamic_cast<nn::BatchNorm2d*>(m[0].get());
  const auto is = [&](size_t i, const char* type) { return m.size() > i && m[i]->type_name() == type; };
  if (conv && m.size() >= 2 && is(1, "BatchNorm2d") && (m.size() == 2 || (m.size() == 3 && is(2, "ReLU")))) {
    auto bn = std::dynamic_pointer_cast<nn::BatchNormBase>(m[1]);
    QFX_RETURN_IF_ERROR(CheckConvBn(*conv, conv->out_channels, *bn, qat));
    if (qat) {
      if (m.size() == 2)
        return ModulePtr(std::make_shared<FusedSequential>("ConvBn2d", std::vector<ModulePtr>{m[0], m[1]}));
      return ModulePtr(std::make_shared<FusedSequential>("ConvBnReLU2d", std::vector<ModulePtr>{m[0], m[1], m[2]}));
    }
    ModulePtr folded = FoldBatchNorm(*conv, *bn);
    folded->train(false);
    if (m.size() == 2) return folded;
    return ModulePtr(MakeFused("ConvReLU2d", folded, m[2]));
  }
  if (linear && m.size() == 2 && is(1, "BatchNorm1d")) {
    auto bn = std::dynamic_pointer_cast<nn::BatchNormBase>(m[1]);
    QFX_RETURN_IF_ERROR(CheckConvBn(*linear, linear->out_features, *bn, qat));
    if (qat) {
      return absl::UnimplementedError(
          "Linear + BatchNorm1d has no QAT module in qfx (PyTorch's LinearBn1d): fuse it with FuseModules after "
          "training, or leave the batch norm separate");
    }
    ModulePtr folded = FoldBatchNorm(*linear, *bn);
    folded->train(false);
    return folded;
  }
  if (m.size() == 2 && is(1, "ReLU") && (conv || linear || bn0)) {
    const char* type = conv ? "ConvReLU2d" : linear ? "LinearReLU" : "BNReLU2d";
    auto fused = std::make_shared<FusedSequential>(type, m[0], m[1]);
    fused->train(m[0]->is_training());
    return ModulePtr(fused);
  }
  return absl::UnimplementedError(absl::StrCat(
      "Cannot fuse modules: ", types,
      "; fusable lists are (Conv2d, BatchNorm2d[, ReLU]), (Conv2d, ReLU), (Linear, BatchNorm1d), (Linear, ReLU), "
      "(BatchNorm2d, ReLU)"));
}

// Moves the first module's pre-hooks and the last module's hooks to the fused module, as PyTorch does.
void MoveHooks(nn::Module& first, nn::Module& last, nn::Module& fused) {
  for (const auto& [handle, hook] : first.hooks().pre) fused.RegisterForwardPreHook(hook);
  for (const auto& [handle, hook] : last.hooks().post) fused.RegisterForwardHook(hook);
}

absl::Status FuseList(nn::Module& model, const std::vector<std::string>& paths, bool qat) {
  if (paths.size() < 2) return absl::InvalidArgumentError("a fusion list names at least two modules");
  std::vector<ModulePtr> mods;
  for (const std::string& p : paths) {
    ModulePtr m = model.shared_submodule(p);
    if (!m) return absl::NotFoundError(absl::StrCat("there is no module '", p, "'"));
    mods.push_back(m);
  }
  QFX_ASSIGN_OR_RETURN(ModulePtr fused, Fuser(mods, qat));
  MoveHooks(*mods.front(), *mods.back(), *fused);
  if (const internal::EagerState* s = internal::StateOf(*mods.front())) {
    if (s->user_set) SetQConfig(*fused, s->qconfig);
  }
  QFX_RETURN_IF_ERROR(model.SwapSubmodule(paths[0], fused));
  for (size_t i = 1; i < paths.size(); ++i) {
    auto identity = std::make_shared<nn::Identity>();
    identity->train(mods[i]->is_training());
    QFX_RETURN_IF_ERROR(model.SwapSubmodule(paths[i], identity));
  }
  return absl::OkStatus();
}

absl::Status Fuse(nn::Module& model, const std::vector<std::vector<std::string>>& lists, bool qat) {
  for (const auto& list : lists) {
    absl::Status s = FuseList(model, list, qat);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat(qat ? "FuseModulesQat" : "FuseModules", " [",
                                                 absl::StrJoin(list, ", "), "]: ", s.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status FuseModules(nn::Module& model, const std::vector<std::vector<std::string>>& lists) {
  return Fuse(model, lists, false);
}

absl::Status FuseModulesQat(nn::Module& model, const std::vector<std::vector<std::string>>& lists) {
  return Fuse(model, lists, true);
}

}  // namespace quant
}  // namespace qfx
