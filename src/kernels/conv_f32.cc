// qfx kernels: fast fp32 convolution. Depthwise convolutions run a direct kernel over channels;
// every other convolution is im2col (skipped for 1x1, stride 1, no padding) followed by GemmF32,
// one GEMM per image and group. See include/qfx/kernels/f32.h for the contract.
#include <vector>

#include "qfx/core/parallel.h"
#include "qfx/kernels/f32.h"
#include "src/kernels/im2col.h"
#include "src/kernels/scratch.h"

namespace qfx {
namespace kernels {
namespace {

// One output plane of a depthwise convolution (one input channel, one filter).
void DepthwisePlane(const Conv2dGeometry& g, const float* x, const float* w, float b, float* y) {
  const int64_t oh = g.out_h(), ow = g.out_w();
  for (int64_t i = 0; i < oh * ow; ++i) y[i] = b;
  for (int64_t ky = 0; ky < g.kernel_h; ++ky) {
    for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
      const float wv = w[ky * g.kernel_w + kx];
      const int64_t off = kx * g.dilation_w - g.pad_w;
      const auto [ox0, ox1] = ValidOutputRange(ow, g.stride_w, off, g.in_w);
      for (int64_t oy = 0; oy < oh; ++oy) {
        const int64_t iy = oy * g.stride_h - g.pad_h + ky * g.dilation_h;
        if (iy < 0 || iy >= g.in_h) continue;
        const float* xr = x + iy * g.in_w + off;
        float* yr = y + oy * ow;
        if (g.stride_w == 1) {
          for (int64_t ox = ox0; ox < ox1; ++ox) yr[ox] += wv * xr[ox];
        } else {
          for (int64_t ox = ox0; ox < ox1; ++ox) yr[ox] += wv * xr[ox * g.stride_w];
        }
      }
    }
  }
}

void DepthwiseConv(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const int64_t mult = g.out_channels / g.in_channels, hw = g.in_h * g.in_w;
  const int64_t ohw = g.out_h() * g.out_w(), khw = g.kernel_h * g.kernel_w;
  ParallelFor(g.batch * g.out_channels, 4, [&](int64_t b, int64_t e) {
    for (int64_t idx = b; idx < e; ++idx) {
      const int64_t n = idx / g.out_channels, co = idx % g.out_channels, ci = co / mult;
      DepthwisePlane(g, x + (n * g.in_channels + ci) * hw, w + co * khw, bias ? bias[co] : 0.f, y + idx * ohw);
    }
  });
}

}  // namespace

void Conv2dF32(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  if (g.groups == g.in_channels && g.groups > 1 && g.out_channels % g.in_channels == 0) {
    DepthwiseConv(g, x, w, bias, y);
    return;
  }
  const int64_t ohw = g.out_h() * g.out_w();
  const int64_t cin_g = g.in_channels / g.groups, cout_g = g.out_channels / g.groups;
  const int64_t kdim = cin_g * g.kernel_h * g.kernel_w;
  const bool direct =
      g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
  thread_local std::vector<float> col;
  if (!direct) GrowScratch(col, static_cast<size_t>(kdim * ohw));
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const float* xg = x + (n * g.in_channels + grp * cin_g) * g.in_h * g.in_w;
      if (!direct) Im2Col(g, xg, cin_g, 0.f, col.data());
      GemmArgs args;
      args.m = cout_g;
      args.n = ohw;
      args.k = kdim;
      args.a = w + grp * cout_g * kdim;
      args.lda = kdim;
      args.b = direct ? xg : col.data();
      args.b_row_stride = ohw;
      args.c = y + (n * g.out_channels + grp * cout_g) * ohw;
      args.ldc = ohw;
      GemmF32(args);
    }
  }
  if (bias == nullptr) return;
  ParallelFor(g.batch * g.out_channels, 16, [&](int64_t b, int64_t e) {
    for (int64_t idx = b; idx < e; ++idx) {
      float* yc = y + idx * ohw;
      const float bv = bias[idx % g.out_channels];
      for (int64_t i = 0; i < ohw; ++i) yc[i] += bv;
    }
  });
}

}  // namespace kernels
}  // namespace qfx
