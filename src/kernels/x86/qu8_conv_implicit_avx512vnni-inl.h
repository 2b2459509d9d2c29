// qfx kernels, x86 AVX-512 VNNI (Highway's AVX3_DL target): ImplicitConvVnni, the implicit-GEMM
// convolution (see ImplicitConvArgs) in registers, 8 output channels x 32 positions a block, requantized
// from the registers. The kImplicitVnni path (AVX-512 VNNI without AMX): one group, C_in a multiple of 64,
// stride 1, no dilation.
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes); the code below compiles only for the targets its #if names.

#if HWY_TARGET == HWY_AVX3_DL

// The implicit-GEMM convolution with AVX-512 VNNI (no AMX): blocks of kRows output channels x 32 positions
// of the flattened padded grid (as AmxConvItems) in registers. A step takes one tap and 4 input channels:
// the 32 positions' 4 bytes are 128 consecutive bytes of the x4 plane (two loads), each row's 4 weights one
// broadcast, and 2 * kRows vpdpbusd. The block is requantized from the registers (no int32 round trip).
template <int kRows>
__attribute__((target(HWY_TARGET_STR ",avx512vnni"))) HWY_ATTR inline void VnniConvBlock(const ImplicitConvArgs& a,
                                                                                         int64_t co, int64_t f0,
                                                                                         const LaneStores& st) {
  const int64_t kdim = a.kernel_h * a.kernel_w * a.in_channels, c4s = a.in_channels / 4, plane = a.plane_bytes;
  __m512i acc[kRows][2];
  for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
  for (int64_t ky = 0; ky < a.kernel_h; ++ky) {
    for (int64_t kx = 0; kx < a.kernel_w; ++kx) {
      const uint8_t* xp = a.x4 + (f0 + ky * a.row_pixels + kx) * 4;
      const int8_t* wp = a.w + co * kdim + (ky * a.kernel_w + kx) * a.in_channels;
      for (int64_t c4 = 0; c4 < c4s; ++c4, xp += plane, wp += 4) {
        const __m512i b0 = _mm512_loadu_si512(xp), b1 = _mm512_loadu_si512(xp + 64);
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) {
          int32_t w4;
          std::memcpy(&w4, wp + r * kdim, 4);
          const __m512i wv = _mm512_set1_epi32(w4);
          acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], b0, wv);
          acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], b1, wv);
        }
      }
    }
  }
  RequantStoreRows([&acc](int64_t r, int h) { return acc[r][h]; }, std::min<int64_t>(kRows, a.out_channels - co),
                   a.requant, co, st);
}

// Work items [i0, i1) of 8 channels x 32 positions, channel-major (the weights are padded to 32 rows, so a
// last partial block reads zeros and stores only its real rows).
inline void VnniConvItems(const ImplicitConvArgs& a, int64_t i0, int64_t i1) {
  const int64_t chunks = (a.out_h * a.row_pixels + 31) / 32;
  LaneStores stores;
  int64_t stores_f0 = -1;
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t co = item / chunks * 8, f0 = item % chunks * 32;
    if (f0 != stores_f0) {
      stores = GridStores(a, f0);
      stores_f0 = f0;
    }
    VnniConvBlock<8>(a, co, f0, stores);
  }
}

inline void ImplicitConvVnniImpl(const ImplicitConvArgs& a) {
  const int64_t chunks = (a.out_h * a.row_pixels + 31) / 32;
  ParallelFor((a.out_channels + 7) / 8 * chunks, 1, [&](int64_t b, int64_t e) { VnniConvItems(a, b, e); });
}

#endif  // HWY_TARGET == HWY_AVX3_DL
