// qfx kernels, internal: the per-ISA int8 kernels behind PackQConv2d / PackQLinear, as the drivers call
// them. Each function runs the dispatched Highway target's version (hwy/qu8_dispatch.cc); the path
// rules (path.cc) make sure a driver only calls a kernel that the target compiles: the others abort.
//
// Files, one per kernel and ISA (each says what it computes, its layout contract and when it runs):
//   hwy/qu8_gemm_portable-inl.h            GemmU8S8Portable            every target
//   hwy/qu8_requant-inl.h                  RequantizeRow               every target
//   hwy/qu8_dwconv-inl.h                   DepthwiseAccumulate         every target
//   hwy/qu8_linear_few_rows-inl.h          LinearFewRowsU8S8           every target (its dot product per ISA)
//   x86/qu8_gemm_4x16c4_avx2-inl.h         GemmU8S8Tile on AVX2 / AVX3 (vpmaddubsw)
//   x86/qu8_gemm_4x32c4_avx512vnni-inl.h   GemmU8S8Tile on AVX3_DL (vpdpbusd)
//   x86/qu8_gemm_32x32c64_amx-inl.h        GemmU8S8Amx                 AVX3_DL with AMX
//   x86/qu8_conv_implicit_amx-inl.h        ImplicitConvAmx             AVX3_DL with AMX
//   x86/qu8_conv_implicit_avx512vnni-inl.h ImplicitConvVnni            AVX3_DL
//   x86/qu8_conv_implicit_avx2-inl.h       ImplicitConvMaddubs         AVX2 / AVX3 (vpmaddubsw, where exact)
//   x86/qu8_dwconv_avx512vnni-inl.h        DepthwiseQConvVnni          AVX3_DL
//   x86/qu8_dwconv_avx2-inl.h              DepthwiseQConvMaddwd        AVX2 / AVX3 (vpmaddwd)
//   x86/qu8_im2col_windowed_avx512vbmi-inl.h  WindowPanels             AVX3_DL
#pragma once

#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include "qfx/kernels/f32.h"   // Conv2dGeometry
#include "qfx/kernels/int8.h"  // QConvArgs

namespace qfx {
namespace kernels {

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
  bool operator==(const CacheAligned<U>&) const {
    return true;
  }
  template <typename U>
  bool operator!=(const CacheAligned<U>&) const {
    return false;
  }
};
template <typename T>
using AlignedVector = std::vector<T, CacheAligned<T>>;

struct U8S8GemmArgs {
  // The plain operands: C[m, n] = A[m, k] x B[k, n] with the given row strides (the rest as defaulted).
  static U8S8GemmArgs Of(int64_t m, int64_t n, int64_t k, const int8_t* a, int64_t lda, const uint8_t* b, int64_t ldb,
                         int32_t* c, int64_t ldc) {
    return U8S8GemmArgs{m, n, k, a, lda, b, ldb, c, ldc};
  }

  int64_t m = 0, n = 0, k = 0;
  const int8_t* a = nullptr;  // [m, k] weights, row stride lda
  int64_t lda = 0;
  const uint8_t* b = nullptr;  // [k, n] activations, row stride ldb
  int64_t ldb = 0;
  int32_t* c = nullptr;  // [m, n] exact int32 products, row stride ldc
  int64_t ldc = 0;
  int32_t b_max = 255;  // the largest value in b (bounds vpmaddubsw's pair sums)
  // Prepared once per layer (PackU8S8Weights): A packed for the SIMD tile and the AMX tiles, and the
  // largest |a_k| + |a_k+1| over even k (vpmaddubsw's bound). Without them the GEMM packs and scans A on
  // every call (benchmarks only; every packed layer has them).
  const int32_t* packed_a = nullptr;
  int32_t a_max_pair = -1;
  // Optional, only for the AMX and VNNI GEMMs (AVX3_DL): B already in the panel
  // layout (panels of 32 columns, each [AmxPaddedK(k)/4][32][4] bytes, zero past k and n); b is then not read.
  const uint8_t* packed_b = nullptr;
  // Optional, only for the tile and AMX GEMMs: instead of writing c, requantize each finished tile while it
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

// The largest of n bytes (vpmaddubsw's b_max).
inline uint8_t MaxOfU8(const uint8_t* x, int64_t n) {
  uint8_t m = 0;
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// True when vpmaddubsw cannot saturate: b_max * max over rows and even k of (|a_k| + |a_k+1|) <= 32767.
inline bool MaddubsIsExact(const U8S8GemmArgs& g) {
  const int32_t worst = g.a_max_pair >= 0 ? g.a_max_pair : MaxPairAbsSum(g.a, g.m, g.k, g.lda);
  return static_cast<int64_t>(worst) * g.b_max <= 32767;
}

// The largest input byte for which vpmaddubsw cannot saturate with weights of this MaxPairAbsSum.
inline int32_t MaddubsExactMax(int32_t max_pair) { return max_pair <= 128 ? 255 : 32767 / max_pair; }

// The shared requantization over a row of accumulators (SIMD; bit-identical to kernels::Requantize).
void RequantizeRow(const int32_t* acc, int64_t n, int32_t correction, float multiplier, int32_t zero_point, int32_t lo,
                   int32_t hi, uint8_t* y);

// acc[o * rows + r] = sum_k x[r, k] * w[o, k] for a few rows (row-major x [rows, k], w [m, k]); exact.
// max_pair: MaxPairAbsSum of w, or -1 to compute it.
void LinearFewRowsU8S8(const uint8_t* x, int64_t rows, int64_t k, const int8_t* w, int64_t m, int32_t max_pair,
                       int32_t* acc);

// Implicit-GEMM convolution (dilation 1, one group; in_channels = ImplicitInChannels(C_in), a multiple of 64
// but for the vpmaddubsw kernel): x4 is the zero-point-padded input with C_in in groups of 4 interleaved per
// pixel (a last group past C_in filled with zero bytes), one padded plane per group ([C_in / 4][rows][row_pixels]
// [4] bytes, plane_bytes apart, then slack the kernel may read), w the tap-major weights (PackTapMajor;
// PackTapMajor4 for the vpmaddubsw kernel).
// Output (oy, ox) is grid position f = oy * row_pixels + ox and reads tap (ky, kx) at position
// f + tap_offsets[ky * kernel_w + kx]; at stride 1 that is f + ky * row_pixels + kx (what the AMX and VNNI
// kernels, stride 1 only, compute themselves), at larger strides the planes hold phase sub-planes
// (qconv_implicit.cc's X4Grid) and row_pixels is their width. Output rows are requantized into
// y [C_out][OH * OW]. On AMX tiles, in AVX-512 VNNI registers (AVX3_DL) or with vpmaddubsw (AVX2, AVX3).
struct ImplicitConvArgs {
  const uint8_t* x4 = nullptr;
  int64_t row_pixels = 0, plane_bytes = 0;
  const int64_t* tap_offsets = nullptr;  // kernel_h * kernel_w positions
  int32_t exact_max = 255;               // vpmaddubsw: no pair saturates for bytes up to this (MaddubsExactMax)
  const int8_t* w = nullptr;
  int64_t in_channels = 0, out_channels = 0, kernel_h = 0, kernel_w = 0, out_h = 0, out_w = 0;
  U8S8GemmArgs::Requant requant;  // per output channel; y, ldy = OH * OW
};
// Bytes past the last x4 plane that the kernel may read: 32 positions past the last row plus the widest tap.
inline int64_t ImplicitConvSlack(int64_t kernel_w) { return (32 + kernel_w + 16) * 4; }
void ImplicitConvAmx(const ImplicitConvArgs& a);   // x86/qu8_conv_implicit_amx-inl.h
void ImplicitConvVnni(const ImplicitConvArgs& a);  // x86/qu8_conv_implicit_avx512vnni-inl.h
// AVX2 / AVX3 registers, vpmaddubsw: exact for any input (steps with bytes above exact_max are split).
void ImplicitConvMaddubs(const ImplicitConvArgs& a);  // x86/qu8_conv_implicit_avx2-inl.h

// The im2col matrix of one image in the windowed k order (see PackWindowed) written straight
// into the GEMM's panel layout (U8S8GemmArgs::packed_b; kp = AmxPaddedK of the windowed k): per 16 columns
// and k-group, masked loads of the input rows the columns read (zero point outside the image) and one
// permute. AVX3_DL only; g must have no dilation, a kernel 2 to 8 wide, a horizontal stride of at most 4,
// and describe one group.
void WindowPanels(const Conv2dGeometry& g, const uint8_t* x, int64_t kp, uint8_t pad, uint8_t* panels);

// One output plane of a depthwise convolution, exact int32: acc[oy * OW + ox] = sum over the taps inside the
// image of w[ky][kx] * (x[iy][ix] - x_zero_point) (padding contributes 0). g describes one channel.
struct DepthwisePlaneArgs {
  const Conv2dGeometry* g = nullptr;
  const uint8_t* x = nullptr;  // [H, W]
  const int8_t* w = nullptr;   // [KH, KW]
  int32_t x_zero_point = 0;
  int32_t* acc = nullptr;  // [OH, OW]
};
void DepthwiseAccumulate(const DepthwisePlaneArgs& p);

// The whole depthwise convolution (one input channel per group, any channel multiplier) with VNNI byte
// dot products, requantized (AVX3_DL; no dilation, a kernel at most 8 wide and 16 tall, horizontal stride
// 1 or 2). `correction`: per output channel, bias - x_zero_point * sum(w).
void DepthwiseQConvVnni(const QConvArgs& a, const int32_t* correction, const uint8_t* x, uint8_t* y);
// The same with vpmaddwd on tap pairs (AVX2 / AVX3; no dilation, horizontal stride 1 or 2).
void DepthwiseQConvMaddwd(const QConvArgs& a, const int32_t* correction, const uint8_t* x, uint8_t* y);

// The GEMM by ISA, each exact: the portable loop (every target; writes int32 c, ignores requant), the
// register tiles (AVX2 / AVX3: vpmaddubsw, split where it could saturate; AVX3_DL: vpdpbusd), AMX tiles.
void GemmU8S8Portable(const U8S8GemmArgs& g);
void GemmU8S8Tile(const U8S8GemmArgs& g);
void GemmU8S8Amx(const U8S8GemmArgs& g);

// The Highway target the int8 kernels dispatch to now (HWY_AVX2, ...).
int64_t Int8Target();
// True when the CPU and kernel allow AMX (x86/amx_enabled.cc) and QFX_DISABLE_AMX is not 1.
bool AmxEnabled();

// sums[o] = sum of the `per_row` weights of row o (the zero-point correction: sum (x - zp) w = sum x w - zp sum w).
void ComputeWeightSums(const int8_t* weight, int64_t rows, int64_t per_row, int32_t* sums);

// The input channels an implicit-GEMM convolution computes: C_in rounded up to a group of 4 (the padded
// channels have zero weights and read zero bytes).
inline int64_t ImplicitInChannels(int64_t in_channels) { return (in_channels + 3) / 4 * 4; }

// The weights of a one-group convolution reordered tap-major ([C_out rounded up to 32][KH * KW * C4],
// zero rows past C_out, zero columns past C_in) for the implicit-GEMM convolutions: k = (ky * KW + kx) * C4 + ci
// with C4 = ImplicitInChannels(C_in).
AlignedVector<int8_t> PackTapMajor(const int8_t* weight, int64_t out_channels, int64_t in_channels, int64_t kernel_h,
                                   int64_t kernel_w);

// The same k order in blocks of 4 output channels, the 4 channels' 4 bytes of a step side by side
// ([ceil(C_out / 4)][KH * KW * C4 / 4 steps][4 channels][4 bytes], zero past C_out and C_in): the vpmaddubsw
// implicit kernel's 4 broadcasts of a step come from one 16-byte run, one sequential stream a block.
AlignedVector<int8_t> PackTapMajor4(const int8_t* weight, int64_t out_channels, int64_t in_channels, int64_t kernel_h,
                                    int64_t kernel_w);

// The weights of a one-group convolution with a kernel 2 to 8 wide with each kernel row's taps in groups of
// 4, k = ((ci * KH + ky) * G + gx) * 4 + b for tap kx = 4 * gx + b (zero past KW), G = ceil(KW / 4), packed
// for the GEMM (PackU8S8Weights). Each 4-byte group of the matching im2col matrix is then 4 neighbouring
// input bytes of one row, which WindowPanels gathers with one permute per 16 columns.
AlignedVector<int32_t> PackWindowed(const int8_t* weight, int64_t out_channels, int64_t in_channels, int64_t kernel_h,
                                    int64_t kernel_w);
// The GEMM depth of the windowed order.
inline int64_t WindowedK(int64_t in_channels, int64_t kernel_h, int64_t kernel_w) {
  return in_channels * kernel_h * ((kernel_w + 3) / 4) * 4;
}

// A layer's int8 weights ([groups x rows_per_group, per_row]) packed group by group for the GEMM
// (PackU8S8Weights), and MaxPairAbsSum over all of them in *max_pair.
AlignedVector<int32_t> PackGroups(const int8_t* weight, int64_t groups, int64_t rows_per_group, int64_t per_row,
                                  int32_t* max_pair);

}  // namespace kernels
}  // namespace qfx
