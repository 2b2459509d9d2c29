// qfx quant: QAT modules (see include/qfx/quant/qat_modules.h).
#include "qfx/quant/qat_modules.h"

#include <cmath>

namespace qfx {
namespace quant {

QatConv2d::QatConv2d(const nn::Conv2d& conv, std::shared_ptr<nn::BatchNormBase> bn_module, bool with_relu,
                     std::shared_ptr<nn::Module> wfq)
    : options(conv.options),
      out_channels(conv.out_channels),
      bn(std::move(bn_module)),
      weight_fake_quant(std::move(wfq)),
      relu(with_relu) {
  weight = register_parameter("weight", conv.weight);
  if (conv.bias.defined()) bias = register_parameter("bias", conv.bias);
  if (bn) register_module("bn", bn);
  register_module("weight_fake_quant", weight_fake_quant);
}

std::string QatConv2d::type_name() const {
  if (bn) return relu ? "ConvBnReLU2d" : "ConvBn2d";
  return relu ? "ConvReLU2d" : "Conv2d";
}

void QatConv2d::train(bool on) {
  nn::Module::train(on);
  if (bn && freeze_bn) bn->eval();
}

void QatConv2d::FreezeBnStats() {
  freeze_bn = true;
  if (bn) bn->eval();
}

void QatConv2d::UpdateBnStats() {
  freeze_bn = false;
  if (bn) bn->train(is_training());
}

Tensor QatConv2d::forward(const Tensor& x) {
  if (!bn) {
    const Tensor y = F::conv2d(x, (*weight_fake_quant)(weight), bias, options);
    return relu ? F::relu(y) : y;
  }
  // _forward_approximate, in float32 in PyTorch's order.
  const Tensor scale = Tensor::Empty({out_channels});
  for (int64_t c = 0; c < out_channels; ++c) {
    const float running_std = std::sqrt(bn->running_var.data<float>()[c] + static_cast<float>(bn->eps));
    scale.data<float>()[c] = bn->weight.data<float>()[c] / running_std;
  }
  Tensor scaled = weight.Clone();
  const int64_t per_row = scaled.numel() / out_channels;
  for (int64_t c = 0; c < out_channels; ++c) {
    float* w = scaled.data<float>() + c * per_row;
    for (int64_t i = 0; i < per_row; ++i) w[i] = w[i] * scale.data<float>()[c];
  }
  Tensor y = F::conv2d(x, (*weight_fake_quant)(scaled), Tensor::Zeros({out_channels}), options);
  const int64_t plane = y.numel() / (y.size(0) * out_channels);
  float* p = y.data<float>();
  for (int64_t i = 0, n = y.numel(); i < n; ++i) {
    const int64_t c = (i / plane) % out_channels;
    p[i] = p[i] / scale.data<float>()[c];
    if (bias.defined()) p[i] = p[i] + bias.data<float>()[c];
  }
  y = (*bn)(y);
  return relu ? F::relu(y) : y;
}

QatLinear::QatLinear(const nn::Linear& linear, bool with_relu, std::shared_ptr<nn::Module> wfq)
    : weight_fake_quant(std::move(wfq)), relu(with_relu) {
  weight = register_parameter("weight", linear.weight);
  if (linear.bias.defined()) bias = register_parameter("bias", linear.bias);
  register_module("weight_fake_quant", weight_fake_quant);
}

Tensor QatLinear::forward(const Tensor& x) {
  const Tensor y = F::linear(x, (*weight_fake_quant)(weight), bias);
  return relu ? F::relu(y) : y;
}

}  // namespace quant
}  // namespace qfx
