// qfx kernels, x86 AVX-512 VNNI (Highway's AVX3_DL target): the 4 x 32 register tile of the uint8 x int8
// GEMM with vpdpbusd (4 u8 x s8 products straight into int32: exact for any input, no int16 step). A: 4 rows
// x 4 k per step (PackU8S8Weights' tile layout); B: a panel of 32 columns x 4 k (128 bytes a step, 64-byte
// aligned: PackB's, or WindowPanels' / Im2ColPanels' prepacked panels). The kGemmVnni / kWindowedVnni /
// kVnni paths; the driver is x86/qu8_gemm_tile-inl.h.
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes); the code below compiles only for the targets its #if names.

#if HWY_TARGET == HWY_AVX3_DL

constexpr bool kVnni = true;
constexpr int64_t kMr = kU8S8TileRows, kNr = 32;  // two vectors of int32 accumulators per row

// 4 x 32 tile with 512-bit vpdpbusd: each step multiplies 4 k of 32 columns by 4 rows. Highway's AVX3_DL
// target string names AVX-VNNI, not AVX512-VNNI, though its run-time check requires the latter: enable it
// here so the EVEX form is used (the VEX form would need AVX-VNNI, which AVX3_DL CPUs may lack).
__attribute__((target(HWY_TARGET_STR ",avx512vnni"))) HWY_ATTR inline void Tile(const int32_t* HWY_RESTRICT pa,
                                                                                const uint8_t* HWY_RESTRICT pb,
                                                                                int64_t k4s,
                                                                                int32_t* HWY_RESTRICT tile) {
  __m512i acc[kMr][2];
  for (int r = 0; r < kMr; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (int64_t s = 0; s < k4s; ++s) {
    const __m512i b0 = _mm512_load_si512(pb + s * 128);
    const __m512i b1 = _mm512_load_si512(pb + s * 128 + 64);
#pragma GCC unroll 4
    for (int r = 0; r < kMr; ++r) {
      const __m512i a = _mm512_set1_epi32(pa[s * kMr + r]);
      acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], b0, a);
      acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], b1, a);
    }
  }
  for (int r = 0; r < kMr; ++r) {
    _mm512_storeu_si512(tile + r * kNr, acc[r][0]);
    _mm512_storeu_si512(tile + r * kNr + 16, acc[r][1]);
  }
}

#endif  // HWY_TARGET == HWY_AVX3_DL
