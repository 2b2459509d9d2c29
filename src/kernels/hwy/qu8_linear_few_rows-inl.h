// qfx kernels, Highway (every target): LinearFewRowsU8S8, a few rows of x times the weights as one dot
// product per (output, row), for batch-1 linear layers where the GEMM's column tiles would be mostly empty:
// acc[o * rows + r] = sum_k x[r, k] * w[o, k], exact. The dot product is the target's: vpdpbusd on
// AVX3_DL (x86/qu8_dot_avx512vnni-inl.h), vpmaddubsw where exact on AVX2 / AVX3 (x86/qu8_dot_avx2-inl.h),
// the portable loop below elsewhere. x and w may have any alignment.
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes); the code below compiles only for the targets its #if names.

#if !(HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL)
inline int32_t DotU8S8(const uint8_t* x, const int8_t* w, int64_t k, bool) {
  int32_t sum = 0;
  for (int64_t p = 0; p < k; ++p) sum += static_cast<int32_t>(x[p]) * w[p];
  return sum;
}
#endif

inline void LinearFewRowsImpl(const uint8_t* x, int64_t rows, int64_t k, const int8_t* w, int64_t m, int32_t max_pair,
                              int32_t* acc) {
  uint8_t x_max = 0;
  for (int64_t i = 0; i < rows * k; ++i) x_max = std::max(x_max, x[i]);
  if (max_pair < 0) max_pair = MaxPairAbsSum(w, m, k, k);
  const bool exact = static_cast<int64_t>(max_pair) * x_max <= 32767;
  ParallelFor(m, 16, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      for (int64_t r = 0; r < rows; ++r) acc[o * rows + r] = DotU8S8(x + r * k, w + o * k, k, exact);
    }
  });
}
