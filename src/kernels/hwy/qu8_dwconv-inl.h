// qfx kernels, Highway (every target): DepthwiseAccumulate, one output plane of a depthwise convolution as
// exact int32 sums (see DepthwisePlaneArgs). The kDepthwise path (targets without AVX-512 VNNI, dilated
// layers, kernels wider than 8): the driver requantizes the plane with RequantizeRow afterwards.
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes).

// Depthwise accumulation (see DepthwisePlaneArgs): the plane is first copied with zero-point borders (and
// slack on the right), so every output row is whole vectors with no bounds checks and no scalar tails —
// the lanes past OW read the slack and are dropped. A vector of outputs keeps its accumulator in a register
// over all taps; products are formed in int16 (exact for u8 x s8) and widened. Stride 2 reads the low bytes
// of uint16 pairs; wider strides run scalar over the same plane. (AVX3_DL CPUs use DepthwiseQConvVnni.)
inline void DepthwiseAccumulateImpl(const DepthwisePlaneArgs& p) {
  namespace hn = hwy::HWY_NAMESPACE;
  const Conv2dGeometry& g = *p.g;
  const hn::ScalableTag<int32_t> d;
  const hn::Rebind<int16_t, decltype(d)> d16;
  const hn::Rebind<uint8_t, decltype(d)> du8;
  const hn::Rebind<uint16_t, decltype(d)> du16;
  const int64_t n = static_cast<int64_t>(hn::Lanes(d));
  const int64_t oh = g.out_h(), ow = g.out_w(), kh = g.kernel_h, kw = g.kernel_w, sh = g.stride_h, sw = g.stride_w;
  const int64_t dh = g.dilation_h, dw = g.dilation_w, vectors = (ow + n - 1) / n;
  // The padded plane: rows of the image with pad_w zero points on the left and, on the right, enough for
  // the last vector's widest read (pair loads read one byte past their last lane).
  const int64_t rows = g.in_h + 2 * g.pad_h, pitch = g.pad_w + g.in_w + vectors * n * sw + (kw - 1) * dw + 2;
  thread_local std::vector<uint8_t> plane_buffer;
  thread_local std::vector<int32_t> row_buffer;
  if (plane_buffer.size() < static_cast<size_t>(rows * pitch)) plane_buffer.resize(static_cast<size_t>(rows * pitch));
  if (row_buffer.size() < static_cast<size_t>(vectors * n)) row_buffer.resize(static_cast<size_t>(vectors * n));
  uint8_t* const plane = plane_buffer.data();
  int32_t* const row = row_buffer.data();
  const uint8_t zp8 = static_cast<uint8_t>(p.x_zero_point);
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* dst = plane + r * pitch;
    const int64_t iy = r - g.pad_h;
    if (iy < 0 || iy >= g.in_h) {
      std::memset(dst, zp8, static_cast<size_t>(pitch));
      continue;
    }
    std::memset(dst, zp8, static_cast<size_t>(g.pad_w));
    std::memcpy(dst + g.pad_w, p.x + iy * g.in_w, static_cast<size_t>(g.in_w));
    std::memset(dst + g.pad_w + g.in_w, zp8, static_cast<size_t>(pitch - g.pad_w - g.in_w));
  }
  if (sw > 2) {
    for (int64_t oy = 0; oy < oh; ++oy) {
      for (int64_t ox = 0; ox < ow; ++ox) {
        int32_t sum = 0;
        for (int64_t ky = 0; ky < kh; ++ky) {
          const uint8_t* in = plane + (oy * sh + ky * dh) * pitch + ox * sw;
          for (int64_t kx = 0; kx < kw; ++kx)
            sum += p.w[ky * kw + kx] * (static_cast<int32_t>(in[kx * dw]) - p.x_zero_point);
        }
        p.acc[oy * ow + ox] = sum;
      }
    }
    return;
  }
  const auto zp = hn::Set(d16, static_cast<int16_t>(p.x_zero_point));
  const auto low = hn::Set(du16, 0xFF);
  for (int64_t oy = 0; oy < oh; ++oy) {
    for (int64_t v = 0; v < vectors; ++v) {
      auto acc = hn::Zero(d);
      for (int64_t ky = 0; ky < kh; ++ky) {
        const uint8_t* in = plane + (oy * sh + ky * dh) * pitch + v * n * sw;
        for (int64_t kx = 0; kx < kw; ++kx) {
          const uint8_t* at = in + kx * dw;
          const auto x = sw == 1
                             ? hn::PromoteTo(d16, hn::LoadU(du8, at))
                             : hn::BitCast(d16, hn::And(hn::LoadU(du16, reinterpret_cast<const uint16_t*>(at)), low));
          const auto w = hn::Set(d16, static_cast<int16_t>(p.w[ky * kw + kx]));
          acc = hn::Add(acc, hn::PromoteTo(d, hn::Mul(hn::Sub(x, zp), w)));
        }
      }
      hn::StoreU(acc, d, row + v * n);
    }
    std::memcpy(p.acc + oy * ow, row, static_cast<size_t>(ow) * sizeof(int32_t));
  }
}
