// qfx kernels, x86 AVX2 (compiled for Highway's AVX2 and AVX3 targets): the 4 x 16 register tile of the
// uint8 x int8 GEMM with vpmaddubsw (u8 x s8 pairs into int16) + vpmaddwd (into int32). A: 4 rows x 4 k
// per step (one int32 broadcast per row, PackU8S8Weights' tile layout); B: a PackB panel of 16 columns x 4 k
// (64 bytes a step, 32-byte aligned). vpmaddubsw saturates when x0*w0 + x1*w1 leaves int16: where
// MaddubsIsExact fails, the driver (x86/qu8_gemm_tile-inl.h) runs each panel twice, on its low 7 bits and
// its top bit (SplitPanel), and adds the products as lo + 128 * hi: exact at twice the work.
// The kGemmMaddubs / kMaddubs paths.
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes); the code below compiles only for the targets its #if names.

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3

constexpr bool kVnni = false;
constexpr int64_t kMr = kU8S8TileRows, kNr = 16;  // two vectors of int32 accumulators per row

HWY_ATTR inline void Tile(const int32_t* HWY_RESTRICT pa, const uint8_t* HWY_RESTRICT pb, int64_t k4s,
                          int32_t* HWY_RESTRICT tile) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[kMr][2];
  for (int r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (int64_t s = 0; s < k4s; ++s) {
    const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + s * 64));
    const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(pb + s * 64 + 32));
#pragma GCC unroll 4
    for (int r = 0; r < kMr; ++r) {
      const __m256i a = _mm256_set1_epi32(pa[s * kMr + r]);
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(b0, a), ones));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(b1, a), ones));
    }
  }
  for (int r = 0; r < kMr; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + r * kNr), acc[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + r * kNr + 8), acc[r][1]);
  }
}

// Splits a packed panel in place into its low 7 bits and, in `hi`, its top bit (0 or 1 a byte), so that
// x = lo + 128 * hi with both parts small enough for vpmaddubsw never to saturate.
HWY_ATTR inline void SplitPanel(uint8_t* HWY_RESTRICT lo, uint8_t* HWY_RESTRICT hi, int64_t bytes) {
  const __m256i low7 = _mm256_set1_epi8(0x7F), one = _mm256_set1_epi8(1);
  for (int64_t i = 0; i < bytes; i += 32) {
    const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(lo + i));
    _mm256_store_si256(reinterpret_cast<__m256i*>(hi + i), _mm256_and_si256(_mm256_srli_epi16(v, 7), one));
    _mm256_store_si256(reinterpret_cast<__m256i*>(lo + i), _mm256_and_si256(v, low7));
  }
}

#endif  // HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
