// qfx quant: FakeQuantize, as torch.ao.quantization.FakeQuantize and fake_quantize_per_*_affine compute it
// (see include/qfx/quant/observer.h).
#include <algorithm>
#include <cmath>
#include <vector>

#include "qfx/quant/observer.h"

namespace qfx {
namespace quant {

Tensor FakeQuantizeTensor(const Tensor& x, const QParams& qp) {
  if (x.dtype() != DType::kF32) ThrowInvalid("fake_quantize: input ", x.ToString(), " must be f32");
  Tensor y = Tensor::Uninitialized(x.shape());
  const float* px = x.data<float>();
  float* py = y.data<float>();
  int64_t inner = 1, channels = 1;
  if (qp.scale.size() > 1) {
    const int64_t axis = NormalizeDim(qp.ch_axis, x.dim(), "fake_quantize ch_axis");
    channels = x.size(axis);
    for (int64_t d = axis + 1; d < x.dim(); ++d) inner *= x.size(d);
    if (channels != static_cast<int64_t>(qp.scale.size())) {
      ThrowInvalid("fake_quantize: input ", x.ToString(), " has ", channels, " channels on axis ", axis,
                   " but there are ", qp.scale.size(), " scales");
    }
  }
  for (int64_t i = 0, n = x.numel(); i < n; ++i) {
    const int64_t c = channels > 1 ? (i / inner) % channels : 0;
    const float scale = qp.scale[c];
    const int64_t zp = qp.zero_point[c];
    const float inv_scale = 1.0f / scale;
    int64_t q = zp + static_cast<int64_t>(std::nearbyint(px[i] * inv_scale));
    q = std::min(std::max(q, qp.quant_min), qp.quant_max);
    py[i] = static_cast<float>(q - zp) * scale;
  }
  return y;
}

FakeQuantize::FakeQuantize(std::shared_ptr<Observer> observer) : observer_(std::move(observer)) {
  register_module("activation_post_process", observer_);
}

// ATen's ChooseQuantizationParams (aten/src/ATen/native/quantized/cpu/QuantUtils.h), used by the fused
// moving-average observer + fake-quant op.
void ChooseQuantizationParams(float min, float max, int64_t qmin, int64_t qmax, bool preserve_sparsity,
                              float* scale_out, int64_t* zero_point_out) {
  constexpr float kSmallScale = 6.1e-5f;
  if (min < 0 && max > 0 && preserve_sparsity) {
    const int64_t symmetric_qmin = -((qmax - qmin) / 2 + 1), symmetric_qmax = (qmax - qmin) / 2;
    const double max_scale = std::max(std::fabs(min / static_cast<double>(symmetric_qmin)),
                                      std::fabs(max / static_cast<double>(symmetric_qmax)));
    min = static_cast<float>(max_scale * symmetric_qmin);
    max = static_cast<float>(max_scale * symmetric_qmax);
  }
  min = std::min(min, 0.f);
  max = std::max(max, 0.f);
  double scale = (static_cast<double>(max) - min) / static_cast<double>(qmax - qmin);
  if (static_cast<float>(scale) == 0.0f || std::isinf(1.0f / static_cast<float>(scale))) scale = 0.1;
  if (scale < kSmallScale) {
    const float org_scale = static_cast<float>(scale);
    scale = kSmallScale;
    if (min == 0.0f) {
      max = kSmallScale * static_cast<float>(qmax - qmin);
    } else if (max == 0.0f) {
      min = -kSmallScale * static_cast<float>(qmax - qmin);
    } else {
      const float amplifier = kSmallScale / org_scale;
      min *= amplifier;
      max *= amplifier;
    }
  }
  const double zp_from_min = qmin - min / scale, zp_from_max = qmax - max / scale;
  const double err_min = std::abs(static_cast<double>(qmin)) - std::abs(min / scale);
  const double err_max = std::abs(static_cast<double>(qmax)) - std::abs(max / scale);
  double zp = err_min < err_max ? zp_from_min : zp_from_max;
  if (min < 0 && max > 0 && preserve_sparsity) zp = static_cast<double>(qmin + qmax) / 2;
  *zero_point_out = zp < qmin ? qmin : zp > qmax ? qmax : static_cast<int64_t>(std::nearbyint(zp));
  *scale_out = static_cast<float>(scale);
}

namespace {

bool IsMovingAverage(ObserverKind k) {
  return k == ObserverKind::kMovingAverageMinMax || k == ObserverKind::kMovingAveragePerChannelMinMax;
}

// qparams as torch.fused_moving_avg_obs_fake_quant computes them from the observer's running min/max.
QParams FusedQParams(const Observer& obs) {
  std::vector<float> lo, hi;
  QParams qp = obs.CalculateQParams();  // dtype, range, scheme, axis (and the uninitialised default)
  if (!obs.GetMinMax(&lo, &hi) || lo.empty() || (lo.size() == 1 && lo[0] == INFINITY)) return qp;
  qp.scale.assign(lo.size(), 0.f);
  qp.zero_point.assign(lo.size(), 0);
  for (size_t c = 0; c < lo.size(); ++c) {
    ChooseQuantizationParams(lo[c], hi[c], qp.quant_min, qp.quant_max, IsSymmetric(qp.qscheme), &qp.scale[c],
                             &qp.zero_point[c]);
  }
  return qp;
}

}  // namespace

void FakeQuantize::UpdateQParams(const Tensor& x) {
  const bool fused = IsMovingAverage(observer_->spec().kind);
  if (observer_enabled_) {
    (*observer_)(x);
    qparams_ = fused ? FusedQParams(*observer_) : observer_->CalculateQParams();
  } else if (qparams_.scale.empty()) {
    qparams_ = fused ? FusedQParams(*observer_) : observer_->CalculateQParams();
  }
}

Tensor FakeQuantize::forward(const Tensor& x) {
  UpdateQParams(x);
  return fake_quant_enabled_ ? FakeQuantizeTensor(x, qparams_) : x;
}

absl::StatusOr<std::shared_ptr<nn::Module>> MakeObserverOrFakeQuantize(const ObserverSpec& spec) {
  QFX_ASSIGN_OR_RETURN(std::shared_ptr<Observer> obs, MakeObserver(spec));
  if (!spec.fake_quant) return std::shared_ptr<nn::Module>(obs);
  return std::shared_ptr<nn::Module>(std::make_shared<FakeQuantize>(obs));
}

}  // namespace quant
}  // namespace qfx
