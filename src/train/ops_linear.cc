// qfx train: backward of conv2d and linear (GEMM-based, through qfx::kernels).
#include <vector>

#include "qfx/kernels/f32.h"
#include "qfx/train/ops.h"

namespace qfx {
namespace train {
namespace ag {

Var conv2d(Tape& t, const Var& x, const Var& w, const Var& b, const F::Conv2dOptions& opt) {
  Tensor y = F::conv2d(x.value, w.value, b.value, opt);
  kernels::Conv2dGeometry g;
  g.batch = x.value.size(0);
  g.in_channels = x.value.size(1);
  g.in_h = x.value.size(2);
  g.in_w = x.value.size(3);
  g.out_channels = w.value.size(0);
  g.kernel_h = w.value.size(2);
  g.kernel_w = w.value.size(3);
  g.stride_h = opt.stride[0];
  g.stride_w = opt.stride[1];
  g.pad_h = opt.padding[0];
  g.pad_w = opt.padding[1];
  g.dilation_h = opt.dilation[0];
  g.dilation_w = opt.dilation[1];
  g.groups = opt.groups;
  const Tensor xv = x.value, wv = w.value;
  const bool want_x = x.requires_grad(), want_w = w.requires_grad(), want_b = b.requires_grad();
  return t.Record(y, {x, w, b}, [=](const Tensor& dy) {
    Tensor dx = want_x ? Tensor::Uninitialized(xv.shape()) : Tensor();
    Tensor dw = want_w ? Tensor::Uninitialized(wv.shape()) : Tensor();
    Tensor db = want_b ? Tensor::Uninitialized({g.out_channels}) : Tensor();
    kernels::Conv2dBackwardF32(g, xv.data<float>(), wv.data<float>(), dy.data<float>(),
                               want_x ? dx.data<float>() : nullptr, want_w ? dw.data<float>() : nullptr,
                               want_b ? db.data<float>() : nullptr);
    return std::vector<Tensor>{dx, dw, db};
  });
}

Var linear(Tape& t, const Var& x, const Var& w, const Var& b) {
  Tensor y = F::linear(x.value, w.value, b.value);
  const Tensor xv = x.value, wv = w.value;
  const bool want_x = x.requires_grad(), want_w = w.requires_grad(), want_b = b.requires_grad();
  return t.Record(y, {x, w, b}, [=](const Tensor& dy) {
    const int64_t n = wv.size(0), k = wv.size(1), m = xv.numel() / k;
    const float* pdy = dy.data<float>();
    Tensor dx, dw, db;
    if (want_x) {  // dx[m, k] = dy[m, n] * W[n, k]
      dx = Tensor::Uninitialized(xv.shape());
      kernels::GemmF32({m, k, n, pdy, n, wv.data<float>(), k, 1, dx.data<float>(), k});
    }
    if (want_w) {  // dW[n, k] = dy^T[n, m] * x[m, k]
      Tensor dyt = Tensor::Uninitialized({n, m});
      float* p = dyt.data<float>();
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) p[j * m + i] = pdy[i * n + j];
      }
      dw = Tensor::Uninitialized(wv.shape());
      kernels::GemmF32({n, k, m, p, m, xv.data<float>(), k, 1, dw.data<float>(), k});
    }
    if (want_b) {
      db = Tensor::Uninitialized({n});
      std::vector<double> s(static_cast<size_t>(n), 0.0);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) s[j] += pdy[i * n + j];
      }
      for (int64_t j = 0; j < n; ++j) db.data<float>()[j] = static_cast<float>(s[j]);
    }
    return std::vector<Tensor>{dx, dw, db};
  });
}

}  // namespace ag
}  // namespace train
}  // namespace qfx
