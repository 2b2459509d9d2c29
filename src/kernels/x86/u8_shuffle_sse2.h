// qfx kernels, x86 SSE2 (the x86-64 baseline, so compiled once, outside Highway's targets): byte
// shuffles shared by the int8 convolution drivers. EvenBytes gathers stride-2 uint8 rows (im2col, max
// pooling); Interleave4 interleaves 4 byte rows into 4-byte groups (the implicit convolution's x4 planes,
// the AMX panels). Both take any alignment and fall back to scalar loops without SSE2.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace qfx {
namespace kernels {

// o[ox] = xr[2 * ox] for ox from ox0 while 16 outputs fit before ox1 (and their 32-byte read stays below
// xr[2 * ox1 - 1]); returns the first ox not written. SSE2: the low bytes of 16-bit lanes, packed.
inline int64_t EvenBytes(const uint8_t* xr, int64_t ox0, int64_t ox1, uint8_t* o) {
  int64_t ox = ox0;
#if defined(__SSE2__)
  const __m128i low = _mm_set1_epi16(0x00FF);
  for (; ox + 16 < ox1; ox += 16) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(xr + 2 * ox));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(xr + 2 * ox + 16));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + ox),
                     _mm_packus_epi16(_mm_and_si128(a, low), _mm_and_si128(b, low)));
  }
#endif
  return ox;
}

#if defined(__SSE2__)
// Columns [c, c + 16) of Interleave4.
inline void Interleave4Step(const uint8_t* const r[4], int64_t c, uint8_t* dst) {
  const __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[0] + c));
  const __m128i r1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[1] + c));
  const __m128i r2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[2] + c));
  const __m128i r3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r[3] + c));
  const __m128i lo01 = _mm_unpacklo_epi8(r0, r1), hi01 = _mm_unpackhi_epi8(r0, r1);
  const __m128i lo23 = _mm_unpacklo_epi8(r2, r3), hi23 = _mm_unpackhi_epi8(r2, r3);
  uint8_t* d = dst + 4 * c;
  _mm_storeu_si128(reinterpret_cast<__m128i*>(d), _mm_unpacklo_epi16(lo01, lo23));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 16), _mm_unpackhi_epi16(lo01, lo23));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 32), _mm_unpacklo_epi16(hi01, hi23));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 48), _mm_unpackhi_epi16(hi01, hi23));
}
#endif

// dst[4 * c + j] = r[j][c] for c < n: four byte rows interleaved (SSE2 unpacks, 16 columns a step; the
// last step overlaps the one before it, and rows shorter than 16 go through a stack copy).
inline void Interleave4(const uint8_t* const r[4], int64_t n, uint8_t* dst) {
#if defined(__SSE2__)
  if (n >= 16) {
    int64_t c = 0;
    for (; c + 16 <= n; c += 16) Interleave4Step(r, c, dst);
    if (c < n) Interleave4Step(r, n - 16, dst);  // rewrites some columns with the same bytes
    return;
  }
  uint8_t rows[4][16] = {}, out[64];
  const uint8_t* const tmp[4] = {rows[0], rows[1], rows[2], rows[3]};
  for (int j = 0; j < 4; ++j) std::memcpy(rows[j], r[j], static_cast<size_t>(n));
  Interleave4Step(tmp, 0, out);
  std::memcpy(dst, out, static_cast<size_t>(4 * n));
#else
  for (int64_t c = 0; c < n; ++c) {
    for (int j = 0; j < 4; ++j) dst[4 * c + j] = r[j][c];
  }
#endif
}

}  // namespace kernels
}  // namespace qfx
