// qfx nn: shape arithmetic shared by the functional ops (src/nn) and their backward passes (src/train):
// numpy broadcasting, and the window an average-pooling output reads with PyTorch's divisor rule.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "qfx/core/tensor.h"

namespace qfx {
namespace nn {

// The broadcast of shapes a and b; throws naming `op` when they do not broadcast.
Shape BroadcastShape(const char* op, const Shape& a, const Shape& b);
// Element strides of shape `s` seen through broadcast shape `out` (0 along broadcast dimensions).
std::vector<int64_t> BroadcastStrides(const Shape& s, const Shape& out);
// A transposed convolution's sizes (F::conv_transpose2d): input [N, C_in, in_h, in_w], weight
// [C_in, C_out / groups, kernel_h, kernel_w], output [N, C_out, out_h, out_w].
struct ConvTranspose2dGeometry {
  int64_t batch = 1, in_channels = 0, in_h = 0, in_w = 0, out_channels = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
};

// Calls fn(x index, weight index, offset in the output plane) for every product that reaches output plane
// (n, co) of a transposed convolution: input (ci, iy, ix) and tap (ky, kx) land on (iy * stride - pad +
// ky * dilation, likewise for x). The forward adds x * w there; the backward reads the same triples.
template <typename Fn>
void ForEachTap(const ConvTranspose2dGeometry& g, int64_t n, int64_t co, Fn fn) {
  const int64_t cin_g = g.in_channels / g.groups, cout_g = g.out_channels / g.groups;
  const int64_t group = co / cout_g, col = co % cout_g;
  for (int64_t ci = group * cin_g; ci < (group + 1) * cin_g; ++ci) {
    const int64_t x_plane = (n * g.in_channels + ci) * g.in_h * g.in_w;
    const int64_t w_base = (ci * cout_g + col) * g.kernel_h * g.kernel_w;
    for (int64_t iy = 0; iy < g.in_h; ++iy) {
      for (int64_t ky = 0; ky < g.kernel_h; ++ky) {
        const int64_t oy = iy * g.stride_h - g.pad_h + ky * g.dilation_h;
        if (oy < 0 || oy >= g.out_h) continue;
        for (int64_t ix = 0; ix < g.in_w; ++ix) {
          for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
            const int64_t ox = ix * g.stride_w - g.pad_w + kx * g.dilation_w;
            if (ox < 0 || ox >= g.out_w) continue;
            fn(x_plane + iy * g.in_w + ix, w_base + ky * g.kernel_w + kx, oy * g.out_w + ox);
          }
        }
      }
    }
  }
}

// PyTorch's source positions when resizing one axis from `in` to `out` (its CPU upsample kernels, float
// index arithmetic); `scale_factor` is the one the caller gave, 0 for none (the ratio is then in / out).
int64_t NearestSource(int64_t o, int64_t in, int64_t out, double scale_factor);
struct LinearTap {
  int64_t i0, i1;  // the two neighbours (equal at the last position)
  float l0, l1;    // their weights
};
LinearTap LinearSource(int64_t o, int64_t in, int64_t out, bool align_corners, double scale_factor);

// Sums g over the dimensions in which `shape` was broadcast to g's shape (the adjoint of broadcasting; g
// itself when the shapes agree).
Tensor SumToShape(const Tensor& g, const Shape& shape);

// Calls fn(i, ia, ib) for every element i of `out` (row-major) with the offsets that strides sa and sb
// (from BroadcastStrides) give for it.
template <typename Fn>
void ForEachBroadcast(const Shape& out, const std::vector<int64_t>& sa, const std::vector<int64_t>& sb, Fn fn) {
  std::vector<int64_t> idx(out.size(), 0);
  int64_t ia = 0, ib = 0;
  for (int64_t i = 0, n = NumElements(out); i < n; ++i) {
    fn(i, ia, ib);
    for (int64_t d = static_cast<int64_t>(out.size()) - 1; d >= 0; --d) {
      ia += sa[d];
      ib += sb[d];
      if (++idx[d] < out[d]) break;
      ia -= sa[d] * out[d];
      ib -= sb[d] * out[d];
      idx[d] = 0;
    }
  }
}

// The output size of a pool along one axis (PyTorch's rule): with ceil_mode the last window must start
// inside the input or its left padding.
inline int64_t PoolOutSize(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t span = in + 2 * p - d * (k - 1) - 1;
  int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

// The input rows [y0, y1) and columns [x0, x1) that average-pooling output (oy, ox) reads, and its divisor:
// the window clipped to input + padding when count_include_pad, else to the input (PyTorch's rule).
struct AvgPoolWindow {
  int64_t y0, y1, x0, x1, divisor;
};
inline AvgPoolWindow AvgWindow(int64_t oy, int64_t ox, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph,
                               int64_t pw, int64_t ih, int64_t iw, bool count_include_pad) {
  int64_t y0 = oy * sh - ph, x0 = ox * sw - pw;
  int64_t y1 = std::min(y0 + kh, ih + ph), x1 = std::min(x0 + kw, iw + pw);
  const int64_t padded = (y1 - y0) * (x1 - x0);
  y0 = std::max<int64_t>(y0, 0);
  x0 = std::max<int64_t>(x0, 0);
  y1 = std::min(y1, ih);
  x1 = std::min(x1, iw);
  return {y0, y1, x0, x1, count_include_pad ? padded : (y1 - y0) * (x1 - x0)};
}

}  // namespace nn
}  // namespace qfx
