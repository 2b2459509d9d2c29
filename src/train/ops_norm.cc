// qfx train: batch norm's backward, in training (batch statistics) and eval (running statistics) mode.
#include <cmath>
#include <vector>

#include "qfx/core/parallel.h"
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
    const float* pw = gamma.defined() ? gamma.data<float>() : nullptr;
    Tensor dx = want_x ? Tensor::Uninitialized(xv.shape()) : Tensor();
    Tensor dw = want_w ? Tensor::Uninitialized({c}) : Tensor();
    Tensor db = want_b ? Tensor::Uninitialized({c}) : Tensor();
    float* pdx = want_x ? dx.data<float>() : nullptr;
    float* pdw = want_w ? dw.data<float>() : nullptr;
    float* pdb = want_b ? db.data<float>() : nullptr;
    // Channels are independent: one task per channel range.
    ParallelFor(c, 1, [&](int64_t c0, int64_t c1) {
      for (int64_t ch = c0; ch < c1; ++ch) {
        if (training) {
          double s = 0, sq = 0;
          for (int64_t b = 0; b < n; ++b) {
            const float* p = px + (b * c + ch) * inner;
            for (int64_t i = 0; i < inner; ++i) s += p[i];
          }
          mean[ch] = s / count;
          for (int64_t b = 0; b < n; ++b) {
            const float* p = px + (b * c + ch) * inner;
            for (int64_t i = 0; i < inner; ++i) sq += (p[i] - mean[ch]) * (p[i] - mean[ch]);
          }
          invstd[ch] = 1.0 / std::sqrt(sq / count + eps);
        }
        const double m = mean[ch], is = invstd[ch];
        double sum_g = 0, sum_gx = 0;
        for (int64_t b = 0; b < n; ++b) {
          const float *p = px + (b * c + ch) * inner, *g = pg + (b * c + ch) * inner;
          for (int64_t i = 0; i < inner; ++i) {
            sum_g += g[i];
            sum_gx += g[i] * (p[i] - m);
          }
        }
        sum_gx *= is;
        if (pdw) pdw[ch] = static_cast<float>(sum_gx);
        if (pdb) pdb[ch] = static_cast<float>(sum_g);
        if (!pdx) continue;
        const double w = pw ? pw[ch] : 1.0;
        for (int64_t b = 0; b < n; ++b) {
          const float *p = px + (b * c + ch) * inner, *g = pg + (b * c + ch) * inner;
          float* d = pdx + (b * c + ch) * inner;
          if (training) {
            const double k = w * is / count;
            for (int64_t i = 0; i < inner; ++i) {
              d[i] = static_cast<float>(k * (count * g[i] - sum_g - (p[i] - m) * is * sum_gx));
            }
          } else {
            const double k = w * is;
            for (int64_t i = 0; i < inner; ++i) d[i] = static_cast<float>(g[i] * k);
          }
        }
      }
    });
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace ag
}  // namespace train
}  // namespace qfx
