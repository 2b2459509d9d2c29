// qfx kernels, Highway targets: the int8 GEMM C[M,N] (int32) = A[M,K] (int8 weights) x B[K,N] (uint8
// activations, row-major), and the convolution kernels built on the same instructions. Included once per
// SIMD target by gemm_u8s8.cc.
//
// On AVX-512 VNNI (AVX3_DL) the inner loop is 512-bit vpdpbusd (u8 x s8, 4 products into int32, exact)
// over a 4x32 tile, or AMX tiles where the CPU has them. On AVX2 and AVX-512 it is vpmaddubsw (u8 x s8
// pairs into int16) + vpmaddwd (into int32) over a 4x16 register tile: B is packed into panels of 16
// columns x 4 k (64 bytes a step), A into 4 rows x 4 k (one int32 broadcast per row). vpmaddubsw saturates
// when x0*w0 + x1*w1 leaves int16; where max(x) * max over k-pairs of (|w_k| + |w_k+1|) could exceed 32767
// (inputs above 127 with wide weights) each panel runs twice, on its low 7 bits and its top bit, and the
// products add as lo + 128 * hi: exact at twice the work. Targets without these instructions take the
// exact portable loop, the reference the tests hold every target to.
#if defined(QFX_KERNELS_GEMM_U8S8_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QFX_KERNELS_GEMM_U8S8_INL_H_
#undef QFX_KERNELS_GEMM_U8S8_INL_H_
#else
#define QFX_KERNELS_GEMM_U8S8_INL_H_
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"
#include "qfx/core/parallel.h"
#include "qfx/kernels/int8.h"
#include "src/kernels/gemm_u8s8.h"

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace qfx {
namespace kernels {
namespace HWY_NAMESPACE {

// Exact portable loop over rows [m0, m1) and columns [n0, n1).
inline void U8S8Portable(const U8S8GemmArgs& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  std::vector<int32_t> acc(static_cast<size_t>(n1 - n0));
  for (int64_t i = m0; i < m1; ++i) {
    std::fill(acc.begin(), acc.end(), 0);
    const int8_t* a = g.a + i * g.lda;
    for (int64_t p = 0; p < g.k; ++p) {
      const int32_t w = a[p];
      const uint8_t* b = g.b + p * g.ldb + n0;
      for (int64_t j = 0; j < n1 - n0; ++j) acc[j] += w * static_cast<int32_t>(b[j]);
    }
    std::memcpy(g.c + i * g.ldc + n0, acc.data(), acc.size() * sizeof(int32_t));
  }
}

// g.packed_a, or A packed into *own when the caller did not prepack it.
inline const int32_t* PackedWeights(const U8S8GemmArgs& g, AlignedVector<int32_t>* own) {
  if (g.packed_a != nullptr) return g.packed_a;
  own->resize(static_cast<size_t>(PackedU8S8Size(g.m, g.k)));
  PackU8S8Weights(g.a, g.m, g.k, g.lda, own->data());
  return own->data();
}

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#define QFX_U8S8_TILE 1
// AVX3_DL has VNNI: vpdpbusd adds u8 x s8 products of 4 bytes straight into int32 — exact, no int16 step.
constexpr bool kVnni = HWY_TARGET == HWY_AVX3_DL;

// Columns per tile: two vectors of int32 accumulators per row (32 on AVX-512 VNNI, 16 otherwise).
constexpr int64_t kMr = kU8S8TileRows, kNr = HWY_TARGET == HWY_AVX3_DL ? 32 : 16;

// Packs B[0:K, n0:n0+kNr] as [k4][kNr columns][4 k] bytes; rows past K and columns past n1 are zero.
// Full 16-column, 4-row blocks interleave with byte/word unpacks; edges go element by element.
HWY_ATTR inline void PackB(const U8S8GemmArgs& g, int64_t n0, int64_t n1, int64_t k4s, uint8_t* out) {
  const bool full_width = n1 - n0 == kNr;
  for (int64_t s = 0; s < k4s; ++s) {
    const int64_t p = s * 4;
    if (full_width && p + 4 <= g.k) {
      for (int64_t half = 0; half < kNr; half += 16) {
      uint8_t* dst = out + s * kNr * 4 + half * 4;
      const uint8_t* r = g.b + p * g.ldb + n0 + half;
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r + g.ldb));
      const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r + 2 * g.ldb));
      const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r + 3 * g.ldb));
      const __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
      const __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
      _mm_store_si128(reinterpret_cast<__m128i*>(dst), _mm_unpacklo_epi16(ab_lo, cd_lo));
      _mm_store_si128(reinterpret_cast<__m128i*>(dst + 16), _mm_unpackhi_epi16(ab_lo, cd_lo));
      _mm_store_si128(reinterpret_cast<__m128i*>(dst + 32), _mm_unpacklo_epi16(ab_hi, cd_hi));
      _mm_store_si128(reinterpret_cast<__m128i*>(dst + 48), _mm_unpackhi_epi16(ab_hi, cd_hi));
      }
      continue;
    }
    uint8_t* dst = out + s * kNr * 4;
    std::memset(dst, 0, kNr * 4);
    for (int64_t t = 0; t < 4 && p + t < g.k; ++t) {
      const uint8_t* row = g.b + (p + t) * g.ldb;
      for (int64_t j = n0; j < n1; ++j) dst[(j - n0) * 4 + t] = row[j];
    }
  }
}

#if HWY_TARGET == HWY_AVX3_DL
// 4 x 32 tile with 512-bit vpdpbusd: each step multiplies 4 k of 32 columns by 4 rows. Highway's AVX3_DL
// target string names AVX-VNNI, not AVX512-VNNI, though its run-time check requires the latter: enable it
// here so the EVEX form is used (the VEX form would need AVX-VNNI, which AVX3_DL CPUs may lack).
__attribute__((target("avx512vnni"))) HWY_ATTR inline void Tile(const int32_t* HWY_RESTRICT pa, const uint8_t* HWY_RESTRICT pb, int64_t k4s,
                          int32_t* HWY_RESTRICT tile) {
  __m512i acc[kMr][2];
  for (int r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (int64_t s = 0; s < k4s; ++s) {
    const __m512i b0 = _mm512_load_si512(pb + s * 128);
    const __m512i b1 = _mm512_load_si512(pb + s * 128 + 64);
#pragma GCC unroll 4
    for (int r = 0; r < kMr; ++r) {
      const __m512i a = _mm512_set1_epi32(pa[s * kMr + r]);
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], b0, a);
      acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], b1, a);
    }
  }
  for (int r = 0; r < kMr; ++r) {
    _mm512_storeu_si512(tile + r * kNr, acc[r][0]);
    _mm512_storeu_si512(tile + r * kNr + 16, acc[r][1]);
  }
}
#else
HWY_ATTR inline void Tile(const int32_t* HWY_RESTRICT pa, const uint8_t* HWY_RESTRICT pb, int64_t k4s,
                          int32_t* HWY_RESTRICT tile) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[kMr][2];
  for (int r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (int64_t s = 0; s < k4s; ++s) {
    const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + s * 64));
    const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + s * 64 + 32));
#pragma GCC unroll 4
    for (int r = 0; r < kMr; ++r) {
      const __m256i a = _mm256_set1_epi32(pa[s * kMr + r]);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(b0, a), ones));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(b1, a), ones));
    }
  }
  for (int r = 0; r < kMr; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + r * kNr), acc[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + r * kNr + 8), acc[r][1]);
  }
}
#endif

// Splits a packed panel in place into its low 7 bits and, in `hi`, its top bit (0 or 1 a byte), so that
// x = lo + 128 * hi with both parts small enough for vpmaddubsw never to saturate.
HWY_ATTR inline void SplitPanel(uint8_t* HWY_RESTRICT lo, uint8_t* HWY_RESTRICT hi, int64_t bytes) {
  const __m256i low7 = _mm256_set1_epi8(0x7F), one = _mm256_set1_epi8(1);
  for (int64_t i = 0; i < bytes; i += 32) {
    const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(lo + i));
    _mm256_store_si256(reinterpret_cast<__m256i*>(hi + i), _mm256_and_si256(_mm256_srli_epi16(v, 7), one));
    _mm256_store_si256(reinterpret_cast<__m256i*>(lo + i), _mm256_and_si256(v, low7));
  }
}

#if HWY_TARGET == HWY_AVX3_DL
// Where the 16 lanes of each half of a 32-lane block row go in an output row: one masked store per output
// row the half touches (lane l of half h lands at y_row[offset + l] where bit l of the mask is set; the
// masked-off lanes are neither read nor written, so offset may point before the row). The same for every
// row of a block, so worked out once per block.
struct LaneStores {
  int count[2] = {0, 0};
  __mmask16 mask[2][16] = {};  // a half touches at most 16 rows (one per lane)
  int64_t offset[2][16] = {};
  void Add(int half, __mmask16 m, int64_t off) {
    mask[half][count[half]] = m;
    offset[half][count[half]++] = off;
  }
};

// The stores of a plain row block: columns [col, col + cols) (cols <= 32) of each output row.
inline LaneStores ColumnStores(int64_t col, int64_t cols) {
  LaneStores st;
  for (int h = 0; h < 2 && cols > 16 * h; ++h) {
    st.Add(h, static_cast<__mmask16>(_bzhi_u32(0xFFFFu, static_cast<unsigned>(std::min<int64_t>(16, cols - 16 * h)))),
           col + 16 * h);
  }
  return st;
}

// Requantizes a finished 4 x 32 tile (rows [row, row + rows), columns as `st`) into q.y.
inline void VnniRequantTile(const int32_t* tile, int64_t rows, int64_t row, const U8S8GemmArgs::Requant& q,
                            const LaneStores& st);
#endif
inline void RequantizeRowImpl(const int32_t* HWY_RESTRICT acc, int64_t n, int32_t correction, float multiplier,
                              int32_t zero_point, int32_t lo, int32_t hi, uint8_t* HWY_RESTRICT y);

// The tile path over rows [m0, m1) and columns [n0, n1); `packed_a` holds all of A packed. `split`
// (vpmaddubsw where it could saturate: inputs above 127 with wide weights) runs each panel twice, on its
// low 7 bits and on its top bit, and adds the two products as lo + 128 * hi: exact, at twice the work.
inline void U8S8Maddubs(const U8S8GemmArgs& g, const int32_t* packed_a, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                        bool split) {
  const int64_t k4s = (g.k + 3) / 4, panel_bytes = k4s * kNr * 4;
  // Packed panels per thread, kept between calls (no allocation once they are large enough).
  thread_local hwy::AlignedFreeUniquePtr<uint8_t[]> panel;
  thread_local size_t panel_size = 0;
  const size_t need = static_cast<size_t>(2 * panel_bytes + 128);
  if (panel_size < need) {
    panel = hwy::AllocateAligned<uint8_t>(need);
    panel_size = need;
  }
  uint8_t* pb = panel.get();
  uint8_t* pb_hi = pb + (panel_bytes + 63) / 64 * 64;
  alignas(64) int32_t tile[kMr * kNr], tile_hi[kMr * kNr];
  for (int64_t j = n0; j < n1; j += kNr) {
    const int64_t cols = std::min(kNr, n1 - j);
    // A prepacked B (AVX3_DL only, where the panels are 32 wide as AMX's) has panels AmxPaddedK(k) deep.
    const uint8_t* panel_j = g.packed_b ? g.packed_b + (j / kNr) * AmxPaddedK(g.k) * kNr : pb;
    if (!g.packed_b) PackB(g, j, j + cols, k4s, pb);
    if (split) SplitPanel(pb, pb_hi, panel_bytes);
#if HWY_TARGET == HWY_AVX3_DL
    const LaneStores st = ColumnStores(j, cols);  // where a requantized tile's columns go
#endif
    for (int64_t i = m0; i < m1; i += kMr) {
      const int32_t* pa = packed_a + (i / kMr) * k4s * kMr;
      Tile(pa, panel_j, k4s, tile);
      if (split) {
        Tile(pa, pb_hi, k4s, tile_hi);
        for (int64_t t = 0; t < kMr * kNr; ++t) tile[t] += tile_hi[t] * 128;
      }
      if (const U8S8GemmArgs::Requant* q = g.requant) {  // requantized while the tile is in L1
#if HWY_TARGET == HWY_AVX3_DL
        VnniRequantTile(tile, std::min(kMr, m1 - i), i, *q, st);
#else
        for (int64_t r = 0; r < kMr && i + r < m1; ++r) {
          RequantizeRowImpl(tile + r * kNr, cols, q->correction[i + r], q->multiplier[i + r], q->zero_point, q->lo,
                            q->hi, q->y + (i + r) * q->ldy + j);
        }
#endif
        continue;
      }
      // A whole row as a fixed-size copy (vector moves); a variable-length memcpy here became rep movs.
      for (int64_t r = 0; r < kMr && i + r < m1; ++r) {
        if (cols == kNr) {
          std::memcpy(g.c + (i + r) * g.ldc + j, tile + r * kNr, kNr * sizeof(int32_t));
        } else {
          std::memcpy(g.c + (i + r) * g.ldc + j, tile + r * kNr, static_cast<size_t>(cols) * sizeof(int32_t));
        }
      }
    }
  }
}

#if HWY_TARGET == HWY_AVX3_DL
// AMX (Sapphire Rapids): 32 x 32 blocks of C as four 16 x 16 int32 tiles (tmm0-3), each step multiplying
// 64 k: two weight tiles (tmm4-5: 16 rows x 64 bytes of the zero-padded row-major copy) by two activation
// tiles (tmm6-7: 16 k4-rows x 16 columns x 4 bytes, i.e. PackB's panel layout) with tdpbsud (s8 x u8, exact).
struct alignas(64) AmxTileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

__attribute__((target("amx-tile"))) HWY_ATTR inline void AmxConfigure() {
  AmxTileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  _tile_loadconfig(&cfg);
}

__attribute__((target("amx-tile"))) HWY_ATTR inline void AmxRelease() { _tile_release(); }

// The 2 x 2 tile steps shared by the AMX GEMM and convolution: C tiles tmm0-3 cleared; one step adds
// W rows [0, 16) and [16, 32) (tmm4-5, rows w_stride apart) times the activation tiles of 16 columns each
// (tmm6-7, rows x_stride apart); the four C tiles stored as a 32 x 32 int32 block (rows 128 bytes apart).
__attribute__((target("amx-tile"))) HWY_ATTR inline void AmxZero4() {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
}

__attribute__((target("amx-tile,amx-int8"))) HWY_ATTR inline void AmxStep(const int8_t* w0, const int8_t* w1,
                                                                           int64_t w_stride, const uint8_t* x0,
                                                                           const uint8_t* x1, int64_t x_stride) {
  _tile_loadd(4, w0, w_stride);
  _tile_loadd(5, w1, w_stride);
  _tile_loadd(6, x0, x_stride);
  _tile_loadd(7, x1, x_stride);
  _tile_dpbsud(0, 4, 6);
  _tile_dpbsud(1, 4, 7);
  _tile_dpbsud(2, 5, 6);
  _tile_dpbsud(3, 5, 7);
}

__attribute__((target("amx-tile"))) HWY_ATTR inline void AmxStore4(int32_t* out) {
  _tile_stored(0, out, 128);
  _tile_stored(1, out + 16, 128);
  _tile_stored(2, out + 16 * 32, 128);
  _tile_stored(3, out + 16 * 32 + 16, 128);
}

HWY_INLINE void AmxBlock(const int8_t* HWY_RESTRICT w, int64_t kp, const uint8_t* HWY_RESTRICT pb,
                         int32_t* HWY_RESTRICT out) {
  AmxZero4();
  for (int64_t kk = 0; kk < kp; kk += 64) AmxStep(w + kk, w + 16 * kp + kk, kp, pb + kk * 32, pb + kk * 32 + 64, 128);
  AmxStore4(out);
}

// The shared requantization (bit-identical to RequantizeRowImpl) of 16 exact int32 sums, correction
// included, to bytes. The clamp to [lo, hi] is done on the float before rounding, shifted by the zero point:
// exact, as the bounds are integers and rounding is monotonic, and it keeps the conversion in range.
struct Requant16 {
  __m512 lo, hi;
  __m512i zero_point;
  Requant16(int32_t zp, int32_t lo_q, int32_t hi_q)
      : lo(_mm512_set1_ps(static_cast<float>(lo_q - zp))),
        hi(_mm512_set1_ps(static_cast<float>(hi_q - zp))),
        zero_point(_mm512_set1_epi32(zp)) {}
  __m128i operator()(__m512i acc, __m512 multiplier) const {
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), multiplier);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    return _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v), zero_point));
  }
};

// Rows co, co + 1, ... of a block (row r's two halves in acc(r, 0) and acc(r, 1)) requantized into q.y.
template <class Acc>
HWY_INLINE void RequantStoreRows(const Acc& acc, int64_t rows, const U8S8GemmArgs::Requant& q, int64_t co,
                                 const LaneStores& st) {
  const Requant16 requant(q.zero_point, q.lo, q.hi);
  for (int64_t r = 0; r < rows; ++r) {
    const __m512i corr = _mm512_set1_epi32(q.correction[co + r]);
    const __m512 mult = _mm512_set1_ps(q.multiplier[co + r]);
    const uintptr_t y_row = reinterpret_cast<uintptr_t>(q.y + (co + r) * q.ldy);
    for (int h = 0; h < 2; ++h) {
      const __m128i bytes = requant(_mm512_add_epi32(acc(r, h), corr), mult);
      for (int s = 0; s < st.count[h]; ++s) {
        _mm_mask_storeu_epi8(reinterpret_cast<void*>(y_row + st.offset[h][s]), st.mask[h][s], bytes);
      }
    }
  }
}

inline void VnniRequantTile(const int32_t* tile, int64_t rows, int64_t row, const U8S8GemmArgs::Requant& q,
                            const LaneStores& st) {
  RequantStoreRows([tile](int64_t r, int h) { return _mm512_load_si512(tile + r * 32 + h * 16); }, rows, q, row, st);
}

// The AMX epilogue: a finished 32 x 32 int32 block (out[r * 32 + lane], from the tiles) requantized.
HWY_ATTR inline void AmxRequantBlock(const int32_t* HWY_RESTRICT out, int64_t rows, const U8S8GemmArgs::Requant& q,
                                     int64_t co, const LaneStores& st) {
  RequantStoreRows([out](int64_t r, int h) { return _mm512_load_si512(out + r * 32 + h * 16); }, rows, q, co, st);
}

// Rows [m0, m1) (m0 a multiple of 32) and columns [n0, n1) of C on AMX; `w` is the padded weight copy.
inline void U8S8Amx(const U8S8GemmArgs& g, const int8_t* w, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t kp = AmxPaddedK(g.k);
  thread_local hwy::AlignedFreeUniquePtr<uint8_t[]> panel;
  thread_local size_t panel_size = 0;
  const size_t need = static_cast<size_t>(kp * 32 + 64);
  if (panel_size < need) {
    panel = hwy::AllocateAligned<uint8_t>(need);
    panel_size = need;
  }
  alignas(64) int32_t out[32 * 32];
  AmxConfigure();
  for (int64_t j = n0; j < n1; j += kNr) {
    const int64_t cols = std::min(kNr, n1 - j);
    const uint8_t* pb = g.packed_b ? g.packed_b + (j / kNr) * kp * kNr : panel.get();
    if (!g.packed_b) PackB(g, j, j + cols, kp / 4, panel.get());
    const LaneStores st = ColumnStores(j, cols);
    for (int64_t i = m0; i < m1; i += 32) {
      AmxBlock(w + i * kp, kp, pb, out);
      const int64_t rows = std::min<int64_t>(32, m1 - i);
      if (g.requant != nullptr) {
        AmxRequantBlock(out, rows, *g.requant, i, st);
        continue;
      }
      // The int32 block as it is, two masked 16-lane stores a row (a variable-length memcpy here became
      // rep movs, slow right after the tile stores).
      for (int64_t r = 0; r < rows; ++r) {
        int32_t* c = g.c + (i + r) * g.ldc + j;
        _mm512_mask_storeu_epi32(c, st.mask[0][0], _mm512_load_si512(out + r * 32));
        if (st.count[1] > 0) _mm512_mask_storeu_epi32(c + 16, st.mask[1][0], _mm512_load_si512(out + r * 32 + 16));
      }
    }
  }
  AmxRelease();
}

// Where the 32 positions of the chunk at f0 go: one masked store per output row a half touches, over the
// lanes with ox < OW (the padded grid's extra columns and positions past the last row are dropped).
inline LaneStores GridStores(const ImplicitConvArgs& a, int64_t f0) {
  const int64_t rp = a.row_pixels, end = a.out_h * rp;
  LaneStores st;
  for (int h = 0; h < 2; ++h) {
    for (int64_t l = 0; l < 16;) {
      const int64_t f = f0 + 16 * h + l;
      if (f >= end) break;
      const int64_t oy = f / rp, ox = f % rp, run = std::min<int64_t>(16 - l, rp - ox);  // lanes left in this row
      const int64_t valid = std::max<int64_t>(0, std::min(run, a.out_w - ox));
      if (valid > 0) {
        const unsigned bits = _bzhi_u32(0xFFFFu, static_cast<unsigned>(l + valid)) & ~_bzhi_u32(0xFFFFu, static_cast<unsigned>(l));
        st.Add(h, static_cast<__mmask16>(bits), oy * a.out_w + ox - l);
      }
      l += run;
    }
  }
  return st;
}

// The implicit-GEMM convolution (see ImplicitConvArgs) for work items [i0, i1), item = co_block * chunks + chunk
// (a thread's items share a 32-channel weight block, which stays in L2). The output is computed on the
// padded grid, flattened: position f = oy * row_pixels + ox reads input position f + ky * row_pixels + kx
// for tap (ky, kx), so a tile row is 16 consecutive positions x 4 channels of one channel group straight
// from the input even across output rows; positions with ox >= OW are computed and dropped. 32 positions
// a chunk (two tiles), every tap and 64 channels a step.
__attribute__((target("amx-tile,amx-int8"))) HWY_ATTR inline void AmxConvItems(const ImplicitConvArgs& a, int64_t i0, int64_t i1) {
  const int64_t kdim = a.kernel_h * a.kernel_w * a.in_channels, c64s = a.in_channels / 64;
  const int64_t rp = a.row_pixels, plane = a.plane_bytes, chunks = (a.out_h * rp + 31) / 32;
  // Software-pipelined: item i's tile work is issued before item i - 1's epilogue, so the vector
  // requantization runs while the tiles compute (two output buffers, two store plans).
  alignas(64) int32_t out[2][32 * 32];
  LaneStores stores[2];
  int64_t stores_f0[2] = {-1, -1};
  const auto epilogue = [&](int64_t item) {
    const int64_t co = item / chunks * 32, f0 = item % chunks * 32, b = item & 1;
    if (f0 != stores_f0[b]) stores[b] = GridStores(a, f0), stores_f0[b] = f0;
    AmxRequantBlock(out[b], std::min<int64_t>(32, a.out_channels - co), a.requant, co, stores[b]);
  };
  AmxConfigure();
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t co = item / chunks * 32, f0 = item % chunks * 32;
    AmxZero4();
    for (int64_t ky = 0; ky < a.kernel_h; ++ky) {
      for (int64_t kx = 0; kx < a.kernel_w; ++kx) {
        const uint8_t* xp = a.x4 + (f0 + ky * rp + kx) * 4;
        const int8_t* wp = a.w + co * kdim + (ky * a.kernel_w + kx) * a.in_channels;
        for (int64_t c = 0; c < c64s; ++c) {
          AmxStep(wp + c * 64, wp + 16 * kdim + c * 64, kdim, xp + c * 16 * plane, xp + c * 16 * plane + 64, plane);
        }
      }
    }
    if (item > i0) epilogue(item - 1);
    AmxStore4(out[item & 1]);
  }
  if (i1 > i0) epilogue(i1 - 1);
  AmxRelease();
}

// The implicit-GEMM convolution with AVX-512 VNNI (no AMX): blocks of kRows output channels x 32 positions
// of the flattened padded grid (as AmxConvItems) in registers. A step takes one tap and 4 input channels:
// the 32 positions' 4 bytes are 128 consecutive bytes of the x4 plane (two loads), each row's 4 weights one
// broadcast, and 2 * kRows vpdpbusd. The block is requantized from the registers (no int32 round trip).
template <int kRows>
__attribute__((target("avx512vnni"))) HWY_ATTR inline void VnniConvBlock(const ImplicitConvArgs& a, int64_t co, int64_t f0,
                                                                         const LaneStores& st) {
  const int64_t kdim = a.kernel_h * a.kernel_w * a.in_channels, c4s = a.in_channels / 4, plane = a.plane_bytes;
  __m512i acc[kRows][2];
  for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (int64_t ky = 0; ky < a.kernel_h; ++ky) {
    for (int64_t kx = 0; kx < a.kernel_w; ++kx) {
      const uint8_t* xp = a.x4 + (f0 + ky * a.row_pixels + kx) * 4;
      const int8_t* wp = a.w + co * kdim + (ky * a.kernel_w + kx) * a.in_channels;
      for (int64_t c4 = 0; c4 < c4s; ++c4, xp += plane, wp += 4) {
        const __m512i b0 = _mm512_loadu_si512(xp), b1 = _mm512_loadu_si512(xp + 64);
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) {
          int32_t w4;
          std::memcpy(&w4, wp + r * kdim, 4);
          const __m512i wv = _mm512_set1_epi32(w4);
          acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], b0, wv);
          acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], b1, wv);
        }
      }
    }
  }
  RequantStoreRows([&acc](int64_t r, int h) { return acc[r][h]; }, std::min<int64_t>(kRows, a.out_channels - co),
                   a.requant, co, st);
}

// Work items [i0, i1) of 8 channels x 32 positions, channel-major (the weights are padded to 32 rows, so a
// last partial block reads zeros and stores only its real rows).
inline void VnniConvItems(const ImplicitConvArgs& a, int64_t i0, int64_t i1) {
  const int64_t chunks = (a.out_h * a.row_pixels + 31) / 32;
  LaneStores stores;
  int64_t stores_f0 = -1;
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t co = item / chunks * 8, f0 = item % chunks * 32;
    if (f0 != stores_f0) stores = GridStores(a, f0), stores_f0 = f0;
    VnniConvBlock<8>(a, co, f0, stores);
  }
}

inline bool ImplicitConvImpl(const ImplicitConvArgs& a) {
  const int64_t chunks = (a.out_h * a.row_pixels + 31) / 32;
  if (AmxEnabled()) {
    ParallelFor((a.out_channels + 31) / 32 * chunks, 1, [&](int64_t b, int64_t e) { AmxConvItems(a, b, e); });
  } else {
    ParallelFor((a.out_channels + 7) / 8 * chunks, 1, [&](int64_t b, int64_t e) { VnniConvItems(a, b, e); });
  }
  return true;
}

inline bool ImplicitConvSupportedImpl() { return true; }

inline void GemmU8S8Amx(const U8S8GemmArgs& g) {
  AlignedVector<int32_t> own;
  const int8_t* w = reinterpret_cast<const int8_t*>(PackedWeights(g, &own) + AmxWeightsOffset(g.m, g.k));
  const int64_t panels = (g.n + kNr - 1) / kNr, blocks = (g.m + 31) / 32;
  if (panels >= blocks) {
    ParallelFor(panels, 1, [&](int64_t b, int64_t e) { U8S8Amx(g, w, 0, g.m, b * kNr, std::min(g.n, e * kNr)); });
  } else {
    ParallelFor(blocks, 1, [&](int64_t b, int64_t e) { U8S8Amx(g, w, b * 32, std::min(g.m, e * 32), 0, g.n); });
  }
}

// Depthwise convolution with VNNI (AVX3_DL), in strips of 16 output columns. Each input row of a strip is
// loaded once (64 bytes, masked: columns outside the image read as the zero point, so they cancel in the
// correction) and, per group of 4 horizontal taps, permuted once by vpermb so that each output's 4 input
// bytes (columns sw * ox + kx) fill its int32 lane; every output row then adds one vpdpbusd per kernel row
// and group with the 4 weights: a 3x3 kernel at stride 1 is about 1 load, 1 permute and 3 dot products per
// 16 outputs. Rows outside the image read as all zero point. The accumulator starts at the channel's
// correction, bias - zp * sum(w),
// so it ends as the exact sum of (x - zp) * w + bias, then the shared requantization. Kernels up to 8 wide,
// strides 1 and 2 across (any down), no dilation.
inline bool DepthwiseVnniApplies(const Conv2dGeometry& g) {
  return g.dilation_h == 1 && g.dilation_w == 1 && g.kernel_w <= 8 && g.kernel_h <= 16 &&
         (g.stride_w == 1 || g.stride_w == 2);
}

__attribute__((target("avx512vnni,avx512vbmi"))) HWY_ATTR inline void DepthwiseVnniChannels(const QConvArgs& a,
    const int32_t* correction, const uint8_t* HWY_RESTRICT x, uint8_t* HWY_RESTRICT y, int64_t i0, int64_t i1) {
  const Conv2dGeometry& g = a.g;
  const int64_t oh = g.out_h(), ow = g.out_w(), kh = g.kernel_h, kw = g.kernel_w, in_h = g.in_h, in_w = g.in_w;
  const int64_t sw = g.stride_w, sh = g.stride_h, groups4 = (kw + 3) / 4, vectors = (ow + 15) / 16;
  const int64_t mult = g.out_channels / g.in_channels;
  // Per horizontal group: the byte permutation (lane j, byte b <- column sw * j + 4 * group + b) and the
  // bytes that hold real taps.
  __m512i idx[2];
  __mmask64 taps[2];
  for (int64_t q = 0; q < groups4; ++q) {
    alignas(64) uint8_t table[64];
    uint64_t m = 0;
    for (int j = 0; j < 16; ++j) {
      for (int b = 0; b < 4; ++b) {
        table[4 * j + b] = static_cast<uint8_t>(sw * j + 4 * q + b);
        if (4 * q + b < kw) m |= uint64_t{1} << (4 * j + b);
      }
    }
    idx[q] = _mm512_load_si512(table);
    taps[q] = m;
  }
  const __m512i zp_bytes = _mm512_set1_epi8(static_cast<char>(a.x_zero_point));
  const Requant16 requant(a.y_zero_point, a.lo, a.hi);
  __m512i padding[2];  // a row outside the image, permuted
  for (int64_t q = 0; q < groups4; ++q) padding[q] = _mm512_maskz_permutexvar_epi8(taps[q], idx[q], zp_bytes);
  thread_local AlignedVector<__m512i> strip_buffer;  // the permuted input rows of one strip, 2 groups a row
  if (strip_buffer.size() < static_cast<size_t>(2 * in_h)) strip_buffer.resize(static_cast<size_t>(2 * in_h));
  __m512i* const strip = strip_buffer.data();
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t n = item / g.out_channels, co = item % g.out_channels, ci = co / mult;
    const uint8_t* xc = x + (n * g.in_channels + ci) * in_h * in_w;
    uint8_t* yc = y + item * oh * ow;
    const int8_t* w = a.weight + co * kh * kw;
    __m512i wv[16][2];  // per kernel row and group: the 4 weights of every lane's bytes
    for (int64_t ky = 0; ky < kh; ++ky) {
      for (int64_t q = 0; q < groups4; ++q) {
        uint32_t packed = 0;
        for (int64_t b = 0; b < 4 && 4 * q + b < kw; ++b) {
          packed |= static_cast<uint32_t>(static_cast<uint8_t>(w[ky * kw + 4 * q + b])) << (8 * b);
        }
        wv[ky][q] = _mm512_set1_epi32(static_cast<int32_t>(packed));
      }
    }
    const __m512i corr = _mm512_set1_epi32(correction[co]);
    const __m512 mul = _mm512_set1_ps(a.multiplier[co]);
    for (int64_t v = 0; v < vectors; ++v) {  // a strip of 16 output columns, top to bottom
      const int64_t c0 = sw * 16 * v - g.pad_w;  // input column of lane 0, tap 0
      const int64_t first = std::max<int64_t>(0, -c0), last = std::min<int64_t>(64, in_w - c0);
      const __mmask64 inside = last > first ? (_bzhi_u64(~0ULL, static_cast<unsigned>(last)) &
                                               ~_bzhi_u64(~0ULL, static_cast<unsigned>(first)))
                                            : 0;
      // Each input row of the strip is loaded and permuted once, then used by every output row it feeds.
      for (int64_t r = 0; r < in_h; ++r) {
        const __m512i row = _mm512_mask_loadu_epi8(
            zp_bytes, inside, reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(xc + r * in_w) + c0));
        for (int64_t q = 0; q < groups4; ++q) strip[r * 2 + q] = _mm512_maskz_permutexvar_epi8(taps[q], idx[q], row);
      }
      const __mmask16 cols = static_cast<__mmask16>(_bzhi_u32(0xFFFFu, static_cast<unsigned>(std::min<int64_t>(16, ow - 16 * v))));
      for (int64_t oy = 0; oy < oh; ++oy) {
        __m512i acc = corr;
        for (int64_t ky = 0; ky < kh; ++ky) {
          const int64_t iy = oy * sh - g.pad_h + ky;
          const __m512i* in = iy < 0 || iy >= in_h ? padding : strip + iy * 2;
          for (int64_t q = 0; q < groups4; ++q) acc = _mm512_dpbusd_epi32(acc, in[q], wv[ky][q]);
        }
        _mm_mask_storeu_epi8(yc + oy * ow + 16 * v, cols, requant(acc, mul));
      }
    }
  }
}

inline bool DepthwiseQConvImpl(const QConvArgs& a, const int32_t* correction, const uint8_t* x, uint8_t* y) {
  if (!DepthwiseVnniApplies(a.g)) return false;
  ParallelFor(a.g.batch * a.g.out_channels, 2,
              [&](int64_t b, int64_t e) { DepthwiseVnniChannels(a, correction, x, y, b, e); });
  return true;
}

// WindowPanels (gemm_u8s8.h) for panels [p0, p1). A 16-column half of a panel covers output positions
// n0 .. n0 + 15, which may run over several output rows; each row's run is one segment, gathered from its
// own input row: the load starts where lane 0 of the run would read (so one permutation table serves
// every segment: lane j, byte b <- loaded byte sw * j + b) and the permute writes only the run's lanes.
struct WindowSegment {
  __mmask64 lanes;     // the run's 4 bytes per lane
  int64_t iy0;         // input row of kernel row 0
  __mmask64 load[2];   // per tap group: the loaded bytes inside the image
  int64_t col[2];      // per tap group: input column of loaded byte 0 (may be negative)
};

// The runs of the 16 columns from n0 (up to 16, one per output row touched) with what does not depend
// on the input channel or kernel row worked out once.
inline int WindowSegments(const Conv2dGeometry& g, int64_t n0, WindowSegment* seg) {
  const int64_t ow = g.out_w(), n = g.out_h() * ow, gx = (g.kernel_w + 3) / 4;
  int count = 0;
  for (int64_t l = 0; l < 16 && n0 + l < n;) {
    const int64_t oy = (n0 + l) / ow, ox = (n0 + l) % ow, run = std::min<int64_t>(16 - l, ow - ox);
    WindowSegment& s = seg[count++];
    s.lanes = _bzhi_u64(~0ULL, static_cast<unsigned>(4 * (l + run))) & ~_bzhi_u64(~0ULL, static_cast<unsigned>(4 * l));
    s.iy0 = oy * g.stride_h - g.pad_h;
    for (int64_t q = 0; q < gx; ++q) {
      s.col[q] = (ox - l) * g.stride_w - g.pad_w + 4 * q;
      const int64_t first = std::max<int64_t>(0, -s.col[q]), last = std::min<int64_t>(64, g.in_w - s.col[q]);
      s.load[q] = last <= first ? 0
                                : _bzhi_u64(~0ULL, static_cast<unsigned>(last)) & ~_bzhi_u64(~0ULL, static_cast<unsigned>(first));
    }
    l += run;
  }
  return count;
}

__attribute__((target("avx512vbmi"))) HWY_ATTR inline void WindowPanelRange(const Conv2dGeometry& g, const uint8_t* x,
                                                                            int64_t kp, uint8_t pad, uint8_t* panels,
                                                                            int64_t p0, int64_t p1) {
  const int64_t gx = (g.kernel_w + 3) / 4, kh = g.kernel_h, in_w = g.in_w, in_h = g.in_h, channels = g.in_channels;
  const int64_t groups = channels * kh * gx;
  alignas(64) uint8_t table[64];
  for (int j = 0; j < 16; ++j) {
    for (int b = 0; b < 4; ++b) table[4 * j + b] = static_cast<uint8_t>(g.stride_w * j + b);
  }
  const __m512i idx = _mm512_load_si512(table), pad_bytes = _mm512_set1_epi8(static_cast<char>(pad));
  WindowSegment seg[16];
  for (int64_t p = p0; p < p1; ++p) {
    for (int h = 0; h < 2; ++h) {
      uint8_t* dst = panels + p * kp * 32 + h * 64;
      const int count = WindowSegments(g, p * 32 + h * 16, seg);
      for (int64_t ci = 0; ci < channels; ++ci) {
        const uint8_t* xc = x + ci * in_h * in_w;
        for (int64_t ky = 0; ky < kh; ++ky) {
          for (int64_t q = 0; q < gx; ++q) {
            __m512i v = pad_bytes;
            for (int s = 0; s < count; ++s) {
              const int64_t iy = seg[s].iy0 + ky;
              if (iy < 0 || iy >= in_h) continue;
              const __m512i row = _mm512_mask_loadu_epi8(
                  pad_bytes, seg[s].load[q],
                  reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(xc + iy * in_w) + seg[s].col[q]));
              v = _mm512_mask_permutexvar_epi8(v, seg[s].lanes, idx, row);
            }
            _mm512_storeu_si512(dst, v);
            dst += 128;
          }
        }
      }
      for (int64_t q = groups; q < kp / 4; ++q, dst += 128) _mm512_storeu_si512(dst, _mm512_setzero_si512());
    }
  }
}

inline bool WindowPanelsSupportedImpl() { return true; }

inline bool WindowPanelsImpl(const Conv2dGeometry& g, const uint8_t* x, int64_t kp, uint8_t pad, uint8_t* panels) {
  const int64_t npanels = (g.out_h() * g.out_w() + 31) / 32;
  ParallelFor(npanels, 1, [&](int64_t b, int64_t e) { WindowPanelRange(g, x, kp, pad, panels, b, e); });
  return true;
}
#endif  // AVX3_DL

#endif  // AVX2 / AVX3 / AVX3_DL

inline void GemmU8S8Impl(const U8S8GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
#if HWY_TARGET == HWY_AVX3_DL
  if (AmxEnabled()) {
    GemmU8S8Amx(g);
    return;
  }
#endif
#ifdef QFX_U8S8_TILE
  const bool split = !kVnni && !MaddubsIsExact(g);
  const int64_t blocks = (g.m + kMr - 1) / kMr;
  AlignedVector<int32_t> own;
  const int32_t* packed_a = PackedWeights(g, &own);
  if (g.n >= g.m) {
    const int64_t panels = (g.n + kNr - 1) / kNr;
    ParallelFor(panels, 2, [&](int64_t b, int64_t e) {
      U8S8Maddubs(g, packed_a, 0, g.m, b * kNr, std::min(g.n, e * kNr), split);
    });
  } else {
    ParallelFor(blocks, 2, [&](int64_t b, int64_t e) {
      U8S8Maddubs(g, packed_a, b * kMr, std::min(g.m, e * kMr), 0, g.n, split);
    });
  }
#else
  ParallelFor(g.m, 1, [&](int64_t b, int64_t e) { U8S8Portable(g, b, e, 0, g.n); });
#endif
}

#undef QFX_U8S8_TILE

// y[j] = clamp(nearbyint(float(acc[j] + correction) * multiplier) + zero_point, lo, hi): the shared
// requantization (qfx/kernels/int8.h), vectorised. The product is clamped to +-2^30 before the
// round-to-nearest-even conversion, which keeps out-of-range values on the side the scalar rule puts them.
inline void RequantizeRowImpl(const int32_t* HWY_RESTRICT acc, int64_t n, int32_t correction, float multiplier,
                              int32_t zero_point, int32_t lo, int32_t hi, uint8_t* HWY_RESTRICT y) {
  namespace hn = hwy::HWY_NAMESPACE;
  const hn::ScalableTag<int32_t> di;
  const hn::ScalableTag<float> df;
  const hn::Rebind<uint8_t, decltype(di)> du8;
  const int64_t N = static_cast<int64_t>(hn::Lanes(di));
  const auto corr = hn::Set(di, correction), zp = hn::Set(di, zero_point);
  const auto vlo = hn::Set(di, lo), vhi = hn::Set(di, hi);
  const auto mult = hn::Set(df, multiplier);
  const auto big = hn::Set(df, 1073741824.0f), nbig = hn::Set(df, -1073741824.0f);
  int64_t j = 0;
  for (; j + N <= n; j += N) {
    auto v = hn::Mul(hn::ConvertTo(df, hn::Add(hn::LoadU(di, acc + j), corr)), mult);
    v = hn::Min(hn::Max(v, nbig), big);
    auto q = hn::Add(hn::NearestInt(v), zp);
    q = hn::Min(hn::Max(q, vlo), vhi);
    hn::StoreU(hn::DemoteTo(du8, q), du8, y + j);
  }
  for (; j < n; ++j) y[j] = Requantize(acc[j] + correction, multiplier, zero_point, lo, hi);
}

// A few rows of x times the weights, one dot product per (output, row) (batch-1 linear layers, where the
// GEMM's column tiles would be mostly empty): acc[o * rows + r] = sum_k x[r, k] * w[o, k], exact.
// VNNI: 64 bytes a step with vpdpbusd; AVX2 / AVX-512: vpmaddubsw + vpmaddwd when exact (pairs of k, as
// the GEMM's condition); otherwise the portable loop.
#if HWY_TARGET == HWY_AVX3_DL
__attribute__((target("avx512vnni"))) HWY_ATTR inline int32_t DotU8S8(const uint8_t* x, const int8_t* w, int64_t k, bool) {
  __m512i acc = _mm512_setzero_si512();
  int64_t p = 0;
  for (; p + 64 <= k; p += 64) {
    acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(x + p), _mm512_loadu_si512(w + p));
  }
  if (p < k) {
    const __mmask64 m = _bzhi_u64(~0ULL, static_cast<unsigned>(k - p));
    acc = _mm512_dpbusd_epi32(acc, _mm512_maskz_loadu_epi8(m, x + p), _mm512_maskz_loadu_epi8(m, w + p));
  }
  return _mm512_reduce_add_epi32(acc);
}
#elif HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
HWY_ATTR inline int32_t DotU8S8(const uint8_t* x, const int8_t* w, int64_t k, bool maddubs_exact) {
  int64_t p = 0;
  int32_t sum = 0;
  if (maddubs_exact) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    for (; p + 32 <= k; p += 32) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + p));
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + p));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(xv, wv), ones));
    }
    alignas(32) int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
    for (int i = 0; i < 8; ++i) sum += lanes[i];
  }
  for (; p < k; ++p) sum += static_cast<int32_t>(x[p]) * w[p];
  return sum;
}
#else
inline int32_t DotU8S8(const uint8_t* x, const int8_t* w, int64_t k, bool) {
  int32_t sum = 0;
  for (int64_t p = 0; p < k; ++p) sum += static_cast<int32_t>(x[p]) * w[p];
  return sum;
}
#endif

inline void LinearFewRowsImpl(const uint8_t* x, int64_t rows, int64_t k, const int8_t* w, int64_t m, int32_t max_pair,
                              int32_t* acc) {
  uint8_t x_max = 0;
  for (int64_t i = 0; i < rows * k; ++i) x_max = std::max(x_max, x[i]);
  if (max_pair < 0) max_pair = MaxPairAbsSum(w, m, k, k);
  const bool exact = static_cast<int64_t>(max_pair) * x_max <= 32767;
  ParallelFor(m, 16, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      for (int64_t r = 0; r < rows; ++r) acc[o * rows + r] = DotU8S8(x + r * k, w + o * k, k, exact);
    }
  });
}

// Depthwise accumulation (see DepthwisePlaneArgs): the plane is first copied with zero-point borders (and
// slack on the right), so every output row is whole vectors with no bounds checks and no scalar tails —
// the lanes past OW read the slack and are dropped. A vector of outputs keeps its accumulator in a register
// over all taps; products are formed in int16 (exact for u8 x s8) and widened. Stride 2 reads the low bytes
// of uint16 pairs; wider strides run scalar over the same plane. (AVX3_DL CPUs use DepthwiseQConvVnni.)
inline void DepthwiseAccumulateImpl(const DepthwisePlaneArgs& p) {
  namespace hn = hwy::HWY_NAMESPACE;
  const Conv2dGeometry& g = *p.g;
  const hn::ScalableTag<int32_t> d;
  const hn::Rebind<int16_t, decltype(d)> d16;
  const hn::Rebind<uint8_t, decltype(d)> du8;
  const hn::Rebind<uint16_t, decltype(d)> du16;
  const int64_t n = static_cast<int64_t>(hn::Lanes(d));
  const int64_t oh = g.out_h(), ow = g.out_w(), kh = g.kernel_h, kw = g.kernel_w, sh = g.stride_h, sw = g.stride_w;
  const int64_t dh = g.dilation_h, dw = g.dilation_w, vectors = (ow + n - 1) / n;
  // The padded plane: rows of the image with pad_w zero points on the left and, on the right, enough for
  // the last vector's widest read (pair loads read one byte past their last lane).
  const int64_t rows = g.in_h + 2 * g.pad_h, pitch = g.pad_w + g.in_w + vectors * n * sw + (kw - 1) * dw + 2;
  thread_local std::vector<uint8_t> plane_buffer;
  thread_local std::vector<int32_t> row_buffer;
  if (plane_buffer.size() < static_cast<size_t>(rows * pitch)) plane_buffer.resize(static_cast<size_t>(rows * pitch));
  if (row_buffer.size() < static_cast<size_t>(vectors * n)) row_buffer.resize(static_cast<size_t>(vectors * n));
  uint8_t* const plane = plane_buffer.data();
  int32_t* const row = row_buffer.data();
  const uint8_t zp8 = static_cast<uint8_t>(p.x_zero_point);
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* dst = plane + r * pitch;
    const int64_t iy = r - g.pad_h;
    if (iy < 0 || iy >= g.in_h) {
      std::memset(dst, zp8, static_cast<size_t>(pitch));
      continue;
    }
    std::memset(dst, zp8, static_cast<size_t>(g.pad_w));
    std::memcpy(dst + g.pad_w, p.x + iy * g.in_w, static_cast<size_t>(g.in_w));
    std::memset(dst + g.pad_w + g.in_w, zp8, static_cast<size_t>(pitch - g.pad_w - g.in_w));
  }
  if (sw > 2) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      for (int64_t ox = 0; ox < ow; ++ox) {
        int32_t sum = 0;
        for (int64_t ky = 0; ky < kh; ++ky) {
          const uint8_t* in = plane + (oy * sh + ky * dh) * pitch + ox * sw;
          for (int64_t kx = 0; kx < kw; ++kx) sum += p.w[ky * kw + kx] * (static_cast<int32_t>(in[kx * dw]) - p.x_zero_point);
        }
        p.acc[oy * ow + ox] = sum;
      }
    }
    return;
  }
  const auto zp = hn::Set(d16, static_cast<int16_t>(p.x_zero_point));
  const auto low = hn::Set(du16, 0xFF);
  for (int64_t oy = 0; oy < oh; ++oy) {
    for (int64_t v = 0; v < vectors; ++v) {
      auto acc = hn::Zero(d);
      for (int64_t ky = 0; ky < kh; ++ky) {
        const uint8_t* in = plane + (oy * sh + ky * dh) * pitch + v * n * sw;
        for (int64_t kx = 0; kx < kw; ++kx) {
          const uint8_t* at = in + kx * dw;
          const auto x = sw == 1 ? hn::PromoteTo(d16, hn::LoadU(du8, at))
                                 : hn::BitCast(d16, hn::And(hn::LoadU(du16, reinterpret_cast<const uint16_t*>(at)), low));
          const auto w = hn::Set(d16, static_cast<int16_t>(p.w[ky * kw + kx]));
          acc = hn::Add(acc, hn::PromoteTo(d, hn::Mul(hn::Sub(x, zp), w)));
        }
      }
      hn::StoreU(acc, d, row + v * n);
    }
    std::memcpy(p.acc + oy * ow, row, static_cast<size_t>(ow) * sizeof(int32_t));
  }
}

#if HWY_TARGET != HWY_AVX3_DL
inline bool ImplicitConvImpl(const ImplicitConvArgs&) { return false; }
inline bool ImplicitConvSupportedImpl() { return false; }
inline bool DepthwiseQConvImpl(const QConvArgs&, const int32_t*, const uint8_t*, uint8_t*) { return false; }
inline bool WindowPanelsImpl(const Conv2dGeometry&, const uint8_t*, int64_t, uint8_t, uint8_t*) { return false; }
inline bool WindowPanelsSupportedImpl() { return false; }
#endif

// The AMX and register-tile paths requantize; the portable loop (other targets) writes int32 only.
inline bool RequantizesImpl() {
  return HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL;
}

inline bool UsesAmxImpl() {
#if HWY_TARGET == HWY_AVX3_DL
  return AmxEnabled();
#else
  return false;
#endif
}

inline const char* U8S8TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace kernels
}  // namespace qfx
HWY_AFTER_NAMESPACE();

#endif  // include guard
