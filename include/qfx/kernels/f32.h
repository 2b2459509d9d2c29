// qfx kernels: fp32 compute on plain pointers (no graph or module types).
//
// Two families with the same contracts: the scalar reference oracle in namespace qfx::kernels::ref,
// and the fast versions in qfx::kernels (Highway SIMD with run-time dispatch, multi-threaded through
// qfx::ParallelFor). Tests compare every fast path, on every compiled SIMD target, with its oracle.
// All tensors are contiguous row-major; callers validate shapes before calling (kernels only assert).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>

namespace qfx {
namespace kernels {

// C[M,N] = A[M,K] * B[K,N]. A is row-major with row stride lda. B's element (k, n) is at
// B[k * b_row_stride + n * b_col_stride], so B can be a row-major matrix (stride N, 1) or the transpose
// of one (stride 1, K), as Linear's weight is. C is row-major with row stride ldc and is overwritten.
struct GemmArgs {
  int64_t m = 0, n = 0, k = 0;
  const float* a = nullptr;
  int64_t lda = 0;
  const float* b = nullptr;
  int64_t b_row_stride = 0, b_col_stride = 1;
  float* c = nullptr;
  int64_t ldc = 0;
};

// 2-d convolution geometry, PyTorch semantics (NCHW input, [C_out, C_in/groups, KH, KW] weight).
struct Conv2dGeometry {
  int64_t batch = 1, in_channels = 0, in_h = 0, in_w = 0;
  int64_t out_channels = 0, kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  int64_t out_h() const { return (in_h + 2 * pad_h - dilation_h * (kernel_h - 1) - 1) / stride_h + 1; }
  int64_t out_w() const { return (in_w + 2 * pad_w - dilation_w * (kernel_w - 1) - 1) / stride_w + 1; }
  // A square kernel with the same stride, padding and dilation along both axes.
  static Conv2dGeometry Square(int64_t batch, int64_t in_channels, int64_t in_h, int64_t in_w, int64_t out_channels,
                               int64_t kernel, int64_t stride, int64_t pad, int64_t dilation, int64_t groups) {
    return Conv2dGeometry{batch,  in_channels, in_h, in_w, out_channels, kernel,   kernel,
                          stride, stride,      pad,  pad,  dilation,     dilation, groups};
  }
};

// For one kernel tap along an axis: the outputs [first, second) whose input position
// o * stride + offset (offset = tap * dilation - padding) lies inside [0, in). Kernels loop over exactly
// these, with no bounds checks, and treat the rest as padding.
inline std::pair<int64_t, int64_t> ValidOutputRange(int64_t out, int64_t stride, int64_t offset, int64_t in) {
  int64_t first = 0, last = out;
  while (first < out && first * stride + offset < 0) ++first;
  while (last > first && (last - 1) * stride + offset >= in) --last;
  return {first, last};
}

// What a convolution applies to each output after its bias, in this order and with the same roundings as
// the separate ops: y = y * scale[c] + shift[c] (a batch norm in eval mode, when scale is set: multiply,
// then add), then the activation: kRelu is F::relu (y > 0 ? y : 0), kHardtanh F::hardtanh
// (min(max(y, lo), hi)). scale and shift are [C_out].
struct ConvEpilogue {
  enum class Activation { kNone, kRelu, kHardtanh };
  const float* scale = nullptr;
  const float* shift = nullptr;
  Activation activation = Activation::kNone;
  float lo = 0.f, hi = 0.f;
  // The scalar form, for output channel c (kernels use it for tails; the oracle defines the epilogue).
  float Apply(float v, int64_t c) const {
    if (scale != nullptr) v = v * scale[c] + shift[c];
    if (activation == Activation::kRelu) return v > 0.f ? v : 0.f;
    if (activation == Activation::kHardtanh) return std::min(std::max(v, lo), hi);
    return v;
  }
};

// Fast paths.
void GemmF32(const GemmArgs& args);
// y[N, C_out, OH, OW] = conv(x, w) + bias (bias may be null). Depthwise convolutions use a direct
// kernel; others a GEMM on the im2col matrix, packed straight from the image.
void Conv2dF32(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y);
// The same followed by `post` on every output, in the kernel's registers (no extra pass over y); equal to
// Conv2dF32 and then ref::ApplyConvEpilogue.
void Conv2dF32(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, const ConvEpilogue& post,
               float* y);
// The convolution's backward pass from dy [N, C_out, OH, OW]: dx [N, C_in, H, W], dw (weight's shape) and
// db [C_out] are overwritten; pass null for any not wanted.
void Conv2dBackwardF32(const Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx, float* dw,
                       float* db);
// Name of the SIMD target GemmF32 dispatches to now ("AVX2", "SSE4", "EMU128", "SCALAR", ...).
const char* GemmF32TargetName();

namespace ref {
void GemmF32(const GemmArgs& args);
void Conv2dF32(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y);
// y[N, C_out, OH, OW] = post.Apply(y, c), in place.
void ApplyConvEpilogue(const Conv2dGeometry& g, const ConvEpilogue& post, float* y);
void Conv2dBackwardF32(const Conv2dGeometry& g, const float* x, const float* w, const float* dy, float* dx, float* dw,
                       float* db);
}  // namespace ref

}  // namespace kernels
}  // namespace qfx
