// qfx models: the registry by name (see include/qfx/models/zoo.h).
#include <functional>

#include "absl/strings/str_join.h"
#include "qfx/models/zoo.h"
#include "src/models/common.h"

namespace qfx {
namespace models {
namespace {

struct Entry {
  ModelInfo info;
  std::function<std::shared_ptr<nn::Module>()> make;
};

const std::vector<Entry>& Entries() {
  static const auto* entries = new std::vector<Entry>{
      {{"resnet18", {1, 3, 224, 224}, "torchvision ResNet-18 (BasicBlock, 11.7M parameters)"}, MakeResNet18},
      {{"resnet50", {1, 3, 224, 224}, "torchvision ResNet-50 (Bottleneck, 25.6M parameters)"}, MakeResNet50},
      {{"mobilenet_v2", {1, 3, 224, 224}, "torchvision MobileNetV2 (width 1.0)"}, MakeMobileNetV2},
      {{"mobilenet_v3_small", {1, 3, 224, 224}, "torchvision MobileNetV3-Small (Hardswish, SE blocks)"},
       MakeMobileNetV3Small},
      {{"shufflenet_v2_x1_0",
        {1, 3, 224, 224},
        "torchvision ShuffleNetV2 x1.0 (channel shuffle, chunk; traced on example inputs)"},
       MakeShuffleNetV2X10},
      {{"regnet_x_400mf", {1, 3, 224, 224}, "torchvision RegNetX-400MF (grouped 3x3 bottlenecks)"}, MakeRegNetX400MF},
      {{"efficientnet_b0", {1, 3, 224, 224}, "torchvision EfficientNet-B0 (MBConv, SiLU, squeeze-and-excitation)"},
       MakeEfficientNetB0},
      {{"inception_v3",
        {1, 3, 299, 299},
        "torchvision Inception-v3 (1x7 / 7x1 kernels, concatenations; inputs at least 75x75)",
        75},
       MakeInceptionV3},
      {{"vit_b_16",
        {1, 3, 224, 224},
        "torchvision ViT-B/16 (12 layers, 12 heads, hidden 768; 224x224 only)",
        224,
        true},
       MakeVitB16},
      {{"vit_fmnist",
        {1, 1, 28, 28},
        "VisionTransformer for Fashion-MNIST (patch 7, 4 layers, 4 heads, hidden 64, MLP 128)",
        28,
        true},
       MakeVitFashion},
      {{"mlp", {1, 1, 28, 28}, "MNIST MLP 784-256-128-10 with ReLU"}, MakeMlp},
      {{"mnist_cnn", {1, 1, 28, 28}, "MNIST CNN: 2 x (conv-bn-relu-maxpool), fc 1568-128-10"}, MakeMnistCnn},
  };
  return *entries;
}

}  // namespace

const std::vector<ModelInfo>& ListModels() {
  static const auto* infos = [] {
    auto* v = new std::vector<ModelInfo>();
    for (const Entry& e : Entries()) v->push_back(e.info);
    return v;
  }();
  return *infos;
}

absl::StatusOr<ModelInfo> GetModelInfo(const std::string& name) {
  std::vector<std::string> names;
  for (const Entry& e : Entries()) {
    if (e.info.name == name) return e.info;
    names.push_back(e.info.name);
  }
  return absl::NotFoundError(absl::StrCat("unknown model '", name, "'; known models: ", absl::StrJoin(names, ", ")));
}

absl::StatusOr<std::shared_ptr<nn::Module>> Create(const std::string& name, uint64_t seed) {
  QFX_RETURN_IF_ERROR(GetModelInfo(name).status());
  for (const Entry& e : Entries()) {
    if (e.info.name != name) continue;
    nn::ManualSeed(seed);
    std::shared_ptr<nn::Module> model;
    QFX_RETURN_IF_ERROR(CatchErrors([&] { model = e.make(); }));
    model->eval();
    return model;
  }
  return absl::InternalError("unreachable");
}

}  // namespace models
}  // namespace qfx
