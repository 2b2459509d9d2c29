// qfx kernels, internal: the two fp32 convolution kernels Conv2dF32 chooses between: a GEMM on the im2col
// matrix packed straight from the image (hwy/gemm_f32-inl.h) and the depthwise kernel (hwy/dwconv_f32-inl.h).
#pragma once

#include "qfx/kernels/f32.h"

namespace qfx {
namespace kernels {

// y[N, C_out, OH, OW] = conv(x, w) + bias (bias may be null), then post's epilogue (post may be null), any
// groups; the same contract as Conv2dF32.
void Conv2dGemmF32(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, const ConvEpilogue* post,
                   float* y);
// The same for groups == C_in and C_out a multiple of C_in.
void DepthwiseConv2dF32(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                        const ConvEpilogue* post, float* y);

}  // namespace kernels
}  // namespace qfx
