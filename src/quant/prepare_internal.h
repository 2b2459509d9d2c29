// qfx quant, internal: the observer-insertion half of Prepare, shared with PrepareQat.
#pragma once

#include "qfx/quant/passes.h"

namespace qfx {
namespace quant {
namespace internal {

absl::StatusOr<PrepareReport> InsertObservers(fx::GraphModule& gm, const BackendConfig& backend,
                                              const QConfigMapping& mapping);

}  // namespace internal
}  // namespace quant
}  // namespace qfx
