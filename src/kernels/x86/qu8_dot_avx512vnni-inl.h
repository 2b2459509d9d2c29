// qfx kernels, x86 AVX-512 VNNI (Highway's AVX3_DL target): DotU8S8, one exact uint8 x int8 dot product,
// 64 bytes a step with vpdpbusd and a masked tail (any alignment). Used by LinearFewRowsU8S8.
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes); the code below compiles only for the targets its #if names.

#if HWY_TARGET == HWY_AVX3_DL

__attribute__((target(HWY_TARGET_STR ",avx512vnni"))) HWY_ATTR inline int32_t DotU8S8(const uint8_t* x, const int8_t* w,
                                                                                      int64_t k, bool) {
  __m512i acc = _mm512_setzero_si512();
  int64_t p = 0;
  for (; p + 64 <= k; p += 64) {
    acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(x + p), _mm512_loadu_si512(w + p));
  }
  if (p < k) {
    const __mmask64 m = _bzhi_u64(~0ULL, static_cast<unsigned>(k - p));
    acc = _mm512_dpbusd_epi32(acc, _mm512_maskz_loadu_epi8(m, x + p), _mm512_maskz_loadu_epi8(m, w + p));
  }
  return _mm512_reduce_add_epi32(acc);
}

#endif  // HWY_TARGET == HWY_AVX3_DL
