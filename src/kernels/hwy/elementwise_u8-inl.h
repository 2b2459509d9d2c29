// qfx kernels, Highway targets: quint8 add / mul with requantization (included per target by
// elementwise_u8.cc). Same float operations in the same order as the scalar oracle; the product is
// clamped to +-2^30 before the round-half-to-even conversion, as in RequantizeRowImpl.
#if defined(QFX_KERNELS_ELEMENTWISE_U8_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QFX_KERNELS_ELEMENTWISE_U8_INL_H_
#undef QFX_KERNELS_ELEMENTWISE_U8_INL_H_
#else
#define QFX_KERNELS_ELEMENTWISE_U8_INL_H_
#endif

#include <cmath>

#include "hwy/highway.h"
#include "qfx/core/parallel.h"
#include "qfx/kernels/int8.h"

HWY_BEFORE_NAMESPACE();
namespace qfx {
namespace kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <bool kMul>
HWY_INLINE void QBinaryRange(const QBinaryArgs& q, const uint8_t* HWY_RESTRICT a, const uint8_t* HWY_RESTRICT b,
                             uint8_t* HWY_RESTRICT y, int64_t begin, int64_t end) {
  const hn::ScalableTag<int32_t> di;
  const hn::ScalableTag<float> df;
  const hn::Rebind<uint8_t, decltype(di)> du8;
  const int64_t N = static_cast<int64_t>(hn::Lanes(di));
  const auto za = hn::Set(di, q.a_zero_point), zb = hn::Set(di, q.b_zero_point), zy = hn::Set(di, q.y_zero_point);
  const auto sa = hn::Set(df, q.a_scale), sb = hn::Set(df, q.b_scale), inv = hn::Set(df, 1.0f / q.y_scale);
  const auto big = hn::Set(df, 1073741824.0f), nbig = hn::Set(df, -1073741824.0f), zero = hn::Zero(df);
  const auto lo = hn::Zero(di), hi = hn::Set(di, 255);
  int64_t i = begin;
  for (; i + N <= end; i += N) {
    const auto da = hn::Mul(hn::ConvertTo(df, hn::Sub(hn::PromoteTo(di, hn::LoadU(du8, a + i)), za)), sa);
    const auto db = hn::Mul(hn::ConvertTo(df, hn::Sub(hn::PromoteTo(di, hn::LoadU(du8, b + i)), zb)), sb);
    auto v = kMul ? hn::Mul(da, db) : hn::Add(da, db);
    if (!kMul && q.relu) v = hn::Max(v, zero);
    v = hn::Min(hn::Max(hn::Mul(v, inv), nbig), big);
    const auto r = hn::Min(hn::Max(hn::Add(hn::NearestInt(v), zy), lo), hi);
    hn::StoreU(hn::DemoteTo(du8, r), du8, y + i);
  }
  if (i < end) {
    QBinaryArgs tail = q;
    tail.n = end - i;
    if (kMul) {
      ref::QMul(tail, a + i, b + i, y + i);
    } else {
      ref::QAdd(tail, a + i, b + i, y + i);
    }
  }
}

inline void QAddImpl(const QBinaryArgs& q, const uint8_t* a, const uint8_t* b, uint8_t* y) {
  ParallelFor(q.n, 1 << 15, [&](int64_t s, int64_t e) { QBinaryRange<false>(q, a, b, y, s, e); });
}
inline void QMulImpl(const QBinaryArgs& q, const uint8_t* a, const uint8_t* b, uint8_t* y) {
  ParallelFor(q.n, 1 << 15, [&](int64_t s, int64_t e) { QBinaryRange<true>(q, a, b, y, s, e); });
}

// x -> quint8: q = clamp(zp + nearbyint(x * inv), 0, qmax), the scalar QuantizeValue rule (the product is
// clamped to +-2^30 first, which changes no in-range result).
inline void QuantizeU8Impl(const float* HWY_RESTRICT x, int64_t n, float inv, int32_t zero_point, int32_t qmax,
                           uint8_t* HWY_RESTRICT y) {
  const hn::ScalableTag<float> df;
  const hn::ScalableTag<int32_t> di;
  const hn::Rebind<uint8_t, decltype(di)> du8;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const auto vinv = hn::Set(df, inv), big = hn::Set(df, 1073741824.0f), nbig = hn::Set(df, -1073741824.0f);
  const auto zp = hn::Set(di, zero_point), lo = hn::Zero(di), hi = hn::Set(di, qmax);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = hn::Min(hn::Max(hn::Mul(hn::LoadU(df, x + i), vinv), nbig), big);
    const auto q = hn::Min(hn::Max(hn::Add(hn::NearestInt(v), zp), lo), hi);
    hn::StoreU(hn::DemoteTo(du8, q), du8, y + i);
  }
  for (; i < n; ++i) y[i] = static_cast<uint8_t>(QuantizeValue(x[i], inv, zero_point, 0, qmax));
}

inline bool MinMaxImpl(const float* HWY_RESTRICT x, int64_t n, float* lo, float* hi) {
  const hn::ScalableTag<float> df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  if (n < N) return ref::MinMax(x, n, lo, hi);
  auto vlo = hn::LoadU(df, x), vhi = vlo;
  auto nonfinite = hn::Sub(vlo, vlo);  // v - v: 0 for finite values, NaN for NaN and infinities
  int64_t i = N;
  for (; i + N <= n; i += N) {
    const auto v = hn::LoadU(df, x + i);
    vlo = hn::Min(vlo, v);
    vhi = hn::Max(vhi, v);
    nonfinite = hn::Add(nonfinite, hn::Sub(v, v));
  }
  float l = hn::GetLane(hn::MinOfLanes(df, vlo)), h = hn::GetLane(hn::MaxOfLanes(df, vhi));
  bool finite = hn::GetLane(hn::SumOfLanes(df, nonfinite)) == 0.f;
  for (; i < n; ++i) {
    l = std::min(l, x[i]);
    h = std::max(h, x[i]);
    finite = finite && std::isfinite(x[i]);
  }
  *lo = l;
  *hi = h;
  return finite;
}

}  // namespace HWY_NAMESPACE
}  // namespace kernels
}  // namespace qfx
HWY_AFTER_NAMESPACE();

#endif  // include guard
