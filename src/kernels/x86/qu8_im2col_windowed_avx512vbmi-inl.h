// qfx kernels, x86 AVX-512 VBMI (Highway's AVX3_DL target): WindowPanels, the im2col matrix of one image
// and group in the windowed k order (PackWindowed's weights) written straight into the GEMM's 32-column
// panel layout, one masked row load and one vpermb per 16 columns and k-group. The kWindowedAmx and
// kWindowedVnni paths: one group, no dilation, kernels 2 to 8 wide, horizontal stride at most 4.
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes); the code below compiles only for the targets its #if names.

#if HWY_TARGET == HWY_AVX3_DL

// WindowPanels (qu8_dispatch.h) for panels [p0, p1). A 16-column half of a panel covers output positions
// n0 .. n0 + 15, which may run over several output rows; each row's run is one segment, gathered from its
// own input row: the load starts where lane 0 of the run would read (so one permutation table serves
// every segment: lane j, byte b <- loaded byte sw * j + b) and the permute writes only the run's lanes.
struct WindowSegment {
  __mmask64 lanes;    // the run's 4 bytes per lane
  int64_t iy0;        // input row of kernel row 0
  __mmask64 load[2];  // per tap group: the loaded bytes inside the image
  int64_t col[2];     // per tap group: input column of loaded byte 0 (may be negative)
};

// The runs of the 16 columns from n0 (up to 16, one per output row touched) with what does not depend
// on the input channel or kernel row worked out once.
inline int WindowSegments(const Conv2dGeometry& g, int64_t n0, WindowSegment* seg) {
  const int64_t ow = g.out_w(), n = g.out_h() * ow, gx = (g.kernel_w + 3) / 4;
  int count = 0;
  for (int64_t l = 0; l < 16 && n0 + l < n;) {
    const int64_t oy = (n0 + l) / ow, ox = (n0 + l) % ow, run = std::min<int64_t>(16 - l, ow - ox);
    WindowSegment& s = seg[count++];
    s.lanes = _bzhi_u64(~0ULL, static_cast<unsigned>(4 * (l + run))) & ~_bzhi_u64(~0ULL, static_cast<unsigned>(4 * l));
    s.iy0 = oy * g.stride_h - g.pad_h;
    for (int64_t q = 0; q < gx; ++q) {
      s.col[q] = (ox - l) * g.stride_w - g.pad_w + 4 * q;
      const int64_t first = std::max<int64_t>(0, -s.col[q]), last = std::min<int64_t>(64, g.in_w - s.col[q]);
      s.load[q] = last <= first
                      ? 0
                      : _bzhi_u64(~0ULL, static_cast<unsigned>(last)) & ~_bzhi_u64(~0ULL, static_cast<unsigned>(first));
    }
    l += run;
  }
  return count;
}

__attribute__((target(HWY_TARGET_STR ",avx512vbmi"))) HWY_ATTR inline void WindowPanelRange(
    const Conv2dGeometry& g, const uint8_t* x, int64_t kp, uint8_t pad, uint8_t* panels, int64_t p0, int64_t p1) {
  const int64_t gx = (g.kernel_w + 3) / 4, kh = g.kernel_h, in_w = g.in_w, in_h = g.in_h, channels = g.in_channels;
  const int64_t groups = channels * kh * gx;
  alignas(64) uint8_t table[64];
  for (int j = 0; j < 16; ++j) {
    for (int b = 0; b < 4; ++b) table[4 * j + b] = static_cast<uint8_t>(g.stride_w * j + b);
  }
  const __m512i idx = _mm512_load_si512(table), pad_bytes = _mm512_set1_epi8(static_cast<char>(pad));
  WindowSegment seg[16];
  for (int64_t p = p0; p < p1; ++p) {
    for (int h = 0; h < 2; ++h) {
      uint8_t* dst = panels + p * kp * 32 + h * 64;
      const int count = WindowSegments(g, p * 32 + h * 16, seg);
      for (int64_t ci = 0; ci < channels; ++ci) {
        const uint8_t* xc = x + ci * in_h * in_w;
        for (int64_t ky = 0; ky < kh; ++ky) {
          for (int64_t q = 0; q < gx; ++q) {
            __m512i v = pad_bytes;
            for (int s = 0; s < count; ++s) {
              const int64_t iy = seg[s].iy0 + ky;
              if (iy < 0 || iy >= in_h) continue;
              const __m512i row = _mm512_mask_loadu_epi8(
                  pad_bytes, seg[s].load[q],
                  reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(xc + iy * in_w) + seg[s].col[q]));
              v = _mm512_mask_permutexvar_epi8(v, seg[s].lanes, idx, row);
            }
            _mm512_storeu_si512(dst, v);
            dst += 128;
          }
        }
      }
      for (int64_t q = groups; q < kp / 4; ++q, dst += 128) _mm512_storeu_si512(dst, _mm512_setzero_si512());
    }
  }
}

inline void WindowPanelsImpl(const Conv2dGeometry& g, const uint8_t* x, int64_t kp, uint8_t pad, uint8_t* panels) {
  const int64_t npanels = (g.out_h() * g.out_w() + 31) / 32;
  ParallelFor(npanels, 1, [&](int64_t b, int64_t e) { WindowPanelRange(g, x, kp, pad, panels, b, e); });
}

#endif  // HWY_TARGET == HWY_AVX3_DL
