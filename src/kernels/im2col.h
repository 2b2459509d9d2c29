// qfx kernels, internal: im2col shared by the fp32 and int8 convolutions. Padded taps take `pad`
// (0 for fp32, the input zero point for uint8, so they contribute nothing after the zero-point correction).
#pragma once

#include <algorithm>
#include <cstdint>

#include "qfx/core/parallel.h"
#include "qfx/kernels/f32.h"

namespace qfx {
namespace kernels {

// col[(ci*KH + ky)*KW + kx][oy*OW + ox] = x[ci][iy][ix], `pad` outside the image.
template <typename T>
void Im2Col(const Conv2dGeometry& g, const T* x, int64_t channels, T pad, T* col) {
  const int64_t oh = g.out_h(), ow = g.out_w(), khw = g.kernel_h * g.kernel_w;
  ParallelFor(channels * khw, 8, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const int64_t ci = row / khw, ky = (row % khw) / g.kernel_w, kx = row % g.kernel_w;
      const int64_t off = kx * g.dilation_w - g.pad_w;  // input column of output column 0
      const auto [ox0, ox1] = ValidOutputRange(ow, g.stride_w, off, g.in_w);
      const T* xc = x + ci * g.in_h * g.in_w;
      T* out = col + row * oh * ow;
      for (int64_t oy = 0; oy < oh; ++oy) {
        const int64_t iy = oy * g.stride_h - g.pad_h + ky * g.dilation_h;
        T* o = out + oy * ow;
        if (iy < 0 || iy >= g.in_h) {
          std::fill(o, o + ow, pad);
          continue;
        }
        const T* xr = xc + iy * g.in_w + off;
        std::fill(o, o + ox0, pad);
        if (g.stride_w == 1) {
          std::copy(xr + ox0, xr + ox1, o + ox0);
        } else {
          for (int64_t ox = ox0; ox < ox1; ++ox) o[ox] = xr[ox * g.stride_w];
        }
        std::fill(o + ox1, o + ow, pad);
      }
    }
  });
}

}  // namespace kernels
}  // namespace qfx
