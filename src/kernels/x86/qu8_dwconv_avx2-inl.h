// qfx kernels, x86 AVX2 (Highway's AVX2 and AVX3 targets): DepthwiseQConvMaddwd, the whole depthwise
// convolution (one input channel per group, any channel multiplier), requantized in registers. Input and
// output are NCHW uint8. The kDepthwiseMaddwd path: no dilation, horizontal stride 1 or 2 (path.cc).
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes; after x86/qu8_conv_implicit_avx2-inl.h, whose RequantLanes and PackBytes it
// uses); the code below compiles only for the targets its #if names.

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3

// 16 input bytes as int16 lanes: columns at + sw * j for output lanes j = 0..15 (sw 1: consecutive bytes;
// sw 2: the low bytes of 16 uint16 pairs).
HWY_ATTR inline __m256i ColumnsI16(const uint8_t* at, int64_t sw) {
  if (sw == 1) return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(at)));
  return _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(at)), _mm256_set1_epi16(0xFF));
}

// One output channel over its zero-point-padded input plane (rows of `pitch` bytes). Per strip of 16
// outputs and kernel row, taps go in pairs: the two taps' int16 columns interleaved (vpunpck{l,h}wd) and
// one vpmaddwd with the pair's weights adds x_a * w_a + x_b * w_b into int32 lanes, exact for u8 x s8 (an
// odd last tap pairs with a zero weight). The low halves hold outputs 0-3 and 8-11, the high halves 4-7
// and 12-15, which vpackusdw puts back in order. The accumulator starts at the correction (bias - zp *
// sum(w)), so it ends as the exact sum of (x - zp) * w + bias, then the shared requantization.
HWY_ATTR inline void DepthwiseMaddwdPlane(const QConvArgs& a, const uint8_t* plane, int64_t pitch, const int8_t* w,
                                          int32_t correction, float multiplier, uint8_t* y) {
  const Conv2dGeometry& g = a.g;
  const int64_t oh = g.out_h(), ow = g.out_w(), kh = g.kernel_h, kw = g.kernel_w, sh = g.stride_h, sw = g.stride_w;
  const int64_t pairs = (kw + 1) / 2;
  U8S8GemmArgs::Requant q;
  q.zero_point = a.y_zero_point;
  q.lo = a.lo;
  q.hi = a.hi;
  thread_local std::vector<int32_t> wv;  // per kernel row and pair: (w_a, w_b) as two int16, broadcast below
  wv.resize(static_cast<size_t>(kh * pairs));
  for (int64_t ky = 0; ky < kh; ++ky) {
    for (int64_t p = 0; p < pairs; ++p) {
      const int64_t kx = 2 * p;
      const uint16_t wa = static_cast<uint16_t>(static_cast<int16_t>(w[ky * kw + kx]));
      const uint16_t wb = kx + 1 < kw ? static_cast<uint16_t>(static_cast<int16_t>(w[ky * kw + kx + 1])) : 0;
      wv[ky * pairs + p] = static_cast<int32_t>(static_cast<uint32_t>(wb) << 16 | wa);
    }
  }
  for (int64_t oy = 0; oy < oh; ++oy) {
    for (int64_t ox0 = 0; ox0 < ow; ox0 += 16) {
      __m256i lo = _mm256_set1_epi32(correction), hi = lo;
      for (int64_t ky = 0; ky < kh; ++ky) {
        const uint8_t* row = plane + (oy * sh + ky) * pitch + ox0 * sw;
        for (int64_t p = 0; p < pairs; ++p) {
          const __m256i xa = ColumnsI16(row + 2 * p, sw), xb = ColumnsI16(row + 2 * p + 1, sw);
          const __m256i wp = _mm256_set1_epi32(wv[ky * pairs + p]);
          lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(xa, xb), wp));
          hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(xa, xb), wp));
        }
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
    DepthwiseMaddwdPlane(a, plane, pitch, a.weight + co * g.kernel_h * g.kernel_w, correction[co], a.multiplier[co],
                         y + item * oh * ow);
  }
}

inline void DepthwiseQConvMaddwdImpl(const QConvArgs& a, const int32_t* correction, const uint8_t* x, uint8_t* y) {
  ParallelFor(
      a.g.batch * a.g.out_channels, 2,
      [&](int64_t b, int64_t e) { DepthwiseMaddwdChannels(a, correction, x, y, b, e); }, 4);
}

#endif  // HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
