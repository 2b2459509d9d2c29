// qfx kernels, x86 AVX-512 (Highway's AVX3_DL target): the requantizing epilogue of the AMX and VNNI
// kernels. Requant16 is the shared requantization (THE RULES, bit-identical to RequantizeRow) of 16 int32
// sums; LaneStores plans the masked byte stores of a 32-lane block row into the output (ColumnStores for
// plain GEMM columns, GridStores for the implicit convolution's padded grid), worked out once per block.
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes); the code below compiles only for the targets its #if names.

#if HWY_TARGET == HWY_AVX3_DL

// Where the 16 lanes of each half of a 32-lane block row go in an output row: one masked store per output
// row the half touches (lane l of half h lands at y_row[offset + l] where bit l of the mask is set; the
// masked-off lanes are neither read nor written, so offset may point before the row). The same for every
// row of a block, so worked out once per block.
struct LaneStores {
  int count[2] = {0, 0};
  __mmask16 mask[2][16] = {};  // a half touches at most 16 rows (one per lane)
  int64_t offset[2][16] = {};
  void Add(int half, __mmask16 m, int64_t off) {
    mask[half][count[half]] = m;
    offset[half][count[half]++] = off;
  }
};

// The stores of a plain row block: columns [col, col + cols) (cols <= 32) of each output row.
inline LaneStores ColumnStores(int64_t col, int64_t cols) {
  LaneStores st;
  for (int h = 0; h < 2 && cols > 16 * h; ++h) {
    st.Add(h, static_cast<__mmask16>(_bzhi_u32(0xFFFFu, static_cast<unsigned>(std::min<int64_t>(16, cols - 16 * h)))),
           col + 16 * h);
  }
  return st;
}

// The shared requantization (bit-identical to RequantizeRowImpl) of 16 exact int32 sums, correction
// included, to bytes. The clamp to [lo, hi] is done on the float before rounding, shifted by the zero point:
// exact, as the bounds are integers and rounding is monotonic, and it keeps the conversion in range.
struct Requant16 {
  __m512 lo, hi;
  __m512i zero_point;
  Requant16(int32_t zp, int32_t lo_q, int32_t hi_q)
      : lo(_mm512_set1_ps(static_cast<float>(lo_q - zp))),
        hi(_mm512_set1_ps(static_cast<float>(hi_q - zp))),
        zero_point(_mm512_set1_epi32(zp)) {}
  __m128i operator()(__m512i acc, __m512 multiplier) const {
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), multiplier);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    return _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v), zero_point));
  }
};

// Rows co, co + 1, ... of a block (row r's two halves in acc(r, 0) and acc(r, 1)) requantized into q.y.
template <class Acc>
HWY_INLINE void RequantStoreRows(const Acc& acc, int64_t rows, const U8S8GemmArgs::Requant& q, int64_t co,
                                 const LaneStores& st) {
  const Requant16 requant(q.zero_point, q.lo, q.hi);
  for (int64_t r = 0; r < rows; ++r) {
    const __m512i corr = _mm512_set1_epi32(q.correction[co + r]);
    const __m512 mult = _mm512_set1_ps(q.multiplier[co + r]);
    const uintptr_t y_row = reinterpret_cast<uintptr_t>(q.y + (co + r) * q.ldy);
    for (int h = 0; h < 2; ++h) {
      const __m128i bytes = requant(_mm512_add_epi32(acc(r, h), corr), mult);
      for (int s = 0; s < st.count[h]; ++s) {
        _mm_mask_storeu_epi8(reinterpret_cast<void*>(y_row + st.offset[h][s]), st.mask[h][s], bytes);
      }
    }
  }
}

inline void VnniRequantTile(const int32_t* tile, int64_t rows, int64_t row, const U8S8GemmArgs::Requant& q,
                            const LaneStores& st) {
  RequantStoreRows([tile](int64_t r, int h) { return _mm512_load_si512(tile + r * 32 + h * 16); }, rows, q, row, st);
}

// The AMX epilogue: a finished 32 x 32 int32 block (out[r * 32 + lane], from the tiles) requantized.
HWY_ATTR inline void AmxRequantBlock(const int32_t* HWY_RESTRICT out, int64_t rows, const U8S8GemmArgs::Requant& q,
                                     int64_t co, const LaneStores& st) {
  RequantStoreRows([out](int64_t r, int h) { return _mm512_load_si512(out + r * 32 + h * 16); }, rows, q, co, st);
}

// Where the 32 positions of the chunk at f0 go: one masked store per output row a half touches, over the
// lanes with ox < OW (the padded grid's extra columns and positions past the last row are dropped).
inline LaneStores GridStores(const ImplicitConvArgs& a, int64_t f0) {
  const int64_t rp = a.row_pixels, end = a.out_h * rp;
  LaneStores st;
  for (int h = 0; h < 2; ++h) {
    for (int64_t l = 0; l < 16;) {
      const int64_t f = f0 + 16 * h + l;
      if (f >= end) break;
      const int64_t oy = f / rp, ox = f % rp, run = std::min<int64_t>(16 - l, rp - ox);  // lanes left in this row
      const int64_t valid = std::max<int64_t>(0, std::min(run, a.out_w - ox));
      if (valid > 0) {
        const unsigned bits =
            _bzhi_u32(0xFFFFu, static_cast<unsigned>(l + valid)) & ~_bzhi_u32(0xFFFFu, static_cast<unsigned>(l));
        st.Add(h, static_cast<__mmask16>(bits), oy * a.out_w + ox - l);
      }
      l += run;
    }
  }
  return st;
}

#endif  // HWY_TARGET == HWY_AVX3_DL
