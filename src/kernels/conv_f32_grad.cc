// qfx kernels: the fp32 convolution's backward pass (im2col + GemmF32 + col2im), for the training engine.
#include <algorithm>
#include <vector>

#include "qfx/kernels/f32.h"
#include "src/kernels/im2col.h"

namespace qfx {
namespace kernels {
namespace {

// x[ci][iy][ix] += col[(ci*KH + ky)*KW + kx][oy*OW + ox]: im2col's adjoint.
void Col2ImAdd(const Conv2dGeometry& g, const float* col, int64_t channels, float* x) {
  const int64_t oh = g.out_h(), ow = g.out_w(), khw = g.kernel_h * g.kernel_w;
  ParallelFor(channels, 1, [&](int64_t b, int64_t e) {
    for (int64_t ci = b; ci < e; ++ci) {
      float* xc = x + ci * g.in_h * g.in_w;
      for (int64_t tap = 0; tap < khw; ++tap) {
        const int64_t ky = tap / g.kernel_w, kx = tap % g.kernel_w;
        const int64_t off = kx * g.dilation_w - g.pad_w;
        const auto [ox0, ox1] = ValidOutputRange(ow, g.stride_w, off, g.in_w);
        const float* c = col + (ci * khw + tap) * oh * ow;
        for (int64_t oy = 0; oy < oh; ++oy) {
          const int64_t iy = oy * g.stride_h - g.pad_h + ky * g.dilation_h;
          if (iy < 0 || iy >= g.in_h) continue;
          float* xr = xc + iy * g.in_w + off;
          const float* cr = c + oy * ow;
          for (int64_t ox = ox0; ox < ox1; ++ox) xr[ox * g.stride_w] += cr[ox];
        }
      }
    }
  });
}

}  // namespace

void Conv2dBackwardF32(const Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx, float* dw,
                       float* db) {
  const int64_t groups = g.groups, cin_g = g.in_channels / groups, cout_g = g.out_channels / groups;
  const int64_t kg = cin_g * g.kernel_h * g.kernel_w, p = g.out_h() * g.out_w();
  const int64_t in_plane = g.in_h * g.in_w;
  std::vector<float> col(static_cast<size_t>(kg * p)), tmp(static_cast<size_t>(cout_g * kg));
  std::vector<float> wt(static_cast<size_t>(g.out_channels * kg));  // per group: W_g^T [kg, cout_g]
  for (int64_t grp = 0; grp < groups; ++grp) {
    for (int64_t co = 0; co < cout_g; ++co) {
      for (int64_t k = 0; k < kg; ++k) wt[grp * kg * cout_g + k * cout_g + co] = w[(grp * cout_g + co) * kg + k];
    }
  }
  if (dw) std::fill(dw, dw + g.out_channels * kg, 0.f);
  if (dx) std::fill(dx, dx + g.batch * g.in_channels * in_plane, 0.f);
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t grp = 0; grp < groups; ++grp) {
      const float* dyg = dy + (n * g.out_channels + grp * cout_g) * p;
      if (dw) {
        Im2Col<float>(g, x + (n * g.in_channels + grp * cin_g) * in_plane, cin_g, 0.f, col.data());
        // tmp[cout_g, kg] = dy_g[cout_g, p] * col^T
        GemmF32({cout_g, kg, p, dyg, p, col.data(), 1, p, tmp.data(), kg});
        float* dwg = dw + grp * cout_g * kg;
        for (int64_t i = 0; i < cout_g * kg; ++i) dwg[i] += tmp[i];
      }
      if (dx) {
        // col[kg, p] = W_g^T[kg, cout_g] * dy_g[cout_g, p]
        GemmF32({kg, p, cout_g, wt.data() + grp * kg * cout_g, cout_g, dyg, p, 1, col.data(), p});
        Col2ImAdd(g, col.data(), cin_g, dx + (n * g.in_channels + grp * cin_g) * in_plane);
      }
    }
  }
  if (db) {
    for (int64_t co = 0; co < g.out_channels; ++co) {
      double s = 0;
      for (int64_t n = 0; n < g.batch; ++n) {
        const float* d = dy + (n * g.out_channels + co) * p;
        for (int64_t i = 0; i < p; ++i) s += d[i];
      }
      db[co] = static_cast<float>(s);
    }
  }
}

}  // namespace kernels
}  // namespace qfx
