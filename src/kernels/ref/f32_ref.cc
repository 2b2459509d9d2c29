// qfx kernels, scalar reference: the oracle for GEMM and convolution (see include/qfx/kernels/f32.h).
// Straight loops in double-free fp32, written for obviousness, not speed.
#include "qfx/kernels/f32.h"

namespace qfx {
namespace kernels {
namespace ref {

void GemmF32(const GemmArgs& g) {
  for (int64_t i = 0; i < g.m; ++i) {
    for (int64_t j = 0; j < g.n; ++j) {
      float acc = 0.f;
      for (int64_t p = 0; p < g.k; ++p) {
        acc += g.a[i * g.lda + p] * g.b[p * g.b_row_stride + j * g.b_col_stride];
      }
      g.c[i * g.ldc + j] = acc;
    }
  }
}

void Conv2dF32(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const int64_t oh = g.out_h(), ow = g.out_w();
  const int64_t cin_g = g.in_channels / g.groups, cout_g = g.out_channels / g.groups;
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t co = 0; co < g.out_channels; ++co) {
      const int64_t grp = co / cout_g;
      for (int64_t oy = 0; oy < oh; ++oy) {
        for (int64_t ox = 0; ox < ow; ++ox) {
          float acc = bias ? bias[co] : 0.f;
          for (int64_t ci = 0; ci < cin_g; ++ci) {
            const float* xc = x + ((n * g.in_channels) + grp * cin_g + ci) * g.in_h * g.in_w;
            const float* wc = w + ((co * cin_g) + ci) * g.kernel_h * g.kernel_w;
            for (int64_t ky = 0; ky < g.kernel_h; ++ky) {
              const int64_t iy = oy * g.stride_h - g.pad_h + ky * g.dilation_h;
              if (iy < 0 || iy >= g.in_h) continue;
              for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
                const int64_t ix = ox * g.stride_w - g.pad_w + kx * g.dilation_w;
                if (ix < 0 || ix >= g.in_w) continue;
                acc += xc[iy * g.in_w + ix] * wc[ky * g.kernel_w + kx];
              }
            }
          }
          y[((n * g.out_channels + co) * oh + oy) * ow + ox] = acc;
        }
      }
    }
  }
}

void ApplyConvEpilogue(const Conv2dGeometry& g, const ConvEpilogue& post, float* y) {
  const int64_t ohw = g.out_h() * g.out_w();
  for (int64_t plane = 0; plane < g.batch * g.out_channels; ++plane) {
    for (int64_t i = 0; i < ohw; ++i) y[plane * ohw + i] = post.Apply(y[plane * ohw + i], plane % g.out_channels);
  }
}

}  // namespace ref
}  // namespace kernels
}  // namespace qfx
