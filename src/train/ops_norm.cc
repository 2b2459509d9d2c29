// qfx train: batch norm's backward, in training (batch statistics) and eval (running statistics) mode.
#include <cmath>
#include <vector>

#include "qfx/train/ops.h"

namespace qfx {
namespace train {
namespace ag {

Var batch_norm(Tape& t, const Var& x, const Tensor& running_mean, const Tensor& running_var, const Var& weight,
               const Var& bias, bool training, double momentum, double eps) {
  const int64_t c = x.value.dim() >= 2 ? x.value.size(1) : 0;
  // Statistics the forward normalises with (copied before the forward updates the running ones).
  std::vector<double> mean(static_cast<size_t>(c)), invstd(static_cast<size_t>(c));
  if (!training && running_mean.defined() && running_var.defined()) {
    for (int64_t ch = 0; ch < c; ++ch) {
      mean[ch] = running_mean.data<float>()[ch];
      invstd[ch] = 1.0 / std::sqrt(running_var.data<float>()[ch] + eps);
    }
  }
  Tensor y = F::batch_norm(x.value, running_mean, running_var, weight.value, bias.value, training, momentum, eps);
  const Tensor xv = x.value, gamma = weight.value;
  const bool want_x = x.requires_grad(), want_w = weight.requires_grad(), want_b = bias.requires_grad();
  return t.Record(y, {x, weight, bias}, [=](const Tensor& dy) mutable {
    const int64_t n = xv.size(0), inner = xv.numel() / (n * c), count = n * inner;
    const float* px = xv.data<float>();
    const float* pg = dy.data<float>();
    if (training) {
      for (int64_t ch = 0; ch < c; ++ch) {
        double s = 0, sq = 0;
        for (int64_t b = 0; b < n; ++b) {
          for (int64_t i = 0; i < inner; ++i) s += px[(b * c + ch) * inner + i];
        }
        mean[ch] = s / count;
        for (int64_t b = 0; b < n; ++b) {
          for (int64_t i = 0; i < inner; ++i) {
            const double d = px[(b * c + ch) * inner + i] - mean[ch];
            sq += d * d;
          }
        }
        invstd[ch] = 1.0 / std::sqrt(sq / count + eps);
      }
    }
    Tensor dx = want_x ? Tensor::Uninitialized(xv.shape()) : Tensor();
    Tensor dw = want_w ? Tensor::Uninitialized({c}) : Tensor();
    Tensor db = want_b ? Tensor::Uninitialized({c}) : Tensor();
    for (int64_t ch = 0; ch < c; ++ch) {
      double sum_g = 0, sum_gx = 0;
      for (int64_t b = 0; b < n; ++b) {
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t k = (b * c + ch) * inner + i;
          sum_g += pg[k];
          sum_gx += pg[k] * (px[k] - mean[ch]) * invstd[ch];
        }
      }
      if (want_w) dw.data<float>()[ch] = static_cast<float>(sum_gx);
      if (want_b) db.data<float>()[ch] = static_cast<float>(sum_g);
      if (!want_x) continue;
      const double w = gamma.defined() ? gamma.data<float>()[ch] : 1.0;
      float* pdx = dx.data<float>();
      for (int64_t b = 0; b < n; ++b) {
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t k = (b * c + ch) * inner + i;
          if (training) {
            const double xhat = (px[k] - mean[ch]) * invstd[ch];
            pdx[k] = static_cast<float>(w * invstd[ch] / count * (count * pg[k] - sum_g - xhat * sum_gx));
          } else {
            pdx[k] = static_cast<float>(pg[k] * w * invstd[ch]);
          }
        }
      }
    }
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace ag
}  // namespace train
}  // namespace qfx
