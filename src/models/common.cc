// qfx models: shared builders and torchvision-style initialisation (see common.h).
#include "src/models/common.h"

#include <cmath>

namespace qfx {
namespace models {

std::shared_ptr<nn::Sequential> ConvNormActivation(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                                   int64_t groups, std::shared_ptr<nn::Module> activation,
                                                   double bn_eps, double bn_momentum) {
  nn::Conv2dArgs args;
  args.stride = stride;
  args.padding = (kernel - 1) / 2;
  args.groups = groups;
  args.bias = false;
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Conv2d>(in, out, kernel, args));
  seq->push_back(std::make_shared<nn::BatchNorm2d>(out, bn_eps, bn_momentum));
  if (activation) seq->push_back(std::move(activation));
  return seq;
}

namespace {

class SqueezeExcitationModule : public nn::Module {
 public:
  SqueezeExcitationModule(int64_t channels, int64_t squeeze, std::shared_ptr<nn::Module> activation,
                          std::shared_ptr<nn::Module> scale_activation) {
    avgpool_ = register_module("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(1));
    fc1_ = register_module("fc1", std::make_shared<nn::Conv2d>(channels, squeeze, 1));
    fc2_ = register_module("fc2", std::make_shared<nn::Conv2d>(squeeze, channels, 1));
    activation_ = register_module("activation", std::move(activation));
    scale_activation_ = register_module("scale_activation", std::move(scale_activation));
  }
  std::string type_name() const override { return "SqueezeExcitation"; }
  Tensor forward(const Tensor& x) override {
    Tensor scale = (*fc2_)((*activation_)((*fc1_)((*avgpool_)(x))));
    return F::mul((*scale_activation_)(scale), x);
  }

 private:
  std::shared_ptr<nn::Module> avgpool_, fc1_, fc2_, activation_, scale_activation_;
};

}  // namespace

std::shared_ptr<nn::Module> SqueezeExcitation(int64_t channels, int64_t squeeze, std::shared_ptr<nn::Module> activation,
                                              std::shared_ptr<nn::Module> scale_activation) {
  return std::make_shared<SqueezeExcitationModule>(channels, squeeze, std::move(activation),
                                                   std::move(scale_activation));
}

int64_t MakeDivisible(double v, int64_t divisor) {
  int64_t nv = std::max<int64_t>(divisor, static_cast<int64_t>(v + divisor / 2.0) / divisor * divisor);
  if (nv < 0.9 * v) nv += divisor;
  return nv;
}

void InitLikeTorchvision(nn::Module& model, LinearInit linear_init) {
  for (auto& [name, m] : model.named_modules()) {
    if (auto* conv = dynamic_cast<nn::Conv2d*>(m)) {
      const int64_t fan_out = conv->weight.size(0) * conv->weight.size(2) * conv->weight.size(3);
      nn::NormalInit(conv->weight, 0.f, std::sqrt(2.f / static_cast<float>(fan_out)));
      if (conv->bias.defined()) conv->bias.Fill(0.f);
    } else if (auto* bn = dynamic_cast<nn::BatchNormBase*>(m)) {
      bn->weight.Fill(1.f);
      bn->bias.Fill(0.f);
    } else if (auto* fc = dynamic_cast<nn::Linear*>(m)) {
      if (linear_init == LinearInit::kNormal001) {
        nn::NormalInit(fc->weight, 0.f, 0.01f);
        if (fc->bias.defined()) fc->bias.Fill(0.f);
      } else if (linear_init == LinearInit::kUniformInvSqrtOut) {
        const float range = 1.f / std::sqrt(static_cast<float>(fc->weight.size(0)));
        nn::UniformInit(fc->weight, -range, range);
        if (fc->bias.defined()) fc->bias.Fill(0.f);
      }  // kPyTorchDefault: keep the constructor's uniform +-1/sqrt(fan_in)
    }
  }
}

}  // namespace models
}  // namespace qfx
