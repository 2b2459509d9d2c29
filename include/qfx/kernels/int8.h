// qfx kernels: int8 compute on plain pointers, and the numeric rules every backend shares. The packed
// convolution and linear layers (the fast paths) are in qfx/kernels/qconv.h; this header holds the
// rules, the elementwise kernels and the scalar oracle every fast path is tested against.
//
// THE RULES (used by the scalar oracle, the Highway kernels and any later backend, so results are
// bit-identical everywhere):
//   quantize:    q = clamp(zero_point + nearbyint(x * (1.0f / scale)), qmin, qmax)      (as fake-quant)
//   dequantize:  x = float(q - zero_point) * scale
//   requantize:  q = clamp(nearbyint(float(acc) * multiplier) + zero_point, lo, hi)
//                acc is the exact int32 sum of (x_q - x_zp) * w_q plus the int32 bias; float(acc) rounds to
//                nearest even (exact below 2^24); one float32 multiply; nearbyint rounds half to even.
//   multiplier:  float32 (s_x * s_w[c]) / s_y, computed once at convert time (RequantMultiplier).
//   bias:        int32 nearbyint(bias / (s_x * s_w[c])) (QuantizeBias).
// Activations are quint8 (per-tensor qparams); weights qint8 with zero point 0 (per channel or tensor).
// Fused ReLU / ReLU6 become the [lo, hi] clamp of the requantization.
// Dynamic linear (float in, float out; activations quantized per call):
//   y = float(acc) * (s_x * s_w[c]) + bias[c]   (acc without bias; s_x * s_w[c] one float32 product)
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "qfx/kernels/f32.h"

// The rules below are compiled by nvcc too (the CUDA backend, src/kernels/cuda): one definition for every
// backend. nvcc must build them with -fmad=false (no contraction of the requantization into an FMA) and
// never with --use_fast_math.
#if defined(__CUDACC__)
#define QFX_HOST_DEVICE __host__ __device__
#else
#define QFX_HOST_DEVICE
#endif

namespace qfx {
namespace kernels {

// The scales every edge accepts (an observer's eps, fixed qparams, scales read from files or graphs):
// finite and within [kMinScale, kMaxScale], so that products and quotients of two of them, as
// RequantMultiplier and 1 / scale form them, stay normal floats (a scale of 1e-45 made 1 / scale infinite).
inline constexpr float kMinScale = 1e-12f;
inline constexpr float kMaxScale = 1e12f;
inline bool ScaleInRange(float scale) { return scale >= kMinScale && scale <= kMaxScale; }  // false for NaN

// nearbyint (round half to even) for float, inlined: adding and subtracting 1.5 * 2^23 rounds exactly so
// for |v| < 2^22 under IEEE arithmetic (qfx never builds with -ffast-math, which could fold the pair);
// larger magnitudes go through std::nearbyint. On the GPU, rintf: the same rounding in one instruction.
QFX_HOST_DEVICE inline float RoundHalfEven(float v) {
#if defined(__CUDA_ARCH__)
  return rintf(v);
#else
  constexpr float kMagic = 12582912.0f;
  if (v > -4194304.0f && v < 4194304.0f) return (v + kMagic) - kMagic;
  return std::nearbyint(v);
#endif
}

QFX_HOST_DEVICE inline int32_t QuantizeValue(float x, float inv_scale, int32_t zero_point, int32_t qmin, int32_t qmax) {
  const float r = RoundHalfEven(x * inv_scale);
  if (!(r > -2147483648.0f && r < 2147483520.0f)) return r > 0 ? qmax : qmin;  // and NaN -> qmin
  const int64_t q = zero_point + static_cast<int64_t>(r);
  return static_cast<int32_t>(q < qmin ? qmin : q > qmax ? qmax : q);
}

QFX_HOST_DEVICE inline uint8_t Requantize(int32_t acc, float multiplier, int32_t zero_point, int32_t lo, int32_t hi) {
  const float r = RoundHalfEven(static_cast<float>(acc) * multiplier);
  if (!(r > -2147483648.0f && r < 2147483520.0f)) return static_cast<uint8_t>(r > 0 ? hi : lo);
  const int64_t q = static_cast<int64_t>(r) + zero_point;
  return static_cast<uint8_t>(q < lo ? lo : q > hi ? hi : q);
}

QFX_HOST_DEVICE inline float RequantMultiplier(float s_x, float s_w, float s_y) { return (s_x * s_w) / s_y; }
// Saturates to the int32 range (a crafted file's bias could overflow it: the cast was undefined behaviour,
// found by tools/fuzz.sh under UBSan).
inline int32_t QuantizeBias(float bias, float s_x, float s_w) {
  const float q = std::nearbyint(bias / (s_x * s_w));
  if (!(q > -2147483648.0f)) return INT32_MIN;
  if (!(q < 2147483648.0f)) return INT32_MAX;
  return static_cast<int32_t>(q);
}

// The scalar oracle's description of a quantized convolution (ref::QConv2d), on plain pointers.
struct QConvArgs {
  Conv2dGeometry g;
  int32_t x_zero_point = 0;
  const int8_t* weight = nullptr;     // [C_out, C_in / groups, KH, KW]
  const int32_t* bias = nullptr;      // [C_out], quantized with s_x * s_w (may be null)
  const float* multiplier = nullptr;  // [C_out]
  int32_t y_zero_point = 0;
  int32_t lo = 0, hi = 255;  // output clamp (ReLU: lo = y_zero_point)
};

// The oracle's linear layer: y [rows, out] from x [rows, in].
struct QLinearArgs {
  int64_t rows = 0, in = 0, out = 0;
  int32_t x_zero_point = 0;
  const int8_t* weight = nullptr;     // [out, in]
  const int32_t* bias = nullptr;      // [out] (may be null)
  const float* multiplier = nullptr;  // [out]
  int32_t y_zero_point = 0;
  int32_t lo = 0, hi = 255;
};

// Dynamic quantization's linear layer: x is already quantized (per call, by the caller) with (x_scale,
// x_zero_point); the output is float: y[r, o] = float(acc) * (x_scale * w_scale[o]) + bias[o].
struct QLinearDynamicArgs {
  int64_t rows = 0, in = 0, out = 0;
  float x_scale = 1.f;
  int32_t x_zero_point = 0;
  const int8_t* weight = nullptr;  // [out, in]
  const float* w_scale = nullptr;  // [out]
  const float* bias = nullptr;     // [out] (may be null)
};

// Elementwise quint8 add / mul with requantization — the definition the functional ops use:
//   add: y = quantize(deq(a) + deq(b)) (max(0, .) first when relu);  mul: y = quantize(deq(a) * deq(b))
// with deq(q) = float(q - zp) * scale and quantize = QuantizeValue into 0..255.
struct QBinaryArgs {
  int64_t n = 0;
  float a_scale = 1.f, b_scale = 1.f, y_scale = 1.f;
  int32_t a_zero_point = 0, b_zero_point = 0, y_zero_point = 0;
  bool relu = false;
};
void QAdd(const QBinaryArgs& args, const uint8_t* a, const uint8_t* b, uint8_t* y);
void QMul(const QBinaryArgs& args, const uint8_t* a, const uint8_t* b, uint8_t* y);

// quint8 x quint8 matrix product per batch: a [batch, m, k], b [batch, k, n], y [batch, m, n];
//   acc = sum over k of (a - a_zero_point) * (b - b_zero_point) in int32,
//   y = Requantize(acc, multiplier = RequantMultiplier(a_scale, b_scale, y_scale), y_zero_point, 0, 255).
// The caller keeps k <= kQMatmulMaxK, so that acc cannot overflow (255 * 255 * k < 2^31).
inline constexpr int64_t kQMatmulMaxK = 33025;
struct QMatmulArgs {
  int64_t batch = 1, m = 0, k = 0, n = 0;
  int32_t a_zero_point = 0, b_zero_point = 0, y_zero_point = 0;
  float multiplier = 1.f;
};
void QMatmul(const QMatmulArgs& args, const uint8_t* a, const uint8_t* b, uint8_t* y);

// y = quint8 of x by the quantize rule into [0, qmax]; the range of x (n == 0: both 0), false when x holds
// a NaN or an infinity.
void QuantizeU8(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmax, uint8_t* y);
bool MinMax(const float* x, int64_t n, float* lo, float* hi);
// out[i] = x[i * stride] for i < n (stride 2: 16 bytes a step; im2col and max pooling use it).
void GatherStridedU8(const uint8_t* x, int64_t stride, int64_t n, uint8_t* out);
// Name of the SIMD target the int8 kernels dispatch to now.
const char* Int8TargetName();

namespace ref {
void QConv2d(const QConvArgs& a, const uint8_t* x, uint8_t* y);
void QLinear(const QLinearArgs& a, const uint8_t* x, uint8_t* y);
void QLinearDynamic(const QLinearDynamicArgs& a, const uint8_t* x, float* y);
void QuantizeU8(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmax, uint8_t* y);
bool MinMax(const float* x, int64_t n, float* lo, float* hi);
void QAdd(const QBinaryArgs& args, const uint8_t* a, const uint8_t* b, uint8_t* y);
void QMul(const QBinaryArgs& args, const uint8_t* a, const uint8_t* b, uint8_t* y);
void QMatmul(const QMatmulArgs& args, const uint8_t* a, const uint8_t* b, uint8_t* y);
}  // namespace ref

}  // namespace kernels
}  // namespace qfx
