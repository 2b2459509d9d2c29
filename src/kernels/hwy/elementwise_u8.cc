// qfx kernels, Highway SIMD: run-time dispatch for quint8 add / mul (see elementwise_u8-inl.h).
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

void QAdd(const QBinaryArgs& q, const uint8_t* a, const uint8_t* b, uint8_t* y) { HWY_DYNAMIC_DISPATCH(QAddImpl)(q, a, b, y); }
void QMul(const QBinaryArgs& q, const uint8_t* a, const uint8_t* b, uint8_t* y) { HWY_DYNAMIC_DISPATCH(QMulImpl)(q, a, b, y); }

}  // namespace kernels
}  // namespace qfx
#endif  // HWY_ONCE
