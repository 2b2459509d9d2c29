// qfx nn: F::stochastic_depth (torchvision.ops.stochastic_depth, EfficientNet's residual branches): in
// training, rows (or the whole batch) dropped with probability p and the rest scaled by 1 / (1 - p); the
// identity in eval. Training's backward multiplies by the same noise (src/train/ops_activation.cc).
#include "qfx/core/status.h"
#include "qfx/core/trace.h"
#include "qfx/nn/functional.h"
#include "src/nn/functional_internal.h"

namespace qfx {
namespace F {
namespace {

void CheckStochasticDepth(const Shape& shape, double p, StochasticDepthMode mode) {
  if (!(p >= 0 && p <= 1)) ThrowInvalid("stochastic_depth: p ", p, " must be in [0, 1]");
  if (mode != StochasticDepthMode::kBatch && mode != StochasticDepthMode::kRow) {
    ThrowInvalid("stochastic_depth: mode ", static_cast<int64_t>(mode), " must be 0 (batch) or 1 (row)");
  }
  if (shape.empty()) ThrowInvalid("stochastic_depth: the input must have a batch dimension");
}

}  // namespace

Tensor StochasticDepthNoise(const Shape& shape, double p, StochasticDepthMode mode, std::mt19937_64& rng) {
  CheckStochasticDepth(shape, p, mode);
  Shape noise_shape(shape.size(), 1);
  if (mode == StochasticDepthMode::kRow) noise_shape[0] = shape[0];
  Tensor noise = Tensor::Uninitialized(noise_shape);
  const double survival = 1 - p;
  const float kept = survival > 0 ? static_cast<float>(1 / survival) : 0.f;
  std::bernoulli_distribution keep(survival);
  for (int64_t i = 0; i < noise.numel(); ++i) noise.data<float>()[i] = keep(rng) ? kept : 0.f;
  return noise;
}

Tensor stochastic_depth(const Tensor& x, double p, StochasticDepthMode mode, bool training) {
  QFX_TRACE_OP(OpId::kStochasticDepth, x, p, static_cast<int64_t>(mode), training);
  CheckStochasticDepth(x.shape(), p, mode);
  if (!training || p == 0) return x;
  CheckF32("stochastic_depth", x);
  static std::mt19937_64 rng(0x5eed);
  return mul(x, StochasticDepthNoise(x.shape(), p, mode, rng));
}

}  // namespace F
}  // namespace qfx
