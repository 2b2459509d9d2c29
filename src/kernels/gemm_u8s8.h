// qfx kernels, internal: the uint8 x int8 GEMM behind the quantized convolution and linear fast paths.
#pragma once

#include <cstdint>
#include <cstdlib>

#include "qfx/kernels/f32.h"  // Conv2dGeometry
#include "qfx/kernels/int8.h"  // QConvArgs

namespace qfx {
namespace kernels {

struct U8S8GemmArgs {
  int64_t m = 0, n = 0, k = 0;
  const int8_t* a = nullptr;   // [m, k] weights, row stride lda
  int64_t lda = 0;
  const uint8_t* b = nullptr;  // [k, n] activations, row stride ldb
  int64_t ldb = 0;
  int32_t* c = nullptr;        // [m, n] exact int32 products, row stride ldc
  int64_t ldc = 0;
  int32_t b_max = 255;         // the largest value in b (bounds vpmaddubsw's pair sums)
  // Optional, prepared once per layer (PackU8S8Weights): A packed for the SIMD tile and the largest
  // |a_k| + |a_k+1| over even k. Without them the GEMM packs and scans A on every call.
  const int32_t* packed_a = nullptr;
  int32_t a_max_pair = -1;
  // Optional, only on the AVX3_DL target (AMX or VNNI; WindowPanelsSupported()): B already in the panel
  // layout (panels of 32 columns, each [AmxPaddedK(k)/4][32][4] bytes, zero past k and n); b is then not read.
  const uint8_t* packed_b = nullptr;
  // Optional, only where GemmU8S8Requantizes(): instead of writing c, requantize each finished tile while it
  // is in L1: y[row * ldy + col] = Requantize(C[row, col] + correction[row], multiplier[row], zero_point, lo, hi).
  struct Requant {
    const int32_t* correction = nullptr;  // [m]
    const float* multiplier = nullptr;    // [m]
    int32_t zero_point = 0, lo = 0, hi = 255;
    uint8_t* y = nullptr;
    int64_t ldy = 0;
  };
  const Requant* requant = nullptr;
};

// A packed for the 4-row tile: blocks of 4 rows, each [ceil(k/4)][4 rows] int32 holding 4 bytes of k;
// missing rows and k are zero. Then, from AmxWeightsOffset (64-byte aligned), A again for AMX: row-major
// int8 with rows padded to a multiple of 32 and k to a multiple of 64 (zeros). Target-independent.
constexpr int64_t kU8S8TileRows = 4;
int64_t PackedU8S8Size(int64_t m, int64_t k);  // in int32s
int64_t AmxPaddedRows(int64_t m);
int64_t AmxPaddedK(int64_t k);
int64_t AmxWeightsOffset(int64_t m, int64_t k);  // in int32s
void PackU8S8Weights(const int8_t* a, int64_t m, int64_t k, int64_t lda, int32_t* packed);
int32_t MaxPairAbsSum(const int8_t* a, int64_t m, int64_t k, int64_t lda);

// True when vpmaddubsw cannot saturate: b_max * max over rows and even k of (|a_k| + |a_k+1|) <= 32767.
inline bool MaddubsIsExact(const U8S8GemmArgs& g) {
  const int32_t worst = g.a_max_pair >= 0 ? g.a_max_pair : MaxPairAbsSum(g.a, g.m, g.k, g.lda);
  return static_cast<int64_t>(worst) * g.b_max <= 32767;
}

// The shared requantization over a row of accumulators (SIMD; bit-identical to kernels::Requantize).
void RequantizeRow(const int32_t* acc, int64_t n, int32_t correction, float multiplier, int32_t zero_point, int32_t lo,
                   int32_t hi, uint8_t* y);

// acc[o * rows + r] = sum_k x[r, k] * w[o, k] for a few rows (row-major x [rows, k], w [m, k]); exact.
// max_pair: MaxPairAbsSum of w, or -1 to compute it.
void LinearFewRowsU8S8(const uint8_t* x, int64_t rows, int64_t k, const int8_t* w, int64_t m, int32_t max_pair,
                       int32_t* acc);

// Implicit-GEMM convolution (stride 1, dilation 1, one group, C_in a multiple of 64): x4 is the
// zero-point-padded input with C_in in groups of 4 interleaved per pixel, one padded plane per group
// ([C_in / 4][rows][row_pixels][4] bytes, plane_bytes apart, then slack the kernel may read), w the tap-major weights
// (PrepackTapMajor). Output rows are requantized into y [C_out][OH * OW]. Runs on AMX tiles where
// GemmU8S8UsesAmx(), else with AVX-512 VNNI on the AVX3_DL target; returns false (doing nothing) where
// neither applies (ImplicitConvSupported() says so beforehand).
struct ImplicitConvArgs {
  const uint8_t* x4 = nullptr;
  int64_t row_pixels = 0, plane_bytes = 0;
  const int8_t* w = nullptr;
  int64_t in_channels = 0, out_channels = 0, kernel_h = 0, kernel_w = 0, out_h = 0, out_w = 0;
  U8S8GemmArgs::Requant requant;  // per output channel; y, ldy = OH * OW
};
// Bytes past the last x4 plane that the kernel may read: 32 positions past the last row plus the widest tap.
inline int64_t ImplicitConvSlack(int64_t kernel_w) { return (32 + kernel_w + 16) * 4; }
bool ImplicitConv(const ImplicitConvArgs& a);
bool ImplicitConvSupported();

// The im2col matrix of one image in the windowed k order (see QConvArgs::window_weight) written straight
// into the GEMM's panel layout (U8S8GemmArgs::packed_b; kp = AmxPaddedK of the windowed k): per 16 columns
// and k-group, masked loads of the input rows the columns read (zero point outside the image) and one
// permute. False (doing nothing) unless the dispatched target is AVX3_DL; g must have no dilation, a
// kernel 2 to 8 wide, a horizontal stride of at most 4, and describe one group.
bool WindowPanels(const Conv2dGeometry& g, const uint8_t* x, int64_t kp, uint8_t pad, uint8_t* panels);
bool WindowPanelsSupported();

// One output plane of a depthwise convolution, exact int32: acc[oy * OW + ox] = sum over the taps inside the
// image of w[ky][kx] * (x[iy][ix] - x_zero_point) (padding contributes 0). g describes one channel.
struct DepthwisePlaneArgs {
  const Conv2dGeometry* g = nullptr;
  const uint8_t* x = nullptr;  // [H, W]
  const int8_t* w = nullptr;   // [KH, KW]
  int32_t x_zero_point = 0;
  int32_t* acc = nullptr;      // [OH, OW]
};
void DepthwiseAccumulate(const DepthwisePlaneArgs& p);

// The whole depthwise convolution (one input channel per group, any channel multiplier) with VNNI byte
// dot products, requantized; false (doing nothing) unless the dispatched target is AVX3_DL and the layer
// has no dilation, a kernel at most 8 wide and horizontal stride 1 or 2.
// `correction`: per output channel, bias - x_zero_point * sum(w).
bool DepthwiseQConvVnni(const QConvArgs& a, const int32_t* correction, const uint8_t* x, uint8_t* y);

// Dispatches to the best compiled SIMD target. On AVX3_DL CPUs with AMX-INT8 (Sapphire Rapids and later)
// whose kernel grants the tile state, the GEMM runs on AMX tiles (tdpbsud, exact) unless the environment
// sets QFX_DISABLE_AMX=1.
void GemmU8S8(const U8S8GemmArgs& g);
// True when the CPU and kernel allow AMX (see amx.cc).
bool AmxEnabled();
// True when GemmU8S8, as dispatched now, runs on AMX (AVX3_DL target and AmxEnabled()).
bool GemmU8S8UsesAmx();
// True when GemmU8S8, as dispatched now, can requantize inside the kernel (U8S8GemmArgs::requant): the
// x86 targets (AVX2 and up).
bool GemmU8S8Requantizes();
const char* GemmU8S8TargetName();

}  // namespace kernels
}  // namespace qfx
