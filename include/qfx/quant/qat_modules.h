// qfx quant: modules for quantization-aware training, as torch.ao.nn.qat / torch.ao.nn.intrinsic.qat
// define them: the weight passes through a fake-quant module (`weight_fake_quant`) on every forward, and
// Conv+BN keeps batch norm live, simulating its folding (PyTorch's _forward_approximate):
//   s = gamma / sqrt(running_var + eps);  y = bn(conv(x, fq(w * s), 0) / s + b)   (+ relu)
// `FreezeBnStats` makes batch norm use and keep its running statistics (PyTorch's freeze_bn_stats).
// Backward passes belong to the training engine (issue 6).
#pragma once

#include <memory>
#include <string>

#include "qfx/nn/modules.h"

namespace qfx {
namespace quant {

class QatConv2d : public nn::Module {
 public:
  // `bn` may be null (ConvReLU2d / Conv2d); the conv's parameters are shared, not copied.
  QatConv2d(const nn::Conv2d& conv, std::shared_ptr<nn::BatchNormBase> bn, bool relu,
            std::shared_ptr<nn::Module> weight_fake_quant);
  std::string type_name() const override;  // "ConvBnReLU2d", "ConvBn2d", "ConvReLU2d" or "Conv2d"
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override;
  void train(bool on = true) override;
  void FreezeBnStats();
  void UpdateBnStats();

  F::Conv2dOptions options;
  int64_t out_channels;
  Tensor weight, bias;  // bias may be undefined
  std::shared_ptr<nn::BatchNormBase> bn;
  std::shared_ptr<nn::Module> weight_fake_quant;
  bool relu;
  bool freeze_bn = false;
};

class QatLinear : public nn::Module {
 public:
  QatLinear(const nn::Linear& linear, bool relu, std::shared_ptr<nn::Module> weight_fake_quant);
  std::string type_name() const override { return relu ? "LinearReLU" : "Linear"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override;

  Tensor weight, bias;
  std::shared_ptr<nn::Module> weight_fake_quant;
  bool relu;
};

}  // namespace quant
}  // namespace qfx
