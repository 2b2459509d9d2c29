// qfx kernels, Highway: run-time dispatch of every int8 kernel (declared in src/kernels/qu8_dispatch.h).
// foreach_target.h compiles this file once per SIMD target, each time including the kernel files below
// inside qfx::kernels::HWY_NAMESPACE; a kernel file compiles its code only for the targets it names (x86/
// files: AVX2 and up) and hwy/qu8_unavailable-inl.h fills the gaps. AVX3_DL (AVX-512 with VNNI) is
// compiled here too: Highway 1.0.3 leaves it out unless asked.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL 1
#endif
#include "src/kernels/qu8_dispatch.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "src/kernels/hwy/qu8_dispatch.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// What the kernel files use; they are included inside the per-target namespace below.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "hwy/highway.h"
#include "qfx/core/parallel.h"
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace qfx {
namespace kernels {
namespace HWY_NAMESPACE {

// In dependency order: the requantization, then the GEMMs, then the convolution kernels built on them.
// clang-format off
#include "src/kernels/hwy/qu8_requant-inl.h"
#include "src/kernels/hwy/qu8_gemm_portable-inl.h"
#include "src/kernels/x86/qu8_requant_avx512-inl.h"
#include "src/kernels/x86/qu8_gemm_4x16c4_avx2-inl.h"
#include "src/kernels/x86/qu8_gemm_4x32c4_avx512vnni-inl.h"
#include "src/kernels/x86/qu8_gemm_tile-inl.h"
#include "src/kernels/x86/qu8_amx_tiles-inl.h"
#include "src/kernels/x86/qu8_gemm_32x32c64_amx-inl.h"
#include "src/kernels/x86/qu8_conv_implicit_amx-inl.h"
#include "src/kernels/x86/qu8_conv_implicit_avx512vnni-inl.h"
#include "src/kernels/x86/qu8_conv_implicit_avx2-inl.h"
#include "src/kernels/x86/qu8_dwconv_avx512vnni-inl.h"
#include "src/kernels/x86/qu8_dwconv_avx2-inl.h"
#include "src/kernels/x86/qu8_im2col_windowed_avx512vbmi-inl.h"
#include "src/kernels/x86/qu8_dot_avx512vnni-inl.h"
#include "src/kernels/x86/qu8_dot_avx2-inl.h"
#include "src/kernels/hwy/qu8_linear_few_rows-inl.h"
#include "src/kernels/hwy/qu8_dwconv-inl.h"
#include "src/kernels/hwy/qu8_unavailable-inl.h"
// clang-format on

}  // namespace HWY_NAMESPACE
}  // namespace kernels
}  // namespace qfx
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace qfx {
namespace kernels {

HWY_EXPORT(Int8TargetImpl);
HWY_EXPORT(GemmU8S8PortableImpl);
HWY_EXPORT(GemmU8S8TileImpl);
HWY_EXPORT(GemmU8S8AmxImpl);
HWY_EXPORT(RequantizeRowImpl);
HWY_EXPORT(LinearFewRowsImpl);
HWY_EXPORT(DepthwiseAccumulateImpl);
HWY_EXPORT(DepthwiseQConvVnniImpl);
HWY_EXPORT(DepthwiseQConvMaddwdImpl);
HWY_EXPORT(ImplicitConvAmxImpl);
HWY_EXPORT(ImplicitConvVnniImpl);
HWY_EXPORT(ImplicitConvMaddubsImpl);
HWY_EXPORT(WindowPanelsImpl);

int64_t Int8Target() { return HWY_DYNAMIC_DISPATCH(Int8TargetImpl)(); }
void GemmU8S8Portable(const U8S8GemmArgs& g) { HWY_DYNAMIC_DISPATCH(GemmU8S8PortableImpl)(g); }
void GemmU8S8Tile(const U8S8GemmArgs& g) { HWY_DYNAMIC_DISPATCH(GemmU8S8TileImpl)(g); }
void GemmU8S8Amx(const U8S8GemmArgs& g) { HWY_DYNAMIC_DISPATCH(GemmU8S8AmxImpl)(g); }

void RequantizeRow(const int32_t* acc, int64_t n, int32_t correction, float multiplier, int32_t zero_point, int32_t lo,
                   int32_t hi, uint8_t* y) {
  HWY_DYNAMIC_DISPATCH(RequantizeRowImpl)(acc, n, correction, multiplier, zero_point, lo, hi, y);
}

void LinearFewRowsU8S8(const uint8_t* x, int64_t rows, int64_t k, const int8_t* w, int64_t m, int32_t max_pair,
                       int32_t* acc) {
  HWY_DYNAMIC_DISPATCH(LinearFewRowsImpl)(x, rows, k, w, m, max_pair, acc);
}

void DepthwiseAccumulate(const DepthwisePlaneArgs& p) { HWY_DYNAMIC_DISPATCH(DepthwiseAccumulateImpl)(p); }

void DepthwiseQConvVnni(const QConvArgs& a, const int32_t* correction, const uint8_t* x, uint8_t* y) {
  HWY_DYNAMIC_DISPATCH(DepthwiseQConvVnniImpl)(a, correction, x, y);
}

void DepthwiseQConvMaddwd(const QConvArgs& a, const int32_t* correction, const uint8_t* x, uint8_t* y) {
  HWY_DYNAMIC_DISPATCH(DepthwiseQConvMaddwdImpl)(a, correction, x, y);
}

void ImplicitConvAmx(const ImplicitConvArgs& a) { HWY_DYNAMIC_DISPATCH(ImplicitConvAmxImpl)(a); }
void ImplicitConvVnni(const ImplicitConvArgs& a) { HWY_DYNAMIC_DISPATCH(ImplicitConvVnniImpl)(a); }
void ImplicitConvMaddubs(const ImplicitConvArgs& a) { HWY_DYNAMIC_DISPATCH(ImplicitConvMaddubsImpl)(a); }

void WindowPanels(const Conv2dGeometry& g, const uint8_t* x, int64_t kp, uint8_t pad, uint8_t* panels) {
  HWY_DYNAMIC_DISPATCH(WindowPanelsImpl)(g, x, kp, pad, panels);
}

}  // namespace kernels
}  // namespace qfx
#endif  // HWY_ONCE
