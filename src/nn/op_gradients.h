// qfx nn: the registered backward of the ops that are not elementwise (qfx/nn/ops.h, OpSchema::vjp): the
// gradients of an op's tensor arguments from its arguments, its output and the output's gradient, computed
// only for the inputs `want` marks. Listed by the op registrations in ops.cc; training records them.
#pragma once

#include <vector>

#include "qfx/core/trace.h"

namespace qfx {
namespace nn {

std::vector<Tensor> VjpAdd(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                           const std::vector<bool>& want);  // broadcasting; the other may be a number
std::vector<Tensor> VjpMul(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                           const std::vector<bool>& want);
std::vector<Tensor> VjpReshape(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                               const std::vector<bool>& want);  // reshape, view, flatten
std::vector<Tensor> VjpMean(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                            const std::vector<bool>& want);
std::vector<Tensor> VjpCat(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                           const std::vector<bool>& want);
std::vector<Tensor> VjpSoftmax(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                               const std::vector<bool>& want);
std::vector<Tensor> VjpConv2d(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                              const std::vector<bool>& want);  // GEMM-based, through qfx::kernels
std::vector<Tensor> VjpLinear(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                              const std::vector<bool>& want);
std::vector<Tensor> VjpMaxPool2d(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                                 const std::vector<bool>& want);  // PyTorch's window rules
std::vector<Tensor> VjpAvgPool2d(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                                 const std::vector<bool>& want);
std::vector<Tensor> VjpAdaptiveAvgPool2d(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                                         const std::vector<bool>& want);
// The transformer ops (op_gradients_attention.cc).
std::vector<Tensor> VjpLayerNorm(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                                 const std::vector<bool>& want);  // weight and bias may be None
std::vector<Tensor> VjpMatmul(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                              const std::vector<bool>& want);  // matmul and bmm
std::vector<Tensor> VjpMultiheadAttention(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                                          const std::vector<bool>& want);  // self-attention; biases may be None
std::vector<Tensor> VjpSelect(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                              const std::vector<bool>& want);
std::vector<Tensor> VjpExpand(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                              const std::vector<bool>& want);  // expand and expand_as
std::vector<Tensor> VjpNarrow(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                              const std::vector<bool>& want);
std::vector<Tensor> VjpTranspose(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                                 const std::vector<bool>& want);
std::vector<Tensor> VjpInterpolate(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                                   const std::vector<bool>& want);  // nearest and bilinear (op_gradients_resize.cc)
std::vector<Tensor> VjpEmbedding(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                                 const std::vector<bool>& want);  // the weight's; none for the indices
std::vector<Tensor> VjpChannelShuffle(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                                      const std::vector<bool>& want);
std::vector<Tensor> VjpConvTranspose2d(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                                       const std::vector<bool>& want);  // x, weight and bias when a tensor
std::vector<Tensor> VjpPermute(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                               const std::vector<bool>& want);

}  // namespace nn
}  // namespace qfx
