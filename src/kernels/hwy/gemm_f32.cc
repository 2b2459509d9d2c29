// qfx kernels, Highway SIMD: run-time dispatch for the fp32 GEMM (see gemm_f32-inl.h).
#include "qfx/core/parallel.h"
#include "qfx/kernels/f32.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/hwy/gemm_f32.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "src/kernels/hwy/gemm_f32-inl.h"

#if HWY_ONCE
namespace qfx {
namespace kernels {

HWY_EXPORT(GemmF32Impl);
HWY_EXPORT(TargetName);

void GemmF32(const GemmArgs& args) { HWY_DYNAMIC_DISPATCH(GemmF32Impl)(args); }

const char* GemmF32TargetName() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace kernels
}  // namespace qfx
#endif  // HWY_ONCE
