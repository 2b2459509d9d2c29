// qfx kernels, x86 AVX2 (Highway's AVX2 and AVX3 targets): DotU8S8, one uint8 x int8 dot product,
// vpmaddubsw + vpmaddwd 32 bytes a step when the caller says it is exact, the scalar loop for the rest.
// Used by LinearFewRowsU8S8.
#if defined(QFX_X86_QU8_DOT_AVX2_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef QFX_X86_QU8_DOT_AVX2_INL_H_
#undef QFX_X86_QU8_DOT_AVX2_INL_H_
#else
#define QFX_X86_QU8_DOT_AVX2_INL_H_
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "hwy/highway.h"
#include "src/kernels/qu8_dispatch.h"

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace qfx {
namespace kernels {
namespace HWY_NAMESPACE {

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3

HWY_ATTR inline int32_t DotU8S8(const uint8_t* x, const int8_t* w, int64_t k, bool maddubs_exact) {
  int64_t p = 0;
  int32_t sum = 0;
  if (maddubs_exact) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    for (; p + 32 <= k; p += 32) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + p));
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + p));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(xv, wv), ones));
    }
    alignas(32) int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
    for (int i = 0; i < 8; ++i) sum += lanes[i];
  }
  for (; p < k; ++p) sum += static_cast<int32_t>(x[p]) * w[p];
  return sum;
}

#endif  // HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3

}  // namespace HWY_NAMESPACE
}  // namespace kernels
}  // namespace qfx
HWY_AFTER_NAMESPACE();

#endif  // QFX_X86_QU8_DOT_AVX2_INL_H_
