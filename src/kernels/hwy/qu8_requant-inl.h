// qfx kernels, Highway (every target): RequantizeRow, the shared requantization of a row of exact int32
// sums into uint8, bit-identical to kernels::Requantize (THE RULES). Used by the depthwise and portable
// GEMM paths' epilogues and by the vpmaddubsw tiles.
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes).

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
