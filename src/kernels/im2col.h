// qfx kernels, internal: im2col shared by the fp32 and int8 convolutions. Padded taps take `pad`
// (0 for fp32, the input zero point for uint8, so they contribute nothing after the zero-point correction).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "qfx/core/parallel.h"
#include "qfx/kernels/f32.h"
#include "src/kernels/x86/u8_shuffle_sse2.h"  // EvenBytes

namespace qfx {
namespace kernels {

// Row `row` = (ci*KH + ky)*KW + kx of the im2col matrix: out[oy*OW + ox] = x[ci][iy][ix], `pad` outside.
template <typename T>
void Im2ColRow(const Conv2dGeometry& g, const T* x, int64_t row, T pad, T* out) {
  // Geometry in locals: stores through a uint8_t pointer may alias anything, which would make the compiler
  // reload every field of g inside the loops.
  const int64_t oh = g.out_h(), ow = g.out_w(), khw = g.kernel_h * g.kernel_w, in_h = g.in_h, in_w = g.in_w;
  const int64_t sh = g.stride_h, sw = g.stride_w, ph = g.pad_h, dh = g.dilation_h;
  const int64_t ci = row / khw, ky = (row % khw) / g.kernel_w, kx = row % g.kernel_w;
  const int64_t off = kx * g.dilation_w - g.pad_w;  // input column of output column 0
  const auto [ox0, ox1] = ValidOutputRange(ow, sw, off, in_w);
  const T* xc = x + ci * in_h * in_w;
  for (int64_t oy = 0; oy < oh; ++oy) {
    const int64_t iy = oy * sh - ph + ky * dh;
    T* o = out + oy * ow;
    if (iy < 0 || iy >= in_h) {
      std::fill(o, o + ow, pad);
      continue;
    }
    const T* xr = xc + iy * in_w + off;
    std::fill(o, o + ox0, pad);
    if (sw == 1) {
      std::copy(xr + ox0, xr + ox1, o + ox0);
    } else {
      int64_t ox = ox0;
      if constexpr (std::is_same_v<T, uint8_t>) {
        if (sw == 2) ox = EvenBytes(xr, ox0, ox1, o);
      }
      for (; ox < ox1; ++ox) o[ox] = xr[ox * sw];
    }
    std::fill(o + ox1, o + ow, pad);
  }
}

// col[(ci*KH + ky)*KW + kx][oy*OW + ox] = x[ci][iy][ix], `pad` outside the image.
template <typename T>
void Im2Col(const Conv2dGeometry& g, const T* x, int64_t channels, T pad, T* col) {
  const int64_t n = g.out_h() * g.out_w();
  ParallelFor(channels * g.kernel_h * g.kernel_w, 8, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) Im2ColRow(g, x, row, pad, col + row * n);
  });
}

}  // namespace kernels
}  // namespace qfx
