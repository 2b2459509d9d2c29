// qfx kernels, Highway SIMD: run-time dispatch for the uint8 x int8 GEMM (see gemm_u8s8-inl.h).
// AVX3_DL (AVX-512 with VNNI) is compiled here too: Highway 1.0.3 leaves it out unless asked.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL 1
#endif
#include "src/kernels/gemm_u8s8.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/hwy/gemm_u8s8.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "src/kernels/hwy/gemm_u8s8-inl.h"

#if HWY_ONCE
namespace qfx {
namespace kernels {

HWY_EXPORT(GemmU8S8Impl);
HWY_EXPORT(U8S8TargetName);
HWY_EXPORT(RequantizeRowImpl);
HWY_EXPORT(LinearFewRowsImpl);
HWY_EXPORT(UsesAmxImpl);
HWY_EXPORT(RequantizesImpl);
HWY_EXPORT(DepthwiseAccumulateImpl);
HWY_EXPORT(ImplicitConvImpl);
HWY_EXPORT(ImplicitConvSupportedImpl);
HWY_EXPORT(DepthwiseQConvImpl);
HWY_EXPORT(WindowPanelsImpl);
HWY_EXPORT(WindowPanelsSupportedImpl);

bool ImplicitConv(const ImplicitConvArgs& a) { return HWY_DYNAMIC_DISPATCH(ImplicitConvImpl)(a); }
bool ImplicitConvSupported() { return HWY_DYNAMIC_DISPATCH(ImplicitConvSupportedImpl)(); }

bool WindowPanels(const Conv2dGeometry& g, const uint8_t* x, int64_t kp, uint8_t pad, uint8_t* panels) {
  return HWY_DYNAMIC_DISPATCH(WindowPanelsImpl)(g, x, kp, pad, panels);
}

bool WindowPanelsSupported() { return HWY_DYNAMIC_DISPATCH(WindowPanelsSupportedImpl)(); }

bool DepthwiseQConvVnni(const QConvArgs& a, const int32_t* correction, const uint8_t* x, uint8_t* y) {
  return HWY_DYNAMIC_DISPATCH(DepthwiseQConvImpl)(a, correction, x, y);
}

void DepthwiseAccumulate(const DepthwisePlaneArgs& p) { HWY_DYNAMIC_DISPATCH(DepthwiseAccumulateImpl)(p); }

bool GemmU8S8UsesAmx() { return HWY_DYNAMIC_DISPATCH(UsesAmxImpl)(); }
bool GemmU8S8Requantizes() { return HWY_DYNAMIC_DISPATCH(RequantizesImpl)(); }

void LinearFewRowsU8S8(const uint8_t* x, int64_t rows, int64_t k, const int8_t* w, int64_t m, int32_t max_pair,
                       int32_t* acc) {
  HWY_DYNAMIC_DISPATCH(LinearFewRowsImpl)(x, rows, k, w, m, max_pair, acc);
}

void RequantizeRow(const int32_t* acc, int64_t n, int32_t correction, float multiplier, int32_t zero_point, int32_t lo,
                   int32_t hi, uint8_t* y) {
  HWY_DYNAMIC_DISPATCH(RequantizeRowImpl)(acc, n, correction, multiplier, zero_point, lo, hi, y);
}

void GemmU8S8(const U8S8GemmArgs& g) { HWY_DYNAMIC_DISPATCH(GemmU8S8Impl)(g); }
const char* GemmU8S8TargetName() { return HWY_DYNAMIC_DISPATCH(U8S8TargetName)(); }

}  // namespace kernels
}  // namespace qfx
#endif  // HWY_ONCE
