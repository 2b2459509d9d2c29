// qfx kernels, x86 (Highway's AVX2, AVX3 and AVX3_DL targets): the register-tile uint8 x int8 GEMM driver,
// GemmU8S8Tile. C[M,N] = A[M,K] (int8 weights, packed by PackU8S8Weights) x B[K,N] (uint8 activations,
// row-major, packed per panel by PackB here, or already in panels: g.packed_b). The tile itself is the
// target's: 4 x 32 vpdpbusd on AVX3_DL (x86/qu8_gemm_4x32c4_avx512vnni-inl.h), 4 x 16 vpmaddubsw on AVX2 and
// AVX3 (x86/qu8_gemm_4x16c4_avx2-inl.h). With g.requant each finished tile is requantized while it is in
// L1 (no int32 round trip). Panels per thread are kept between calls (no allocation once large enough).
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes); the code below compiles only for the targets its #if names.

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL

// g.packed_a, or A packed into *own when the caller did not prepack it.
inline const int32_t* PackedWeights(const U8S8GemmArgs& g, AlignedVector<int32_t>* own) {
  if (g.packed_a != nullptr) return g.packed_a;
  own->resize(static_cast<size_t>(PackedU8S8Size(g.m, g.k)));
  PackU8S8Weights(g.a, g.m, g.k, g.lda, own->data());
  return own->data();
}

// Packs B[0:K, n0:n0+kNr] as [k4][kNr columns][4 k] bytes; rows past K and columns past n1 are zero.
// Full 16-column, 4-row blocks interleave with byte/word unpacks; edges go element by element.
HWY_ATTR inline void PackB(const U8S8GemmArgs& g, int64_t n0, int64_t n1, int64_t k4s, uint8_t* out) {
  const bool full_width = n1 - n0 == kNr;
  for (int64_t s = 0; s < k4s; ++s) {
    const int64_t p = s * 4;
    if (full_width && p + 4 <= g.k) {
      for (int64_t half = 0; half < kNr; half += 16) {
        uint8_t* dst = out + s * kNr * 4 + half * 4;
        const uint8_t* r = g.b + p * g.ldb + n0 + half;
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r));
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r + g.ldb));
        const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r + 2 * g.ldb));
        const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r + 3 * g.ldb));
        const __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
        const __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
        _mm_store_si128(reinterpret_cast<__m128i*>(dst), _mm_unpacklo_epi16(ab_lo, cd_lo));
        _mm_store_si128(reinterpret_cast<__m128i*>(dst + 16), _mm_unpackhi_epi16(ab_lo, cd_lo));
        _mm_store_si128(reinterpret_cast<__m128i*>(dst + 32), _mm_unpacklo_epi16(ab_hi, cd_hi));
        _mm_store_si128(reinterpret_cast<__m128i*>(dst + 48), _mm_unpackhi_epi16(ab_hi, cd_hi));
      }
      continue;
    }
    uint8_t* dst = out + s * kNr * 4;
    std::memset(dst, 0, kNr * 4);
    for (int64_t t = 0; t < 4 && p + t < g.k; ++t) {
      const uint8_t* row = g.b + (p + t) * g.ldb;
      for (int64_t j = n0; j < n1; ++j) dst[(j - n0) * 4 + t] = row[j];
    }
  }
}

// The tile path over rows [m0, m1) and columns [n0, n1); `packed_a` holds all of A packed. `split`
// (vpmaddubsw where it could saturate: inputs above 127 with wide weights) runs each panel twice, on its
// low 7 bits and on its top bit, and adds the two products as lo + 128 * hi: exact, at twice the work.
inline void U8S8Tiles(const U8S8GemmArgs& g, const int32_t* packed_a, int64_t m0, int64_t m1, int64_t n0, int64_t n1,
                      bool split) {
  const int64_t k4s = (g.k + 3) / 4, panel_bytes = k4s * kNr * 4;
  // Packed panels per thread, kept between calls (no allocation once they are large enough).
  thread_local hwy::AlignedFreeUniquePtr<uint8_t[]> panel;
  thread_local size_t panel_size = 0;
  const size_t need = static_cast<size_t>(2 * panel_bytes + 128);
  if (panel_size < need) {
    panel = hwy::AllocateAligned<uint8_t>(need);
    panel_size = need;
  }
  uint8_t* pb = panel.get();
  uint8_t* pb_hi = pb + (panel_bytes + 63) / 64 * 64;
  alignas(64) int32_t tile[kMr * kNr], tile_hi[kMr * kNr];
  for (int64_t j = n0; j < n1; j += kNr) {
    const int64_t cols = std::min(kNr, n1 - j);
    // A prepacked B (AVX3_DL only, where the panels are 32 wide as AMX's) has panels AmxPaddedK(k) deep.
    const uint8_t* panel_j = g.packed_b ? g.packed_b + (j / kNr) * AmxPaddedK(g.k) * kNr : pb;
    if (!g.packed_b) PackB(g, j, j + cols, k4s, pb);
#if HWY_TARGET != HWY_AVX3_DL
    if (split) SplitPanel(pb, pb_hi, panel_bytes);
#endif
#if HWY_TARGET == HWY_AVX3_DL
    const LaneStores st = ColumnStores(j, cols);  // where a requantized tile's columns go
#endif
    for (int64_t i = m0; i < m1; i += kMr) {
      const int32_t* pa = packed_a + (i / kMr) * k4s * kMr;
      Tile(pa, panel_j, k4s, tile);
      if (split) {
        Tile(pa, pb_hi, k4s, tile_hi);
        for (int64_t t = 0; t < kMr * kNr; ++t) tile[t] += tile_hi[t] * 128;
      }
      if (const U8S8GemmArgs::Requant* q = g.requant) {  // requantized while the tile is in L1
#if HWY_TARGET == HWY_AVX3_DL
        VnniRequantTile(tile, std::min(kMr, m1 - i), i, *q, st);
#else
        for (int64_t r = 0; r < kMr && i + r < m1; ++r) {
          RequantizeRowImpl(tile + r * kNr, cols, q->correction[i + r], q->multiplier[i + r], q->zero_point, q->lo,
                            q->hi, q->y + (i + r) * q->ldy + j);
        }
#endif
        continue;
      }
      // A whole row as a fixed-size copy (vector moves); a variable-length memcpy here became rep movs.
      for (int64_t r = 0; r < kMr && i + r < m1; ++r) {
        if (cols == kNr) {
          std::memcpy(g.c + (i + r) * g.ldc + j, tile + r * kNr, kNr * sizeof(int32_t));
        } else {
          std::memcpy(g.c + (i + r) * g.ldc + j, tile + r * kNr, static_cast<size_t>(cols) * sizeof(int32_t));
        }
      }
    }
  }
}

inline void GemmU8S8TileImpl(const U8S8GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  const bool split = !kVnni && !MaddubsIsExact(g);
  const int64_t blocks = (g.m + kMr - 1) / kMr;
  AlignedVector<int32_t> own;
  const int32_t* packed_a = PackedWeights(g, &own);
  if (g.n >= g.m) {
    const int64_t panels = (g.n + kNr - 1) / kNr;
    ParallelFor(panels, 2,
                [&](int64_t b, int64_t e) { U8S8Tiles(g, packed_a, 0, g.m, b * kNr, std::min(g.n, e * kNr), split); });
  } else {
    ParallelFor(blocks, 2,
                [&](int64_t b, int64_t e) { U8S8Tiles(g, packed_a, b * kMr, std::min(g.m, e * kMr), 0, g.n, split); });
  }
}

#endif  // HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
