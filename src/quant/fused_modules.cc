// qfx quant: fused modules and batch-norm folding (see include/qfx/quant/fused_modules.h).
#include "qfx/quant/fused_modules.h"

#include <cmath>

namespace qfx {
namespace quant {

FusedSequential::FusedSequential(std::string type, std::shared_ptr<nn::Module> first,
                                 std::shared_ptr<nn::Module> second)
    : nn::Sequential({std::move(first), std::move(second)}), type_(std::move(type)), parts_(2) {}

FusedSequential::FusedSequential(std::string type, const std::vector<std::shared_ptr<nn::Module>>& parts)
    : type_(std::move(type)), parts_(parts.size()) {
  for (const auto& p : parts) push_back(p);
}

Tensor FusedSequential::forward(const Tensor& x) {
  Tensor y = x;
  for (size_t i = 0; i < parts_; ++i) y = (*named_children()[i].second)(y);
  return y;
}

std::shared_ptr<FusedSequential> MakeFused(const std::string& type, std::shared_ptr<nn::Module> first,
                                           std::shared_ptr<nn::Module> second) {
  auto m = std::make_shared<FusedSequential>(type, std::move(first), std::move(second));
  m->train(false);
  return m;
}

namespace {

// Scales rows of `weight` ([out, ...]) and returns the folded bias, as fuse_conv_bn_weights does.
void Fold(const Tensor& weight, const Tensor& bias, const nn::BatchNormBase& bn, Tensor* new_weight, Tensor* new_bias) {
  const int64_t out = weight.size(0), per_row = weight.numel() / out;
  if (bn.num_features != out) {
    ThrowInvalid("cannot fold ", bn.type_name(), "(", bn.num_features, ") into a layer with ", out, " outputs");
  }
  *new_weight = weight.Clone();
  *new_bias = Tensor::Empty({out});
  const float eps = static_cast<float>(bn.eps);
  for (int64_t o = 0; o < out; ++o) {
    const float rsqrt = 1.f / std::sqrt(bn.running_var.data<float>()[o] + eps);
    const float gamma = bn.weight.data<float>()[o], beta = bn.bias.data<float>()[o];
    const float factor = gamma * rsqrt;
    float* w = new_weight->data<float>() + o * per_row;
    for (int64_t i = 0; i < per_row; ++i) w[i] = w[i] * factor;
    const float b = bias.defined() ? bias.data<float>()[o] : 0.f;
    new_bias->data<float>()[o] = (b - bn.running_mean.data<float>()[o]) * rsqrt * gamma + beta;
  }
}

}  // namespace

std::shared_ptr<nn::Conv2d> FoldBatchNorm(const nn::Conv2d& conv, const nn::BatchNormBase& bn) {
  nn::Conv2dArgs args = conv.args();
  args.bias = true;
  auto folded = std::make_shared<nn::Conv2d>(conv.in_channels, conv.out_channels, conv.kernel_size, args);
  Tensor w, b;
  Fold(conv.weight, conv.bias, bn, &w, &b);
  folded->weight.CopyFrom(w);
  folded->bias.CopyFrom(b);
  folded->train(false);
  return folded;
}

std::shared_ptr<nn::Linear> FoldBatchNorm(const nn::Linear& linear, const nn::BatchNormBase& bn) {
  auto folded = std::make_shared<nn::Linear>(linear.in_features, linear.out_features, true);
  Tensor w, b;
  Fold(linear.weight, linear.bias, bn, &w, &b);
  folded->weight.CopyFrom(w);
  folded->bias.CopyFrom(b);
  folded->train(false);
  return folded;
}

}  // namespace quant
}  // namespace qfx
