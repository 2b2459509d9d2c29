// qfx kernels: the implicit-GEMM convolution driver (the kImplicitAmx, kImplicitVnni and kImplicitMaddubs
// paths: one group, no dilation; C_in a multiple of 64 and stride 1 but for kImplicitMaddubs, which takes any
// C_in (padded to a group of 4) and strides up to 4 through phase sub-planes, X4Grid). Per image it builds the
// zero-point-padded input with C_in in groups of 4 interleaved per pixel (ImplicitConvArgs' x4 layout), then runs the
// AMX, VNNI or vpmaddubsw kernel, which reads the tap-major weights and requantizes block by block: no im2col at all.
// (vpmaddubsw saturates where input * weight pairs leave int16: that kernel splits the steps that could.)
#include <cstring>
#include <vector>

#include "qfx/core/parallel.h"
#include "src/kernels/packed.h"
#include "src/kernels/scratch.h"
#include "src/kernels/x86/u8_shuffle_sse2.h"

namespace qfx {
namespace kernels {
namespace {

// Where the x4 planes keep each padded input pixel: stride_h x stride_w phase sub-planes (rows iy with the
// same iy % stride_h, columns with the same ix % stride_w) of sub_h x sub_w pixels each. An output at grid
// position f = oy * sub_w + ox then reads tap (ky, kx) at position f + At(ky, kx) for any stride: the
// kernels' flattened-grid addressing. At stride 1 it is the padded image itself.
struct X4Grid {
  static constexpr int64_t kMaxStride = 4;  // kImplicitMaddubs' limit (path.cc)
  int64_t sh, sw, sub_h, sub_w;
  explicit X4Grid(const Conv2dGeometry& g)
      : sh(g.stride_h),
        sw(g.stride_w),
        sub_h((g.in_h + 2 * g.pad_h + sh - 1) / sh),
        sub_w((g.in_w + 2 * g.pad_w + sw - 1) / sw) {}
  int64_t PlanePixels() const { return sh * sw * sub_h * sub_w; }
  int64_t At(int64_t iy, int64_t ix) const {
    return ((iy % sh) * sw + ix % sw) * sub_h * sub_w + (iy / sh) * sub_w + ix / sw;
  }
};

// One x4 plane (input channels 4 * c4 .. + 3 of image x; channels past C_in read `zeros`, a zero row) into p.
void FillX4Plane(const Conv2dGeometry& g, const X4Grid& grid, const uint8_t* x, int64_t c4, uint8_t zp,
                 const uint8_t* zeros, uint8_t* p) {
  const int64_t row_pixels = g.in_w + 2 * g.pad_w;
  const bool phased = grid.sh * grid.sw > 1;
  if (phased) {
    std::memset(p, zp, static_cast<size_t>(grid.PlanePixels() * 4));
  } else {
    std::memset(p, zp, static_cast<size_t>(g.pad_h * row_pixels * 4));  // top and bottom padding rows
    std::memset(p + (g.pad_h + g.in_h) * row_pixels * 4, zp, static_cast<size_t>(g.pad_h * row_pixels * 4));
  }
  std::vector<uint8_t> row(phased ? static_cast<size_t>(g.in_w * 4) : 0);
  for (int64_t iy = 0; iy < g.in_h; ++iy) {
    const uint8_t* src[4];
    for (int64_t j = 0; j < 4; ++j) {
      src[j] = c4 * 4 + j < g.in_channels ? x + ((c4 * 4 + j) * g.in_h + iy) * g.in_w : zeros;
    }
    const int64_t py = iy + g.pad_h;
    if (!phased) {
      uint8_t* dst = p + grid.At(py, 0) * 4;
      std::memset(dst, zp, static_cast<size_t>(g.pad_w * 4));
      std::memset(dst + (g.pad_w + g.in_w) * 4, zp, static_cast<size_t>(g.pad_w * 4));
      Interleave4(src, g.in_w, dst + g.pad_w * 4);
      continue;
    }
    Interleave4(src, g.in_w, row.data());  // then each pixel's 4 bytes to its phase sub-plane's row
    uint8_t* phase_rows[X4Grid::kMaxStride];
    for (int64_t px = 0; px < grid.sw; ++px) phase_rows[px] = p + grid.At(py, px) * 4;
    int64_t px = g.pad_w % grid.sw, col = g.pad_w / grid.sw;
    for (int64_t ix = 0; ix < g.in_w; ++ix) {
      std::memcpy(phase_rows[px] + col * 4, row.data() + ix * 4, 4);
      if (++px == grid.sw) px = 0, ++col;
    }
  }
}

// The implicit-GEMM convolution of one image (see ImplicitConvArgs): builds the padded, 4-channel-interleaved
// input, then runs the path's kernel (AMX, VNNI or vpmaddubsw).
void ImplicitConvImage(const PackedQConv2dState& s, QConvPath path, const Conv2dGeometry& g, const uint8_t* x,
                       uint8_t* y) {
  const X4Grid grid(g);
  const int64_t cin4 = ImplicitInChannels(g.in_channels), c4s = cin4 / 4;
  const int64_t plane = grid.PlanePixels() * 4, slack = ImplicitConvSlack(g.kernel_w);
  thread_local AlignedVector<uint8_t> x4_buffer;
  GrowScratch(x4_buffer, static_cast<size_t>(c4s * plane + slack));
  uint8_t* const x4 = x4_buffer.data();
  const uint8_t zp = static_cast<uint8_t>(s.x_zero_point);
  const std::vector<uint8_t> zeros(cin4 > g.in_channels ? static_cast<size_t>(g.in_w) : 0, 0);
  ParallelFor(
      c4s, 2,
      [&](int64_t b, int64_t e) {
        for (int64_t c4 = b; c4 < e; ++c4) FillX4Plane(g, grid, x, c4, zp, zeros.data(), x4 + c4 * plane);
      },
      4);
  std::memset(x4 + c4s * plane, zp, static_cast<size_t>(slack));
  std::vector<int64_t> tap_offsets(static_cast<size_t>(g.kernel_h * g.kernel_w));
  for (int64_t ky = 0; ky < g.kernel_h; ++ky) {
    for (int64_t kx = 0; kx < g.kernel_w; ++kx) tap_offsets[ky * g.kernel_w + kx] = grid.At(ky, kx);
  }
  ImplicitConvArgs c;
  c.x4 = x4;
  c.row_pixels = grid.sub_w;
  c.tap_offsets = tap_offsets.data();
  c.exact_max = MaddubsExactMax(s.max_pair);
  c.plane_bytes = plane;
  c.w = s.tap_major.data();
  c.in_channels = cin4;
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
  } else if (path == QConvPath::kImplicitVnni) {
    ImplicitConvVnni(c);
  } else {
    ImplicitConvMaddubs(c);
  }
}

}  // namespace

void RunImplicit(const PackedQConv2dState& s, QConvPath path, const Conv2dGeometry& g, const uint8_t* x, uint8_t* y) {
  const int64_t x_image = g.in_channels * g.in_h * g.in_w, y_image = g.out_channels * g.out_h() * g.out_w();
  for (int64_t n = 0; n < g.batch; ++n) ImplicitConvImage(s, path, g, x + n * x_image, y + n * y_image);
}

}  // namespace kernels
}  // namespace qfx
