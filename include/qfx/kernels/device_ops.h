// qfx kernels: the int8 ops of the device backend, one output value at a time, as __host__ __device__
// code. The CUDA kernels (src/kernels/cuda) are thin loops over these functions, and the host emulator of a
// device plan (src/backend) runs the very same functions on the CPU, so every rule here is tested against
// the CPU backend without a GPU.
//
// The device layout of a quint8 activation: NHWC, channels padded to a multiple of 16 (`Act::cp`), one
// byte each; a 2-d [N, F] value is N x 1 x 1 x F. Padding channels hold unspecified bytes: a kernel never
// lets them change a result (convolution weights are zero there).
//
// Convolution (and linear, a 1x1 convolution on N x 1 x 1 x F):
//   acc = bias' + sum over all taps of x' * w,   x' = x inside the image, x_zero_point in its padding,
//   bias' = bias - x_zero_point * (sum of the weights over all taps)            (folded at plan time)
// which equals the CPU's bias + sum over valid taps of (x - x_zero_point) * w exactly (int32, wrapping
// partial sums: the final value is in range, qfx/quant checks the bias against overflow), then the shared
// Requantize rule of qfx/kernels/int8.h. groups == 1 runs on the tensor cores (mma.sync), depthwise layers
// take four taps per dp4a (u8 x s8), other grouped layers one product at a time.
#pragma once

#include <cstdint>
#include <cstring>

#include "qfx/kernels/int8.h"

namespace qfx {
namespace kernels {
namespace device {

inline constexpr int32_t kChannelAlign = 16;
QFX_HOST_DEVICE inline int32_t PaddedChannels(int32_t c) {
  return (c + kChannelAlign - 1) / kChannelAlign * kChannelAlign;
}

// One activation's logical sizes and channel stride.
struct Act {
  int32_t n = 0, h = 1, w = 1, c = 0, cp = 0;
  QFX_HOST_DEVICE int64_t Offset(int32_t b, int32_t y, int32_t x, int32_t ch) const {
    return ((static_cast<int64_t>(b) * h + y) * w + x) * cp + ch;
  }
  QFX_HOST_DEVICE int64_t Bytes() const { return static_cast<int64_t>(n) * h * w * cp; }
  // Real (unpadded) values: the index space a kernel over this activation covers.
  QFX_HOST_DEVICE int64_t Values() const { return static_cast<int64_t>(n) * h * w * c; }
};
inline Act MakeAct(int32_t n, int32_t h, int32_t w, int32_t c) { return Act{n, h, w, c, PaddedChannels(c)}; }

// Index i of Values() as (b, y, x, ch), channels fastest.
struct Pos {
  int32_t b, y, x, ch;
};
QFX_HOST_DEVICE inline Pos PosOf(const Act& a, int64_t i) {
  Pos p;
  p.ch = static_cast<int32_t>(i % a.c);
  i /= a.c;
  p.x = static_cast<int32_t>(i % a.w);
  i /= a.w;
  p.y = static_cast<int32_t>(i % a.h);
  p.b = static_cast<int32_t>(i / a.h);
  return p;
}

QFX_HOST_DEVICE inline float Deq(uint8_t q, float scale, int32_t zero_point) {
  return static_cast<float>(static_cast<int32_t>(q) - zero_point) * scale;
}
QFX_HOST_DEVICE inline uint8_t Quant(float v, float inv_scale, int32_t zero_point) {
  return static_cast<uint8_t>(QuantizeValue(v, inv_scale, zero_point, 0, 255));
}

// d = c + sum of the four products of a's unsigned bytes with b's signed bytes (PTX dp4a.u32.s32; int32
// wrapping).
QFX_HOST_DEVICE inline int32_t Dp4a(uint32_t a, uint32_t b, int32_t c) {
#if defined(__CUDA_ARCH__)
  int32_t d;
  asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
#else
  uint32_t s = static_cast<uint32_t>(c);
  for (int i = 0; i < 4; ++i) {
    const int32_t u = static_cast<int32_t>((a >> (8 * i)) & 0xffu);
    const int32_t v = static_cast<int8_t>(static_cast<uint8_t>((b >> (8 * i)) & 0xffu));
    s += static_cast<uint32_t>(u * v);
  }
  return static_cast<int32_t>(s);
#endif
}

QFX_HOST_DEVICE inline uint32_t LoadU32(const void* p) {  // p is 4-byte aligned
#if defined(__CUDA_ARCH__)
  return *static_cast<const uint32_t*>(p);
#else
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
#endif
}

// A q_add fused into a convolution's epilogue: the conv's quint8 output q (never stored) and the
// residual r at the same position give quantize(deq(q) + deq(r)) (ReLU optional): q_add's rule with the
// conv's output as its first operand (float addition commutes exactly, so either operand order of the
// graph's q_add gives these bytes).
struct ResidualAdd {
  bool enabled = false, relu = false;
  float conv_scale = 1.f, residual_scale = 1.f, inv_y_scale = 1.f;
  int32_t conv_zero_point = 0, residual_zero_point = 0, y_zero_point = 0;
};
QFX_HOST_DEVICE inline uint8_t AddResidual(const ResidualAdd& a, uint8_t q, uint8_t r) {
  float v = Deq(q, a.conv_scale, a.conv_zero_point) + Deq(r, a.residual_scale, a.residual_zero_point);
  if (a.relu && v < 0.f) v = 0.f;
  return Quant(v, a.inv_y_scale, a.y_zero_point);
}

struct ConvParams {
  Act x, y;
  int32_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1, groups = 1;
  int32_t icg = 0;   // input channels per group
  int32_t icgp = 0;  // icg rounded up to 4: the per-output kernel's weight extent; input bytes a tap reads
  int32_t x_zero_point = 0, y_zero_point = 0, lo = 0, hi = 255;
  const int8_t* weight = nullptr;     // [y.c][kh][kw][icgp], zeros past icg
  const int32_t* bias = nullptr;      // [y.c] bias' (see the top of this file)
  const float* multiplier = nullptr;  // [y.c]
  ResidualAdd add;                    // when enabled, y holds the q_add's output
  const uint8_t* residual = nullptr;  // the q_add's other operand, laid out as y
};

// x' of input channel c (of this output's group) at tap (ky, kx): the image's byte, the zero point in its padding.
QFX_HOST_DEVICE inline int32_t TapValue(const ConvParams& p, const uint8_t* x, const Pos& o, int32_t ky, int32_t kx,
                                        int32_t c) {
  const int32_t iy = o.y * p.sh - p.ph + ky * p.dh, ix = o.x * p.sw - p.pw + kx * p.dw;
  if (iy < 0 || iy >= p.x.h || ix < 0 || ix >= p.x.w) return p.x_zero_point;
  return x[p.x.Offset(o.b, iy, ix, c)];
}

// One output of a grouped convolution (the per-output kernel; groups == 1 takes the tensor cores below).
// Depthwise layers (one input channel per group) take four taps per dp4a; other groups multiply one
// channel at a time.
QFX_HOST_DEVICE inline uint8_t ConvOutput(const ConvParams& p, const uint8_t* x, const Pos& o) {
  const int32_t ocg = p.y.c / p.groups, c0 = (o.ch / ocg) * p.icg, taps = p.kh * p.kw;
  const int8_t* w = p.weight + static_cast<int64_t>(o.ch) * taps * p.icgp;
  int32_t acc = p.bias[o.ch];
  if (p.icg == 1) {
    for (int32_t t = 0; t < taps; t += 4) {
      uint32_t xw = 0, ww = 0;
      for (int32_t j = 0; j < 4 && t + j < taps; ++j) {
        xw |= static_cast<uint32_t>(TapValue(p, x, o, (t + j) / p.kw, (t + j) % p.kw, c0)) << (8 * j);
        ww |= static_cast<uint32_t>(static_cast<uint8_t>(w[(t + j) * p.icgp])) << (8 * j);
      }
      acc = Dp4a(xw, ww, acc);
    }
  } else {
    uint32_t sum = static_cast<uint32_t>(acc);
    for (int32_t t = 0; t < taps; ++t) {
      for (int32_t c = 0; c < p.icg; ++c) {
        const int32_t xv = TapValue(p, x, o, t / p.kw, t % p.kw, c0 + c);
        sum += static_cast<uint32_t>(xv * static_cast<int32_t>(w[t * p.icgp + c]));
      }
    }
    acc = static_cast<int32_t>(sum);
  }
  const uint8_t q = Requantize(acc, p.multiplier[o.ch], p.y_zero_point, p.lo, p.hi);
  return p.add.enabled ? AddResidual(p.add, q, p.residual[p.y.Offset(o.b, o.y, o.x, o.ch)]) : q;
}

// Tensor-core convolution (groups == 1): an implicit GEMM, rows = output pixels (b, oy, ox), columns =
// output channels, k = (tap, input channel); one warp computes a kMmaWarpM x kMmaWarpN tile with
// mma.sync m16n8k32 (u8 activations x s8 weights, int32 accumulators), 32 channels of one tap per step.
// The weight is then [y.c][kh][kw][icp32] (channels padded with zeros to a multiple of 32). The per-lane
// pieces (which words a lane loads, where its accumulators go) are here for the host emulator; the
// fragment layouts are PTX's for m16n8k32 with 8-bit inputs (lane = 4 * g + t):
//   A (16 x 32, row): reg r holds row g + 8 * (r & 1), k = 4t + 16 * (r >> 1) .. + 3
//   B (32 x 8, col):  reg r holds column g, k = 4t + 16 * r .. + 3
//   C (16 x 8):       reg r holds row g + 8 * (r >> 1), column 2t + (r & 1)
inline constexpr int32_t kMmaWarpM = 32, kMmaWarpN = 32, kMmaBlockWarpsM = 2, kMmaBlockWarpsN = 2;
QFX_HOST_DEVICE inline void MmaA(int lane, int reg, int* row, int* k) {
  *row = (lane >> 2) + 8 * (reg & 1);
  *k = 4 * (lane & 3) + 16 * (reg >> 1);
}
QFX_HOST_DEVICE inline void MmaB(int lane, int reg, int* col, int* k) {
  *col = lane >> 2;
  *k = 4 * (lane & 3) + 16 * reg;
}
QFX_HOST_DEVICE inline void MmaC(int lane, int reg, int* row, int* col) {
  *row = (lane >> 2) + 8 * (reg >> 1);
  *col = 2 * (lane & 3) + (reg & 1);
}

QFX_HOST_DEVICE inline int64_t GemmRows(const ConvParams& p) { return static_cast<int64_t>(p.y.n) * p.y.h * p.y.w; }

// Where output row `row` reads the image: its batch and the input position of tap (0, 0), decoded once
// per row (the divisions stay out of the k loop). batch < 0: past the last row.
struct GemmRow {
  int32_t batch = -1, iy0 = 0, ix0 = 0;
};
QFX_HOST_DEVICE inline GemmRow GemmRowAt(const ConvParams& p, int64_t row) {
  GemmRow r;
  if (row >= GemmRows(p)) return r;
  const int32_t ox = static_cast<int32_t>(row % p.y.w);
  const int64_t rest = row / p.y.w;
  r.batch = static_cast<int32_t>(rest / p.y.h);
  r.iy0 = static_cast<int32_t>(rest % p.y.h) * p.sh - p.ph;
  r.ix0 = ox * p.sw - p.pw;
  return r;
}

// Four input channels c.. of tap (ky, kx) for a row: the image's bytes, the zero point in its padding, 0
// past the rows or the channels (where the weights are zero).
QFX_HOST_DEVICE inline uint32_t GemmAWord(const ConvParams& p, const uint8_t* x, const GemmRow& r, int32_t ky,
                                          int32_t kx, int32_t c) {
  if (r.batch < 0 || c >= p.icgp) return 0;
  const int32_t iy = r.iy0 + ky * p.dh, ix = r.ix0 + kx * p.dw;
  if (iy < 0 || iy >= p.x.h || ix < 0 || ix >= p.x.w) return static_cast<uint32_t>(p.x_zero_point) * 0x01010101u;
  return LoadU32(x + p.x.Offset(r.batch, iy, ix, c));
}
QFX_HOST_DEVICE inline uint32_t GemmBWord(const ConvParams& p, const int8_t* w32, int32_t icp32, int32_t col,
                                          int32_t tap, int32_t c) {
  if (col >= p.y.c) return 0;
  return LoadU32(w32 + (static_cast<int64_t>(col) * p.kh * p.kw + tap) * icp32 + c);
}
// The epilogue of one accumulator: bias', the requantization rule, the clamp, a fused q_add, one byte stored.
QFX_HOST_DEVICE inline void GemmStore(const ConvParams& p, uint8_t* y, int64_t row, int32_t col, int32_t acc) {
  if (row >= GemmRows(p) || col >= p.y.c) return;
  const int32_t a = static_cast<int32_t>(static_cast<uint32_t>(acc) + static_cast<uint32_t>(p.bias[col]));
  const int64_t at = row * p.y.cp + col;
  const uint8_t q = Requantize(a, p.multiplier[col], p.y_zero_point, p.lo, p.hi);
  y[at] = p.add.enabled ? AddResidual(p.add, q, p.residual[at]) : q;
}

// Pools. Max: the largest value over the window's taps inside the image (0 if none, as the CPU).
// Average (and adaptive average): through float, as the CPU's quantized pools: dequantize, sum in row
// order, divide by the window's divisor, quantize with the same qparams.
struct PoolParams {
  Act x, y;
  int32_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  bool count_include_pad = true;
  bool adaptive = false;  // bins of adaptive_avg_pool2d instead of the window above
  float scale = 1.f, inv_scale = 1.f;
  int32_t zero_point = 0;
};

QFX_HOST_DEVICE inline uint8_t MaxPoolOutput(const PoolParams& p, const uint8_t* x, const Pos& o) {
  uint8_t m = 0;
  for (int32_t ky = 0; ky < p.kh; ++ky) {
    const int32_t iy = o.y * p.sh - p.ph + ky * p.dh;
    if (iy < 0 || iy >= p.x.h) continue;
    for (int32_t kx = 0; kx < p.kw; ++kx) {
      const int32_t ix = o.x * p.sw - p.pw + kx * p.dw;
      if (ix < 0 || ix >= p.x.w) continue;
      const uint8_t v = x[p.x.Offset(o.b, iy, ix, o.ch)];
      m = v > m ? v : m;
    }
  }
  return m;
}

QFX_HOST_DEVICE inline uint8_t AvgPoolOutput(const PoolParams& p, const uint8_t* x, const Pos& o) {
  int32_t y0, y1, x0, x1, divisor;
  if (p.adaptive) {
    y0 = o.y * p.x.h / p.y.h;
    y1 = ((o.y + 1) * p.x.h + p.y.h - 1) / p.y.h;
    x0 = o.x * p.x.w / p.y.w;
    x1 = ((o.x + 1) * p.x.w + p.y.w - 1) / p.y.w;
    divisor = (y1 - y0) * (x1 - x0);
  } else {  // nn::AvgWindow
    y0 = o.y * p.sh - p.ph;
    x0 = o.x * p.sw - p.pw;
    y1 = y0 + p.kh < p.x.h + p.ph ? y0 + p.kh : p.x.h + p.ph;
    x1 = x0 + p.kw < p.x.w + p.pw ? x0 + p.kw : p.x.w + p.pw;
    const int32_t padded = (y1 - y0) * (x1 - x0);
    y0 = y0 > 0 ? y0 : 0;
    x0 = x0 > 0 ? x0 : 0;
    y1 = y1 < p.x.h ? y1 : p.x.h;
    x1 = x1 < p.x.w ? x1 : p.x.w;
    divisor = p.count_include_pad ? padded : (y1 - y0) * (x1 - x0);
  }
  float sum = 0.f;
  for (int32_t iy = y0; iy < y1; ++iy) {
    for (int32_t ix = x0; ix < x1; ++ix) sum += Deq(x[p.x.Offset(o.b, iy, ix, o.ch)], p.scale, p.zero_point);
  }
  return Quant(sum / static_cast<float>(divisor), p.inv_scale, p.zero_point);
}

// q_add (relu optional) and q_mul: y = quantize(f(deq(a), deq(b))), numpy broadcasting of size-1 dims.
struct BinaryParams {
  Act a, b, y;
  bool mul = false, relu = false;
  float a_scale = 1.f, b_scale = 1.f, inv_y_scale = 1.f;
  int32_t a_zero_point = 0, b_zero_point = 0, y_zero_point = 0;
};

QFX_HOST_DEVICE inline int64_t BroadcastOffset(const Act& a, const Pos& o) {
  return a.Offset(a.n == 1 ? 0 : o.b, a.h == 1 ? 0 : o.y, a.w == 1 ? 0 : o.x, a.c == 1 ? 0 : o.ch);
}

QFX_HOST_DEVICE inline uint8_t BinaryOutput(const BinaryParams& p, const uint8_t* a, const uint8_t* b, const Pos& o) {
  const float da = Deq(a[BroadcastOffset(p.a, o)], p.a_scale, p.a_zero_point);
  const float db = Deq(b[BroadcastOffset(p.b, o)], p.b_scale, p.b_zero_point);
  float v;
  if (p.mul) {
    v = da * db;
  } else {
    v = da + db;
    if (p.relu && v < 0.f) v = 0.f;
  }
  return Quant(v, p.inv_y_scale, p.y_zero_point);
}

// q_cat along channels, one input at a time: y[..., offset + c] = quantize(deq(x[..., c])).
struct RequantCopyParams {
  Act x, y;
  int32_t channel_offset = 0;
  float x_scale = 1.f, inv_y_scale = 1.f;
  int32_t x_zero_point = 0, y_zero_point = 0;
};

QFX_HOST_DEVICE inline uint8_t RequantCopyOutput(const RequantCopyParams& p, const uint8_t* x, const Pos& o) {
  return Quant(Deq(x[p.x.Offset(o.b, o.y, o.x, o.ch)], p.x_scale, p.x_zero_point), p.inv_y_scale, p.y_zero_point);
}

// The ends and reshapes. Quantize: NCHW (or [N, F]) float in, the device layout out. Dequantize: back to
// NCHW float (or quint8 bytes when `to_float` is false). Flatten: an NCHW-order flatten of [N, C, H, W]
// into N x 1 x 1 x (C * H * W).
struct QuantizeParams {
  Act y;
  float inv_scale = 1.f;
  int32_t zero_point = 0;
};
QFX_HOST_DEVICE inline int64_t NchwOffset(const Act& a, const Pos& o) {
  return ((static_cast<int64_t>(o.b) * a.c + o.ch) * a.h + o.y) * a.w + o.x;
}
QFX_HOST_DEVICE inline uint8_t QuantizeOutput(const QuantizeParams& p, const float* x, const Pos& o) {
  return Quant(x[NchwOffset(p.y, o)], p.inv_scale, p.zero_point);
}

struct DequantizeParams {
  Act x;
  bool to_float = true;
  float scale = 1.f;
  int32_t zero_point = 0;
};

struct FlattenParams {
  Act x, y;  // y.c == x.c * x.h * x.w, y.h == y.w == 1
};
QFX_HOST_DEVICE inline uint8_t FlattenOutput(const FlattenParams& p, const uint8_t* x, const Pos& o) {
  const int32_t hw = p.x.h * p.x.w, c = o.ch / hw, r = o.ch % hw;
  return x[p.x.Offset(o.b, r / p.x.w, r % p.x.w, c)];
}

}  // namespace device
}  // namespace kernels
}  // namespace qfx
