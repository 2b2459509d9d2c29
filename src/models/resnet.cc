// qfx models: ResNet-18 and ResNet-50 exactly as torchvision 0.14 builds them (ResNet v1.5: the stride
// of a Bottleneck sits on its 3x3 convolution; one `relu` module reused within each block).
#include "src/models/common.h"

namespace qfx {
namespace models {
namespace {

using nn::BatchNorm2d;
using nn::Conv2d;
using nn::Conv2dArgs;

std::shared_ptr<Conv2d> Conv3x3(int64_t in, int64_t out, int64_t stride) {
  return std::make_shared<Conv2d>(in, out, 3, Conv2dArgs{stride, 1, 1, 1, false});
}
std::shared_ptr<Conv2d> Conv1x1(int64_t in, int64_t out, int64_t stride) {
  return std::make_shared<Conv2d>(in, out, 1, Conv2dArgs{stride, 0, 1, 1, false});
}

class BasicBlock : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 1;
  BasicBlock(int64_t inplanes, int64_t planes, int64_t stride, std::shared_ptr<nn::Module> downsample) {
    conv1 = register_module("conv1", Conv3x3(inplanes, planes, stride));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
    relu = register_module("relu", std::make_shared<nn::ReLU>());
    conv2 = register_module("conv2", Conv3x3(planes, planes, 1));
    bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
    if (downsample) this->downsample = register_module("downsample", downsample);
  }
  std::string type_name() const override { return "BasicBlock"; }
  Tensor forward(const Tensor& x) override {
    Tensor out = (*relu)((*bn1)((*conv1)(x)));
    out = (*bn2)((*conv2)(out));
    const Tensor identity = downsample ? (*downsample)(x) : x;
    return (*relu)(F::add(out, identity));
  }

 private:
  std::shared_ptr<nn::Module> conv1, bn1, relu, conv2, bn2, downsample;
};

class Bottleneck : public nn::Module {
 public:
  static constexpr int64_t kExpansion = 4;
  Bottleneck(int64_t inplanes, int64_t planes, int64_t stride, std::shared_ptr<nn::Module> downsample) {
    const int64_t width = planes;
    conv1 = register_module("conv1", Conv1x1(inplanes, width, 1));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(width));
    conv2 = register_module("conv2", Conv3x3(width, width, stride));
    bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(width));
    conv3 = register_module("conv3", Conv1x1(width, planes * kExpansion, 1));
    bn3 = register_module("bn3", std::make_shared<BatchNorm2d>(planes * kExpansion));
    relu = register_module("relu", std::make_shared<nn::ReLU>());
    if (downsample) this->downsample = register_module("downsample", downsample);
  }
  std::string type_name() const override { return "Bottleneck"; }
  Tensor forward(const Tensor& x) override {
    Tensor out = (*relu)((*bn1)((*conv1)(x)));
    out = (*relu)((*bn2)((*conv2)(out)));
    out = (*bn3)((*conv3)(out));
    const Tensor identity = downsample ? (*downsample)(x) : x;
    return (*relu)(F::add(out, identity));
  }

 private:
  std::shared_ptr<nn::Module> conv1, bn1, conv2, bn2, conv3, bn3, relu, downsample;
};

template <typename Block>
class ResNet : public nn::Module {
 public:
  explicit ResNet(const std::vector<int64_t>& layers, int64_t num_classes = 1000) {
    conv1 = register_module("conv1", std::make_shared<Conv2d>(3, 64, 7, Conv2dArgs{2, 3, 1, 1, false}));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(64));
    relu = register_module("relu", std::make_shared<nn::ReLU>());
    maxpool = register_module("maxpool", std::make_shared<nn::MaxPool2d>(3, 2, 1));
    const int64_t planes[4] = {64, 128, 256, 512};
    for (int i = 0; i < 4; ++i) {
      stages[i] = register_module("layer" + std::to_string(i + 1), MakeLayer(planes[i], layers[i], i == 0 ? 1 : 2));
    }
    avgpool = register_module("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(1));
    fc = register_module("fc", std::make_shared<nn::Linear>(512 * Block::kExpansion, num_classes));
  }
  std::string type_name() const override { return "ResNet"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*maxpool)((*relu)((*bn1)((*conv1)(x))));
    for (auto& stage : stages) y = (*stage)(y);
    y = F::flatten((*avgpool)(y), 1);
    return (*fc)(y);
  }

 private:
  std::shared_ptr<nn::Sequential> MakeLayer(int64_t planes, int64_t blocks, int64_t stride) {
    std::shared_ptr<nn::Module> downsample;
    if (stride != 1 || inplanes_ != planes * Block::kExpansion) {
      downsample = std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
          Conv1x1(inplanes_, planes * Block::kExpansion, stride),
          std::make_shared<BatchNorm2d>(planes * Block::kExpansion)});
    }
    auto layer = std::make_shared<nn::Sequential>();
    layer->push_back(std::make_shared<Block>(inplanes_, planes, stride, downsample));
    inplanes_ = planes * Block::kExpansion;
    for (int64_t i = 1; i < blocks; ++i) layer->push_back(std::make_shared<Block>(inplanes_, planes, 1, nullptr));
    return layer;
  }

  int64_t inplanes_ = 64;
  std::shared_ptr<nn::Module> conv1, bn1, relu, maxpool, avgpool, fc;
  std::shared_ptr<nn::Module> stages[4];
};

}  // namespace

std::shared_ptr<nn::Module> MakeResNet18() {
  auto m = std::make_shared<ResNet<BasicBlock>>(std::vector<int64_t>{2, 2, 2, 2});
  InitLikeTorchvision(*m, LinearInit::kPyTorchDefault);
  return m;
}

std::shared_ptr<nn::Module> MakeResNet50() {
  auto m = std::make_shared<ResNet<Bottleneck>>(std::vector<int64_t>{3, 4, 6, 3});
  InitLikeTorchvision(*m, LinearInit::kPyTorchDefault);
  return m;
}

}  // namespace models
}  // namespace qfx
