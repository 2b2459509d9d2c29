// qfx kernels, Highway SIMD: the per-target fp32 depthwise convolution (included once per target by
// gemm_f32.cc).
//
// Each input plane is first copied with its columns zero-padded (so no tap needs a bounds check), then the
// outputs are computed one row at a time in vectors of output pixels: each vector starts at the bias and
// takes every kernel tap in registers, then is stored once. Each tap is a multiply then an add, unfused and
// in the oracle's order, so the sums are the scalar loop's (a padded tap adds a zero). Stride 1 loads the
// taps' inputs unaligned; stride 2 loads twice as many and keeps the even lanes (ConcatEven); other
// strides go pixel by pixel.
#if defined(QFX_KERNELS_DWCONV_F32_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QFX_KERNELS_DWCONV_F32_INL_H_
#undef QFX_KERNELS_DWCONV_F32_INL_H_
#else
#define QFX_KERNELS_DWCONV_F32_INL_H_
#endif

#include <algorithm>

#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"
#include "qfx/core/parallel.h"
#include "qfx/kernels/f32.h"
#include "src/kernels/hwy/gemm_f32-inl.h"  // ApplyEpilogue

HWY_BEFORE_NAMESPACE();
namespace qfx {
namespace kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// One input plane with its columns padded: column ix of the image is at pad_w + ix, zeros around it, rows
// `width` apart, wide enough for every read of DepthwiseRow.
struct PaddedPlane {
  const float* data;
  int64_t width, height;
  // Row iy, or a row of zeros for iy in the vertical padding.
  const float* Row(int64_t iy) const { return data + (iy >= 0 && iy < height ? iy : height) * width; }
};

inline PaddedPlane PadColumns(const Conv2dGeometry& g, const float* x, int64_t lanes) {
  const int64_t ow = g.out_w(), sw = g.stride_w, vectors = (ow + lanes - 1) / lanes;
  // Highest column read: the last lane of the last vector, its last tap, and stride 2's extra odd lane.
  const int64_t width = (vectors * lanes - 1) * sw + (g.kernel_w - 1) * g.dilation_w + sw;
  const int64_t need = (g.in_h + 1) * width;  // one more row, all zeros: ZeroRow
  thread_local hwy::AlignedFreeUniquePtr<float[]> buffer;
  thread_local int64_t size = 0;
  if (size < need) {
    buffer = hwy::AllocateAligned<float>(static_cast<size_t>(need));
    size = need;
  }
  float* out = buffer.get();
  std::fill(out + g.in_h * width, out + need, 0.f);
  const int64_t left = std::min(g.pad_w, width), copied = std::max<int64_t>(0, std::min(g.in_w, width - left));
  for (int64_t iy = 0; iy < g.in_h; ++iy) {
    float* row = out + iy * width;
    std::fill(row, row + left, 0.f);
    std::copy(x + iy * g.in_w, x + iy * g.in_w + copied, row + left);
    std::fill(row + left + copied, row + width, 0.f);
  }
  return {out, width, g.in_h};
}

// A tap's inputs for N consecutive outputs at stride 1 or 2: p[0], p[stride], ..., p[(N - 1) * stride].
template <class D>
HWY_INLINE hn::Vec<D> LoadTap(D d, const float* p, int64_t stride) {
#if HWY_TARGET == HWY_SCALAR  // one lane: the first is the even one
  (void)stride;
  return hn::LoadU(d, p);
#else
  return stride == 1 ? hn::LoadU(d, p) : hn::ConcatEven(d, hn::LoadU(d, p + hn::Lanes(d)), hn::LoadU(d, p));
#endif
}

// yr[0, ow) = vector(0), vector(N), ...; the last, partial vector goes through a stack buffer.
template <class D, class VectorFn>
HWY_INLINE void StoreRow(D d, int64_t ow, const VectorFn& vector, float* HWY_RESTRICT yr) {
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t ox = 0;
  for (; ox + N <= ow; ox += N) hn::StoreU(vector(ox), d, yr + ox);
  if (ox < ow) {
    HWY_ALIGN float tail[HWY_MAX_BYTES / sizeof(float)];
    hn::Store(vector(ox), d, tail);
    std::copy(tail, tail + (ow - ox), yr + ox);
  }
}

// Outputs [ox, ox + N) of row oy from the padded plane; taps in the vertical padding are skipped.
template <class D>
HWY_INLINE hn::Vec<D> DepthwiseVector(D d, const Conv2dGeometry& g, const PaddedPlane& x, const float* w, float b,
                                      int64_t oy, int64_t ox) {
  auto acc = hn::Set(d, b);
  for (int64_t ky = 0; ky < g.kernel_h; ++ky) {
    const int64_t iy = oy * g.stride_h - g.pad_h + ky * g.dilation_h;
    if (iy < 0 || iy >= g.in_h) continue;
    const float* xr = x.data + iy * x.width + ox * g.stride_w;
    for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
      const auto v = LoadTap(d, xr + kx * g.dilation_w, g.stride_w);
      acc = hn::Add(acc, hn::Mul(v, hn::Set(d, w[ky * g.kernel_w + kx])));
    }
  }
  return acc;
}

// Output pixel (oy, ox) from the padded plane, scalar (strides other than 1 and 2).
inline float DepthwisePixel(const Conv2dGeometry& g, const PaddedPlane& x, const float* w, float b, int64_t oy,
                            int64_t ox) {
  float acc = b;
  for (int64_t ky = 0; ky < g.kernel_h; ++ky) {
    const int64_t iy = oy * g.stride_h - g.pad_h + ky * g.dilation_h;
    if (iy < 0 || iy >= g.in_h) continue;
    const float* xr = x.data + iy * x.width + ox * g.stride_w;
    for (int64_t kx = 0; kx < g.kernel_w; ++kx) acc += xr[kx * g.dilation_w] * w[ky * g.kernel_w + kx];
  }
  return acc;
}

// Row oy of a K x K kernel with stride S, all taps unrolled with the weights in registers; taps in the
// vertical padding read the zero row.
template <int K, int S, class D>
HWY_INLINE void DepthwiseRowK(D d, const Conv2dGeometry& g, const PaddedPlane& x, const hn::Vec<D>* wv, float b,
                              const ConvEpilogue* post, int64_t co, int64_t oy, float* HWY_RESTRICT yr) {
  const int64_t dw = g.dilation_w;
  const float* rows[K];
  for (int ky = 0; ky < K; ++ky) rows[ky] = x.Row(oy * g.stride_h - g.pad_h + ky * g.dilation_h);
  const auto vector = [&](int64_t ox) {
    auto acc = hn::Set(d, b);
#pragma GCC unroll 8
    for (int ky = 0; ky < K; ++ky) {
#pragma GCC unroll 8
      for (int kx = 0; kx < K; ++kx) {
        acc = hn::Add(acc, hn::Mul(LoadTap(d, rows[ky] + ox * S + kx * dw, S), wv[ky * K + kx]));
      }
    }
    return post ? ApplyEpilogue(d, acc, *post, co) : acc;
  };
  StoreRow(d, g.out_w(), vector, yr);
}

template <int K, int S>
inline void DepthwisePlaneK(const Conv2dGeometry& g, const PaddedPlane& x, const float* w, float b,
                            const ConvEpilogue* post, int64_t co, float* y) {
  const hn::ScalableTag<float> d;
  hn::Vec<decltype(d)> wv[K * K];
  for (int i = 0; i < K * K; ++i) wv[i] = hn::Set(d, w[i]);
  const int64_t oh = g.out_h(), ow = g.out_w();
  for (int64_t oy = 0; oy < oh; ++oy) DepthwiseRowK<K, S>(d, g, x, wv, b, post, co, oy, y + oy * ow);
}

// One output plane (channel co): one input channel x, one filter w, then post's epilogue if not null.
inline void DepthwisePlane(const Conv2dGeometry& g, const float* x, const float* w, float b, const ConvEpilogue* post,
                           int64_t co, float* y) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d)), oh = g.out_h(), ow = g.out_w();
  const PaddedPlane xp = PadColumns(g, x, N);
  if (g.kernel_h == g.kernel_w && (g.stride_w == 1 || g.stride_w == 2) && (g.kernel_w == 3 || g.kernel_w == 5)) {
    const int key = static_cast<int>(g.kernel_w * 10 + g.stride_w);
    if (key == 31) return DepthwisePlaneK<3, 1>(g, xp, w, b, post, co, y);
    if (key == 32) return DepthwisePlaneK<3, 2>(g, xp, w, b, post, co, y);
    if (key == 51) return DepthwisePlaneK<5, 1>(g, xp, w, b, post, co, y);
    return DepthwisePlaneK<5, 2>(g, xp, w, b, post, co, y);
  }
  for (int64_t oy = 0; oy < oh; ++oy) {
    float* yr = y + oy * ow;
    if (g.stride_w > 2) {
      for (int64_t ox = 0; ox < ow; ++ox) {
        const float v = DepthwisePixel(g, xp, w, b, oy, ox);
        yr[ox] = post ? post->Apply(v, co) : v;
      }
      continue;
    }
    const auto vector = [&](int64_t ox) {
      const auto v = DepthwiseVector(d, g, xp, w, b, oy, ox);
      return post ? ApplyEpilogue(d, v, *post, co) : v;
    };
    StoreRow(d, ow, vector, yr);
  }
}

// y[N, C_out, OH, OW] for groups == C_in, C_out a multiple of C_in; one plane per work item.
inline void DepthwiseConv(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                          const ConvEpilogue* post, float* y) {
  const int64_t mult = g.out_channels / g.in_channels, hw = g.in_h * g.in_w;
  const int64_t ohw = g.out_h() * g.out_w(), khw = g.kernel_h * g.kernel_w;
  ParallelFor(g.batch * g.out_channels, 4, [&](int64_t b, int64_t e) {
    for (int64_t idx = b; idx < e; ++idx) {
      const int64_t n = idx / g.out_channels, co = idx % g.out_channels, ci = co / mult;
      DepthwisePlane(g, x + (n * g.in_channels + ci) * hw, w + co * khw, bias ? bias[co] : 0.f, post, co,
                     y + idx * ohw);
    }
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace kernels
}  // namespace qfx
HWY_AFTER_NAMESPACE();

#endif  // include guard
