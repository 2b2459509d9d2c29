// qfx train: cross-entropy loss and fake quantization's straight-through estimator.
#include <algorithm>
#include <cmath>
#include <vector>

#include "qfx/train/ops.h"

namespace qfx {
namespace train {
namespace ag {

Var cross_entropy(Tape& t, const Var& logits, const Tensor& labels) {
  const Tensor x = logits.value;
  if (x.dim() != 2) ThrowInvalid("cross_entropy: logits ", x.ToString(), " must be [N, C]");
  const int64_t n = x.size(0), c = x.size(1);
  if (labels.dtype() != DType::kI64 || labels.dim() != 1 || labels.size(0) != n) {
    ThrowInvalid("cross_entropy: labels ", labels.ToString(), " must be i64[", n, "] for logits ", x.ToString());
  }
  Tensor prob = Tensor::Uninitialized({n, c});
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = labels.data<int64_t>()[i];
    if (y < 0 || y >= c) ThrowInvalid("cross_entropy: label ", y, " of sample ", i, " is outside [0, ", c, ")");
    const float* row = x.data<float>() + i * c;
    const double mx = *std::max_element(row, row + c);
    double sum = 0;
    for (int64_t j = 0; j < c; ++j) sum += std::exp(row[j] - mx);
    for (int64_t j = 0; j < c; ++j) prob.data<float>()[i * c + j] = static_cast<float>(std::exp(row[j] - mx) / sum);
    total += mx + std::log(sum) - row[y];
  }
  Tensor loss = Tensor::Full({}, static_cast<float>(total / n));
  return t.Record(loss, {logits}, [prob, labels, n, c](const Tensor& dy) {
    const float scale = dy.data<float>()[0] / static_cast<float>(n);
    Tensor dx = Tensor::Uninitialized({n, c});
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < c; ++j) {
        const float onehot = labels.data<int64_t>()[i] == j ? 1.f : 0.f;
        dx.data<float>()[i * c + j] = (prob.data<float>()[i * c + j] - onehot) * scale;
      }
    }
    return std::vector<Tensor>{dx};
  });
}

Var fake_quantize(Tape& t, const Var& x, const quant::QParams& qp) {
  Tensor y = quant::FakeQuantizeTensor(x.value, qp);
  const Tensor xv = x.value;
  return t.Record(y, {x}, [xv, qp](const Tensor& dy) {
    int64_t inner = 1, channels = 1;
    if (qp.scale.size() > 1) {
      const int64_t axis = NormalizeDim(qp.ch_axis, xv.dim(), "fake_quantize ch_axis");
      channels = xv.size(axis);
      for (int64_t d = axis + 1; d < xv.dim(); ++d) inner *= xv.size(d);
    }
    Tensor dx = Tensor::Uninitialized(xv.shape());
    const float *px = xv.data<float>(), *pg = dy.data<float>();
    float* pd = dx.data<float>();
    for (int64_t i = 0, n = xv.numel(); i < n; ++i) {
      const int64_t c = channels > 1 ? (i / inner) % channels : 0;
      const int64_t q = qp.zero_point[c] + static_cast<int64_t>(std::nearbyint(px[i] * (1.0f / qp.scale[c])));
      pd[i] = q >= qp.quant_min && q <= qp.quant_max ? pg[i] : 0.f;
    }
    return std::vector<Tensor>{dx};
  });
}

}  // namespace ag
}  // namespace train
}  // namespace qfx
