// qfx nn: F::conv_transpose2d, PyTorch's ConvTranspose2d (the adjoint of conv2d): every input value scattered
// through the kernel into the output; see qfx/nn/functional.h. Direct loops, shared with its backward.
#include <algorithm>
#include <vector>

#include "qfx/core/parallel.h"
#include "qfx/core/status.h"
#include "qfx/core/trace.h"
#include "qfx/nn/functional.h"
#include "src/nn/functional_internal.h"

namespace qfx {
namespace F {

nn::ConvTranspose2dGeometry ConvTranspose2dGeometryOf(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                                      const ConvTranspose2dOptions& o) {
  const char* op = "conv_transpose2d";
  if (x.dtype() != DType::kF32 || x.dim() != 4) ThrowInvalid(op, ": input ", x.ToString(), " must be f32 [N, C, H, W]");
  if (weight.dtype() != DType::kF32 || weight.dim() != 4) {
    ThrowInvalid(op, ": weight ", weight.ToString(), " must be f32 [C_in, C_out / groups, kH, kW]");
  }
  for (const auto* v : {&o.stride, &o.padding, &o.output_padding, &o.dilation}) {
    if (v->size() != 2) ThrowInvalid(op, ": stride, padding, output_padding and dilation need two values each");
  }
  nn::ConvTranspose2dGeometry g;
  g.batch = x.size(0);
  g.in_channels = x.size(1);
  g.in_h = x.size(2);
  g.in_w = x.size(3);
  g.groups = o.groups;
  if (g.groups <= 0 || weight.size(0) != g.in_channels || g.in_channels % g.groups != 0) {
    ThrowInvalid(op, ": weight ", weight.ToString(), " must start with the input's ", g.in_channels,
                 " channels, divisible by groups ", g.groups);
  }
  g.out_channels = weight.size(1) * g.groups;
  g.kernel_h = weight.size(2);
  g.kernel_w = weight.size(3);
  g.stride_h = o.stride[0];
  g.stride_w = o.stride[1];
  g.pad_h = o.padding[0];
  g.pad_w = o.padding[1];
  g.dilation_h = o.dilation[0];
  g.dilation_w = o.dilation[1];
  const int64_t oph = o.output_padding[0], opw = o.output_padding[1];
  constexpr int64_t kMax = int64_t{1} << 16;  // keeps the size arithmetic far from overflow
  if (g.stride_h <= 0 || g.stride_w <= 0 || g.dilation_h <= 0 || g.dilation_w <= 0 || g.pad_h < 0 || g.pad_w < 0 ||
      g.stride_h > kMax || g.stride_w > kMax || g.dilation_h > kMax || g.dilation_w > kMax || g.pad_h > kMax ||
      g.pad_w > kMax) {
    ThrowInvalid(op, ": stride and dilation must be positive and padding non-negative, each at most 65536");
  }
  if (oph < 0 || opw < 0 || (oph >= g.stride_h && oph >= g.dilation_h) || (opw >= g.stride_w && opw >= g.dilation_w)) {
    ThrowInvalid(op, ": output_padding (", oph, ", ", opw, ") must be smaller than the stride or the dilation");
  }
  g.out_h = (g.in_h - 1) * g.stride_h - 2 * g.pad_h + g.dilation_h * (g.kernel_h - 1) + oph + 1;
  g.out_w = (g.in_w - 1) * g.stride_w - 2 * g.pad_w + g.dilation_w * (g.kernel_w - 1) + opw + 1;
  if (g.out_h <= 0 || g.out_w <= 0) {
    ThrowInvalid(op, ": input ", x.ToString(), " gives an empty output (", g.out_h, " x ", g.out_w, ")");
  }
  // A bound on what a graph file's options can make a run allocate, as F::interpolate's.
  if (g.out_h > kMax || g.out_w > kMax || g.out_h * g.out_w > (int64_t{1} << 26)) {
    ThrowInvalid(op, ": output ", g.out_h, " x ", g.out_w, " exceeds 65536 per axis or 2^26 values per plane");
  }
  if (bias.defined() && (bias.dtype() != DType::kF32 || bias.dim() != 1 || bias.size(0) != g.out_channels)) {
    ThrowInvalid(op, ": bias ", bias.ToString(), " must be f32 [", g.out_channels, "]");
  }
  return g;
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvTranspose2dOptions& o) {
  QFX_TRACE_OP(OpId::kConvTranspose2d, x, weight, Optional(bias), o.stride, o.padding, o.output_padding, o.groups,
               o.dilation);
  const nn::ConvTranspose2dGeometry g = ConvTranspose2dGeometryOf(x, weight, bias, o);
  Tensor y = Tensor::Zeros({g.batch, g.out_channels, g.out_h, g.out_w});
  const float *px = x.data<float>(), *pw = weight.data<float>();
  float* py = y.data<float>();
  // One (image, output channel) plane per work item: no two items write the same output.
  ParallelFor(g.batch * g.out_channels, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t n = p / g.out_channels, co = p % g.out_channels;
      float* plane = py + p * g.out_h * g.out_w;
      if (bias.defined()) std::fill(plane, plane + g.out_h * g.out_w, bias.data<float>()[co]);
      nn::ForEachTap(g, n, co, [&](int64_t xi, int64_t wi, int64_t yi) { plane[yi] += px[xi] * pw[wi]; });
    }
  });
  return y;
}

}  // namespace F
}  // namespace qfx
