// qfx kernels, x86 AVX2 (Highway's AVX2 and AVX3 targets): DepthwiseQConvMaddwd, the whole depthwise
// convolution (one input channel per group, any channel multiplier), requantized in registers. Input and
// output are NCHW uint8. The kDepthwiseMaddwd path: no dilation, horizontal stride 1 or 2, at most 128 taps
// (path.cc).
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes; after x86/qu8_conv_implicit_avx2-inl.h, whose RequantLanes and PackBytes it
// uses); the code below compiles only for the targets its #if names.

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3

// 16 input bytes as int16 lanes: columns at + kSw * j for output lanes j = 0..15 (stride 1: consecutive
// bytes; stride 2: the low bytes of 16 uint16 pairs).
template <int kSw>
HWY_ATTR inline __m256i ColumnsI16(const uint8_t* at) {
  if (kSw == 1) return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(at)));
  return _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(at)), _mm256_set1_epi16(0xFF));
}

// A channel's taps in pairs, flattened over the kernel (a 3x3 kernel is 5 pairs, the last with a zero
// weight): each pair's two offsets in the padded plane and its (w_a, w_b) as two int16 in one int32.
struct DepthwiseTapPairs {
  static constexpr int64_t kMax = 64;  // pairs kept inline; larger kernels take the portable path
  int64_t count = 0;
  int64_t offset[2 * kMax];
  int32_t weights[kMax];
  DepthwiseTapPairs(const Conv2dGeometry& g, int64_t pitch, const int8_t* w) {
    const int64_t taps = g.kernel_h * g.kernel_w;
    count = (taps + 1) / 2;
    for (int64_t p = 0; p < count; ++p) {
      const int64_t a = 2 * p, b = 2 * p + 1 < taps ? 2 * p + 1 : 0;  // an odd last tap pairs with weight 0
      offset[2 * p] = a / g.kernel_w * pitch + a % g.kernel_w;
      offset[2 * p + 1] = b / g.kernel_w * pitch + b % g.kernel_w;
      const uint16_t wa = static_cast<uint16_t>(static_cast<int16_t>(w[a]));
      const uint16_t wb = 2 * p + 1 < taps ? static_cast<uint16_t>(static_cast<int16_t>(w[b])) : 0;
      weights[p] = static_cast<int32_t>(static_cast<uint32_t>(wb) << 16 | wa);
    }
  }
};

// One output channel over its zero-point-padded input plane (rows of `pitch` bytes), 16 outputs a strip.
// Per tap pair the two taps' int16 columns are interleaved (vpunpck{l,h}wd) and one vpmaddwd with the
// pair's weights adds x_a * w_a + x_b * w_b into int32 lanes, exact for u8 x s8. The low halves hold
// outputs 0-3 and 8-11, the high halves 4-7 and 12-15, which vpackusdw puts back in order. The accumulator
// starts at the correction (bias - zp * sum(w)), so it ends as the exact sum of (x - zp) * w + bias, then
// the shared requantization. kPairs > 0 fixes the pair count (unrolled), 0 takes pairs.count.
template <int kSw, int kPairs>
HWY_ATTR inline void DepthwiseMaddwdPlane(const Conv2dGeometry& g, const uint8_t* plane, int64_t pitch,
                                          const DepthwiseTapPairs& pairs, int32_t correction, float multiplier,
                                          const U8S8GemmArgs::Requant& q, uint8_t* y) {
  const int64_t oh = g.out_h(), ow = g.out_w(), count = kPairs > 0 ? kPairs : pairs.count;
  for (int64_t oy = 0; oy < oh; ++oy) {
    for (int64_t ox0 = 0; ox0 < ow; ox0 += 16) {
      const uint8_t* base = plane + oy * g.stride_h * pitch + ox0 * kSw;
      __m256i lo = _mm256_set1_epi32(correction), hi = lo;
#pragma GCC unroll 16
      for (int64_t p = 0; p < count; ++p) {
        const __m256i xa = ColumnsI16<kSw>(base + pairs.offset[2 * p]);
        const __m256i xb = ColumnsI16<kSw>(base + pairs.offset[2 * p + 1]);
        const __m256i wp = _mm256_set1_epi32(pairs.weights[p]);
        lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(xa, xb), wp));
        hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(xa, xb), wp));
      }
      const __m256i words = _mm256_packus_epi32(RequantLanes(lo, multiplier, q), RequantLanes(hi, multiplier, q));
      const __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
      uint8_t* dst = y + oy * ow + ox0;
      if (ox0 + 16 <= ow) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), bytes);
      } else {
        alignas(16) uint8_t tmp[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(tmp), bytes);
        std::memcpy(dst, tmp, static_cast<size_t>(ow - ox0));
      }
    }
  }
}

// The plane kernel for this stride and pair count (3x3: 5 pairs, 5x5: 13, unrolled; others counted).
template <int kSw>
HWY_ATTR inline void DepthwiseMaddwdPlaneOf(const Conv2dGeometry& g, const uint8_t* plane, int64_t pitch,
                                            const DepthwiseTapPairs& pairs, int32_t correction, float multiplier,
                                            const U8S8GemmArgs::Requant& q, uint8_t* y) {
  if (pairs.count == 5) return DepthwiseMaddwdPlane<kSw, 5>(g, plane, pitch, pairs, correction, multiplier, q, y);
  if (pairs.count == 13) return DepthwiseMaddwdPlane<kSw, 13>(g, plane, pitch, pairs, correction, multiplier, q, y);
  DepthwiseMaddwdPlane<kSw, 0>(g, plane, pitch, pairs, correction, multiplier, q, y);
}

// Channels [i0, i1) of the batch (item = n * C_out + co): each input plane copied once with zero-point
// borders, and on the right enough slack for the last strip's widest read.
HWY_ATTR inline void DepthwiseMaddwdChannels(const QConvArgs& a, const int32_t* correction, const uint8_t* x,
                                             uint8_t* y, int64_t i0, int64_t i1) {
  const Conv2dGeometry& g = a.g;
  const int64_t oh = g.out_h(), ow = g.out_w(), mult = g.out_channels / g.in_channels;
  const int64_t rows = g.in_h + 2 * g.pad_h, strips = (ow + 15) / 16;
  const int64_t pitch = std::max(g.pad_w + g.in_w + g.pad_w, strips * 16 * g.stride_w + g.kernel_w) + 32;
  thread_local std::vector<uint8_t> plane_buffer;
  if (plane_buffer.size() < static_cast<size_t>(rows * pitch)) plane_buffer.resize(static_cast<size_t>(rows * pitch));
  uint8_t* const plane = plane_buffer.data();
  const uint8_t zp = static_cast<uint8_t>(a.x_zero_point);
  U8S8GemmArgs::Requant q;
  q.zero_point = a.y_zero_point;
  q.lo = a.lo;
  q.hi = a.hi;
  int64_t filled = -1;  // the input plane now in `plane` (with a channel multiplier, several outputs share it)
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t n = item / g.out_channels, co = item % g.out_channels, input = n * g.in_channels + co / mult;
    if (input != filled) {
      const uint8_t* xc = x + input * g.in_h * g.in_w;
      std::memset(plane, zp, static_cast<size_t>(g.pad_h * pitch));
      for (int64_t iy = 0; iy < g.in_h; ++iy) {
        uint8_t* dst = plane + (iy + g.pad_h) * pitch;
        std::memset(dst, zp, static_cast<size_t>(g.pad_w));
        std::memcpy(dst + g.pad_w, xc + iy * g.in_w, static_cast<size_t>(g.in_w));
        std::memset(dst + g.pad_w + g.in_w, zp, static_cast<size_t>(pitch - g.pad_w - g.in_w));
      }
      std::memset(plane + (g.pad_h + g.in_h) * pitch, zp, static_cast<size_t>(g.pad_h * pitch));
      filled = input;
    }
    const DepthwiseTapPairs pairs(g, pitch, a.weight + co * g.kernel_h * g.kernel_w);
    uint8_t* const yc = y + item * oh * ow;
    if (g.stride_w == 1) {
      DepthwiseMaddwdPlaneOf<1>(g, plane, pitch, pairs, correction[co], a.multiplier[co], q, yc);
    } else {
      DepthwiseMaddwdPlaneOf<2>(g, plane, pitch, pairs, correction[co], a.multiplier[co], q, yc);
    }
  }
}

inline void DepthwiseQConvMaddwdImpl(const QConvArgs& a, const int32_t* correction, const uint8_t* x, uint8_t* y) {
  ParallelFor(
      a.g.batch * a.g.out_channels, 2,
      [&](int64_t b, int64_t e) { DepthwiseMaddwdChannels(a, correction, x, y, b, e); }, 4);
}

#endif  // HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
