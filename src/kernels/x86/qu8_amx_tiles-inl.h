// qfx kernels, x86 AMX (Highway's AVX3_DL target, run only where AmxEnabled()): the tile configuration
// and the 2 x 2 tile step shared by the AMX GEMM and the implicit AMX convolution.
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes); the code below compiles only for the targets its #if names.

#if HWY_TARGET == HWY_AVX3_DL

// AMX (Sapphire Rapids): 32 x 32 blocks of C as four 16 x 16 int32 tiles (tmm0-3), each step multiplying
// 64 k: two weight tiles (tmm4-5: 16 rows x 64 bytes of the zero-padded row-major copy) by two activation
// tiles (tmm6-7: 16 k4-rows x 16 columns x 4 bytes, i.e. PackB's panel layout) with tdpbsud (s8 x u8, exact).
struct alignas(64) AmxTileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

__attribute__((target(HWY_TARGET_STR ",amx-tile"))) HWY_ATTR inline void AmxConfigure() {
  AmxTileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
}

__attribute__((target(HWY_TARGET_STR ",amx-tile"))) HWY_ATTR inline void AmxRelease() { _tile_release(); }

// The 2 x 2 tile steps shared by the AMX GEMM and convolution: C tiles tmm0-3 cleared; one step adds
// W rows [0, 16) and [16, 32) (tmm4-5, rows w_stride apart) times the activation tiles of 16 columns each
// (tmm6-7, rows x_stride apart); the four C tiles stored as a 32 x 32 int32 block (rows 128 bytes apart).
__attribute__((target(HWY_TARGET_STR ",amx-tile"))) HWY_ATTR inline void AmxZero4() {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
}

__attribute__((target(HWY_TARGET_STR ",amx-tile,amx-int8"))) HWY_ATTR inline void AmxStep(
    const int8_t* w0, const int8_t* w1, int64_t w_stride, const uint8_t* x0, const uint8_t* x1, int64_t x_stride) {
  _tile_loadd(4, w0, w_stride);
  _tile_loadd(5, w1, w_stride);
  _tile_loadd(6, x0, x_stride);
  _tile_loadd(7, x1, x_stride);
  _tile_dpbsud(0, 4, 6);
  _tile_dpbsud(1, 4, 7);
  _tile_dpbsud(2, 5, 6);
  _tile_dpbsud(3, 5, 7);
}

__attribute__((target(HWY_TARGET_STR ",amx-tile"))) HWY_ATTR inline void AmxStore4(int32_t* out) {
  _tile_stored(0, out, 128);
  _tile_stored(1, out + 16, 128);
  _tile_stored(2, out + 16 * 32, 128);
  _tile_stored(3, out + 16 * 32 + 16, 128);
}

HWY_INLINE void AmxBlock(const int8_t* HWY_RESTRICT w, int64_t kp, const uint8_t* HWY_RESTRICT pb,
                         int32_t* HWY_RESTRICT out) {
  AmxZero4();
  for (int64_t kk = 0; kk < kp; kk += 64) AmxStep(w + kk, w + 16 * kp + kk, kp, pb + kk * 32, pb + kk * 32 + 64, 128);
  AmxStore4(out);
}

#endif  // HWY_TARGET == HWY_AVX3_DL
