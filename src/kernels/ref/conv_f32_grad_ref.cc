// qfx kernels: the scalar oracle of the fp32 convolution's backward pass (direct loops, double sums).
#include <cstddef>
#include <vector>

#include "qfx/kernels/f32.h"

namespace qfx {
namespace kernels {
namespace ref {

void Conv2dBackwardF32(const Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx, float* dw,
                       float* db) {
  const int64_t cin_g = g.in_channels / g.groups, cout_g = g.out_channels / g.groups;
  const int64_t oh = g.out_h(), ow = g.out_w();
  std::vector<double> gx(static_cast<size_t>(g.batch * g.in_channels * g.in_h * g.in_w), 0.0);
  std::vector<double> gw(static_cast<size_t>(g.out_channels * cin_g * g.kernel_h * g.kernel_w), 0.0);
  std::vector<double> gb(static_cast<size_t>(g.out_channels), 0.0);
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t co = 0; co < g.out_channels; ++co) {
      const int64_t grp = co / cout_g;
      for (int64_t oy = 0; oy < oh; ++oy) {
        for (int64_t ox = 0; ox < ow; ++ox) {
          const double d = dy[((n * g.out_channels + co) * oh + oy) * ow + ox];
          gb[co] += d;
          for (int64_t ci = 0; ci < cin_g; ++ci) {
            for (int64_t ky = 0; ky < g.kernel_h; ++ky) {
              for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
                const int64_t iy = oy * g.stride_h - g.pad_h + ky * g.dilation_h;
                const int64_t ix = ox * g.stride_w - g.pad_w + kx * g.dilation_w;
                if (iy < 0 || iy >= g.in_h || ix < 0 || ix >= g.in_w) continue;
                const int64_t xi = ((n * g.in_channels + grp * cin_g + ci) * g.in_h + iy) * g.in_w + ix;
                const int64_t wi = ((co * cin_g + ci) * g.kernel_h + ky) * g.kernel_w + kx;
                gx[xi] += d * w[wi];
                gw[wi] += d * x[xi];
              }
            }
          }
        }
      }
    }
  }
  if (dx)
    for (size_t i = 0; i < gx.size(); ++i) dx[i] = static_cast<float>(gx[i]);
  if (dw)
    for (size_t i = 0; i < gw.size(); ++i) dw[i] = static_cast<float>(gw[i]);
  if (db)
    for (size_t i = 0; i < gb.size(); ++i) db[i] = static_cast<float>(gb[i]);
}

}  // namespace ref
}  // namespace kernels
}  // namespace qfx
