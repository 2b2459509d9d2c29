// qfx kernels, Highway SIMD: run-time dispatch for quint8 add / mul, quantize and min/max (see
// elementwise_u8-inl.h).
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL 1
#endif
#include "qfx/kernels/int8.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/hwy/elementwise_u8.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "src/kernels/hwy/elementwise_u8-inl.h"

#if HWY_ONCE
namespace qfx {
namespace kernels {

HWY_EXPORT(QAddImpl);
HWY_EXPORT(QMulImpl);
HWY_EXPORT(QuantizeU8Impl);
HWY_EXPORT(MinMaxImpl);

void QAdd(const QBinaryArgs& q, const uint8_t* a, const uint8_t* b, uint8_t* y) {
  HWY_DYNAMIC_DISPATCH(QAddImpl)(q, a, b, y);
}
void QMul(const QBinaryArgs& q, const uint8_t* a, const uint8_t* b, uint8_t* y) {
  HWY_DYNAMIC_DISPATCH(QMulImpl)(q, a, b, y);
}
void QuantizeU8(const float* x, int64_t n, float scale, int32_t zero_point, int32_t qmax, uint8_t* y) {
  HWY_DYNAMIC_DISPATCH(QuantizeU8Impl)(x, n, 1.0f / scale, zero_point, qmax, y);
}
bool MinMax(const float* x, int64_t n, float* lo, float* hi) { return HWY_DYNAMIC_DISPATCH(MinMaxImpl)(x, n, lo, hi); }

}  // namespace kernels
}  // namespace qfx
#endif  // HWY_ONCE
