// qfx nn: the registered backward of interpolate, nearest and bilinear (see op_gradients.h): each output
// gradient added to the input positions the forward read, with its weights.
#include <vector>

#include "qfx/nn/functional.h"
#include "qfx/nn/geometry.h"
#include "qfx/nn/ops.h"
#include "src/nn/op_gradients.h"

namespace qfx {
namespace nn {
namespace {

using A = std::vector<OpArg>;

double ScaleArg(const A& v, size_t i, const char* op) {
  if (const auto* n = std::get_if<int64_t>(&v.at(i))) return static_cast<double>(*n);
  return ArgAs<double>(v, i, op, "a number");
}

Tensor NearestBackward(const Tensor& x, const Tensor& dy, double sh, double sw) {
  const int64_t planes = x.size(0) * x.size(1), ih = x.size(2), iw = x.size(3), oh = dy.size(2), ow = dy.size(3);
  Tensor dx = Tensor::Zeros(x.shape());
  std::vector<int64_t> sx(static_cast<size_t>(ow));
  for (int64_t o = 0; o < ow; ++o) sx[o] = NearestSource(o, iw, ow, sw);
  const float* pg = dy.data<float>();
  float* pd = dx.data<float>();
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      float* row = pd + (p * ih + NearestSource(oy, ih, oh, sh)) * iw;
      const float* g = pg + (p * oh + oy) * ow;
      for (int64_t ox = 0; ox < ow; ++ox) row[sx[ox]] += g[ox];
    }
  }
  return dx;
}

Tensor BilinearBackward(const Tensor& x, const Tensor& dy, bool align, double sh, double sw) {
  const int64_t planes = x.size(0) * x.size(1), ih = x.size(2), iw = x.size(3), oh = dy.size(2), ow = dy.size(3);
  Tensor dx = Tensor::Zeros(x.shape());
  std::vector<LinearTap> tx(static_cast<size_t>(ow));
  for (int64_t o = 0; o < ow; ++o) tx[o] = LinearSource(o, iw, ow, align, sw);
  const float* pg = dy.data<float>();
  float* pd = dx.data<float>();
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      const LinearTap ty = LinearSource(oy, ih, oh, align, sh);
      float *r0 = pd + (p * ih + ty.i0) * iw, *r1 = pd + (p * ih + ty.i1) * iw;
      const float* g = pg + (p * oh + oy) * ow;
      for (int64_t ox = 0; ox < ow; ++ox) {
        const LinearTap& t = tx[ox];
        r0[t.i0] += g[ox] * ty.l0 * t.l0;
        r0[t.i1] += g[ox] * ty.l0 * t.l1;
        r1[t.i0] += g[ox] * ty.l1 * t.l0;
        r1[t.i1] += g[ox] * ty.l1 * t.l1;
      }
    }
  }
  return dx;
}

}  // namespace

// interpolate(x, size, scale_h, scale_w, mode, align_corners): the output size is dy's.
std::vector<Tensor> VjpInterpolate(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>&) {
  const Tensor& x = ArgAs<Tensor>(v, 0, "interpolate", "a tensor");
  const double sh = ScaleArg(v, 2, "interpolate"), sw = ScaleArg(v, 3, "interpolate");
  const auto mode = static_cast<F::InterpolateOptions::Mode>(ArgAs<int64_t>(v, 4, "interpolate", "an integer"));
  if (mode == F::InterpolateOptions::Mode::kNearest) return {NearestBackward(x, dy, sh, sw)};
  return {BilinearBackward(x, dy, ArgAs<bool>(v, 5, "interpolate", "a bool"), sh, sw)};
}

}  // namespace nn
}  // namespace qfx
