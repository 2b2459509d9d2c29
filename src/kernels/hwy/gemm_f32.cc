// qfx kernels, Highway SIMD: run-time dispatch of the fp32 kernels: the GEMM and the GEMM convolution
// (gemm_f32-inl.h), the depthwise convolution (dwconv_f32-inl.h).
#include "src/kernels/gemm_f32.h"
#include "qfx/core/parallel.h"
#include "qfx/kernels/f32.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/hwy/gemm_f32.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "src/kernels/hwy/dwconv_f32-inl.h"
#include "src/kernels/hwy/gemm_f32-inl.h"

#if HWY_ONCE
namespace qfx {
namespace kernels {

HWY_EXPORT(GemmF32Impl);
HWY_EXPORT(TargetName);
HWY_EXPORT(Conv2dGemm);
HWY_EXPORT(DepthwiseConv);

void GemmF32(const GemmArgs& args) { HWY_DYNAMIC_DISPATCH(GemmF32Impl)(args); }

void Conv2dGemmF32(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, const ConvEpilogue* post,
                   float* y) {
  HWY_DYNAMIC_DISPATCH(Conv2dGemm)(g, x, w, bias, post, y);
}

void DepthwiseConv2dF32(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                        const ConvEpilogue* post, float* y) {
  HWY_DYNAMIC_DISPATCH(DepthwiseConv)(g, x, w, bias, post, y);
}

const char* GemmF32TargetName() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace kernels
}  // namespace qfx
#endif  // HWY_ONCE
