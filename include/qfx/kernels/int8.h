// qfx kernels: int8 compute on plain pointers, and the numeric rules every backend shares.
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
#include <new>
#include <vector>

#include "qfx/kernels/f32.h"

namespace qfx {
namespace kernels {

// nearbyint (round half to even) for float, inlined: adding and subtracting 1.5 * 2^23 rounds exactly so
// for |v| < 2^22 under IEEE arithmetic (qfx never builds with -ffast-math, which could fold the pair);
// larger magnitudes go through std::nearbyint.
inline float RoundHalfEven(float v) {
  constexpr float kMagic = 12582912.0f;
  if (v > -4194304.0f && v < 4194304.0f) return (v + kMagic) - kMagic;
  return std::nearbyint(v);
}

inline int32_t QuantizeValue(float x, float inv_scale, int32_t zero_point, int32_t qmin, int32_t qmax) {
  const float r = RoundHalfEven(x * inv_scale);
  if (!(r > -2147483648.0f && r < 2147483520.0f)) return r > 0 ? qmax : qmin;  // and NaN -> qmin
  const int64_t q = zero_point + static_cast<int64_t>(r);
  return static_cast<int32_t>(q < qmin ? qmin : q > qmax ? qmax : q);
}

inline uint8_t Requantize(int32_t acc, float multiplier, int32_t zero_point, int32_t lo, int32_t hi) {
  const float r = RoundHalfEven(static_cast<float>(acc) * multiplier);
  if (!(r > -2147483648.0f && r < 2147483520.0f)) return static_cast<uint8_t>(r > 0 ? hi : lo);
  const int64_t q = static_cast<int64_t>(r) + zero_point;
  return static_cast<uint8_t>(q < lo ? lo : q > hi ? hi : q);
}

inline float RequantMultiplier(float s_x, float s_w, float s_y) { return (s_x * s_w) / s_y; }
inline int32_t QuantizeBias(float bias, float s_x, float s_w) {
  return static_cast<int32_t>(std::nearbyint(bias / (s_x * s_w)));
}

// Allocates every buffer at a 64-byte (cache line) boundary. AMX tile loads of rows that straddle two
// lines run at about half speed, so prepacked weights and the kernels' scratch buffers use it.
template <typename T>
struct CacheAligned {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  CacheAligned() = default;
  template <typename U>
  CacheAligned(const CacheAligned<U>&) {}  // NOLINT: allocator rebinding
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, size_t) { ::operator delete(p, kAlign); }
  template <typename U>
  bool operator==(const CacheAligned<U>&) const { return true; }
  template <typename U>
  bool operator!=(const CacheAligned<U>&) const { return false; }
};
template <typename T>
using AlignedVector = std::vector<T, CacheAligned<T>>;

// A quantized convolution or linear layer (linear: 1x1 "convolution" over [N, K] rows).
struct QConvArgs {
  Conv2dGeometry g;
  int32_t x_zero_point = 0;
  const int8_t* weight = nullptr;       // [C_out, C_in / groups, KH, KW]
  const int32_t* bias = nullptr;        // [C_out], quantized with s_x * s_w (may be null)
  const int32_t* weight_sum = nullptr;  // [C_out]: sum of each filter's weights (fast path; ComputeWeightSums)
  // Optional (fast path): per group, the weights packed by PrepackWeights and their pair bound.
  const int32_t* packed_weight = nullptr;
  int32_t weight_max_pair = -1;
  // Optional (implicit-GEMM path, AMX or VNNI; from PrepackTapMajor): the weights tap-major,
  // k = (ky * KW + kx) * C_in + ci.
  const int8_t* tap_weight = nullptr;
  // Optional (AVX-512 VNNI and AMX fast path, from PrepackWindowed): the weights with each kernel row's taps
  // in groups of 4, k = ((ci * KH + ky) * G + gx) * 4 + b for tap kx = 4 * gx + b (zero past KW),
  // G = ceil(KW / 4), packed for the GEMM like PrepackWeights.
  const int32_t* window_weight = nullptr;
  const float* multiplier = nullptr;    // [C_out]
  int32_t y_zero_point = 0;
  int32_t lo = 0, hi = 255;             // output clamp (ReLU: lo = y_zero_point)
};

// The weights of a one-group convolution reordered tap-major ([C_out rounded up to 32][KH * KW * C_in],
// zero rows past C_out) for the implicit-GEMM convolution, or empty when that path does not apply
// (C_in not a multiple of 64, groups > 1, 1x1 kernels).
AlignedVector<int8_t> PrepackTapMajor(const int8_t* weight, int64_t out_channels, int64_t in_channels, int64_t groups,
                                    int64_t kernel_h, int64_t kernel_w);

// The weights of a one-group convolution with a kernel 2 to 8 wide in the windowed order above, packed for
// the GEMM (both its layouts, as PrepackWeights), or empty where that path does not apply (groups > 1,
// 1-wide or wider kernels). Each 4-byte group of the matching im2col matrix is then 4 neighbouring input
// bytes of one row, which the kernels gather with one permute per 16 columns.
AlignedVector<int32_t> PrepackWindowed(const int8_t* weight, int64_t out_channels, int64_t in_channels, int64_t groups,
                                    int64_t kernel_h, int64_t kernel_w);

struct QLinearArgs {
  int64_t rows = 0, in = 0, out = 0;
  int32_t x_zero_point = 0;
  const int8_t* weight = nullptr;       // [out, in]
  const int32_t* bias = nullptr;        // [out] (may be null)
  const int32_t* weight_sum = nullptr;  // [out] (fast path)
  const int32_t* packed_weight = nullptr;  // optional, from PrepackWeights
  int32_t weight_max_pair = -1;
  const float* multiplier = nullptr;    // [out]
  int32_t y_zero_point = 0;
  int32_t lo = 0, hi = 255;
};

// Dynamic quantization's linear layer: x is already quantized (per call, by the caller) with (x_scale,
// x_zero_point); the output is float: y[r, o] = float(acc) * (x_scale * w_scale[o]) + bias[o].
struct QLinearDynamicArgs {
  int64_t rows = 0, in = 0, out = 0;
  float x_scale = 1.f;
  int32_t x_zero_point = 0;
  const int8_t* weight = nullptr;          // [out, in]
  const float* w_scale = nullptr;          // [out]
  const float* bias = nullptr;             // [out] (may be null)
  const int32_t* weight_sum = nullptr;     // [out] (fast path)
  const int32_t* packed_weight = nullptr;  // optional, from PrepackWeights
  int32_t weight_max_pair = -1;
};

// sums[o] = sum of the `per_row` weights of row o (the zero-point correction: sum (x - zp) w = sum x w - zp sum w).
void ComputeWeightSums(const int8_t* weight, int64_t rows, int64_t per_row, int32_t* sums);

// Packs a layer's int8 weights ([groups x rows_per_group, per_row]) once for the fast GEMM, group by
// group, and returns the bound the fast path uses to decide exactness (see src/kernels/gemm_u8s8.h).
AlignedVector<int32_t> PrepackWeights(const int8_t* weight, int64_t groups, int64_t rows_per_group, int64_t per_row,
                                    int32_t* max_pair);

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

// Fast paths (threaded; im2col with zero-point padding, integer GEMM, requantizing epilogue).
void QConv2d(const QConvArgs& a, const uint8_t* x, uint8_t* y);
void QLinear(const QLinearArgs& a, const uint8_t* x, uint8_t* y);
void QLinearDynamic(const QLinearDynamicArgs& a, const uint8_t* x, float* y);
// y = quint8 of x by the quantize rule into [0, qmax]; the range of x (n == 0: both 0), false when x holds
// a NaN or an infinity.
void QuantizeU8(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmax, uint8_t* y);
bool MinMax(const float* x, int64_t n, float* lo, float* hi);
// out[i] = x[i * stride] for i < n (stride 2: 16 bytes a step; im2col and max pooling use it).
void GatherStridedU8(const uint8_t* x, int64_t stride, int64_t n, uint8_t* out);
// Name of the SIMD target the int8 GEMM dispatches to.
const char* Int8TargetName();
// What the int8 convolutions and GEMM run on now, for people: "AMX", "AVX-512 VNNI", or the target name.
const char* Int8PathName();

namespace ref {
void QConv2d(const QConvArgs& a, const uint8_t* x, uint8_t* y);
void QLinear(const QLinearArgs& a, const uint8_t* x, uint8_t* y);
void QLinearDynamic(const QLinearDynamicArgs& a, const uint8_t* x, float* y);
void QuantizeU8(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmax, uint8_t* y);
bool MinMax(const float* x, int64_t n, float* lo, float* hi);
void QAdd(const QBinaryArgs& args, const uint8_t* a, const uint8_t* b, uint8_t* y);
void QMul(const QBinaryArgs& args, const uint8_t* a, const uint8_t* b, uint8_t* y);
}  // namespace ref

}  // namespace kernels
}  // namespace qfx
