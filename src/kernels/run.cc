// qfx kernels: Run for packed convolutions and linear layers (qfx/kernels/qconv.h). A packed layer runs
// its own path (RunnablePath only differs when a test has changed the dispatcher's target since the
// pack); each path family has one driver: qconv_depthwise.cc, qconv_implicit.cc, qconv_gemm.cc,
// qlinear.cc. Run itself only asserts; the quantized modules validate shapes before they call it.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "hwy/targets.h"
#include "qfx/kernels/qconv.h"
#include "src/kernels/packed.h"
#include "src/kernels/scratch.h"

namespace qfx {
namespace kernels {

namespace {

template <typename Packed>
void AssertPacked(const Packed& p, const char* what) {
  if (p.empty()) {
    std::fprintf(stderr, "qfx: internal error: Run on an empty %s (pack the layer first)\n", what);
    std::abort();
  }
}

}  // namespace

void Run(const PackedQConv2d& conv, int64_t batch, int64_t in_h, int64_t in_w, const uint8_t* x, uint8_t* y) {
  AssertPacked(conv, "PackedQConv2d");
  const PackedQConv2dState& s = *conv.state_;
  const Conv2dGeometry g = s.shape.Geometry(batch, in_h, in_w);
  const QConvPath path = RunnablePath(s.path, s.shape, Int8Isa::Current());
  if (IsDepthwisePath(path)) return RunDepthwise(s, path, g, x, y);
  if (IsImplicitPath(path)) return RunImplicit(s, path, g, x, y);
  RunGemmConv(s, path, g, x, y);
}

void Run(const PackedQLinear& linear, int64_t rows, const uint8_t* x, uint8_t* y) {
  // y[r, o] = W[o, :] . x[r, :]: the GEMM C[out, rows] = W[out, in] x X^T[in, rows].
  AssertPacked(linear, "PackedQLinear");
  const PackedQLinearState& s = *linear.state_;
  thread_local std::vector<int32_t> acc_buffer;  // reused across calls: no allocation once large enough
  int32_t* const acc = GrowScratch(acc_buffer, static_cast<size_t>(s.out * rows));
  LinearAcc(s, RunnablePath(s.path, Int8Isa::Current()), x, rows, acc);
  for (int64_t o = 0; o < s.out; ++o) {
    for (int64_t r = 0; r < rows; ++r) {
      y[r * s.out + o] = Requantize(acc[o * rows + r] + s.correction[o], s.multiplier[o], s.y_zero_point, s.lo, s.hi);
    }
  }
}

void RunDynamic(const PackedQLinear& linear, int64_t rows, float x_scale, int32_t x_zero_point, const uint8_t* x,
                float* y) {
  AssertPacked(linear, "PackedQLinear");
  const PackedQLinearState& s = *linear.state_;
  thread_local std::vector<int32_t> acc_buffer;
  int32_t* const acc = GrowScratch(acc_buffer, static_cast<size_t>(s.out * rows));
  LinearAcc(s, RunnablePath(s.path, Int8Isa::Current()), x, rows, acc);
  for (int64_t o = 0; o < s.out; ++o) {
    const int32_t correction = -x_zero_point * s.weight_sum[o];
    const float scale = x_scale * s.w_scale[o], bias = s.bias[o];
    for (int64_t r = 0; r < rows; ++r)
      y[r * s.out + o] = static_cast<float>(acc[o * rows + r] + correction) * scale + bias;
  }
}

const char* Int8TargetName() { return hwy::TargetName(Int8Target()); }

}  // namespace kernels
}  // namespace qfx
