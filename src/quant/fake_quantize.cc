// qfx quant: FakeQuantize, as torch.ao.quantization.FakeQuantize and fake_quantize_per_*_affine compute it
// (see include/qfx/quant/observer.h).
#include <algorithm>
#include <cmath>

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
      ThrowInvalid("fake_quantize: input ", x.ToString(), " has ", channels, " channels on axis ", axis, " but there are ",
                   qp.scale.size(), " scales");
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

Tensor FakeQuantize::forward(const Tensor& x) {
  if (observer_enabled_) {
    (*observer_)(x);
    qparams_ = observer_->CalculateQParams();
  } else if (qparams_.scale.empty()) {
    qparams_ = observer_->CalculateQParams();
  }
  return fake_quant_enabled_ ? FakeQuantizeTensor(x, qparams_) : x;
}

absl::StatusOr<std::shared_ptr<nn::Module>> MakeObserverOrFakeQuantize(const ObserverSpec& spec) {
  QFX_ASSIGN_OR_RETURN(std::shared_ptr<Observer> obs, MakeObserver(spec));
  if (!spec.fake_quant) return std::shared_ptr<nn::Module>(obs);
  return std::shared_ptr<nn::Module>(std::make_shared<FakeQuantize>(obs));
}

}  // namespace quant
}  // namespace qfx
