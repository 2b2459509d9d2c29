// qfx kernels, x86 AVX2 (Highway's AVX2 and AVX3 targets): DotU8S8, one uint8 x int8 dot product,
// vpmaddubsw + vpmaddwd 32 bytes a step when the caller says it is exact, the scalar loop for the rest.
// Used by LinearFewRowsU8S8.
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes); the code below compiles only for the targets its #if names.

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
