// qfx nn, internal: conv -> batch norm (eval) -> relu / hardtanh in one pass, for Sequential's forward on
// concrete tensors (nn::Sequential::forward decides; see FuseConvBnActivation in modules.cc). The result is
// bit for bit the three ops': the batch norm's scale and shift come from the same helper, and the kernels
// apply them (multiply, then add) and the activation as those ops do, in registers.
#pragma once

#include <cstdint>

#include "qfx/core/tensor.h"
#include "qfx/kernels/f32.h"
#include "qfx/nn/functional.h"

namespace qfx {
namespace F {

// Channel ch of a batch norm as y = x * scale + shift (what batch_norm applies in eval mode).
void BatchNormScaleShift(double mean, double var, const Tensor& weight, const Tensor& bias, double eps, int64_t ch,
                         float* scale, float* shift);

// conv2d(x, weight, bias, opt), then batch_norm(running_mean, running_var, bn_weight, bn_bias, eval, eps), then
// the activation (kRelu: relu; kHardtanh: hardtanh(lo, hi)). Not traced: for concrete fp32 tensors only.
Tensor conv2d_batch_norm_eval(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt,
                              const Tensor& running_mean, const Tensor& running_var, const Tensor& bn_weight,
                              const Tensor& bn_bias, double eps, kernels::ConvEpilogue::Activation activation, float lo,
                              float hi);

}  // namespace F
}  // namespace qfx
