// qfx kernels: the int8 convolution and linear fast paths (see include/qfx/kernels/int8.h).
//
// Convolution: im2col of the u8 input with zero-point padding (so padded taps contribute 0 after the
// correction), an integer GEMM per output channel with the u8 columns (loops the compiler vectorises at
// -O3), then the epilogue acc - x_zp * sum(w) + bias and the shared requantization. Depthwise convolution
// runs directly per channel. Threads split output channels (or rows for linear layers).
// TODO(#5): the AVX2 vpmaddubsw micro-kernel with per-layer exactness selection replaces the GEMM loop.
#include <algorithm>
#include <vector>

#include "qfx/core/parallel.h"
#include "qfx/kernels/int8.h"

namespace qfx {
namespace kernels {
namespace {

void Im2ColU8(const Conv2dGeometry& g, const uint8_t* x, int64_t channels, uint8_t pad, uint8_t* col) {
  const int64_t oh = g.out_h(), ow = g.out_w(), khw = g.kernel_h * g.kernel_w;
  ParallelFor(channels * khw, 8, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const int64_t ci = row / khw, ky = (row % khw) / g.kernel_w, kx = row % g.kernel_w;
      const uint8_t* xc = x + ci * g.in_h * g.in_w;
      uint8_t* out = col + row * oh * ow;
      for (int64_t oy = 0; oy < oh; ++oy) {
        const int64_t iy = oy * g.stride_h - g.pad_h + ky * g.dilation_h;
        uint8_t* o = out + oy * ow;
        for (int64_t ox = 0; ox < ow; ++ox) {
          const int64_t ix = ox * g.stride_w - g.pad_w + kx * g.dilation_w;
          o[ox] = (iy >= 0 && iy < g.in_h && ix >= 0 && ix < g.in_w) ? xc[iy * g.in_w + ix] : pad;
        }
      }
    }
  });
}

// acc[n] = sum_k w[k] * col[k][n] for one output channel.
void DotColumns(const int8_t* w, const uint8_t* col, int64_t k, int64_t n, int32_t* acc) {
  std::fill(acc, acc + n, 0);
  for (int64_t p = 0; p < k; ++p) {
    const int32_t wv = w[p];
    const uint8_t* c = col + p * n;
    for (int64_t j = 0; j < n; ++j) acc[j] += wv * static_cast<int32_t>(c[j]);
  }
}

void Epilogue(const QConvArgs& a, int64_t co, const int32_t* acc, int64_t n, uint8_t* y) {
  const int32_t correction = (a.bias ? a.bias[co] : 0) - a.x_zero_point * a.weight_sum[co];
  for (int64_t j = 0; j < n; ++j) y[j] = Requantize(acc[j] + correction, a.multiplier[co], a.y_zero_point, a.lo, a.hi);
}

void DepthwiseQConv(const QConvArgs& a, const uint8_t* x, uint8_t* y) {
  const Conv2dGeometry& g = a.g;
  const int64_t oh = g.out_h(), ow = g.out_w(), mult = g.out_channels / g.in_channels, khw = g.kernel_h * g.kernel_w;
  ParallelFor(g.batch * g.out_channels, 2, [&](int64_t b, int64_t e) {
    std::vector<int32_t> acc(oh * ow);
    for (int64_t idx = b; idx < e; ++idx) {
      const int64_t n = idx / g.out_channels, co = idx % g.out_channels, ci = co / mult;
      const uint8_t* xc = x + (n * g.in_channels + ci) * g.in_h * g.in_w;
      const int8_t* w = a.weight + co * khw;
      std::fill(acc.begin(), acc.end(), 0);
      for (int64_t ky = 0; ky < g.kernel_h; ++ky) {
        for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
          const int32_t wv = w[ky * g.kernel_w + kx];
          for (int64_t oy = 0; oy < oh; ++oy) {
            const int64_t iy = oy * g.stride_h - g.pad_h + ky * g.dilation_h;
            if (iy < 0 || iy >= g.in_h) continue;  // padding: (zp - zp) * w = 0
            for (int64_t ox = 0; ox < ow; ++ox) {
              const int64_t ix = ox * g.stride_w - g.pad_w + kx * g.dilation_w;
              if (ix < 0 || ix >= g.in_w) continue;
              acc[oy * ow + ox] += wv * (static_cast<int32_t>(xc[iy * g.in_w + ix]) - a.x_zero_point);
            }
          }
        }
      }
      uint8_t* yc = y + idx * oh * ow;
      const int32_t bias = a.bias ? a.bias[co] : 0;
      for (int64_t i = 0; i < oh * ow; ++i) yc[i] = Requantize(acc[i] + bias, a.multiplier[co], a.y_zero_point, a.lo, a.hi);
    }
  });
}

}  // namespace

void ComputeWeightSums(const int8_t* weight, int64_t rows, int64_t per_row, int32_t* sums) {
  for (int64_t r = 0; r < rows; ++r) {
    int32_t s = 0;
    for (int64_t i = 0; i < per_row; ++i) s += weight[r * per_row + i];
    sums[r] = s;
  }
}

void QConv2d(const QConvArgs& a, const uint8_t* x, uint8_t* y) {
  const Conv2dGeometry& g = a.g;
  if (g.groups == g.in_channels && g.groups > 1 && g.out_channels % g.in_channels == 0) return DepthwiseQConv(a, x, y);
  const int64_t ohw = g.out_h() * g.out_w(), cin_g = g.in_channels / g.groups, cout_g = g.out_channels / g.groups;
  const int64_t kdim = cin_g * g.kernel_h * g.kernel_w;
  thread_local std::vector<uint8_t> col_buffer;
  col_buffer.resize(static_cast<size_t>(kdim * ohw));
  uint8_t* const col = col_buffer.data();  // a pointer: workers must not name the thread_local themselves
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      Im2ColU8(g, x + (n * g.in_channels + grp * cin_g) * g.in_h * g.in_w, cin_g, static_cast<uint8_t>(a.x_zero_point), col);
      ParallelFor(cout_g, 1, [&](int64_t b, int64_t e) {
        std::vector<int32_t> acc(ohw);
        for (int64_t o = b; o < e; ++o) {
          const int64_t co = grp * cout_g + o;
          DotColumns(a.weight + co * kdim, col, kdim, ohw, acc.data());
          Epilogue(a, co, acc.data(), ohw, y + (n * g.out_channels + co) * ohw);
        }
      });
    }
  }
}

void QLinear(const QLinearArgs& a, const uint8_t* x, uint8_t* y) {
  ParallelFor(a.out, 8, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      const int8_t* w = a.weight + o * a.in;
      const int32_t correction = (a.bias ? a.bias[o] : 0) - a.x_zero_point * a.weight_sum[o];
      for (int64_t r = 0; r < a.rows; ++r) {
        const uint8_t* xr = x + r * a.in;
        int32_t acc = 0;
        for (int64_t k = 0; k < a.in; ++k) acc += static_cast<int32_t>(xr[k]) * w[k];
        y[r * a.out + o] = Requantize(acc + correction, a.multiplier[o], a.y_zero_point, a.lo, a.hi);
      }
    }
  });
}

const char* Int8TargetName() { return "portable"; }

}  // namespace kernels
}  // namespace qfx
