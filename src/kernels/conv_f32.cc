// qfx kernels: fast fp32 convolution, the one place its kernel is chosen. Depthwise convolutions run a
// direct SIMD kernel over output rows; every other convolution is one GEMM per image and group on the
// im2col matrix packed straight from the image (src/kernels/gemm_f32.h). Contract: include/qfx/kernels/f32.h.
#include "qfx/kernels/f32.h"
#include "src/kernels/gemm_f32.h"

namespace qfx {
namespace kernels {

namespace {

// The one place the fp32 convolution's kernel is chosen.
void Run(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, const ConvEpilogue* post,
         float* y) {
  const bool depthwise = g.groups == g.in_channels && g.groups > 1 && g.out_channels % g.in_channels == 0;
  if (depthwise) return DepthwiseConv2dF32(g, x, w, bias, post, y);
  Conv2dGemmF32(g, x, w, bias, post, y);
}

}  // namespace

void Conv2dF32(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  Run(g, x, w, bias, nullptr, y);
}

void Conv2dF32(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, const ConvEpilogue& post,
               float* y) {
  Run(g, x, w, bias, &post, y);
}

}  // namespace kernels
}  // namespace qfx
