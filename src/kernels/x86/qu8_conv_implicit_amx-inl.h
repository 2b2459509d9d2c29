// qfx kernels, x86 AMX (Highway's AVX3_DL target, where AmxEnabled()): ImplicitConvAmx, the implicit-GEMM
// convolution (no im2col; see ImplicitConvArgs for the x4 input and tap-major weight layouts) on AMX tiles,
// 32 output channels x 32 positions a work item, requantized as each block leaves the tiles. The
// kImplicitAmx path: one group, C_in a multiple of 64, stride 1, no dilation.
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes); the code below compiles only for the targets its #if names.

#if HWY_TARGET == HWY_AVX3_DL

// The implicit-GEMM convolution (see ImplicitConvArgs) for work items [i0, i1), item = co_block * chunks + chunk
// (a thread's items share a 32-channel weight block, which stays in L2). The output is computed on the
// padded grid, flattened: position f = oy * row_pixels + ox reads input position f + ky * row_pixels + kx
// for tap (ky, kx), so a tile row is 16 consecutive positions x 4 channels of one channel group straight
// from the input even across output rows; positions with ox >= OW are computed and dropped. 32 positions
// a chunk (two tiles), every tap and 64 channels a step.
__attribute__((target(HWY_TARGET_STR ",amx-tile,amx-int8"))) HWY_ATTR inline void AmxConvItems(
    const ImplicitConvArgs& a, int64_t i0, int64_t i1) {
  const int64_t kdim = a.kernel_h * a.kernel_w * a.in_channels, c64s = a.in_channels / 64;
  const int64_t rp = a.row_pixels, plane = a.plane_bytes, chunks = (a.out_h * rp + 31) / 32;
  // Software-pipelined: item i's tile work is issued before item i - 1's epilogue, so the vector
  // requantization runs while the tiles compute (two output buffers, two store plans).
  alignas(64) int32_t out[2][32 * 32];
  LaneStores stores[2];
  int64_t stores_f0[2] = {-1, -1};
  const auto epilogue = [&](int64_t item) {
    const int64_t co = item / chunks * 32, f0 = item % chunks * 32, b = item & 1;
    if (f0 != stores_f0[b]) {
      stores[b] = GridStores(a, f0);
      stores_f0[b] = f0;
    }
    AmxRequantBlock(out[b], std::min<int64_t>(32, a.out_channels - co), a.requant, co, stores[b]);
  };
  AmxConfigure();
  for (int64_t item = i0; item < i1; ++item) {
    const int64_t co = item / chunks * 32, f0 = item % chunks * 32;
    AmxZero4();
    for (int64_t ky = 0; ky < a.kernel_h; ++ky) {
      for (int64_t kx = 0; kx < a.kernel_w; ++kx) {
        const uint8_t* xp = a.x4 + (f0 + ky * rp + kx) * 4;
        const int8_t* wp = a.w + co * kdim + (ky * a.kernel_w + kx) * a.in_channels;
        for (int64_t c = 0; c < c64s; ++c) {
          AmxStep(wp + c * 64, wp + 16 * kdim + c * 64, kdim, xp + c * 16 * plane, xp + c * 16 * plane + 64, plane);
        }
      }
    }
    if (item > i0) epilogue(item - 1);
    AmxStore4(out[item & 1]);
  }
  if (i1 > i0) epilogue(i1 - 1);
  AmxRelease();
}

inline void ImplicitConvAmxImpl(const ImplicitConvArgs& a) {
  const int64_t chunks = (a.out_h * a.row_pixels + 31) / 32;
  ParallelFor((a.out_channels + 31) / 32 * chunks, 1, [&](int64_t b, int64_t e) { AmxConvItems(a, b, e); });
}

#endif  // HWY_TARGET == HWY_AVX3_DL
