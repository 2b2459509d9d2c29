// qfx quant (internal): the state the eager flow attaches to a module (its qconfig and observer hook).
#pragma once

#include <memory>

#include "qfx/quant/eager.h"

namespace qfx {
namespace quant {
namespace internal {

struct EagerState : nn::ModuleExtension {
  bool has_qconfig = false;  // set by SetQConfig or PropagateQConfig
  bool user_set = false;     // SetQConfig: wins over propagation
  MaybeQConfig qconfig;
  int64_t observer_hook = 0;  // handle of the forward hook that runs activation_post_process, or 0
};

// The module's state, created when `create` and absent.
EagerState* StateOf(const nn::Module& module);
EagerState& MutableStateOf(nn::Module& module);
// A qconfig other than none was set or propagated: the module is observed and converted.
const QConfig* ActiveQConfig(const nn::Module& module);

// Modules without a qconfig take their parent's; the others keep theirs (PyTorch's propagate_qconfig_
// with no qconfig_dict, which prepare runs).
void InheritQConfig(nn::Module& model);

inline constexpr const char* kObserverName = "activation_post_process";

}  // namespace internal
}  // namespace quant
}  // namespace qfx
