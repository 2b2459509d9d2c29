// qfx train: backward of max, average and adaptive average pooling (PyTorch's window rules).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "qfx/core/parallel.h"
#include "qfx/nn/geometry.h"
#include "qfx/train/ops.h"

namespace qfx {
namespace train {
namespace ag {
namespace {

struct Window {
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
};

Window MakeWindow(const F::Pool2dOptions& opt) {
  const auto& k = opt.kernel_size;
  const std::vector<int64_t>& s = opt.stride.empty() ? k : opt.stride;
  return {k[0], k[1], s[0], s[1], opt.padding[0], opt.padding[1], opt.dilation[0], opt.dilation[1]};
}

// Adds each output gradient of one plane to the first largest input of its window (PyTorch's rule: a NaN
// wins, ties go to the first).
void MaxPoolBackwardPlane(const Window& w, const float* px, int64_t ih, int64_t iw, const float* pg, int64_t oh,
                          int64_t ow, float* pd) {
  for (int64_t oy = 0; oy < oh; ++oy) {
    for (int64_t ox = 0; ox < ow; ++ox) {
      int64_t best = -1;
      float best_v = -std::numeric_limits<float>::infinity();
      for (int64_t ky = 0; ky < w.kh; ++ky) {
        const int64_t iy = oy * w.sh - w.ph + ky * w.dh;
        if (iy < 0 || iy >= ih) continue;
        for (int64_t kx = 0; kx < w.kw; ++kx) {
          const int64_t ix = ox * w.sw - w.pw + kx * w.dw;
          if (ix < 0 || ix >= iw) continue;
          const float v = px[iy * iw + ix];
          if (best < 0 || v > best_v || std::isnan(v)) {
            best = iy * iw + ix;
            best_v = v;
          }
        }
      }
      if (best >= 0) pd[best] += pg[oy * ow + ox];
    }
  }
}

}  // namespace

Var max_pool2d(Tape& t, const Var& x, const F::Pool2dOptions& opt) {
  Tensor y = F::max_pool2d(x.value, opt);
  const Tensor xv = x.value;
  const Window w = MakeWindow(opt);
  return t.Record(y, {x}, [xv, y, w](const Tensor& dy) {
    const int64_t planes = xv.size(0) * xv.size(1), ih = xv.size(2), iw = xv.size(3);
    const int64_t oh = y.size(2), ow = y.size(3);
    Tensor dx = Tensor::Zeros(xv.shape());
    const float *px = xv.data<float>(), *pg = dy.data<float>();
    float* pd = dx.data<float>();
    ParallelFor(planes, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        MaxPoolBackwardPlane(w, px + p * ih * iw, ih, iw, pg + p * oh * ow, oh, ow, pd + p * ih * iw);
      }
    });
    return std::vector<Tensor>{dx};
  });
}

Var avg_pool2d(Tape& t, const Var& x, const F::Pool2dOptions& opt) {
  Tensor y = F::avg_pool2d(x.value, opt);
  const Shape xs = x.value.shape();
  const Window w = MakeWindow(opt);
  const bool include_pad = opt.count_include_pad;
  return t.Record(y, {x}, [xs, w, include_pad](const Tensor& dy) {
    const int64_t planes = xs[0] * xs[1], ih = xs[2], iw = xs[3], oh = dy.size(2), ow = dy.size(3);
    Tensor dx = Tensor::Zeros(xs);
    for (int64_t p = 0; p < planes; ++p) {
      float* pd = dx.data<float>() + p * ih * iw;
      const float* pg = dy.data<float>() + p * oh * ow;
      for (int64_t oy = 0; oy < oh; ++oy) {
        for (int64_t ox = 0; ox < ow; ++ox) {
          const nn::AvgPoolWindow a = nn::AvgWindow(oy, ox, w.kh, w.kw, w.sh, w.sw, w.ph, w.pw, ih, iw, include_pad);
          if (a.divisor <= 0) continue;
          const float g = pg[oy * ow + ox] / static_cast<float>(a.divisor);
          for (int64_t iy = a.y0; iy < a.y1; ++iy) {
            for (int64_t ix = a.x0; ix < a.x1; ++ix) pd[iy * iw + ix] += g;
          }
        }
      }
    }
    return std::vector<Tensor>{dx};
  });
}

Var adaptive_avg_pool2d(Tape& t, const Var& x, const std::vector<int64_t>& output_size) {
  Tensor y = F::adaptive_avg_pool2d(x.value, output_size);
  const Shape xs = x.value.shape();
  return t.Record(y, {x}, [xs](const Tensor& dy) {
    const int64_t planes = xs[0] * xs[1], ih = xs[2], iw = xs[3], oh = dy.size(2), ow = dy.size(3);
    Tensor dx = Tensor::Zeros(xs);
    for (int64_t p = 0; p < planes; ++p) {
      float* pd = dx.data<float>() + p * ih * iw;
      const float* pg = dy.data<float>() + p * oh * ow;
      for (int64_t oy = 0; oy < oh; ++oy) {
        const int64_t y0 = oy * ih / oh, y1 = ((oy + 1) * ih + oh - 1) / oh;
        for (int64_t ox = 0; ox < ow; ++ox) {
          const int64_t x0 = ox * iw / ow, x1 = ((ox + 1) * iw + ow - 1) / ow;
          const float g = pg[oy * ow + ox] / static_cast<float>((y1 - y0) * (x1 - x0));
          for (int64_t iy = y0; iy < y1; ++iy) {
            for (int64_t ix = x0; ix < x1; ++ix) pd[iy * iw + ix] += g;
          }
        }
      }
    }
    return std::vector<Tensor>{dx};
  });
}

}  // namespace ag
}  // namespace train
}  // namespace qfx
