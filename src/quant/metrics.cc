// qfx quant: output metrics (see include/qfx/quant/metrics.h).
#include "qfx/quant/metrics.h"

#include <algorithm>
#include <cmath>

namespace qfx {
namespace quant {

double SqnrDb(const Tensor& reference, const Tensor& y) {
  if (reference.numel() != y.numel()) {
    ThrowInvalid("SqnrDb: ", reference.ToString(), " and ", y.ToString(), " differ in size");
  }
  double signal = 0, noise = 0;
  for (int64_t i = 0; i < reference.numel(); ++i) {
    const double r = reference.data<float>()[i], d = r - y.data<float>()[i];
    signal += r * r;
    noise += d * d;
  }
  return 10 * std::log10(signal / std::max(noise, 1e-30));
}

}  // namespace quant
}  // namespace qfx
