// qfx nn: upsampling, PyTorch's F.interpolate with mode 'nearest' and 'bilinear' on [N, C, H, W] (see
// qfx/nn/functional.h), with the source positions and weights of PyTorch's CPU kernels (nn/geometry.h).
#include <cmath>
#include <utility>
#include <vector>

#include "qfx/core/status.h"
#include "qfx/core/trace.h"
#include "qfx/nn/functional.h"
#include "qfx/nn/geometry.h"
#include "src/nn/functional_internal.h"

namespace qfx {
namespace F {
namespace {

// Checks x [N, C, H, W] (f32, or quint8 when quantized) and the output size; the float input to compute on.
Tensor CheckResize(const char* op, const Tensor& x, const std::vector<int64_t>& size) {
  if (x.dim() != 4) ThrowInvalid(op, ": input ", x.ToString(), " must be 4-d [N, C, H, W]");
  // A bound on what a graph file's sizes can make a run allocate: 2^26 output values per plane.
  if (size.size() != 2 || size[0] <= 0 || size[1] <= 0 || size[0] > (int64_t{1} << 16) ||
      size[1] > (int64_t{1} << 16) || size[0] * size[1] > (int64_t{1} << 26)) {
    ThrowInvalid(op, ": output size ", ShapeToString(size),
                 " must be two positive sizes of at most 65536 with at most 2^26 values per plane");
  }
  if (x.is_quantized()) return dequantize(x);
  if (x.dtype() != DType::kF32) ThrowInvalid(op, ": input ", x.ToString(), " must be f32 or quint8");
  return x;
}

// A quantized input's result: the float result quantized with the input's qparams (share-qparams).
Tensor LikeInput(const Tensor& x, const Tensor& y) {
  return x.is_quantized() ? quantize(y, x.quant().scale, x.quant().zero_point) : y;
}

Tensor UpsampleNearest(const Tensor& x, const std::vector<int64_t>& size, double scale_h, double scale_w) {
  const Tensor f = CheckResize("interpolate", x, size);
  const int64_t planes = f.size(0) * f.size(1), ih = f.size(2), iw = f.size(3), oh = size[0], ow = size[1];
  std::vector<int64_t> sx(static_cast<size_t>(ow));
  for (int64_t o = 0; o < ow; ++o) sx[o] = nn::NearestSource(o, iw, ow, scale_w);
  Tensor y = Tensor::Uninitialized({f.size(0), f.size(1), oh, ow});
  const float* px = f.data<float>();
  float* py = y.data<float>();
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      const float* row = px + (p * ih + nn::NearestSource(oy, ih, oh, scale_h)) * iw;
      float* out = py + (p * oh + oy) * ow;
      for (int64_t ox = 0; ox < ow; ++ox) out[ox] = row[sx[ox]];
    }
  }
  return LikeInput(x, y);
}

Tensor UpsampleBilinear(const Tensor& x, const std::vector<int64_t>& size, bool align_corners, double scale_h,
                        double scale_w) {
  const Tensor f = CheckResize("interpolate", x, size);
  const int64_t planes = f.size(0) * f.size(1), ih = f.size(2), iw = f.size(3), oh = size[0], ow = size[1];
  std::vector<nn::LinearTap> tx(static_cast<size_t>(ow));
  for (int64_t o = 0; o < ow; ++o) tx[o] = nn::LinearSource(o, iw, ow, align_corners, scale_w);
  Tensor y = Tensor::Uninitialized({f.size(0), f.size(1), oh, ow});
  const float* px = f.data<float>();
  float* py = y.data<float>();
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      const nn::LinearTap ty = nn::LinearSource(oy, ih, oh, align_corners, scale_h);
      const float *r0 = px + (p * ih + ty.i0) * iw, *r1 = px + (p * ih + ty.i1) * iw;
      float* out = py + (p * oh + oy) * ow;
      for (int64_t ox = 0; ox < ow; ++ox) {
        const nn::LinearTap& t = tx[ox];
        out[ox] = ty.l0 * (t.l0 * r0[t.i0] + t.l1 * r0[t.i1]) + ty.l1 * (t.l0 * r1[t.i0] + t.l1 * r1[t.i1]);
      }
    }
  }
  return LikeInput(x, y);
}

}  // namespace

Tensor interpolate(const Tensor& x, const InterpolateOptions& opt) {
  const double sh = opt.scale_factor.empty() ? 0.0 : opt.scale_factor[0],
               sw = opt.scale_factor.empty() ? 0.0 : opt.scale_factor.back();
  QFX_TRACE_OP(OpId::kInterpolate, x, opt.size, sh, sw, static_cast<int64_t>(opt.mode), opt.align_corners);
  if (x.dim() != 4) ThrowInvalid("interpolate: input ", x.ToString(), " must be 4-d [N, C, H, W]");
  if (opt.size.empty() == opt.scale_factor.empty() || opt.size.size() > 2 || opt.scale_factor.size() > 2) {
    ThrowInvalid("interpolate: give exactly one of size and scale_factor, each one value or two (h, w)");
  }
  if (opt.mode == InterpolateOptions::Mode::kNearest && opt.align_corners) {
    ThrowInvalid("interpolate: align_corners only applies to mode 'bilinear'");
  }
  std::vector<int64_t> size = opt.size;
  if (size.size() == 1) size.push_back(size[0]);
  if (size.empty()) {
    for (const auto& [s, in] : {std::pair<double, int64_t>{sh, x.size(2)}, {sw, x.size(3)}}) {
      if (!(s > 0) || !(s * static_cast<double>(in) < 65537.0)) {
        ThrowInvalid("interpolate: scale_factor ", s, " must be positive and give a size of at most 65536");
      }
      size.push_back(static_cast<int64_t>(std::floor(static_cast<double>(in) * s)));
    }
  }
  // PyTorch passes given scale factors on to the kernels, which then use 1 / scale (not in / out).
  return opt.mode == InterpolateOptions::Mode::kNearest ? UpsampleNearest(x, size, sh, sw)
                                                        : UpsampleBilinear(x, size, opt.align_corners, sh, sw);
}

}  // namespace F
}  // namespace qfx
