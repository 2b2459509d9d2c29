// qfx kernels, Highway (every target): GemmU8S8Portable, C[M,N] (int32) = A[M,K] (int8, row-major, lda)
// x B[K,N] (uint8, row-major, ldb), the exact portable loop. Reads g.a and g.b only (no packed layouts);
// writes int32 C (no fused requantization). The kGemmPortable path: targets without x86 tiles.
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes).

// Exact portable loop over rows [m0, m1) and columns [n0, n1).
inline void U8S8Portable(const U8S8GemmArgs& g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  std::vector<int32_t> acc(static_cast<size_t>(n1 - n0));
  for (int64_t i = m0; i < m1; ++i) {
    std::fill(acc.begin(), acc.end(), 0);
    const int8_t* a = g.a + i * g.lda;
    for (int64_t p = 0; p < g.k; ++p) {
      const int32_t w = a[p];
      const uint8_t* b = g.b + p * g.ldb + n0;
      for (int64_t j = 0; j < n1 - n0; ++j) acc[j] += w * static_cast<int32_t>(b[j]);
    }
    std::memcpy(g.c + i * g.ldc + n0, acc.data(), acc.size() * sizeof(int32_t));
  }
}

inline void GemmU8S8PortableImpl(const U8S8GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  ParallelFor(g.m, 1, [&](int64_t b, int64_t e) { U8S8Portable(g, b, e, 0, g.n); });
}
