// qfx quant: reference and quantized weighted modules (see include/qfx/quant/quantized_modules.h).
#include "qfx/quant/quantized_modules.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace qfx {
namespace quant {

absl::StatusOr<QuantizedLayer> QuantizeLayer(const Tensor& weight, const Tensor& bias, const ObserverSpec& spec) {
  ObserverSpec s = spec;
  s.fake_quant = false;
  QFX_ASSIGN_OR_RETURN(std::shared_ptr<Observer> obs, MakeObserver(s));
  QParams qp;
  QFX_RETURN_IF_ERROR(CatchErrors([&] {
    (*obs)(weight);
    qp = obs->CalculateQParams();
  }));
  return QuantizeLayer(weight, bias, qp);
}

absl::StatusOr<QuantizedLayer> QuantizeLayer(const Tensor& weight, const Tensor& bias, const QParams& qp) {
  if (qp.scale.size() != 1 && static_cast<int64_t>(qp.scale.size()) != weight.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat("weight ", weight.ToString(), " has ", weight.size(0),
                                                   " output channels but its qparams have ", qp.scale.size(), " scales"));
  }
  const int64_t out = weight.size(0), per_row = weight.numel() / out;
  QuantizedLayer l;
  l.out_channels = out;
  l.weight_q = Tensor::Empty(weight.shape(), DType::kI8);
  l.weight_scale = Tensor::Empty({out});
  l.bias = bias.defined() ? bias.Clone() : Tensor::Zeros({out});
  for (int64_t o = 0; o < out; ++o) {
    const size_t c = qp.scale.size() == 1 ? 0 : static_cast<size_t>(o);
    if (qp.zero_point[c] != 0) {
      return absl::InvalidArgumentError(absl::StrCat("weight zero point ", qp.zero_point[c], " must be 0 (symmetric weights)"));
    }
    const float scale = qp.scale[c], inv = 1.0f / scale;
    l.weight_scale.data<float>()[o] = scale;
    for (int64_t i = 0; i < per_row; ++i) {
      l.weight_q.data<int8_t>()[o * per_row + i] = static_cast<int8_t>(kernels::QuantizeValue(
          weight.data<float>()[o * per_row + i], inv, 0, static_cast<int32_t>(qp.quant_min), static_cast<int32_t>(qp.quant_max)));
    }
  }
  return l;
}

ReferenceWeighted::ReferenceWeighted(QuantizedLayer layer) : layer_(std::move(layer)) {
  weight_deq_ = Tensor::Empty(layer_.weight_q.shape());
  const int64_t per_row = weight_deq_.numel() / layer_.out_channels;
  for (int64_t i = 0; i < weight_deq_.numel(); ++i) {
    weight_deq_.data<float>()[i] = static_cast<float>(layer_.weight_q.data<int8_t>()[i]) * layer_.weight_scale.data<float>()[i / per_row];
  }
  options_.stride = {layer_.stride, layer_.stride};
  options_.padding = {layer_.padding, layer_.padding};
  options_.dilation = {layer_.dilation, layer_.dilation};
  options_.groups = layer_.groups;
  register_buffer("weight", weight_deq_);
  register_buffer("bias", layer_.bias);
}

Tensor ReferenceWeighted::forward(const Tensor& x) {
  const Tensor y = layer_.is_conv ? F::conv2d(x, weight_deq_, layer_.bias, options_) : F::linear(x, weight_deq_, layer_.bias);
  return layer_.relu ? F::relu(y) : y;
}

QuantizedWeighted::QuantizedWeighted(QuantizedLayer layer, QuantInfo input, QuantInfo output)
    : layer_(std::move(layer)), input_(input), output_(output) {
  if (layer_.relu) clamp_lo_ = output_.zero_point;
  bias_q_ = Tensor::Empty({layer_.out_channels}, DType::kI32);
  register_buffer("weight", layer_.weight_q);
  register_buffer("weight_scale", layer_.weight_scale);
  register_buffer("bias", layer_.bias);
  Prepack();
}

void QuantizedWeighted::FoldClamp(float lo, float hi) {
  const float inv = 1.0f / output_.scale;
  if (!std::isinf(lo)) clamp_lo_ = std::max(clamp_lo_, kernels::QuantizeValue(lo, inv, output_.zero_point, 0, 255));
  if (!std::isinf(hi)) clamp_hi_ = std::min(clamp_hi_, kernels::QuantizeValue(hi, inv, output_.zero_point, 0, 255));
}

void QuantizedWeighted::Prepack() {
  const int64_t out = layer_.out_channels, per_row = layer_.weight_q.numel() / out;
  weight_sum_.resize(out);
  multiplier_.resize(out);
  kernels::ComputeWeightSums(layer_.weight_q.data<int8_t>(), out, per_row, weight_sum_.data());
  for (int64_t o = 0; o < out; ++o) {
    const float sw = layer_.weight_scale.data<float>()[o];
    bias_q_.data<int32_t>()[o] = kernels::QuantizeBias(layer_.bias.data<float>()[o], input_.scale, sw);
    multiplier_[o] = kernels::RequantMultiplier(input_.scale, sw, output_.scale);
  }
  const bool depthwise = layer_.is_conv && layer_.groups == layer_.in_channels && layer_.groups > 1;
  if (!depthwise) {
    const int64_t groups = layer_.is_conv ? layer_.groups : 1;
    packed_weight_ = kernels::PrepackWeights(layer_.weight_q.data<int8_t>(), groups, out / groups, per_row, &weight_max_pair_);
    if (layer_.is_conv && layer_.stride == 1 && layer_.dilation == 1) {
      tap_weight_ = kernels::PrepackTapMajor(layer_.weight_q.data<int8_t>(), out, layer_.in_channels, layer_.groups,
                                             layer_.kernel, layer_.kernel);
    }
    if (layer_.is_conv && layer_.dilation == 1 && tap_weight_.empty()) {
      window_weight_ = kernels::PrepackWindowed(layer_.weight_q.data<int8_t>(), out, layer_.in_channels, layer_.groups,
                                                layer_.kernel, layer_.kernel);
    }
  }
}

Tensor QuantizedWeighted::forward(const Tensor& x) {
  if (!x.is_quantized() || x.dtype() != DType::kU8) ThrowInvalid(type_name(), ": input ", x.ToString(), " must be quint8");
  if (x.quant().scale != input_.scale || x.quant().zero_point != input_.zero_point) {
    ThrowInvalid(type_name(), ": input qparams (", x.quant().scale, ", ", x.quant().zero_point, ") differ from the (",
                 input_.scale, ", ", input_.zero_point, ") it was converted for");
  }
  if (layer_.is_conv) {
    if (x.dim() != 4 || x.size(1) != layer_.in_channels) {
      ThrowInvalid(type_name(), ": input ", x.ToString(), " must be [N, ", layer_.in_channels, ", H, W]");
    }
    kernels::QConvArgs a;
    a.g.batch = x.size(0), a.g.in_channels = layer_.in_channels, a.g.in_h = x.size(2), a.g.in_w = x.size(3);
    a.g.out_channels = layer_.out_channels, a.g.kernel_h = a.g.kernel_w = layer_.kernel;
    a.g.stride_h = a.g.stride_w = layer_.stride, a.g.pad_h = a.g.pad_w = layer_.padding;
    a.g.dilation_h = a.g.dilation_w = layer_.dilation, a.g.groups = layer_.groups;
    if (a.g.out_h() <= 0 || a.g.out_w() <= 0) ThrowInvalid(type_name(), ": input ", x.ToString(), " is smaller than the kernel");
    a.x_zero_point = input_.zero_point, a.weight = layer_.weight_q.data<int8_t>(), a.bias = bias_q_.data<int32_t>();
    a.weight_sum = weight_sum_.data(), a.multiplier = multiplier_.data(), a.y_zero_point = output_.zero_point;
    a.lo = clamp_lo_, a.hi = clamp_hi_;
    if (!packed_weight_.empty()) a.packed_weight = packed_weight_.data(), a.weight_max_pair = weight_max_pair_;
    if (!tap_weight_.empty()) a.tap_weight = tap_weight_.data();
    if (!window_weight_.empty()) a.window_weight = window_weight_.data();
    Tensor y = Tensor::Quantized({a.g.batch, a.g.out_channels, a.g.out_h(), a.g.out_w()}, DType::kU8, output_);
    kernels::QConv2d(a, x.data<uint8_t>(), y.data<uint8_t>());
    return y;
  }
  if (x.dim() < 1 || x.size(-1) != layer_.in_channels) {
    ThrowInvalid(type_name(), ": input ", x.ToString(), " must end in ", layer_.in_channels, " features");
  }
  kernels::QLinearArgs a;
  a.rows = x.numel() / layer_.in_channels, a.in = layer_.in_channels, a.out = layer_.out_channels;
  a.x_zero_point = input_.zero_point, a.weight = layer_.weight_q.data<int8_t>(), a.bias = bias_q_.data<int32_t>();
  a.weight_sum = weight_sum_.data(), a.multiplier = multiplier_.data(), a.y_zero_point = output_.zero_point;
  a.lo = clamp_lo_, a.hi = clamp_hi_;
  if (!packed_weight_.empty()) a.packed_weight = packed_weight_.data(), a.weight_max_pair = weight_max_pair_;
  Shape shape = x.shape();
  shape.back() = layer_.out_channels;
  Tensor y = Tensor::Quantized(shape, DType::kU8, output_);
  kernels::QLinear(a, x.data<uint8_t>(), y.data<uint8_t>());
  return y;
}

nlohmann::json QuantizedWeighted::Config() const {
  return {{"is_conv", layer_.is_conv}, {"relu", layer_.relu}, {"in_channels", layer_.in_channels},
          {"out_channels", layer_.out_channels}, {"kernel", layer_.kernel}, {"stride", layer_.stride},
          {"padding", layer_.padding}, {"dilation", layer_.dilation}, {"groups", layer_.groups},
          {"input_scale", input_.scale}, {"input_zero_point", input_.zero_point}, {"output_scale", output_.scale},
          {"output_zero_point", output_.zero_point}, {"clamp_lo", clamp_lo_}, {"clamp_hi", clamp_hi_}};
}

absl::StatusOr<std::shared_ptr<QuantizedWeighted>> QuantizedWeighted::FromConfig(const nlohmann::json& c) {
  QuantizedLayer l;
  QuantInfo in, out;
  try {
    l.is_conv = c.at("is_conv").get<bool>();
    l.relu = c.at("relu").get<bool>();
    l.in_channels = c.at("in_channels").get<int64_t>();
    l.out_channels = c.at("out_channels").get<int64_t>();
    l.kernel = c.at("kernel").get<int64_t>();
    l.stride = c.at("stride").get<int64_t>();
    l.padding = c.at("padding").get<int64_t>();
    l.dilation = c.at("dilation").get<int64_t>();
    l.groups = c.at("groups").get<int64_t>();
    in = {c.at("input_scale").get<float>(), c.at("input_zero_point").get<int32_t>()};
    out = {c.at("output_scale").get<float>(), c.at("output_zero_point").get<int32_t>()};
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("quantized layer config: ", e.what()));
  }
  if (l.out_channels <= 0 || l.in_channels <= 0 || l.groups <= 0 || l.kernel <= 0 || !(in.scale > 0) || !(out.scale > 0)) {
    return absl::InvalidArgumentError("quantized layer config has non-positive sizes or scales");
  }
  const Shape wshape = l.is_conv ? Shape{l.out_channels, l.in_channels / l.groups, l.kernel, l.kernel}
                                 : Shape{l.out_channels, l.in_channels};
  l.weight_q = Tensor::Zeros(wshape, DType::kI8);
  l.weight_scale = Tensor::Full({l.out_channels}, 1.f);
  l.bias = Tensor::Zeros({l.out_channels});
  auto m = std::make_shared<QuantizedWeighted>(std::move(l), in, out);
  try {
    m->clamp_lo_ = c.at("clamp_lo").get<int32_t>();
    m->clamp_hi_ = c.at("clamp_hi").get<int32_t>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("quantized layer config: ", e.what()));
  }
  if (m->clamp_lo_ < 0 || m->clamp_hi_ > 255 || m->clamp_lo_ > m->clamp_hi_) {
    return absl::InvalidArgumentError("quantized layer config: clamp_lo..clamp_hi must lie in 0..255");
  }
  return m;
}

}  // namespace quant
}  // namespace qfx
