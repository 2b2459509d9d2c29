// qfx kernels: the implicit-GEMM convolution driver (the kImplicitAmx and kImplicitVnni paths: one group,
// C_in a multiple of 64, stride 1, no dilation). Per image it builds the zero-point-padded input with C_in
// in groups of 4 interleaved per pixel (ImplicitConvArgs' x4 layout), then runs the AMX or VNNI kernel,
// which reads the tap-major weights and requantizes block by block: no im2col at all.
#include <cstring>

#include "qfx/core/parallel.h"
#include "src/kernels/packed.h"
#include "src/kernels/scratch.h"
#include "src/kernels/x86/u8_shuffle_sse2.h"

namespace qfx {
namespace kernels {
namespace {

// The implicit-GEMM convolution of one image (see ImplicitConvArgs): builds the padded, 4-channel-interleaved
// input, then runs the path's kernel (AMX or VNNI).
void ImplicitConvImage(const PackedQConv2dState& s, QConvPath path, const Conv2dGeometry& g, const uint8_t* x,
                       uint8_t* y) {
  const int64_t rows = g.in_h + 2 * g.pad_h, row_pixels = g.in_w + 2 * g.pad_w, c4s = g.in_channels / 4;
  const int64_t plane = rows * row_pixels * 4, slack = ImplicitConvSlack(g.kernel_w);
  thread_local AlignedVector<uint8_t> x4_buffer;
  GrowScratch(x4_buffer, static_cast<size_t>(c4s * plane + slack));
  uint8_t* const x4 = x4_buffer.data();
  const uint8_t zp = static_cast<uint8_t>(s.x_zero_point);
  ParallelFor(c4s, 2, [&](int64_t b, int64_t e) {
    for (int64_t c4 = b; c4 < e; ++c4) {
      uint8_t* p = x4 + c4 * plane;
      std::memset(p, zp, static_cast<size_t>(g.pad_h * row_pixels * 4));  // top padding rows
      std::memset(p + (g.pad_h + g.in_h) * row_pixels * 4, zp, static_cast<size_t>(g.pad_h * row_pixels * 4));
      for (int64_t iy = 0; iy < g.in_h; ++iy) {
        uint8_t* row = p + (iy + g.pad_h) * row_pixels * 4;
        std::memset(row, zp, static_cast<size_t>(g.pad_w * 4));
        std::memset(row + (g.pad_w + g.in_w) * 4, zp, static_cast<size_t>(g.pad_w * 4));
        const uint8_t* src[4];
        for (int64_t j = 0; j < 4; ++j) src[j] = x + ((c4 * 4 + j) * g.in_h + iy) * g.in_w;
        Interleave4(src, g.in_w, row + g.pad_w * 4);
      }
    }
  });
  std::memset(x4 + c4s * plane, zp, static_cast<size_t>(slack));
  ImplicitConvArgs c;
  c.x4 = x4;
  c.row_pixels = row_pixels;
  c.plane_bytes = plane;
  c.w = s.tap_major.data();
  c.in_channels = g.in_channels;
  c.out_channels = g.out_channels;
  c.kernel_h = g.kernel_h;
  c.kernel_w = g.kernel_w;
  c.out_h = g.out_h();
  c.out_w = g.out_w();
  c.requant.correction = s.correction.data();
  c.requant.multiplier = s.multiplier.data();
  c.requant.zero_point = s.y_zero_point;
  c.requant.lo = s.lo;
  c.requant.hi = s.hi;
  c.requant.y = y;
  c.requant.ldy = c.out_h * c.out_w;
  if (path == QConvPath::kImplicitAmx) {
    ImplicitConvAmx(c);
  } else {
    ImplicitConvVnni(c);
  }
}

}  // namespace

void RunImplicit(const PackedQConv2dState& s, QConvPath path, const Conv2dGeometry& g, const uint8_t* x, uint8_t* y) {
  const int64_t x_image = g.in_channels * g.in_h * g.in_w, y_image = g.out_channels * g.out_h() * g.out_w();
  for (int64_t n = 0; n < g.batch; ++n) ImplicitConvImage(s, path, g, x + n * x_image, y + n * y_image);
}

}  // namespace kernels
}  // namespace qfx
