// qfx quant: how close a quantized model's outputs are to the float ones.
#pragma once

#include "qfx/core/tensor.h"

namespace qfx {
namespace quant {

// Signal-to-quantization-noise ratio in dB: 10 log10(sum ref^2 / sum (ref - y)^2), over f32 tensors of
// equal size (accumulated in double).
double SqnrDb(const Tensor& reference, const Tensor& y);

}  // namespace quant
}  // namespace qfx
