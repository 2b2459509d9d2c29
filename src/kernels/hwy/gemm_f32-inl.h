// qfx kernels, Highway SIMD: the per-target fp32 GEMM (included once per target by gemm_f32.cc).
//
// Classic Goto/BLIS blocking: C is computed in tiles of kRows x (2 vectors) by a register-blocked
// micro-kernel that broadcasts A (read in place, row-major) and loads B from a packed panel. B is packed
// per (kKc x kNc) block into panels of NR = 2 * Lanes columns, zero-padded at the right edge, so the
// micro-kernel never reads past a panel. Partial tiles go through a stack buffer.
#if defined(QFX_KERNELS_GEMM_F32_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QFX_KERNELS_GEMM_F32_INL_H_
#undef QFX_KERNELS_GEMM_F32_INL_H_
#else
#define QFX_KERNELS_GEMM_F32_INL_H_
#endif

#include <algorithm>
#include <cstring>

#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"
#include "qfx/kernels/f32.h"

HWY_BEFORE_NAMESPACE();
namespace qfx {
namespace kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int64_t kRows = 6;  // rows of C per micro-tile
constexpr int64_t kKc = 256;  // depth of one packed block of B
constexpr int64_t kNc = 384;  // columns of one packed block of B

// Packs B[k0 : k0+kc, j0 : j0+nc] into panels of `nr` columns; panel p is kc rows of nr floats.
// Row-major B is read row by row (sequential reads); a transposed B column by column.
inline void PackB(const GemmArgs& g, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t nr,
                  float* HWY_RESTRICT out) {
  if (g.b_col_stride == 1) {
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = g.b + (k0 + p) * g.b_row_stride + j0;
      for (int64_t jp = 0; jp < nc; jp += nr) {
        const int64_t cols = std::min(nr, nc - jp);
        float* dst = out + jp * kc + p * nr;
        std::memcpy(dst, src + jp, cols * sizeof(float));
        std::fill(dst + cols, dst + nr, 0.f);
      }
    }
    return;
  }
  for (int64_t jp = 0; jp < nc; jp += nr) {
    const int64_t cols = std::min(nr, nc - jp);
    for (int64_t j = 0; j < nr; ++j) {
      float* dst = out + jp * kc + j;
      if (j >= cols) {
        for (int64_t p = 0; p < kc; ++p) dst[p * nr] = 0.f;
        continue;
      }
      const float* src = g.b + k0 * g.b_row_stride + (j0 + jp + j) * g.b_col_stride;
      for (int64_t p = 0; p < kc; ++p) dst[p * nr] = src[p * g.b_row_stride];
    }
  }
}

// C[R x nr tile] (+)= A[R rows, kc] * panel. `accumulate` adds to C; `cols` <= nr are written.
template <int R>
HWY_INLINE void MicroKernel(const float* HWY_RESTRICT a, int64_t lda, const float* HWY_RESTRICT panel, int64_t kc,
                            float* HWY_RESTRICT c, int64_t ldc, int64_t cols, bool accumulate) {
  const hn::ScalableTag<float> d;
  const size_t N = hn::Lanes(d);
  using V = hn::Vec<decltype(d)>;
  // The r loops must be fully unrolled so that the accumulators live in registers.
  V acc0[R], acc1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    acc0[r] = hn::Zero(d);
    acc1[r] = hn::Zero(d);
  }
  for (int64_t p = 0; p < kc; ++p) {
    const V b0 = hn::Load(d, panel + p * 2 * N);
    const V b1 = hn::Load(d, panel + p * 2 * N + N);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const V av = hn::Set(d, a[r * lda + p]);
      acc0[r] = hn::MulAdd(av, b0, acc0[r]);
      acc1[r] = hn::MulAdd(av, b1, acc1[r]);
    }
  }
  const bool full = cols == static_cast<int64_t>(2 * N);
  HWY_ALIGN float tile[2 * HWY_MAX_BYTES / sizeof(float)];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* crow = c + r * ldc;
    if (full) {
      V v0 = acc0[r], v1 = acc1[r];
      if (accumulate) {
        v0 = hn::Add(v0, hn::LoadU(d, crow));
        v1 = hn::Add(v1, hn::LoadU(d, crow + N));
      }
      hn::StoreU(v0, d, crow);
      hn::StoreU(v1, d, crow + N);
      continue;
    }
    hn::Store(acc0[r], d, tile);
    hn::Store(acc1[r], d, tile + N);
    for (int64_t j = 0; j < cols; ++j) crow[j] = accumulate ? crow[j] + tile[j] : tile[j];
  }
}

inline void MicroKernelRows(int64_t rows, const float* a, int64_t lda, const float* panel, int64_t kc, float* c,
                            int64_t ldc, int64_t cols, bool accumulate) {
  switch (rows) {
    case 6:
      return MicroKernel<6>(a, lda, panel, kc, c, ldc, cols, accumulate);
    case 5:
      return MicroKernel<5>(a, lda, panel, kc, c, ldc, cols, accumulate);
    case 4:
      return MicroKernel<4>(a, lda, panel, kc, c, ldc, cols, accumulate);
    case 3:
      return MicroKernel<3>(a, lda, panel, kc, c, ldc, cols, accumulate);
    case 2:
      return MicroKernel<2>(a, lda, panel, kc, c, ldc, cols, accumulate);
    default:
      return MicroKernel<1>(a, lda, panel, kc, c, ldc, cols, accumulate);
  }
}

// Computes rows [m0, m1) and columns [n0, n1) of C on the calling thread.
inline void GemmBlock(const GemmArgs& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const hn::ScalableTag<float> d;
  const int64_t nr = static_cast<int64_t>(2 * hn::Lanes(d));
  const int64_t nc_cap = (kNc + nr - 1) / nr * nr;
  thread_local hwy::AlignedFreeUniquePtr<float[]> packed;
  thread_local size_t packed_size = 0;
  const size_t need = static_cast<size_t>(kKc * nc_cap);
  if (packed_size < need) {
    packed = hwy::AllocateAligned<float>(need);
    packed_size = need;
  }
  for (int64_t jc = n0; jc < n1; jc += kNc) {
    const int64_t nc = std::min(kNc, n1 - jc);
    for (int64_t pc = 0; pc < g.k; pc += kKc) {
      const int64_t kc = std::min(kKc, g.k - pc);
      PackB(g, pc, kc, jc, nc, nr, packed.get());
      for (int64_t i = m0; i < m1; i += kRows) {
        const int64_t rows = std::min(kRows, m1 - i);
        for (int64_t jp = 0; jp < nc; jp += nr) {
          MicroKernelRows(rows, g.a + i * g.lda + pc, g.lda, packed.get() + jp * kc, kc, g.c + i * g.ldc + jc + jp,
                          g.ldc, std::min(nr, nc - jp), pc > 0);
        }
      }
    }
  }
}

// Dot product of two contiguous float rows of length k, four accumulators deep.
inline float Dot(const float* HWY_RESTRICT x, const float* HWY_RESTRICT y, int64_t k) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  auto s0 = hn::Zero(d), s1 = hn::Zero(d), s2 = hn::Zero(d), s3 = hn::Zero(d);
  int64_t p = 0;
  for (; p + 4 * N <= k; p += 4 * N) {
    s0 = hn::MulAdd(hn::LoadU(d, x + p), hn::LoadU(d, y + p), s0);
    s1 = hn::MulAdd(hn::LoadU(d, x + p + N), hn::LoadU(d, y + p + N), s1);
    s2 = hn::MulAdd(hn::LoadU(d, x + p + 2 * N), hn::LoadU(d, y + p + 2 * N), s2);
    s3 = hn::MulAdd(hn::LoadU(d, x + p + 3 * N), hn::LoadU(d, y + p + 3 * N), s3);
  }
  for (; p + N <= k; p += N) s0 = hn::MulAdd(hn::LoadU(d, x + p), hn::LoadU(d, y + p), s0);
  float sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(s0, s1), hn::Add(s2, s3))));
  for (; p < k; ++p) sum += x[p] * y[p];
  return sum;
}

// Few rows of A times a transposed B (Linear at small batch): one dot product per output, with no
// packing, since each column of B is a contiguous row of the weight.
inline void GemmSmallMTransposedB(const GemmArgs& g) {
  ParallelFor(g.n, 16, [&](int64_t b, int64_t e) {
    for (int64_t i = 0; i < g.m; ++i) {
      for (int64_t j = b; j < e; ++j) g.c[i * g.ldc + j] = Dot(g.a + i * g.lda, g.b + j * g.b_col_stride, g.k);
    }
  });
}

// Whole GEMM, split over threads along N (wide outputs) or M (tall ones).
inline void GemmF32Impl(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0) {
    for (int64_t i = 0; i < g.m; ++i) std::fill(g.c + i * g.ldc, g.c + i * g.ldc + g.n, 0.f);
    return;
  }
  if (g.m < kRows && g.b_row_stride == 1) return GemmSmallMTransposedB(g);
  const hn::ScalableTag<float> d;
  const int64_t nr = static_cast<int64_t>(2 * hn::Lanes(d));
  if (g.n >= g.m) {
    const int64_t panels = (g.n + nr - 1) / nr;
    ParallelFor(panels, 4, [&](int64_t b, int64_t e) { GemmBlock(g, 0, g.m, b * nr, std::min(g.n, e * nr)); });
  } else {
    const int64_t tiles = (g.m + kRows - 1) / kRows;
    ParallelFor(tiles, 2, [&](int64_t b, int64_t e) { GemmBlock(g, b * kRows, std::min(g.m, e * kRows), 0, g.n); });
  }
}

inline const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace kernels
}  // namespace qfx
HWY_AFTER_NAMESPACE();

#endif  // include guard
