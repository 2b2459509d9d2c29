// qfx kernels, scalar reference: the int8 oracle (see include/qfx/kernels/int8.h). Straight loops over
// (x - x_zp) * w with padding skipped, the exact int32 accumulator, then the one requantization rule.
#include <algorithm>
#include <cmath>

#include "qfx/kernels/int8.h"

namespace qfx {
namespace kernels {
namespace ref {

void QConv2d(const QConvArgs& a, const uint8_t* x, uint8_t* y) {
  const Conv2dGeometry& g = a.g;
  const int64_t oh = g.out_h(), ow = g.out_w();
  const int64_t cin_g = g.in_channels / g.groups, cout_g = g.out_channels / g.groups;
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t co = 0; co < g.out_channels; ++co) {
      const int64_t grp = co / cout_g;
      for (int64_t oy = 0; oy < oh; ++oy) {
        for (int64_t ox = 0; ox < ow; ++ox) {
          int32_t acc = a.bias ? a.bias[co] : 0;
          for (int64_t ci = 0; ci < cin_g; ++ci) {
            const uint8_t* xc = x + ((n * g.in_channels) + grp * cin_g + ci) * g.in_h * g.in_w;
            const int8_t* wc = a.weight + ((co * cin_g) + ci) * g.kernel_h * g.kernel_w;
            for (int64_t ky = 0; ky < g.kernel_h; ++ky) {
              const int64_t iy = oy * g.stride_h - g.pad_h + ky * g.dilation_h;
              if (iy < 0 || iy >= g.in_h) continue;
              for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
                const int64_t ix = ox * g.stride_w - g.pad_w + kx * g.dilation_w;
                if (ix < 0 || ix >= g.in_w) continue;
                acc += (static_cast<int32_t>(xc[iy * g.in_w + ix]) - a.x_zero_point) * wc[ky * g.kernel_w + kx];
              }
            }
          }
          y[((n * g.out_channels + co) * oh + oy) * ow + ox] =
              Requantize(acc, a.multiplier[co], a.y_zero_point, a.lo, a.hi);
        }
      }
    }
  }
}

void QLinear(const QLinearArgs& a, const uint8_t* x, uint8_t* y) {
  for (int64_t r = 0; r < a.rows; ++r) {
    for (int64_t o = 0; o < a.out; ++o) {
      int32_t acc = a.bias ? a.bias[o] : 0;
      for (int64_t k = 0; k < a.in; ++k) {
        acc += (static_cast<int32_t>(x[r * a.in + k]) - a.x_zero_point) * a.weight[o * a.in + k];
      }
      y[r * a.out + o] = Requantize(acc, a.multiplier[o], a.y_zero_point, a.lo, a.hi);
    }
  }
}

void QuantizeU8(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmax, uint8_t* y) {
  const float inv = 1.0f / scale;
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<uint8_t>(QuantizeValue(x[i], inv, zero_point, 0, qmax));
}

bool MinMax(const float* x, int64_t n, float* lo, float* hi) {
  float l = n > 0 ? x[0] : 0.f, h = l;
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    l = std::min(l, x[i]);
    h = std::max(h, x[i]);
    finite = finite && std::isfinite(x[i]);
  }
  *lo = l;
  *hi = h;
  return finite;
}

void QLinearDynamic(const QLinearDynamicArgs& a, const uint8_t* x, float* y) {
  for (int64_t r = 0; r < a.rows; ++r) {
    for (int64_t o = 0; o < a.out; ++o) {
      int32_t acc = 0;
      for (int64_t k = 0; k < a.in; ++k) {
        acc += (static_cast<int32_t>(x[r * a.in + k]) - a.x_zero_point) * a.weight[o * a.in + k];
      }
      y[r * a.out + o] = static_cast<float>(acc) * (a.x_scale * a.w_scale[o]) + (a.bias ? a.bias[o] : 0.f);
    }
  }
}

namespace {
template <typename Fn>
void Binary(const QBinaryArgs& q, const uint8_t* a, const uint8_t* b, uint8_t* y, Fn fn) {
  const float inv = 1.0f / q.y_scale;
  for (int64_t i = 0; i < q.n; ++i) {
    const float da = static_cast<float>(static_cast<int32_t>(a[i]) - q.a_zero_point) * q.a_scale;
    const float db = static_cast<float>(static_cast<int32_t>(b[i]) - q.b_zero_point) * q.b_scale;
    y[i] = static_cast<uint8_t>(QuantizeValue(fn(da, db), inv, q.y_zero_point, 0, 255));
  }
}
}  // namespace

void QAdd(const QBinaryArgs& q, const uint8_t* a, const uint8_t* b, uint8_t* y) {
  Binary(q, a, b, y, [&](float u, float v) {
    const float s = u + v;
    return q.relu && s < 0.f ? 0.f : s;
  });
}

void QMul(const QBinaryArgs& q, const uint8_t* a, const uint8_t* b, uint8_t* y) {
  Binary(q, a, b, y, [](float u, float v) { return u * v; });
}

void QMatmul(const QMatmulArgs& q, const uint8_t* a, const uint8_t* b, uint8_t* y) {
  for (int64_t bt = 0; bt < q.batch; ++bt) {
    const uint8_t *pa = a + bt * q.m * q.k, *pb = b + bt * q.k * q.n;
    for (int64_t i = 0; i < q.m; ++i) {
      for (int64_t j = 0; j < q.n; ++j) {
        int32_t acc = 0;
        for (int64_t t = 0; t < q.k; ++t) {
          acc += (static_cast<int32_t>(pa[i * q.k + t]) - q.a_zero_point) *
                 (static_cast<int32_t>(pb[t * q.n + j]) - q.b_zero_point);
        }
        y[(bt * q.m + i) * q.n + j] = Requantize(acc, q.multiplier, q.y_zero_point, 0, 255);
      }
    }
  }
}

}  // namespace ref
}  // namespace kernels
}  // namespace qfx
