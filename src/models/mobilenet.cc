// qfx models: MobileNetV2 and MobileNetV3-Small exactly as torchvision 0.14 builds them (width 1.0).
#include "src/models/common.h"

namespace qfx {
namespace models {
namespace {

using nn::Module;
using ModulePtr = std::shared_ptr<Module>;

ModulePtr Relu6() { return std::make_shared<nn::ReLU6>(); }

// MobileNetV2's InvertedResidual: `conv` is [expand 1x1] + depthwise 3x3 + project 1x1 conv + BN.
class InvertedResidualV2 : public Module {
 public:
  InvertedResidualV2(int64_t inp, int64_t oup, int64_t stride, int64_t expand_ratio)
      : use_res_connect_(stride == 1 && inp == oup) {
    const int64_t hidden = inp * expand_ratio;
    auto seq = std::make_shared<nn::Sequential>();
    if (expand_ratio != 1) seq->push_back(ConvNormActivation(inp, hidden, 1, 1, 1, Relu6()));
    seq->push_back(ConvNormActivation(hidden, hidden, 3, stride, hidden, Relu6()));
    seq->push_back(std::make_shared<nn::Conv2d>(hidden, oup, 1, nn::Conv2dArgs{1, 0, 1, 1, false}));
    seq->push_back(std::make_shared<nn::BatchNorm2d>(oup));
    conv_ = register_module("conv", seq);
  }
  std::string type_name() const override { return "InvertedResidual"; }
  Tensor forward(const Tensor& x) override { return use_res_connect_ ? F::add(x, (*conv_)(x)) : (*conv_)(x); }

 private:
  bool use_res_connect_;
  ModulePtr conv_;
};

class MobileNetV2 : public Module {
 public:
  explicit MobileNetV2(int64_t num_classes = 1000) {
    const int64_t setting[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                   {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    int64_t input_channel = MakeDivisible(32), last_channel = MakeDivisible(1280);
    auto feats = std::make_shared<nn::Sequential>();
    feats->push_back(ConvNormActivation(3, input_channel, 3, 2, 1, Relu6()));
    for (const auto& s : setting) {
      const int64_t out = MakeDivisible(static_cast<double>(s[1]));
      for (int64_t i = 0; i < s[2]; ++i) {
        feats->push_back(std::make_shared<InvertedResidualV2>(input_channel, out, i == 0 ? s[3] : 1, s[0]));
        input_channel = out;
      }
    }
    feats->push_back(ConvNormActivation(input_channel, last_channel, 1, 1, 1, Relu6()));
    features_ = register_module("features", feats);
    classifier_ = register_module("classifier", std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
                                                    std::make_shared<nn::Dropout>(0.2),
                                                    std::make_shared<nn::Linear>(last_channel, num_classes)}));
  }
  std::string type_name() const override { return "MobileNetV2"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*features_)(x);
    y = F::flatten(F::adaptive_avg_pool2d(y, {1, 1}), 1);
    return (*classifier_)(y);
  }

 private:
  ModulePtr features_, classifier_;
};

struct BneckConfig {
  int64_t in, kernel, expanded, out;
  bool use_se, use_hs;
  int64_t stride;
};

constexpr double kV3BnEps = 0.001, kV3BnMomentum = 0.01;

ModulePtr V3Activation(bool hs) {
  return hs ? ModulePtr(std::make_shared<nn::Hardswish>()) : ModulePtr(std::make_shared<nn::ReLU>());
}

class InvertedResidualV3 : public Module {
 public:
  explicit InvertedResidualV3(const BneckConfig& c) : use_res_connect_(c.stride == 1 && c.in == c.out) {
    auto seq = std::make_shared<nn::Sequential>();
    if (c.expanded != c.in) {
      seq->push_back(ConvNormActivation(c.in, c.expanded, 1, 1, 1, V3Activation(c.use_hs), kV3BnEps, kV3BnMomentum));
    }
    seq->push_back(ConvNormActivation(c.expanded, c.expanded, c.kernel, c.stride, c.expanded, V3Activation(c.use_hs),
                                      kV3BnEps, kV3BnMomentum));
    if (c.use_se) {
      seq->push_back(SqueezeExcitation(c.expanded, MakeDivisible(c.expanded / 4), std::make_shared<nn::ReLU>(),
                                       std::make_shared<nn::Hardsigmoid>()));
    }
    seq->push_back(ConvNormActivation(c.expanded, c.out, 1, 1, 1, nullptr, kV3BnEps, kV3BnMomentum));
    block_ = register_module("block", seq);
  }
  std::string type_name() const override { return "InvertedResidual"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*block_)(x);
    return use_res_connect_ ? F::add(y, x) : y;
  }

 private:
  bool use_res_connect_;
  ModulePtr block_;
};

class MobileNetV3 : public Module {
 public:
  explicit MobileNetV3(int64_t num_classes = 1000) {
    const BneckConfig setting[] = {
        {16, 3, 16, 16, true, false, 2}, {16, 3, 72, 24, false, false, 2}, {24, 3, 88, 24, false, false, 1},
        {24, 5, 96, 40, true, true, 2},  {40, 5, 240, 40, true, true, 1},  {40, 5, 240, 40, true, true, 1},
        {40, 5, 120, 48, true, true, 1}, {48, 5, 144, 48, true, true, 1},  {48, 5, 288, 96, true, true, 2},
        {96, 5, 576, 96, true, true, 1}, {96, 5, 576, 96, true, true, 1},
    };
    const int64_t last_channel = 1024;
    auto feats = std::make_shared<nn::Sequential>();
    feats->push_back(ConvNormActivation(3, 16, 3, 2, 1, V3Activation(true), kV3BnEps, kV3BnMomentum));
    for (const auto& c : setting) feats->push_back(std::make_shared<InvertedResidualV3>(c));
    feats->push_back(ConvNormActivation(96, 576, 1, 1, 1, V3Activation(true), kV3BnEps, kV3BnMomentum));
    features_ = register_module("features", feats);
    avgpool_ = register_module("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(1));
    classifier_ = register_module(
        "classifier",
        std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
            std::make_shared<nn::Linear>(576, last_channel), std::make_shared<nn::Hardswish>(),
            std::make_shared<nn::Dropout>(0.2), std::make_shared<nn::Linear>(last_channel, num_classes)}));
  }
  std::string type_name() const override { return "MobileNetV3"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = F::flatten((*avgpool_)((*features_)(x)), 1);
    return (*classifier_)(y);
  }

 private:
  ModulePtr features_, avgpool_, classifier_;
};

}  // namespace

std::shared_ptr<nn::Module> MakeMobileNetV2() {
  auto m = std::make_shared<MobileNetV2>();
  InitLikeTorchvision(*m, LinearInit::kNormal001);
  return m;
}

std::shared_ptr<nn::Module> MakeMobileNetV3Small() {
  auto m = std::make_shared<MobileNetV3>();
  InitLikeTorchvision(*m, LinearInit::kNormal001);
  return m;
}

}  // namespace models
}  // namespace qfx
