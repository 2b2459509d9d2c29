// qfx kernels, x86 AVX2 (Highway's AVX2 and AVX3 targets): ImplicitConvMaddubs, the implicit-GEMM
// convolution (see ImplicitConvArgs) in registers with vpmaddubsw + vpmaddwd, 4 output channels x 16
// positions a block, requantized from the registers. The kImplicitMaddubs path: one group, no dilation,
// any C_in (padded to a group of 4), strides up to 4 (taps read through ImplicitConvArgs::tap_offsets).
// Exact for any input: steps with bytes that could saturate vpmaddubsw are split (MaddubsConvBlock).
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes); the code below compiles only for the targets its #if names.

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3

constexpr int64_t kMaddubsConvRows = 4, kMaddubsConvPositions = 16;

// acc (the exact sum plus the correction) requantized as RequantizeRowImpl (and kernels::Requantize) does,
// in registers: the float product clamped to [lo - zp, hi - zp] (integers, so clamping before the
// round-half-even conversion, vcvtps2dq under the default MXCSR, equals clamping after it), then + zp.
HWY_ATTR inline __m256i RequantLanes(__m256i acc, float multiplier, const U8S8GemmArgs::Requant& q) {
  const __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(multiplier));
  const __m256 lo = _mm256_set1_ps(static_cast<float>(q.lo - q.zero_point));
  const __m256 hi = _mm256_set1_ps(static_cast<float>(q.hi - q.zero_point));
  return _mm256_add_epi32(_mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, lo), hi)), _mm256_set1_epi32(q.zero_point));
}

// Sixteen int32 lanes already in [0, 255] (two vectors, in order) as 16 bytes, in order.
HWY_ATTR inline __m128i PackBytes(__m256i lo, __m256i hi) {
  const __m256i words = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8);
  return _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
}

// A chunk of 16 grid positions from f0: the output row and column of its first, and whether all 16 lie
// inside that output row.
struct GridSpot {
  int64_t f0 = 0, oy0 = 0, ox0 = 0;
  bool one_row = false;
  GridSpot() = default;
  GridSpot(const ImplicitConvArgs& a, int64_t f)
      : f0(f),
        oy0(f / a.row_pixels),
        ox0(f % a.row_pixels),
        one_row(oy0 < a.out_h && ox0 + kMaddubsConvPositions <= a.out_w) {}
};

// Requantizes a block's accumulators (4 rows x 16 grid positions from f0) into y, from the registers: the
// positions past a row's out_w columns (the grid is row_pixels wide) and past the last output row are
// dropped; a chunk inside one output row is one 16-byte store per channel.
HWY_ATTR inline void StoreBlock(const ImplicitConvArgs& a, const __m256i (&acc)[kMaddubsConvRows][2], int64_t co,
                                const GridSpot& spot) {
  const U8S8GemmArgs::Requant& q = a.requant;
  const int64_t rows = std::min(kMaddubsConvRows, a.out_channels - co), f0 = spot.f0;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = co + r;
    const __m128i bytes =
        PackBytes(RequantLanes(acc[r][0], q.multiplier[c], q), RequantLanes(acc[r][1], q.multiplier[c], q));
    uint8_t* const yc = q.y + c * q.ldy;
    if (spot.one_row) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(yc + spot.oy0 * a.out_w + spot.ox0), bytes);
      continue;
    }
    alignas(16) uint8_t tmp[kMaddubsConvPositions];
    _mm_store_si128(reinterpret_cast<__m128i*>(tmp), bytes);
    for (int64_t f = f0; f < f0 + kMaddubsConvPositions;) {  // runs of valid positions, one per output row
      const int64_t oy = f / a.row_pixels, ox = f % a.row_pixels;
      if (oy >= a.out_h) break;
      const int64_t run = std::min(f0 + kMaddubsConvPositions, oy * a.row_pixels + a.out_w) - f;
      if (run > 0) std::memcpy(yc + oy * a.out_w + ox, tmp + (f - f0), static_cast<size_t>(run));
      f = (oy + 1) * a.row_pixels;
    }
  }
}

// acc += the 4-byte dot products of b's 8 positions with wv's 4 weights, with vpmaddubsw (u8 x s8 pairs
// into int16) + vpmaddwd (into int32); exact where no byte of b is above ImplicitConvArgs::exact_max.
HWY_ATTR inline __m256i DotStep(__m256i acc, __m256i b, __m256i wv, __m256i ones) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(b, wv), ones));
}

// The same, exact for any b: b = lo + 128 * hi with lo its low 7 bits and hi its top bit, two products.
HWY_ATTR inline __m256i SplitDotStep(__m256i acc, __m256i b, __m256i wv, __m256i ones) {
  const __m256i lo = _mm256_and_si256(b, _mm256_set1_epi8(0x7F));
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 7), _mm256_set1_epi8(1));
  return _mm256_add_epi32(DotStep(acc, lo, wv, ones),
                          _mm256_slli_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(hi, wv), ones), 7));
}

// Nonzero bytes where b is above exact_max (a saturating subtract: off the multiply ports).
HWY_ATTR inline __m256i Over(__m256i b0, __m256i b1, __m256i exact_max) {
  return _mm256_or_si256(_mm256_subs_epu8(b0, exact_max), _mm256_subs_epu8(b1, exact_max));
}

// Whether any byte that the blocks at grid positions f0..f0+15 read is above exact_max (they then check
// each step): one pass over the chunk's input, shared by all its channel blocks.
HWY_ATTR inline bool ChunkNeedsSplit(const ImplicitConvArgs& a, int64_t f0) {
  if (a.exact_max >= 255) return false;
  const __m256i exact_max = _mm256_set1_epi8(static_cast<char>(a.exact_max));
  __m256i over = _mm256_setzero_si256();
  for (int64_t t = 0; t < a.kernel_h * a.kernel_w; ++t) {
    const uint8_t* xp = a.x4 + (f0 + a.tap_offsets[t]) * 4;
    for (int64_t c4 = 0; c4 < a.in_channels / 4; ++c4, xp += a.plane_bytes) {
      over = _mm256_or_si256(over, Over(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp)),
                                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp + 32)), exact_max));
    }
  }
  return !_mm256_testz_si256(over, over);
}

// One block: output channels co..co+3 at grid positions f0..f0+15 (spot). A step takes one tap and 4 input
// channels: the 16 positions' 4 bytes are 64 consecutive bytes of the x4 plane (two loads), each
// channel's 4 weights one broadcast, then 8 DotSteps. kChecked (a chunk with a byte above exact_max, rare:
// 3,072 of resnet18's 18 million steps on test images) checks each step and splits those that could
// saturate vpmaddubsw, so a block is exact for any input at the cost of the few steps that need it.
template <bool kChecked>
HWY_ATTR inline void MaddubsConvBlock(const ImplicitConvArgs& a, int64_t co, const GridSpot& spot) {
  const int64_t f0 = spot.f0;
  const int64_t kdim = a.kernel_h * a.kernel_w * a.in_channels, c4s = a.in_channels / 4, plane = a.plane_bytes;
  const __m256i ones = _mm256_set1_epi16(1), exact_max = _mm256_set1_epi8(static_cast<char>(a.exact_max));
  __m256i acc[kMaddubsConvRows][2];  // start at the correction, bias - zp * sum(w) (zero past C_out)
  for (int64_t r = 0; r < kMaddubsConvRows; ++r) {
    acc[r][0] = acc[r][1] = _mm256_set1_epi32(co + r < a.out_channels ? a.requant.correction[co + r] : 0);
  }
  const int8_t* wp = a.w + co * kdim;  // PackTapMajor4: 16 bytes a step, the 4 channels' side by side
  for (int64_t t = 0; t < a.kernel_h * a.kernel_w; ++t) {
    const uint8_t* xp = a.x4 + (f0 + a.tap_offsets[t]) * 4;
    for (int64_t c4 = 0; c4 < c4s; ++c4, xp += plane, wp += 16) {
      const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp));
      const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp + 32));
      const __m256i over = kChecked ? Over(b0, b1, exact_max) : _mm256_setzero_si256();
      if (!kChecked || HWY_LIKELY(_mm256_testz_si256(over, over))) {
#pragma GCC unroll 4
        for (int r = 0; r < kMaddubsConvRows; ++r) {
          int32_t w4;
          std::memcpy(&w4, wp + r * 4, 4);
          const __m256i wv = _mm256_set1_epi32(w4);
          acc[r][0] = DotStep(acc[r][0], b0, wv, ones);
          acc[r][1] = DotStep(acc[r][1], b1, wv, ones);
        }
      } else {
        for (int r = 0; r < kMaddubsConvRows; ++r) {
          int32_t w4;
          std::memcpy(&w4, wp + r * 4, 4);
          const __m256i wv = _mm256_set1_epi32(w4);
          acc[r][0] = SplitDotStep(acc[r][0], b0, wv, ones);
          acc[r][1] = SplitDotStep(acc[r][1], b1, wv, ones);
        }
      }
    }
  }
  StoreBlock(a, acc, co, spot);
}

// The order of the work items, 4 channels x 16 positions each: channel blocks in groups whose weights fit
// in L2 (kGroupWeightBytes), and within a group position-major. While a thread runs a group's blocks over
// one chunk of positions, the chunk's input stays in L1 and the group's weights (16 bytes a step) in L2;
// a whole layer's weights at once (2.4 MB in resnet18's layer4) would stream from L3 for every chunk.
struct MaddubsConvOrder {
  static constexpr int64_t kGroupWeightBytes = 96 * 1024;
  int64_t chunks, blocks, group, full;  // blocks a group, items in the full groups
  explicit MaddubsConvOrder(const ImplicitConvArgs& a)
      : chunks((a.out_h * a.row_pixels + kMaddubsConvPositions - 1) / kMaddubsConvPositions),
        blocks((a.out_channels + kMaddubsConvRows - 1) / kMaddubsConvRows),
        group(std::clamp<int64_t>(kGroupWeightBytes / (kMaddubsConvRows * a.kernel_h * a.kernel_w * a.in_channels), 1,
                                  blocks)),
        full(blocks / group * group * chunks) {}
  int64_t Items() const { return blocks * chunks; }
  // Where an item is: its block (first channel / kMaddubsConvRows), chunk, and its group's blocks
  // [first, end). Next steps to the following item without a division.
  struct Cursor {
    int64_t block, chunk, first, end;
  };
  Cursor At(int64_t item) const {
    const bool in_full = item < full;
    const int64_t first = in_full ? item / (group * chunks) * group : blocks / group * group;
    const int64_t size = in_full ? group : blocks - first, r = in_full ? item % (group * chunks) : item - full;
    return {first + r % size, r / size, first, std::min(first + size, blocks)};
  }
  void Next(Cursor* c) const {
    if (++c->block < c->end) return;
    c->block = c->first;
    if (++c->chunk < chunks) return;
    c->chunk = 0;
    c->first = c->end;
    c->end = std::min(c->first + group, blocks);
    c->block = c->first;
  }
};

// Work items [i0, i1) in MaddubsConvOrder, each chunk checked once for bytes that need the split.
HWY_ATTR inline void MaddubsConvItems(const ImplicitConvArgs& a, const MaddubsConvOrder& order, int64_t i0,
                                      int64_t i1) {
  MaddubsConvOrder::Cursor at = order.At(i0);
  int64_t last = -1;
  bool checked = false;
  GridSpot spot;
  for (int64_t item = i0; item < i1; ++item, order.Next(&at)) {
    const int64_t f0 = at.chunk * kMaddubsConvPositions, co = at.block * kMaddubsConvRows;
    if (at.chunk != last) {
      last = at.chunk;
      checked = ChunkNeedsSplit(a, f0);
      spot = GridSpot(a, f0);
    }
    if (checked) {
      MaddubsConvBlock<true>(a, co, spot);
    } else {
      MaddubsConvBlock<false>(a, co, spot);
    }
  }
}

// The weights (PackTapMajor4) are padded to a block of 4 channels, so a last partial block reads zeros and
// stores only its real rows.
inline void ImplicitConvMaddubsImpl(const ImplicitConvArgs& a) {
  const MaddubsConvOrder order(a);
  // Four chunks a thread: a thread that starts late takes fewer.
  ParallelFor(
      order.Items(), 1, [&](int64_t b, int64_t e) { MaddubsConvItems(a, order, b, e); }, 4);
}

#endif  // HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
