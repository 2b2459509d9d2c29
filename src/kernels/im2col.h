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

// Columns [j0, j1) of row `row` = (ci*KH + ky)*KW + kx of the im2col matrix, where column j is output pixel
// (oy, ox) = (j / OW, j % OW): out[j - j0] = x[ci][iy][ix], `pad` outside the image.
template <typename T>
void Im2ColRowRange(const Conv2dGeometry& g, const T* x, int64_t row, int64_t j0, int64_t j1, T pad, T* out) {
  // Geometry in locals: stores through a uint8_t pointer may alias anything, which would make the compiler
  // reload every field of g inside the loops.
  const int64_t ow = g.out_w(), khw = g.kernel_h * g.kernel_w, in_h = g.in_h, in_w = g.in_w;
  const int64_t sh = g.stride_h, sw = g.stride_w, ph = g.pad_h, dh = g.dilation_h;
  const int64_t ci = row / khw, ky = (row % khw) / g.kernel_w, kx = row % g.kernel_w;
  const int64_t off = kx * g.dilation_w - g.pad_w;  // input column of output column 0
  const auto [ox0, ox1] = ValidOutputRange(ow, sw, off, in_w);
  const T* xc = x + ci * in_h * in_w;
  for (int64_t j = j0; j < j1;) {
    const int64_t oy = j / ow, first = j % ow, last = std::min(ow, first + (j1 - j));
    T* o = out + (j - j0);  // o[i] is output pixel (oy, first + i)
    j += last - first;
    const int64_t iy = oy * sh - ph + ky * dh;
    if (iy < 0 || iy >= in_h) {
      std::fill(o, o + (last - first), pad);
      continue;
    }
    const T* xr = xc + iy * in_w + off;
    const int64_t a = std::clamp(ox0, first, last), b = std::clamp(ox1, a, last);
    std::fill(o, o + (a - first), pad);
    if (sw == 1) {
      std::copy(xr + a, xr + b, o + (a - first));
    } else {
      int64_t ox = a;
      if constexpr (std::is_same_v<T, uint8_t>) {
        if (sw == 2) ox = a + EvenBytes(xr + 2 * a, 0, b - a, o + (a - first));
      }
      for (; ox < b; ++ox) o[ox - first] = xr[ox * sw];
    }
    std::fill(o + (b - first), o + (last - first), pad);
  }
}

// Row `row` of the im2col matrix, all OH*OW columns.
template <typename T>
void Im2ColRow(const Conv2dGeometry& g, const T* x, int64_t row, T pad, T* out) {
  Im2ColRowRange(g, x, row, 0, g.out_h() * g.out_w(), pad, out);
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
