// qfx quant: DynamicQuantizedLinear (see include/qfx/quant/quantized_modules.h).
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "qfx/quant/quantized_modules.h"

namespace qfx {
namespace quant {

DynamicQuantizedLinear::DynamicQuantizedLinear(QuantizedLayer layer, bool reduce_range)
    : layer_(std::move(layer)), reduce_range_(reduce_range) {
  layer_.is_conv = false;
  register_buffer("weight", layer_.weight_q);
  register_buffer("weight_scale", layer_.weight_scale);
  register_buffer("bias", layer_.bias);
  Prepack();
}

void DynamicQuantizedLinear::Prepack() {
  const int64_t out = layer_.out_channels, in = layer_.weight_q.numel() / out;
  packed_ = kernels::PackQLinearDynamic(in, out, layer_.weight_q.data<int8_t>(), layer_.weight_scale.data<float>(),
                                        layer_.bias.data<float>());
}

Tensor DynamicQuantizedLinear::forward(const Tensor& x) {
  const int64_t in = layer_.in_channels, out = layer_.out_channels;
  if (x.dtype() != DType::kF32 || x.dim() < 1 || x.size(-1) != in) {
    ThrowInvalid("DynamicQuantizedLinear: input ", x.ToString(), " must be f32 [..., ", in, "]");
  }
  const int64_t rows = x.numel() / in;
  // Per-call qparams from the input's range (fbgemm's FindMinMax + ChooseQuantizationParams).
  const float* px = x.data<float>();
  const int64_t n = x.numel();
  float lo, hi;
  if (!kernels::MinMax(px, n, &lo, &hi)) {
    ThrowInvalid("DynamicQuantizedLinear: input ", x.ToString(), " holds NaN or infinite values");
  }
  float scale;
  int64_t zero_point;
  const int32_t qmax = reduce_range_ ? 127 : 255;
  ChooseQuantizationParams(lo, hi, 0, qmax, /*preserve_sparsity=*/false, &scale, &zero_point);
  Tensor xq = Tensor::Uninitialized(x.shape(), DType::kU8);
  kernels::QuantizeU8(px, n, scale, static_cast<int32_t>(zero_point), qmax, xq.data<uint8_t>());
  Shape shape = x.shape();
  shape.back() = out;
  Tensor y = Tensor::Uninitialized(shape);
  kernels::RunDynamic(packed_, rows, scale, static_cast<int32_t>(zero_point), xq.data<uint8_t>(), y.data<float>());
  return y;
}

nlohmann::json DynamicQuantizedLinear::Config() const {
  return {{"in", layer_.in_channels}, {"out", layer_.out_channels}, {"reduce_range", reduce_range_}};
}

absl::StatusOr<std::shared_ptr<DynamicQuantizedLinear>> DynamicQuantizedLinear::FromConfig(const nlohmann::json& c) {
  QuantizedLayer l;
  l.is_conv = false;
  l.in_channels = c.at("in").get<int64_t>();
  l.out_channels = c.at("out").get<int64_t>();
  if (l.in_channels < 1 || l.out_channels < 1) return absl::InvalidArgumentError("in and out must be positive");
  l.weight_q = Tensor::Empty({l.out_channels, l.in_channels}, DType::kI8);
  l.weight_scale = Tensor::Full({l.out_channels}, 1.f);
  l.bias = Tensor::Zeros({l.out_channels});
  return std::make_shared<DynamicQuantizedLinear>(l, c.at("reduce_range").get<bool>());
}

}  // namespace quant
}  // namespace qfx
