// qfx kernels, x86 AVX-512 VNNI + VBMI (Highway's AVX3_DL target): DepthwiseQConvVnni, the whole
// depthwise convolution (one input channel per group, any channel multiplier), requantized. Input and
// output are NCHW uint8 with any alignment (masked loads and stores). The kDepthwiseVnni path: no
// dilation, kernels at most 8 wide and 16 tall, horizontal stride 1 or 2 (the rules in path.cc).
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes); the code below compiles only for the targets its #if names.

#if HWY_TARGET == HWY_AVX3_DL

// Depthwise convolution with VNNI (AVX3_DL), in strips of 16 output columns. Each input row of a strip is
// loaded once (64 bytes, masked: columns outside the image read as the zero point, so they cancel in the
// correction) and, per group of 4 horizontal taps, permuted once by vpermb so that each output's 4 input
// bytes (columns sw * ox + kx) fill its int32 lane; every output row then adds one vpdpbusd per kernel row
// and group with the 4 weights: a 3x3 kernel at stride 1 is about 1 load, 1 permute and 3 dot products per
// 16 outputs. Rows outside the image read as all zero point. The accumulator starts at the channel's
// correction, bias - zp * sum(w),
// so it ends as the exact sum of (x - zp) * w + bias, then the shared requantization. Kernels up to 8 wide,
// strides 1 and 2 across (any down), no dilation.
__attribute__((target(HWY_TARGET_STR ",avx512vnni,avx512vbmi"))) HWY_ATTR inline void DepthwiseVnniChannels(
    const QConvArgs& a, const int32_t* correction, const uint8_t* HWY_RESTRICT x, uint8_t* HWY_RESTRICT y, int64_t i0,
    int64_t i1) {
  const Conv2dGeometry& g = a.g;
  const int64_t oh = g.out_h(), ow = g.out_w(), kh = g.kernel_h, kw = g.kernel_w, in_h = g.in_h, in_w = g.in_w;
  const int64_t sw = g.stride_w, sh = g.stride_h, groups4 = (kw + 3) / 4, vectors = (ow + 15) / 16;
  const int64_t mult = g.out_channels / g.in_channels;
  // Per horizontal group: the byte permutation (lane j, byte b <- column sw * j + 4 * group + b) and the
  // bytes that hold real taps.
  __m512i idx[2];
  __mmask64 taps[2];
  for (int64_t q = 0; q < groups4; ++q) {
    alignas(64) uint8_t table[64];
    uint64_t m = 0;
    for (int j = 0; j < 16; ++j) {
      for (int b = 0; b < 4; ++b) {
        table[4 * j + b] = static_cast<uint8_t>(sw * j + 4 * q + b);
        if (4 * q + b < kw) m |= uint64_t{1} << (4 * j + b);
      }
    }
    idx[q] = _mm512_load_si512(table);
    taps[q] = m;
  }
  const __m512i zp_bytes = _mm512_set1_epi8(static_cast<char>(a.x_zero_point));
  const Requant16 requant(a.y_zero_point, a.lo, a.hi);
  __m512i padding[2];  // a row outside the image, permuted
  for (int64_t q = 0; q < groups4; ++q) padding[q] = _mm512_maskz_permutexvar_epi8(taps[q], idx[q], zp_bytes);
  thread_local AlignedVector<__m512i> strip_buffer;  // the permuted input rows of one strip, 2 groups a row
  if (strip_buffer.size() < static_cast<size_t>(2 * in_h)) strip_buffer.resize(static_cast<size_t>(2 * in_h));
  __m512i* const strip = strip_buffer.data();
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t n = item / g.out_channels, co = item % g.out_channels, ci = co / mult;
    const uint8_t* xc = x + (n * g.in_channels + ci) * in_h * in_w;
    uint8_t* yc = y + item * oh * ow;
    const int8_t* w = a.weight + co * kh * kw;
    __m512i wv[16][2];  // per kernel row and group: the 4 weights of every lane's bytes
    for (int64_t ky = 0; ky < kh; ++ky) {
      for (int64_t q = 0; q < groups4; ++q) {
        uint32_t packed = 0;
        for (int64_t b = 0; b < 4 && 4 * q + b < kw; ++b) {
          packed |= static_cast<uint32_t>(static_cast<uint8_t>(w[ky * kw + 4 * q + b])) << (8 * b);
        }
        wv[ky][q] = _mm512_set1_epi32(static_cast<int32_t>(packed));
      }
    }
    const __m512i corr = _mm512_set1_epi32(correction[co]);
    const __m512 mul = _mm512_set1_ps(a.multiplier[co]);
    for (int64_t v = 0; v < vectors; ++v) {      // a strip of 16 output columns, top to bottom
      const int64_t c0 = sw * 16 * v - g.pad_w;  // input column of lane 0, tap 0
      const int64_t first = std::max<int64_t>(0, -c0), last = std::min<int64_t>(64, in_w - c0);
      const __mmask64 inside =
          last > first
              ? (_bzhi_u64(~0ULL, static_cast<unsigned>(last)) & ~_bzhi_u64(~0ULL, static_cast<unsigned>(first)))
              : 0;
      // Each input row of the strip is loaded and permuted once, then used by every output row it feeds.
      for (int64_t r = 0; r < in_h; ++r) {
        const __m512i row = _mm512_mask_loadu_epi8(
            zp_bytes, inside, reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(xc + r * in_w) + c0));
        for (int64_t q = 0; q < groups4; ++q) strip[r * 2 + q] = _mm512_maskz_permutexvar_epi8(taps[q], idx[q], row);
      }
      const __mmask16 cols =
          static_cast<__mmask16>(_bzhi_u32(0xFFFFu, static_cast<unsigned>(std::min<int64_t>(16, ow - 16 * v))));
      for (int64_t oy = 0; oy < oh; ++oy) {
        __m512i acc = corr;
        for (int64_t ky = 0; ky < kh; ++ky) {
          const int64_t iy = oy * sh - g.pad_h + ky;
          const __m512i* in = iy < 0 || iy >= in_h ? padding : strip + iy * 2;
          for (int64_t q = 0; q < groups4; ++q) acc = _mm512_dpbusd_epi32(acc, in[q], wv[ky][q]);
        }
        _mm_mask_storeu_epi8(yc + oy * ow + 16 * v, cols, requant(acc, mul));
      }
    }
  }
}

inline void DepthwiseQConvVnniImpl(const QConvArgs& a, const int32_t* correction, const uint8_t* x, uint8_t* y) {
  ParallelFor(a.g.batch * a.g.out_channels, 2,
              [&](int64_t b, int64_t e) { DepthwiseVnniChannels(a, correction, x, y, b, e); });
}

#endif  // HWY_TARGET == HWY_AVX3_DL
