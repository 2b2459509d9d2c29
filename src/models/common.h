// qfx models, internal: builders shared by the zoo's model files (not a public header).
#pragma once

#include <cstdint>
#include <memory>

#include "qfx/nn/modules.h"

namespace qfx {
namespace models {

// torchvision's Conv2dNormActivation: Sequential(Conv2d(bias=False), BatchNorm2d[, activation]) with
// padding (k - 1) / 2. `activation` may be null (no activation module).
std::shared_ptr<nn::Sequential> ConvNormActivation(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                                   int64_t groups, std::shared_ptr<nn::Module> activation,
                                                   double bn_eps = 1e-5, double bn_momentum = 0.1);

// torchvision.ops.SqueezeExcitation: scale_activation(fc2(activation(fc1(avgpool(x))))) * x, with 1x1 convs
// (MobileNetV3: ReLU and Hardsigmoid; EfficientNet: SiLU and Sigmoid).
std::shared_ptr<nn::Module> SqueezeExcitation(int64_t channels, int64_t squeeze, std::shared_ptr<nn::Module> activation,
                                              std::shared_ptr<nn::Module> scale_activation);

// torchvision's _make_divisible: rounds v to a multiple of divisor, not below 90% of v.
int64_t MakeDivisible(double v, int64_t divisor = 8);

// How Linear layers are initialised by a model family.
// kUniformInvSqrtOut: uniform in +-1/sqrt(out_features), bias 0 (EfficientNet).
enum class LinearInit { kPyTorchDefault, kNormal001, kUniformInvSqrtOut };
// Re-initialises every Conv2d, BatchNorm and Linear of `model` as torchvision does.
void InitLikeTorchvision(nn::Module& model, LinearInit linear_init);

std::shared_ptr<nn::Module> MakeResNet18();
std::shared_ptr<nn::Module> MakeResNet50();
std::shared_ptr<nn::Module> MakeMobileNetV2();
std::shared_ptr<nn::Module> MakeMobileNetV3Small();
std::shared_ptr<nn::Module> MakeShuffleNetV2X10();
std::shared_ptr<nn::Module> MakeRegNetX400MF();
std::shared_ptr<nn::Module> MakeEfficientNetB0();
std::shared_ptr<nn::Module> MakeInceptionV3();
std::shared_ptr<nn::Module> MakeVitB16();
std::shared_ptr<nn::Module> MakeVitFashion();
std::shared_ptr<nn::Module> MakeBertMiniLm();
std::shared_ptr<nn::Module> MakeMlp();
std::shared_ptr<nn::Module> MakeMnistCnn();

}  // namespace models
}  // namespace qfx
