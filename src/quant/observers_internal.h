// qfx quant, internal: pieces shared by the observer files (not a public header).
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "qfx/quant/observer.h"

namespace qfx {
namespace quant {
namespace internal {

std::pair<float, float> AminMax(const Tensor& x);
void AminMaxPerChannel(const Tensor& x, int64_t axis, std::vector<float>* lo, std::vector<float>* hi);
std::shared_ptr<Observer> MakeHistogramObserver(const ObserverSpec& spec);

}  // namespace internal
}  // namespace quant
}  // namespace qfx
