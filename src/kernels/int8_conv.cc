// qfx kernels: the int8 convolution and linear fast paths (see include/qfx/kernels/int8.h).
//
// Stride-1 convolutions with 64k input channels run as an implicit GEMM over a padded, 4-channel-interleaved
// copy of the input (gemm_u8s8.h: AMX tiles, or AVX-512 VNNI registers), requantized block by block. With
// AMX the others write im2col straight into the tile layout (by 4-tap windows where the kernel allows) and
// requantize each block as it leaves the tiles. Otherwise: im2col of the u8 input with zero-point padding
// (so padded taps contribute 0 after the correction; 1x1 stride-1 convolutions read the input directly),
// the uint8 x int8 GEMM (vpdpbusd, or vpmaddubsw where exact), then the epilogue acc - x_zp * sum(w) + bias
// and the shared requantization. Depthwise convolution has its own kernels. Linear layers use the same
// GEMM on the transposed input.
#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "qfx/core/parallel.h"
#include "qfx/kernels/int8.h"
#include "src/kernels/gemm_u8s8.h"
#include "src/kernels/im2col.h"
#include "src/kernels/scratch.h"

namespace qfx {
namespace kernels {
namespace {

uint8_t MaxOf(const uint8_t* x, int64_t n) {
  uint8_t m = 0;
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// What output channel co adds to its exact sum of x * w: its int32 bias minus x_zp * sum(w).
int32_t ZeroPointCorrection(const QConvArgs& a, int64_t co) {
  return (a.bias ? a.bias[co] : 0) - a.x_zero_point * a.weight_sum[co];
}

// ZeroPointCorrection of every output channel, in a per-thread buffer, for the kernels that requantize
// themselves (fused GEMM epilogues, the implicit GEMM, VNNI depthwise).
const int32_t* Corrections(const QConvArgs& a) {
  thread_local std::vector<int32_t> buffer;
  GrowScratch(buffer, static_cast<size_t>(a.g.out_channels));
  for (int64_t co = 0; co < a.g.out_channels; ++co) buffer[co] = ZeroPointCorrection(a, co);
  return buffer.data();
}

void Epilogue(const QConvArgs& a, int64_t co, const int32_t* acc, int64_t n, uint8_t* y) {
  RequantizeRow(acc, n, ZeroPointCorrection(a, co), a.multiplier[co], a.y_zero_point, a.lo, a.hi, y);
}

// One output plane of a depthwise convolution: the exact int32 accumulation (DepthwiseAccumulate, SIMD)
// of the whole plane, then one requantization of it.
void DepthwiseQPlane(const QConvArgs& a, int64_t co, const uint8_t* xc, uint8_t* y, int32_t* acc) {
  DepthwisePlaneArgs p;
  p.g = &a.g, p.x = xc, p.w = a.weight + co * a.g.kernel_h * a.g.kernel_w, p.x_zero_point = a.x_zero_point, p.acc = acc;
  DepthwiseAccumulate(p);
  RequantizeRow(acc, a.g.out_h() * a.g.out_w(), a.bias ? a.bias[co] : 0, a.multiplier[co], a.y_zero_point, a.lo, a.hi, y);
}

// dst[4 * c + j] = r[j][c] for c < n: four byte rows interleaved (SSE2 unpacks, 16 columns a step).
void Interleave4(const uint8_t* const r[4], int64_t n, uint8_t* dst) {
  int64_t c = 0;
#if defined(__SSE2__)
  for (; c + 16 <= n; c += 16) {
    const __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[0] + c));
    const __m128i r1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[1] + c));
    const __m128i r2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[2] + c));
    const __m128i r3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[3] + c));
    const __m128i lo01 = _mm_unpacklo_epi8(r0, r1), hi01 = _mm_unpackhi_epi8(r0, r1);
    const __m128i lo23 = _mm_unpacklo_epi8(r2, r3), hi23 = _mm_unpackhi_epi8(r2, r3);
    uint8_t* d = dst + 4 * c;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d), _mm_unpacklo_epi16(lo01, lo23));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 16), _mm_unpackhi_epi16(lo01, lo23));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 32), _mm_unpacklo_epi16(hi01, hi23));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 48), _mm_unpackhi_epi16(hi01, hi23));
  }
#endif
  for (; c < n; ++c) dst[4 * c] = r[0][c], dst[4 * c + 1] = r[1][c], dst[4 * c + 2] = r[2][c], dst[4 * c + 3] = r[3][c];
}

// The implicit-GEMM convolution of one image (see ImplicitConvArgs): builds the padded, 4-channel-interleaved
// input, then runs the kernel (AMX or VNNI). `correction`: ZeroPointCorrection per output channel.
void ImplicitConvImage(const QConvArgs& a, const uint8_t* x, uint8_t* y, const int32_t* correction) {
  const Conv2dGeometry& g = a.g;
  const int64_t rows = g.in_h + 2 * g.pad_h, row_pixels = g.in_w + 2 * g.pad_w, c4s = g.in_channels / 4;
  const int64_t plane = rows * row_pixels * 4, slack = ImplicitConvSlack(g.kernel_w);
  thread_local AlignedVector<uint8_t> x4_buffer;
  GrowScratch(x4_buffer, static_cast<size_t>(c4s * plane + slack));
  uint8_t* const x4 = x4_buffer.data();
  const uint8_t zp = static_cast<uint8_t>(a.x_zero_point);
  ParallelFor(c4s, 2, [&](int64_t b, int64_t e) {
    for (int64_t c4 = b; c4 < e; ++c4) {
      uint8_t* p = x4 + c4 * plane;
      std::memset(p, zp, static_cast<size_t>(g.pad_h * row_pixels * 4));  // top padding rows
      std::memset(p + (g.pad_h + g.in_h) * row_pixels * 4, zp, static_cast<size_t>(g.pad_h * row_pixels * 4));
      for (int64_t iy = 0; iy < g.in_h; ++iy) {
        uint8_t* row = p + (iy + g.pad_h) * row_pixels * 4;
        std::memset(row, zp, static_cast<size_t>(g.pad_w * 4));
        std::memset(row + (g.pad_w + g.in_w) * 4, zp, static_cast<size_t>(g.pad_w * 4));
        const uint8_t* src[4];
        for (int64_t j = 0; j < 4; ++j) src[j] = x + ((c4 * 4 + j) * g.in_h + iy) * g.in_w;
        Interleave4(src, g.in_w, row + g.pad_w * 4);
      }
    }
  });
  std::memset(x4 + c4s * plane, zp, static_cast<size_t>(slack));
  ImplicitConvArgs c;
  c.x4 = x4, c.row_pixels = row_pixels, c.plane_bytes = plane, c.w = a.tap_weight;
  c.in_channels = g.in_channels, c.out_channels = g.out_channels, c.kernel_h = g.kernel_h, c.kernel_w = g.kernel_w;
  c.out_h = g.out_h(), c.out_w = g.out_w();
  c.requant.correction = correction, c.requant.multiplier = a.multiplier, c.requant.zero_point = a.y_zero_point;
  c.requant.lo = a.lo, c.requant.hi = a.hi, c.requant.y = y, c.requant.ldy = c.out_h * c.out_w;
  ImplicitConv(c);
}

// The im2col matrix of one group built straight in the AMX GEMM's panel layout (U8S8GemmArgs::packed_b):
// panels of 32 columns, each [kp/4][32 columns][4 k] bytes; k rows past kdim and columns past n are zero.
// `direct`: 1x1 stride-1 unpadded, whose im2col rows are the input planes themselves.
void Im2ColPanels(const Conv2dGeometry& g, const uint8_t* x, int64_t kdim, int64_t kp, bool direct, uint8_t pad,
                  uint8_t* panels) {
  const int64_t n = g.out_h() * g.out_w(), npanels = (n + 31) / 32, groups = kp / 4;
  // Item i is k-group q = i / 2 for even i and groups - 1 - i / 2 for odd i, so that every thread's range
  // mixes real rows with the cheap zero rows past kdim (contiguous ranges left one thread most of the zeros).
  ParallelFor(groups, 4, [&](int64_t i0, int64_t i1) {
    thread_local std::vector<uint8_t> rows;
    GrowScratch(rows, static_cast<size_t>(4 * npanels * 32));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t q = i % 2 == 0 ? i / 2 : groups - 1 - i / 2;
      const uint8_t* r[4];
      for (int64_t j = 0; j < 4; ++j) {
        const int64_t k = q * 4 + j;
        uint8_t* tmp = rows.data() + j * npanels * 32;
        if (k < kdim && direct) {
          r[j] = x + k * n;
          continue;
        }
        if (k < kdim) {
          Im2ColRow<uint8_t>(g, x, k, pad, tmp);
        } else {
          std::fill(tmp, tmp + n, uint8_t{0});
        }
        r[j] = tmp;
      }
      for (int64_t p = 0; p < npanels; ++p) {  // panel p's row q: its 32 columns of the 4 rows, interleaved
        const int64_t c0 = p * 32, cols = std::min<int64_t>(32, n - c0);
        const uint8_t* shifted[4] = {r[0] + c0, r[1] + c0, r[2] + c0, r[3] + c0};
        uint8_t* dst = panels + p * kp * 32 + q * 128;
        Interleave4(shifted, cols, dst);
        std::memset(dst + cols * 4, 0, static_cast<size_t>((32 - cols) * 4));
      }
    }
  });
}

void DepthwiseQConv(const QConvArgs& a, const uint8_t* x, uint8_t* y) {
  const Conv2dGeometry& g = a.g;
  const int64_t ohw = g.out_h() * g.out_w(), mult = g.out_channels / g.in_channels;
  if (DepthwiseQConvVnni(a, Corrections(a), x, y)) return;
  ParallelFor(g.batch * g.out_channels, 2, [&](int64_t b, int64_t e) {
    thread_local std::vector<int32_t> acc;  // per thread, reused across calls
    GrowScratch(acc, static_cast<size_t>(ohw));
    for (int64_t idx = b; idx < e; ++idx) {
      const int64_t n = idx / g.out_channels, co = idx % g.out_channels, ci = co / mult;
      DepthwiseQPlane(a, co, x + (n * g.in_channels + ci) * g.in_h * g.in_w, y + idx * ohw, acc.data());
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

AlignedVector<int8_t> PrepackTapMajor(const int8_t* weight, int64_t out_channels, int64_t in_channels, int64_t groups,
                                    int64_t kernel_h, int64_t kernel_w) {
  const int64_t taps = kernel_h * kernel_w, kdim = taps * in_channels;
  if (groups != 1 || in_channels % 64 != 0 || taps == 1) return {};
  AlignedVector<int8_t> out(static_cast<size_t>((out_channels + 31) / 32 * 32 * kdim), 0);
  for (int64_t co = 0; co < out_channels; ++co) {
    for (int64_t ci = 0; ci < in_channels; ++ci) {
      for (int64_t t = 0; t < taps; ++t) out[co * kdim + t * in_channels + ci] = weight[(co * in_channels + ci) * taps + t];
    }
  }
  return out;
}

AlignedVector<int32_t> PrepackWindowed(const int8_t* weight, int64_t out_channels, int64_t in_channels, int64_t groups,
                                       int64_t kernel_h, int64_t kernel_w) {
  if (groups != 1 || kernel_w < 2 || kernel_w > 8) return {};
  const int64_t gx = (kernel_w + 3) / 4, kdim = in_channels * kernel_h * gx * 4;
  std::vector<int8_t> rows(static_cast<size_t>(out_channels * kdim), 0);  // the windowed matrix, row-major
  for (int64_t co = 0; co < out_channels; ++co) {
    for (int64_t ci = 0; ci < in_channels; ++ci) {
      for (int64_t ky = 0; ky < kernel_h; ++ky) {
        for (int64_t kx = 0; kx < kernel_w; ++kx) {
          rows[co * kdim + (ci * kernel_h + ky) * gx * 4 + kx] = weight[((co * in_channels + ci) * kernel_h + ky) * kernel_w + kx];
        }
      }
    }
  }
  AlignedVector<int32_t> packed(static_cast<size_t>(PackedU8S8Size(out_channels, kdim)));
  PackU8S8Weights(rows.data(), out_channels, kdim, kdim, packed.data());
  return packed;
}

AlignedVector<int32_t> PrepackWeights(const int8_t* weight, int64_t groups, int64_t rows_per_group, int64_t per_row,
                                    int32_t* max_pair) {
  const int64_t per_group = PackedU8S8Size(rows_per_group, per_row);
  AlignedVector<int32_t> packed(static_cast<size_t>(groups * per_group));
  for (int64_t gi = 0; gi < groups; ++gi) {
    PackU8S8Weights(weight + gi * rows_per_group * per_row, rows_per_group, per_row, per_row, packed.data() + gi * per_group);
  }
  *max_pair = MaxPairAbsSum(weight, groups * rows_per_group, per_row, per_row);
  return packed;
}

namespace {

// Implicit GEMM (no im2col at all): stride 1, one group, 64k input channels, tap-major weights, AVX3_DL.
bool UsesImplicit(const QConvArgs& a) {
  const Conv2dGeometry& g = a.g;
  return a.tap_weight != nullptr && g.groups == 1 && g.in_channels % 64 == 0 && g.stride_h == 1 && g.stride_w == 1 &&
         g.dilation_h == 1 && g.dilation_w == 1 && ImplicitConvSupported();
}

// How an im2col + GEMM convolution runs, decided once per call.
struct GemmPlan {
  int64_t ohw, cin_g, cout_g, kdim;
  bool direct;    // 1x1 stride 1 unpadded: the input planes are the im2col matrix
  bool panels;    // AMX: im2col straight into the GEMM's panel layout
  bool fused;     // the GEMM requantizes each finished tile itself (x86 targets)
  bool windowed;  // im2col by 4-tap windows (WindowPanels, AVX3_DL) against the windowed weights
  int64_t gemm_k, kp;  // the GEMM's k (grows to KW rounded up to 4 when windowed) and its panel depth
};

GemmPlan PlanGemm(const QConvArgs& a) {
  const Conv2dGeometry& g = a.g;
  GemmPlan p;
  p.ohw = g.out_h() * g.out_w(), p.cin_g = g.in_channels / g.groups, p.cout_g = g.out_channels / g.groups;
  p.kdim = p.cin_g * g.kernel_h * g.kernel_w;
  p.direct = g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
  p.panels = GemmU8S8UsesAmx();
  p.fused = GemmU8S8Requantizes();
  // (WindowPanels' permute reaches 64 bytes: 16 columns at most 4 apart.)
  p.windowed = a.window_weight != nullptr && g.groups == 1 && g.dilation_h == 1 && g.dilation_w == 1 &&
               g.kernel_w >= 2 && g.kernel_w <= 8 && g.stride_w <= 4 && WindowPanelsSupported();
  p.gemm_k = p.windowed ? p.cin_g * g.kernel_h * ((g.kernel_w + 3) / 4) * 4 : p.kdim;
  p.kp = AmxPaddedK(p.gemm_k);
  return p;
}

// The GEMM's B operand for one image and group (xg): built into col, or xg itself when direct.
const uint8_t* Columns(const QConvArgs& a, const GemmPlan& p, const uint8_t* xg, uint8_t* col) {
  const uint8_t pad = static_cast<uint8_t>(a.x_zero_point);
  if (p.windowed) {
    WindowPanels(a.g, xg, p.kp, pad, col);
  } else if (p.panels) {
    Im2ColPanels(a.g, xg, p.kdim, p.kp, p.direct, pad, col);
  } else if (p.direct) {
    return xg;
  } else {
    Im2Col(a.g, xg, p.cin_g, pad, col);
  }
  return col;
}

void GemmQConv(const QConvArgs& a, const uint8_t* x, uint8_t* y) {
  const Conv2dGeometry& g = a.g;
  const GemmPlan p = PlanGemm(a);
  thread_local AlignedVector<uint8_t> col_buffer;
  thread_local std::vector<int32_t> acc_buffer;
  const bool packed_b = p.panels || p.windowed;
  const int64_t col_bytes = packed_b ? (p.ohw + 31) / 32 * 32 * p.kp : p.direct ? 0 : p.kdim * p.ohw;
  uint8_t* const col = GrowScratch(col_buffer, static_cast<size_t>(col_bytes));
  // Pointers: workers must not name the thread_locals themselves.
  int32_t* const acc = p.fused ? nullptr : GrowScratch(acc_buffer, static_cast<size_t>(p.cout_g * p.ohw));
  const int32_t* const correction = p.fused ? Corrections(a) : nullptr;
  // The bound of the vpmaddubsw path (the AMX and VNNI paths are exact for any input and do not need it).
  const int32_t b_max =
      packed_b ? 255 : std::max<int32_t>(MaxOf(x, g.batch * g.in_channels * g.in_h * g.in_w), a.x_zero_point);
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      U8S8GemmArgs gemm;
      gemm.m = p.cout_g, gemm.n = p.ohw, gemm.k = p.kdim;
      gemm.a = a.weight + grp * p.cout_g * p.kdim, gemm.lda = p.kdim;
      gemm.b = Columns(a, p, x + (n * g.in_channels + grp * p.cin_g) * g.in_h * g.in_w, col), gemm.ldb = p.ohw;
      gemm.c = acc, gemm.ldc = p.ohw, gemm.b_max = b_max;
      if (a.packed_weight != nullptr) {
        gemm.packed_a = a.packed_weight + grp * PackedU8S8Size(p.cout_g, p.kdim);
        gemm.a_max_pair = a.weight_max_pair;
      }
      if (packed_b) gemm.packed_b = col;
      if (p.windowed) gemm.k = p.gemm_k, gemm.packed_a = a.window_weight;
      uint8_t* const yg = y + (n * g.out_channels + grp * p.cout_g) * p.ohw;
      if (p.fused) {  // each block is requantized as it leaves the tiles or registers
        U8S8GemmArgs::Requant q;
        q.correction = correction + grp * p.cout_g, q.multiplier = a.multiplier + grp * p.cout_g;
        q.zero_point = a.y_zero_point, q.lo = a.lo, q.hi = a.hi, q.y = yg, q.ldy = p.ohw;
        gemm.requant = &q;
        GemmU8S8(gemm);
        continue;
      }
      GemmU8S8(gemm);
      ParallelFor(p.cout_g, 4, [&](int64_t b, int64_t e) {
        for (int64_t o = b; o < e; ++o) Epilogue(a, grp * p.cout_g + o, acc + o * p.ohw, p.ohw, yg + o * p.ohw);
      });
    }
  }
}

}  // namespace

void QConv2d(const QConvArgs& a, const uint8_t* x, uint8_t* y) {
  const Conv2dGeometry& g = a.g;
  if (g.groups == g.in_channels && g.groups > 1 && g.out_channels % g.in_channels == 0) return DepthwiseQConv(a, x, y);
  if (!UsesImplicit(a)) return GemmQConv(a, x, y);
  const int32_t* correction = Corrections(a);
  const int64_t x_image = g.in_channels * g.in_h * g.in_w, y_image = g.out_channels * g.out_h() * g.out_w();
  for (int64_t n = 0; n < g.batch; ++n) ImplicitConvImage(a, x + n * x_image, y + n * y_image, correction);
}

// acc[out, rows] = W x X^T, the exact int32 products (the zero-point correction is the caller's).
void LinearAcc(const uint8_t* x, int64_t rows, int64_t in, const int8_t* w, int64_t out, const int32_t* packed,
               int32_t max_pair, std::vector<uint8_t>& xt, int32_t* acc) {
  if (rows < 4) {  // batch-1 inference: dot products (the GEMM's column tiles would be mostly empty)
    LinearFewRowsU8S8(x, rows, in, w, out, max_pair, acc);
    return;
  }
  GrowScratch(xt, static_cast<size_t>(in * rows));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < in; ++k) xt[k * rows + r] = x[r * in + k];
  }
  U8S8GemmArgs gemm;
  gemm.m = out, gemm.n = rows, gemm.k = in, gemm.a = w, gemm.lda = in;
  gemm.b = xt.data(), gemm.ldb = rows, gemm.c = acc, gemm.ldc = rows;
  gemm.b_max = MaxOf(x, rows * in);
  gemm.packed_a = packed;
  gemm.a_max_pair = max_pair;
  GemmU8S8(gemm);
}

void QLinear(const QLinearArgs& a, const uint8_t* x, uint8_t* y) {
  // y[r, o] = W[o, :] . x[r, :]: the GEMM C[out, rows] = W[out, in] x X^T[in, rows].
  thread_local std::vector<uint8_t> xt;  // reused across calls: no allocation once large enough
  thread_local std::vector<int32_t> acc;
  GrowScratch(acc, static_cast<size_t>(a.out * a.rows));
  LinearAcc(x, a.rows, a.in, a.weight, a.out, a.packed_weight, a.weight_max_pair, xt, acc.data());
  for (int64_t o = 0; o < a.out; ++o) {
    const int32_t correction = (a.bias ? a.bias[o] : 0) - a.x_zero_point * a.weight_sum[o];
    for (int64_t r = 0; r < a.rows; ++r) {
      y[r * a.out + o] = Requantize(acc[o * a.rows + r] + correction, a.multiplier[o], a.y_zero_point, a.lo, a.hi);
    }
  }
}

void QLinearDynamic(const QLinearDynamicArgs& a, const uint8_t* x, float* y) {
  thread_local std::vector<uint8_t> xt;
  thread_local std::vector<int32_t> acc;
  GrowScratch(acc, static_cast<size_t>(a.out * a.rows));
  LinearAcc(x, a.rows, a.in, a.weight, a.out, a.packed_weight, a.weight_max_pair, xt, acc.data());
  for (int64_t o = 0; o < a.out; ++o) {
    const int32_t correction = -a.x_zero_point * a.weight_sum[o];
    const float scale = a.x_scale * a.w_scale[o], bias = a.bias ? a.bias[o] : 0.f;
    for (int64_t r = 0; r < a.rows; ++r) y[r * a.out + o] = static_cast<float>(acc[o * a.rows + r] + correction) * scale + bias;
  }
}

void GatherStridedU8(const uint8_t* x, int64_t stride, int64_t n, uint8_t* out) {
  int64_t i = stride == 2 ? EvenBytes(x, 0, n, out) : 0;
  for (; i < n; ++i) out[i] = x[i * stride];
}

const char* Int8TargetName() { return GemmU8S8TargetName(); }

const char* Int8PathName() {
  if (GemmU8S8UsesAmx()) return "AMX";
  const char* target = GemmU8S8TargetName();
  return std::strcmp(target, "AVX3_DL") == 0 ? "AVX-512 VNNI" : target;
}

}  // namespace kernels
}  // namespace qfx
