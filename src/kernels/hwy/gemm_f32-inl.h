// qfx kernels, Highway SIMD: the per-target fp32 GEMM (included once per target by gemm_f32.cc).
//
// Classic Goto/BLIS blocking: C is computed in tiles of kRows x (2 vectors) by a register-blocked
// micro-kernel that broadcasts A (read in place, row-major) and loads B from a packed panel. B is packed
// per (kKc x kNc) block into panels of NR = 2 * Lanes columns, zero-padded at the right edge, so the
// micro-kernel never reads past a panel. Partial tiles go through a stack buffer.
//
// Convolutions (Conv2dGemm) pack each block of B, their im2col matrix, straight from the image into the
// same panels, so no im2col matrix is ever written; the bias is added as the last block is stored.
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
#include "qfx/core/parallel.h"
#include "qfx/kernels/f32.h"
#include "src/kernels/im2col.h"

HWY_BEFORE_NAMESPACE();
namespace qfx {
namespace kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int64_t kRows = 6;  // rows of C per micro-tile
constexpr int64_t kKc = 256;  // depth of one packed block of B
constexpr int64_t kNc = 384;  // columns of one packed block of B

// dst[0, nr) = src[0, cols), zero-filled past cols; dst is vector-aligned and nr a multiple of the lanes.
HWY_INLINE void CopyPanelRow(const float* HWY_RESTRICT src, int64_t cols, int64_t nr, float* HWY_RESTRICT dst) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  if (cols == nr) {
    for (int64_t j = 0; j < nr; j += N) hn::Store(hn::LoadU(d, src + j), d, dst + j);
    return;
  }
  std::memcpy(dst, src, cols * sizeof(float));
  std::fill(dst + cols, dst + nr, 0.f);
}

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
        CopyPanelRow(src + jp, cols, nr, dst);
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

// A convolution's epilogue (ConvEpilogue) on a vector of outputs of channel c.
template <class D>
HWY_INLINE hn::Vec<D> ApplyEpilogue(D d, hn::Vec<D> v, const ConvEpilogue& post, int64_t c) {
  if (post.scale != nullptr) v = hn::Add(hn::Mul(v, hn::Set(d, post.scale[c])), hn::Set(d, post.shift[c]));
  if (post.activation == ConvEpilogue::Activation::kRelu) {
    const auto zero = hn::Zero(d);
    return hn::IfThenElse(hn::Gt(v, zero), v, zero);
  }
  if (post.activation == ConvEpilogue::Activation::kHardtanh) {
    const auto lo = hn::Set(d, post.lo), hi = hn::Set(d, post.hi);
    v = hn::IfThenElse(hn::Lt(v, lo), lo, v);     // std::max(v, lo)
    return hn::IfThenElse(hn::Lt(hi, v), hi, v);  // std::min(v, hi)
  }
  return v;
}

// C[R x nr tile] (+)= A[R rows, kc] * panel, then for tile row r (C row `row` + r) + bias[row + r] if bias is
// not null and post's epilogue of channel row + r if post is not null (the last depth block of a
// convolution: its bias comes after the whole sum, as in the oracle). `accumulate` adds to C; `cols` <= nr
// are written.
template <int R>
HWY_INLINE void MicroKernel(const float* HWY_RESTRICT a, int64_t lda, const float* HWY_RESTRICT panel, int64_t kc,
                            float* HWY_RESTRICT c, int64_t ldc, int64_t cols, bool accumulate,
                            const float* HWY_RESTRICT bias, const ConvEpilogue* post, int64_t row) {
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
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* crow = c + r * ldc;
    V v0 = acc0[r], v1 = acc1[r];
    if (full) {
      if (accumulate) {
        v0 = hn::Add(hn::LoadU(d, crow), v0);
        v1 = hn::Add(hn::LoadU(d, crow + N), v1);
      }
      if (bias) {
        v0 = hn::Add(v0, hn::Set(d, bias[row + r]));
        v1 = hn::Add(v1, hn::Set(d, bias[row + r]));
      }
      if (post) {
        v0 = ApplyEpilogue(d, v0, *post, row + r);
        v1 = ApplyEpilogue(d, v1, *post, row + r);
      }
      hn::StoreU(v0, d, crow);
      hn::StoreU(v1, d, crow + N);
      continue;
    }
    HWY_ALIGN float tile[2 * HWY_MAX_BYTES / sizeof(float)] = {};  // a partial tile: edges only
    hn::Store(v0, d, tile);
    hn::Store(v1, d, tile + N);
    for (int64_t j = 0; j < cols; ++j) {
      float v = accumulate ? crow[j] + tile[j] : tile[j];
      if (bias) v += bias[row + r];
      crow[j] = post ? post->Apply(v, row + r) : v;
    }
  }
}

inline void MicroKernelRows(int64_t rows, const float* a, int64_t lda, const float* panel, int64_t kc, float* c,
                            int64_t ldc, int64_t cols, bool accumulate, const float* bias = nullptr,
                            const ConvEpilogue* post = nullptr, int64_t row = 0) {
  switch (rows) {
    case 6:
      return MicroKernel<6>(a, lda, panel, kc, c, ldc, cols, accumulate, bias, post, row);
    case 5:
      return MicroKernel<5>(a, lda, panel, kc, c, ldc, cols, accumulate, bias, post, row);
    case 4:
      return MicroKernel<4>(a, lda, panel, kc, c, ldc, cols, accumulate, bias, post, row);
    case 3:
      return MicroKernel<3>(a, lda, panel, kc, c, ldc, cols, accumulate, bias, post, row);
    case 2:
      return MicroKernel<2>(a, lda, panel, kc, c, ldc, cols, accumulate, bias, post, row);
    default:
      return MicroKernel<1>(a, lda, panel, kc, c, ldc, cols, accumulate, bias, post, row);
  }
}

// Computes rows [m0, m1) and columns [n0, n1) of C = A * B (+ bias[row], then post's epilogue of channel
// row, when not null) on the calling thread, where pack(k0, kc, j0, nc, nr, out) packs that block of B as
// PackB does. C rows are ldc apart.
template <class PackFn>
inline void GemmBlockWith(const float* a, int64_t lda, int64_t k, const float* bias, const ConvEpilogue* post, float* c,
                          int64_t ldc, int64_t m0, int64_t m1, int64_t n0, int64_t n1, const PackFn& pack) {
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
    for (int64_t pc = 0; pc < k; pc += kKc) {
      const int64_t kc = std::min(kKc, k - pc);
      pack(pc, kc, jc, nc, nr, packed.get());
      for (int64_t i = m0; i < m1; i += kRows) {
        const int64_t rows = std::min(kRows, m1 - i);
        const bool last = pc + kc == k;
        for (int64_t jp = 0; jp < nc; jp += nr) {
          MicroKernelRows(rows, a + i * lda + pc, lda, packed.get() + jp * kc, kc, c + i * ldc + jc + jp, ldc,
                          std::min(nr, nc - jp), pc > 0, last ? bias : nullptr, last ? post : nullptr, i);
        }
      }
    }
  }
}

inline void GemmBlock(const GemmArgs& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  GemmBlockWith(g.a, g.lda, g.k, nullptr, nullptr, g.c, g.ldc, m0, m1, n0, n1,
                [&](int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t nr, float* out) {
                  PackB(g, k0, kc, j0, nc, nr, out);
                });
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

// Packs rows [k0, k0 + kc) and columns [j0, j0 + nc) of a convolution's im2col matrix (one image and group
// at x) into panels as PackB does, straight from the image: each row goes through a stack buffer, in L1
// (1x1 stride-1 unpadded convolutions copy the input planes directly).
inline void PackConvB(const Conv2dGeometry& g, const float* x, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
                      int64_t nr, float* HWY_RESTRICT out) {
  const bool pointwise =
      g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
  if (pointwise) {  // row p of the im2col matrix is input plane p itself
    const int64_t hw = g.in_h * g.in_w;
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = x + (k0 + p) * hw + j0;
      for (int64_t jp = 0; jp < nc; jp += nr) CopyPanelRow(src + jp, std::min(nr, nc - jp), nr, out + jp * kc + p * nr);
    }
    return;
  }
  HWY_ALIGN float row[kNc + 2 * HWY_MAX_BYTES / sizeof(float)];
  const int64_t padded = (nc + nr - 1) / nr * nr;
  std::fill(row + nc, row + padded, 0.f);
  for (int64_t p = 0; p < kc; ++p) {
    Im2ColRowRange(g, x, k0 + p, j0, j0 + nc, 0.f, row);
    for (int64_t jp = 0; jp < nc; jp += nr) CopyPanelRow(row + jp, nr, nr, out + jp * kc + p * nr);
  }
}

// Fraction of the threads' time that is work when `units` equal units are split into contiguous chunks.
inline double SplitBalance(int64_t units, int64_t threads) {
  const int64_t chunks = std::min(units, threads), per = (units + chunks - 1) / chunks;
  return static_cast<double>(units) / static_cast<double>(per * threads);
}

// A convolution (not depthwise) as one GEMM per image and group, y = w * im2col(x) + bias, split over the
// threads along whichever of N (panels of output pixels) and M (tiles of output channels) divides more evenly.
inline void Conv2dGemm(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                       const ConvEpilogue* post, float* y) {
  const hn::ScalableTag<float> d;
  const int64_t nr = static_cast<int64_t>(2 * hn::Lanes(d));
  const int64_t ohw = g.out_h() * g.out_w(), panels = (ohw + nr - 1) / nr;
  const int64_t cin_g = g.in_channels / g.groups, cout_g = g.out_channels / g.groups;
  const int64_t kdim = cin_g * g.kernel_h * g.kernel_w, tiles = (cout_g + kRows - 1) / kRows;
  const bool split_n = SplitBalance(panels, NumThreads()) >= SplitBalance(tiles, NumThreads());
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const float* xg = x + (n * g.in_channels + grp * cin_g) * g.in_h * g.in_w;
      const float* wg = w + grp * cout_g * kdim;
      const float* bg = bias ? bias + grp * cout_g : nullptr;
      ConvEpilogue group_post;  // the group's channels from 0
      if (post) {
        group_post = *post;
        if (post->scale) group_post.scale += grp * cout_g, group_post.shift += grp * cout_g;
      }
      const ConvEpilogue* pg = post ? &group_post : nullptr;
      float* yg = y + (n * g.out_channels + grp * cout_g) * ohw;
      const auto pack = [&](int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t r, float* out) {
        PackConvB(g, xg, k0, kc, j0, nc, r, out);
      };
      if (split_n) {
        ParallelFor(panels, 1, [&](int64_t q0, int64_t q1) {
          GemmBlockWith(wg, kdim, kdim, bg, pg, yg, ohw, 0, cout_g, q0 * nr, std::min(ohw, q1 * nr), pack);
        });
      } else {
        ParallelFor(tiles, 1, [&](int64_t t0, int64_t t1) {
          GemmBlockWith(wg, kdim, kdim, bg, pg, yg, ohw, t0 * kRows, std::min(cout_g, t1 * kRows), 0, ohw, pack);
        });
      }
    }
  }
}

inline const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace kernels
}  // namespace qfx
HWY_AFTER_NAMESPACE();

#endif  // include guard
