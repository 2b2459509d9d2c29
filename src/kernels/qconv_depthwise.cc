// qfx kernels: the depthwise convolution driver (one input channel per group, any channel multiplier).
// kDepthwiseVnni runs the whole layer in AVX-512 VNNI strips (x86/qu8_dwconv_avx512vnni-inl.h), requantized
// in registers; kDepthwiseMaddwd (AVX2 / AVX3) likewise with vpmaddwd (x86/qu8_dwconv_avx2-inl.h). kDepthwise
// (every other target, dilated layers, kernels wider than 8) accumulates each
// output plane exactly with DepthwiseAccumulate (hwy/qu8_dwconv-inl.h), then requantizes it with
// RequantizeRow; planes are spread over the threads.
#include <vector>

#include "qfx/core/parallel.h"
#include "src/kernels/packed.h"
#include "src/kernels/scratch.h"

namespace qfx {
namespace kernels {
namespace {

// One output plane: the exact int32 accumulation of the whole plane, then one requantization of it.
void DepthwiseQPlane(const PackedQConv2dState& s, const Conv2dGeometry& g, int64_t co, const uint8_t* xc, uint8_t* y,
                     int32_t* acc) {
  DepthwisePlaneArgs p;
  p.g = &g;
  p.x = xc;
  p.w = s.weight.data() + co * g.kernel_h * g.kernel_w;
  p.x_zero_point = s.x_zero_point;
  p.acc = acc;
  DepthwiseAccumulate(p);
  RequantizeRow(acc, g.out_h() * g.out_w(), s.bias[co], s.multiplier[co], s.y_zero_point, s.lo, s.hi, y);
}

}  // namespace

void RunDepthwise(const PackedQConv2dState& s, QConvPath path, const Conv2dGeometry& g, const uint8_t* x, uint8_t* y) {
  if (path == QConvPath::kDepthwiseVnni) return DepthwiseQConvVnni(s.Args(g), s.correction.data(), x, y);
  if (path == QConvPath::kDepthwiseMaddwd) return DepthwiseQConvMaddwd(s.Args(g), s.correction.data(), x, y);
  const int64_t ohw = g.out_h() * g.out_w(), mult = g.out_channels / g.in_channels;
  ParallelFor(g.batch * g.out_channels, 2, [&](int64_t b, int64_t e) {
    thread_local std::vector<int32_t> acc;  // per thread, reused across calls
    GrowScratch(acc, static_cast<size_t>(ohw));
    for (int64_t idx = b; idx < e; ++idx) {
      const int64_t n = idx / g.out_channels, co = idx % g.out_channels, ci = co / mult;
      DepthwiseQPlane(s, g, co, x + (n * g.in_channels + ci) * g.in_h * g.in_w, y + idx * ohw, acc.data());
    }
  });
}

}  // namespace kernels
}  // namespace qfx
