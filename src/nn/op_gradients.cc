// qfx nn: the registered backward of shape, softmax, conv / linear and pooling ops (see op_gradients.h).
#include "src/nn/op_gradients.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "qfx/core/parallel.h"
#include "qfx/kernels/f32.h"
#include "qfx/nn/functional.h"
#include "qfx/nn/geometry.h"
#include "qfx/nn/ops.h"

namespace qfx {
namespace nn {
namespace {

using A = std::vector<OpArg>;

const Tensor& In(const A& v, size_t i, const char* op) { return ArgAs<Tensor>(v, i, op, "a tensor"); }

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

// The gradients of (x, w[, b]): a bias gets one only when it is a tensor argument (None is no input).
std::vector<Tensor> WithBias(const A& v, Tensor dx, Tensor dw, Tensor db) {
  if (v.size() > 2 && std::holds_alternative<Tensor>(v[2])) return {dx, dw, db};
  return {dx, dw};
}

}  // namespace

// add (tensor or number other): each tensor's gradient is dy summed over the dimensions it was broadcast in.
std::vector<Tensor> VjpAdd(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>&) {
  std::vector<Tensor> out = {SumToShape(dy, In(v, 0, "add").shape())};
  if (std::holds_alternative<Tensor>(v[1])) out.push_back(SumToShape(dy, In(v, 1, "add").shape()));
  return out;
}

// mul: d a = dy * b, d b = dy * a (a number other gets none).
std::vector<Tensor> VjpMul(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>& want) {
  const Tensor& a = In(v, 0, "mul");
  if (const auto* i = std::get_if<int64_t>(&v[1])) return {F::mul(dy, static_cast<float>(*i))};
  if (!std::holds_alternative<Tensor>(v[1]))
    return {F::mul(dy, static_cast<float>(ArgAs<double>(v, 1, "mul", "a number")))};
  const Tensor& b = In(v, 1, "mul");
  return {want[0] ? SumToShape(F::mul(dy, b), a.shape()) : Tensor(),
          want[1] ? SumToShape(F::mul(dy, a), b.shape()) : Tensor()};
}

// reshape, view, flatten: dx is dy in x's shape.
std::vector<Tensor> VjpReshape(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>&) {
  return {dy.Reshape(In(v, 0, "reshape").shape())};
}

// mean: dy spread evenly over the reduced elements.
std::vector<Tensor> VjpMean(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>&) {
  const Shape xs = In(v, 0, "mean").shape();
  Shape kept = xs;
  const std::vector<int64_t> dims = ArgAs<std::vector<int64_t>>(v, 1, "mean", "a list of integers");
  if (dims.empty()) std::fill(kept.begin(), kept.end(), 1);  // as F::mean: no dims reduces all
  for (int64_t d : dims) kept[NormalizeDim(d, static_cast<int64_t>(xs.size()), "mean dim")] = 1;
  const int64_t count = NumElements(xs) / std::max<int64_t>(1, NumElements(kept));
  return {F::mul(dy.Reshape(kept), Tensor::Full(xs, 1.f / static_cast<float>(count)))};
}

// cat: each input gets its slice of dy.
std::vector<Tensor> VjpCat(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>&) {
  const int64_t d = NormalizeDim(ArgAs<int64_t>(v, 1, "cat", "an integer"), dy.dim(), "cat dim");
  int64_t inner = 1;
  for (int64_t k = d + 1; k < dy.dim(); ++k) inner *= dy.size(k);
  const int64_t outer = dy.numel() / (dy.size(d) * inner), row = dy.size(d) * inner;
  std::vector<Tensor> grads;
  int64_t offset = 0;
  for (const Tensor& x : ArgAs<std::vector<Tensor>>(v, 0, "cat", "a list of tensors")) {
    Tensor g = Tensor::Uninitialized(x.shape());
    const int64_t len = x.size(d) * inner;
    for (int64_t o = 0; o < outer; ++o)
      std::copy_n(dy.data<float>() + o * row + offset, len, g.data<float>() + o * len);
    offset += len;
    grads.push_back(g);
  }
  return grads;
}

// softmax: dx = y * (dy - sum(dy * y)) along the dim.
std::vector<Tensor> VjpSoftmax(const A& v, const Tensor& y, const Tensor& dy, const std::vector<bool>&) {
  const int64_t d = NormalizeDim(ArgAs<int64_t>(v, 1, "softmax", "an integer"), y.dim(), "softmax dim");
  const int64_t len = y.size(d);
  int64_t inner = 1;
  for (int64_t k = d + 1; k < y.dim(); ++k) inner *= y.size(k);
  const int64_t outer = y.numel() / (len * inner);
  Tensor dx = Tensor::Uninitialized(y.shape());
  const float *py = y.data<float>(), *pg = dy.data<float>();
  float* pd = dx.data<float>();
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t base = o * len * inner + i;
      double dot = 0;
      for (int64_t j = 0; j < len; ++j) dot += static_cast<double>(pg[base + j * inner]) * py[base + j * inner];
      for (int64_t j = 0; j < len; ++j) {
        const int64_t k = base + j * inner;
        pd[k] = static_cast<float>(py[k] * (pg[k] - dot));
      }
    }
  }
  return {dx};
}

// conv2d(x, w, b, stride, padding, dilation, groups): the GEMM-based backward of qfx::kernels.
std::vector<Tensor> VjpConv2d(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>& want) {
  const Tensor &xv = In(v, 0, "conv2d"), &wv = In(v, 1, "conv2d");
  const kernels::Conv2dGeometry g = F::Conv2dGeometryOf(
      xv, wv, v.size() > 2 && std::holds_alternative<Tensor>(v[2]) ? In(v, 2, "conv2d") : Tensor(), Conv2dOptionsOf(v));
  const bool want_x = want.at(0), want_w = want.at(1), want_b = want.size() > 2 && want[2];
  Tensor dx = want_x ? Tensor::Uninitialized(xv.shape()) : Tensor();
  Tensor dw = want_w ? Tensor::Uninitialized(wv.shape()) : Tensor();
  Tensor db = want_b ? Tensor::Uninitialized({g.out_channels}) : Tensor();
  kernels::Conv2dBackwardF32(g, xv.data<float>(), wv.data<float>(), dy.data<float>(),
                             want_x ? dx.data<float>() : nullptr, want_w ? dw.data<float>() : nullptr,
                             want_b ? db.data<float>() : nullptr);
  return WithBias(v, dx, dw, db);
}

// linear(x, w, b): dx = dy W, dW = dy^T x, db = the column sums of dy (in double).
std::vector<Tensor> VjpLinear(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>& want) {
  const Tensor &xv = In(v, 0, "linear"), &wv = In(v, 1, "linear");
  const int64_t n = wv.size(0), k = wv.size(1), m = xv.numel() / k;
  const float* pdy = dy.data<float>();
  Tensor dx, dw, db;
  if (want.at(0)) {  // dx[m, k] = dy[m, n] * W[n, k]
    dx = Tensor::Uninitialized(xv.shape());
    kernels::GemmF32({m, k, n, pdy, n, wv.data<float>(), k, 1, dx.data<float>(), k});
  }
  if (want.at(1)) {  // dW[n, k] = dy^T[n, m] * x[m, k]
    Tensor dyt = Tensor::Uninitialized({n, m});
    float* p = dyt.data<float>();
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) p[j * m + i] = pdy[i * n + j];
    }
    dw = Tensor::Uninitialized(wv.shape());
    kernels::GemmF32({n, k, m, p, m, xv.data<float>(), k, 1, dw.data<float>(), k});
  }
  if (want.size() > 2 && want[2]) {
    db = Tensor::Uninitialized({n});
    std::vector<double> s(static_cast<size_t>(n), 0.0);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) s[j] += pdy[i * n + j];
    }
    for (int64_t j = 0; j < n; ++j) db.data<float>()[j] = static_cast<float>(s[j]);
  }
  return WithBias(v, dx, dw, db);
}

std::vector<Tensor> VjpMaxPool2d(const A& v, const Tensor& y, const Tensor& dy, const std::vector<bool>&) {
  const Tensor& xv = In(v, 0, "max_pool2d");
  const Window w = MakeWindow(MaxPool2dOptionsOf(v));
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
  return {dx};
}

// dx of an averaging pool: each output gradient spread evenly over its input window (`window(oy, ox, ih,
// iw, oh, ow)`; a divisor <= 0 skips the output).
template <typename WindowFn>
Tensor SpreadAverages(const Shape& xs, const Tensor& dy, WindowFn window) {
  const int64_t planes = xs[0] * xs[1], ih = xs[2], iw = xs[3], oh = dy.size(2), ow = dy.size(3);
  Tensor dx = Tensor::Zeros(xs);
  for (int64_t p = 0; p < planes; ++p) {
    float* pd = dx.data<float>() + p * ih * iw;
    const float* pg = dy.data<float>() + p * oh * ow;
    for (int64_t oy = 0; oy < oh; ++oy) {
      for (int64_t ox = 0; ox < ow; ++ox) {
        const AvgPoolWindow a = window(oy, ox, ih, iw, oh, ow);
        if (a.divisor <= 0) continue;
        const float g = pg[oy * ow + ox] / static_cast<float>(a.divisor);
        for (int64_t iy = a.y0; iy < a.y1; ++iy) {
          for (int64_t ix = a.x0; ix < a.x1; ++ix) pd[iy * iw + ix] += g;
        }
      }
    }
  }
  return dx;
}

std::vector<Tensor> VjpAvgPool2d(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>&) {
  const F::Pool2dOptions opt = AvgPool2dOptionsOf(v);
  const Window w = MakeWindow(opt);
  return {SpreadAverages(In(v, 0, "avg_pool2d").shape(), dy,
                         [&](int64_t oy, int64_t ox, int64_t ih, int64_t iw, int64_t, int64_t) {
                           return AvgWindow(oy, ox, w.kh, w.kw, w.sh, w.sw, w.ph, w.pw, ih, iw, opt.count_include_pad);
                         })};
}

// PyTorch's adaptive windows: [floor(o * in / out), ceil((o + 1) * in / out)).
std::vector<Tensor> VjpAdaptiveAvgPool2d(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>&) {
  return {SpreadAverages(In(v, 0, "adaptive_avg_pool2d").shape(), dy,
                         [](int64_t oy, int64_t ox, int64_t ih, int64_t iw, int64_t oh, int64_t ow) {
                           const int64_t y0 = oy * ih / oh, y1 = ((oy + 1) * ih + oh - 1) / oh;
                           const int64_t x0 = ox * iw / ow, x1 = ((ox + 1) * iw + ow - 1) / ow;
                           return AvgPoolWindow{y0, y1, x0, x1, (y1 - y0) * (x1 - x0)};
                         })};
}

}  // namespace nn
}  // namespace qfx
