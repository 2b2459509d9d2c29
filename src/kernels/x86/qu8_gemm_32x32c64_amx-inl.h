// qfx kernels, x86 AMX (Highway's AVX3_DL target, where AmxEnabled()): GemmU8S8Amx, the uint8 x int8 GEMM
// on AMX tiles in 32 x 32 blocks of C, 64 k a step (tdpbsud, exact). A: PackU8S8Weights' AMX copy (rows
// padded to 32, k to 64, 64-byte aligned: tile rows that straddle cache lines load at half speed); B: 32
// column panels AmxPaddedK(k) deep (PackB's, or prepacked: g.packed_b). Requantizes each block as it
// leaves the tiles (g.requant), or stores int32 with masked stores. The kGemmAmx, kWindowedAmx, kAmx paths.
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes); the code below compiles only for the targets its #if names.

#if HWY_TARGET == HWY_AVX3_DL

// Rows [m0, m1) (m0 a multiple of 32) and columns [n0, n1) of C on AMX; `w` is the padded weight copy.
inline void U8S8Amx(const U8S8GemmArgs& g, const int8_t* w, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  const int64_t kp = AmxPaddedK(g.k);
  thread_local hwy::AlignedFreeUniquePtr<uint8_t[]> panel;
  thread_local size_t panel_size = 0;
  const size_t need = static_cast<size_t>(kp * 32 + 64);
  if (panel_size < need) {
    panel = hwy::AllocateAligned<uint8_t>(need);
    panel_size = need;
  }
  alignas(64) int32_t out[32 * 32];
  AmxConfigure();
  for (int64_t j = n0; j < n1; j += kNr) {
    const int64_t cols = std::min(kNr, n1 - j);
    const uint8_t* pb = g.packed_b ? g.packed_b + (j / kNr) * kp * kNr : panel.get();
    if (!g.packed_b) PackB(g, j, j + cols, kp / 4, panel.get());
    const LaneStores st = ColumnStores(j, cols);
    for (int64_t i = m0; i < m1; i += 32) {
      AmxBlock(w + i * kp, kp, pb, out);
      const int64_t rows = std::min<int64_t>(32, m1 - i);
      if (g.requant != nullptr) {
        AmxRequantBlock(out, rows, *g.requant, i, st);
        continue;
      }
      // The int32 block as it is, two masked 16-lane stores a row (a variable-length memcpy here became
      // rep movs, slow right after the tile stores).
      for (int64_t r = 0; r < rows; ++r) {
        int32_t* c = g.c + (i + r) * g.ldc + j;
        _mm512_mask_storeu_epi32(c, st.mask[0][0], _mm512_load_si512(out + r * 32));
        if (st.count[1] > 0) _mm512_mask_storeu_epi32(c + 16, st.mask[1][0], _mm512_load_si512(out + r * 32 + 16));
      }
    }
  }
  AmxRelease();
}

inline void GemmU8S8AmxImpl(const U8S8GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  AlignedVector<int32_t> own;
  const int8_t* w = reinterpret_cast<const int8_t*>(PackedWeights(g, &own) + AmxWeightsOffset(g.m, g.k));
  const int64_t panels = (g.n + kNr - 1) / kNr, blocks = (g.m + 31) / 32;
  if (panels >= blocks) {
    ParallelFor(panels, 1, [&](int64_t b, int64_t e) { U8S8Amx(g, w, 0, g.m, b * kNr, std::min(g.n, e * kNr)); });
  } else {
    ParallelFor(blocks, 1, [&](int64_t b, int64_t e) { U8S8Amx(g, w, b * 32, std::min(g.m, e * 32), 0, g.n); });
  }
}

#endif  // HWY_TARGET == HWY_AVX3_DL
