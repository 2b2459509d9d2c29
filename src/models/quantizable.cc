// qfx models: the models marked up for eager-mode quantization (see include/qfx/models/quantizable.h).
#include "qfx/models/quantizable.h"

#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "qfx/nn/quant_stubs.h"
#include "src/models/common.h"

namespace qfx {
namespace models {
namespace {

using ModulePtr = std::shared_ptr<nn::Module>;
using Lists = std::vector<std::vector<std::string>>;

class StubCnn : public nn::Module {
 public:
  StubCnn() {
    quant_ = register_module("quant", std::make_shared<nn::QuantStub>());
    conv_ = register_module("conv", std::make_shared<nn::Conv2d>(3, 8, 3, nn::Conv2dArgs{1, 1}));
    bn_ = register_module("bn", std::make_shared<nn::BatchNorm2d>(8));
    relu_ = register_module("relu", std::make_shared<nn::ReLU>());
    dequant_ = register_module("dequant", std::make_shared<nn::DeQuantStub>());
  }
  std::string type_name() const override { return "StubCnn"; }
  Tensor forward(const Tensor& x) override { return (*dequant_)((*relu_)((*bn_)((*conv_)((*quant_)(x))))); }

 private:
  ModulePtr quant_, conv_, bn_, relu_, dequant_;
};

std::shared_ptr<nn::Conv2d> Conv(int64_t in, int64_t out, int64_t k, int64_t stride) {
  return std::make_shared<nn::Conv2d>(in, out, k, nn::Conv2dArgs{stride, (k - 1) / 2, 1, 1, false});
}

// torchvision's QuantizableBasicBlock: the residual add and its ReLU are one FloatFunctional add_relu.
class QuantizableBasicBlock : public nn::Module {
 public:
  QuantizableBasicBlock(int64_t inplanes, int64_t planes, int64_t stride, ModulePtr downsample) {
    conv1_ = register_module("conv1", Conv(inplanes, planes, 3, stride));
    bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(planes));
    relu_ = register_module("relu", std::make_shared<nn::ReLU>());
    conv2_ = register_module("conv2", Conv(planes, planes, 3, 1));
    bn2_ = register_module("bn2", std::make_shared<nn::BatchNorm2d>(planes));
    if (downsample) downsample_ = register_module("downsample", downsample);
    add_relu_ = register_module("add_relu", std::make_shared<nn::FloatFunctional>());
  }
  std::string type_name() const override { return "QuantizableBasicBlock"; }
  Tensor forward(const Tensor& x) override {
    Tensor out = (*relu_)((*bn1_)((*conv1_)(x)));
    out = (*bn2_)((*conv2_)(out));
    const Tensor identity = downsample_ ? (*downsample_)(x) : x;
    return add_relu_->add_relu(out, identity);
  }
  bool has_downsample() const { return downsample_ != nullptr; }

 private:
  ModulePtr conv1_, bn1_, relu_, conv2_, bn2_, downsample_;
  std::shared_ptr<nn::FloatFunctional> add_relu_;
};

class QuantizableResNet18 : public nn::Module {
 public:
  QuantizableResNet18() {
    conv1_ = register_module("conv1", Conv(3, 64, 7, 2));
    bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(64));
    relu_ = register_module("relu", std::make_shared<nn::ReLU>());
    maxpool_ = register_module("maxpool", std::make_shared<nn::MaxPool2d>(3, 2, 1));
    const int64_t planes[4] = {64, 128, 256, 512};
    int64_t inplanes = 64;
    for (int i = 0; i < 4; ++i) {
      const int64_t stride = i == 0 ? 1 : 2;
      auto layer = std::make_shared<nn::Sequential>();
      ModulePtr downsample;
      if (stride != 1 || inplanes != planes[i]) {
        downsample = std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
            Conv(inplanes, planes[i], 1, stride), std::make_shared<nn::BatchNorm2d>(planes[i])});
      }
      layer->push_back(std::make_shared<QuantizableBasicBlock>(inplanes, planes[i], stride, downsample));
      layer->push_back(std::make_shared<QuantizableBasicBlock>(planes[i], planes[i], 1, nullptr));
      inplanes = planes[i];
      stages_[i] = register_module("layer" + std::to_string(i + 1), layer);
    }
    avgpool_ = register_module("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(1));
    fc_ = register_module("fc", std::make_shared<nn::Linear>(512, 1000));
    quant_ = register_module("quant", std::make_shared<nn::QuantStub>());
    dequant_ = register_module("dequant", std::make_shared<nn::DeQuantStub>());
  }
  std::string type_name() const override { return "QuantizableResNet"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*quant_)(x);
    y = (*maxpool_)((*relu_)((*bn1_)((*conv1_)(y))));
    for (auto& stage : stages_) y = (*stage)(y);
    y = F::flatten((*avgpool_)(y), 1);
    return (*dequant_)((*fc_)(y));
  }

 private:
  ModulePtr conv1_, bn1_, relu_, maxpool_, avgpool_, fc_, quant_, dequant_;
  ModulePtr stages_[4];
};

Lists ResNetLists(nn::Module& model) {
  Lists lists = {{"conv1", "bn1", "relu"}};
  for (const auto& [path, m] : model.named_modules()) {
    auto* block = dynamic_cast<QuantizableBasicBlock*>(m);
    if (block == nullptr) continue;
    lists.push_back({path + ".conv1", path + ".bn1", path + ".relu"});
    lists.push_back({path + ".conv2", path + ".bn2"});
    if (block->has_downsample()) lists.push_back({path + ".downsample.0", path + ".downsample.1"});
  }
  return lists;
}

ModulePtr Relu() { return std::make_shared<nn::ReLU>(); }

// torchvision's QuantizableInvertedResidual: the residual add is FloatFunctional skip_add (every block has
// one, used or not, as in torchvision).
class QuantizableInvertedResidual : public nn::Module {
 public:
  QuantizableInvertedResidual(int64_t inp, int64_t oup, int64_t stride, int64_t expand_ratio)
      : use_res_connect_(stride == 1 && inp == oup) {
    const int64_t hidden = inp * expand_ratio;
    auto seq = std::make_shared<nn::Sequential>();
    if (expand_ratio != 1) seq->push_back(ConvNormActivation(inp, hidden, 1, 1, 1, Relu()));
    seq->push_back(ConvNormActivation(hidden, hidden, 3, stride, hidden, Relu()));
    seq->push_back(std::make_shared<nn::Conv2d>(hidden, oup, 1, nn::Conv2dArgs{1, 0, 1, 1, false}));
    seq->push_back(std::make_shared<nn::BatchNorm2d>(oup));
    conv_ = register_module("conv", seq);
    skip_add_ = register_module("skip_add", std::make_shared<nn::FloatFunctional>());
  }
  std::string type_name() const override { return "QuantizableInvertedResidual"; }
  Tensor forward(const Tensor& x) override { return use_res_connect_ ? skip_add_->add(x, (*conv_)(x)) : (*conv_)(x); }

 private:
  bool use_res_connect_;
  ModulePtr conv_;
  std::shared_ptr<nn::FloatFunctional> skip_add_;
};

// torchvision's QuantizableMobileNetV2 (width 1.0), whose _replace_relu makes every ReLU6 a ReLU.
class QuantizableMobileNetV2 : public nn::Module {
 public:
  QuantizableMobileNetV2() {
    const int64_t setting[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                   {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    int64_t input_channel = MakeDivisible(32);
    const int64_t last_channel = MakeDivisible(1280);
    auto feats = std::make_shared<nn::Sequential>();
    feats->push_back(ConvNormActivation(3, input_channel, 3, 2, 1, Relu()));
    for (const auto& s : setting) {
      const int64_t out = MakeDivisible(static_cast<double>(s[1]));
      for (int64_t i = 0; i < s[2]; ++i) {
        feats->push_back(std::make_shared<QuantizableInvertedResidual>(input_channel, out, i == 0 ? s[3] : 1, s[0]));
        input_channel = out;
      }
    }
    feats->push_back(ConvNormActivation(input_channel, last_channel, 1, 1, 1, Relu()));
    features_ = register_module("features", feats);
    classifier_ = register_module(
        "classifier", std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
                          std::make_shared<nn::Dropout>(0.2), std::make_shared<nn::Linear>(last_channel, 1000)}));
    quant_ = register_module("quant", std::make_shared<nn::QuantStub>());
    dequant_ = register_module("dequant", std::make_shared<nn::DeQuantStub>());
  }
  std::string type_name() const override { return "QuantizableMobileNetV2"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*features_)((*quant_)(x));
    y = F::flatten(F::adaptive_avg_pool2d(y, {1, 1}), 1);
    return (*dequant_)((*classifier_)(y));
  }

 private:
  ModulePtr features_, classifier_, quant_, dequant_;
};

// fuse_model: each Conv2dNormActivation's conv, bn, relu, and each block's last conv with its bn.
Lists MobileNetV2Lists(nn::Module& model) {
  Lists lists;
  for (const auto& [path, m] : model.named_modules()) {
    const auto& kids = m->named_children();
    if (m->type_name() == "Sequential" && kids.size() == 3 && kids[0].second->type_name() == "Conv2d" &&
        kids[1].second->type_name() == "BatchNorm2d" && kids[2].second->type_name() == "ReLU") {
      lists.push_back({path + ".0", path + ".1", path + ".2"});
    }
    if (m->type_name() != "QuantizableInvertedResidual") continue;
    const auto& conv = m->submodule("conv")->named_children();
    for (size_t i = 0; i + 1 < conv.size(); ++i) {
      if (conv[i].second->type_name() == "Conv2d")
        lists.push_back({path + ".conv." + conv[i].first, path + ".conv." + conv[i + 1].first});
    }
  }
  return lists;
}

struct Entry {
  ModelInfo info;
  std::function<ModulePtr()> make;
  std::function<Lists(nn::Module&)> lists;
};

const std::vector<Entry>& Entries() {
  static const auto* entries = new std::vector<Entry>{
      {{"stub_cnn", {1, 3, 16, 16}, "QuantStub -> Conv2d -> BatchNorm2d -> ReLU -> DeQuantStub"},
       [] {
         auto m = std::make_shared<StubCnn>();
         InitLikeTorchvision(*m, LinearInit::kPyTorchDefault);
         return ModulePtr(m);
       },
       [](nn::Module&) {
         return Lists{{"conv", "bn", "relu"}};
       }},
      {{"quantizable_resnet18", {1, 3, 224, 224}, "torchvision QuantizableResNet-18 (stubs, FloatFunctional add_relu)"},
       [] {
         auto m = std::make_shared<QuantizableResNet18>();
         InitLikeTorchvision(*m, LinearInit::kPyTorchDefault);
         return ModulePtr(m);
       },
       ResNetLists},
      {{"quantizable_mobilenet_v2",
        {1, 3, 224, 224},
        "torchvision QuantizableMobileNetV2 (ReLU for ReLU6, FloatFunctional skip_add)"},
       [] {
         auto m = std::make_shared<QuantizableMobileNetV2>();
         InitLikeTorchvision(*m, LinearInit::kNormal001);
         return ModulePtr(m);
       },
       MobileNetV2Lists},
  };
  return *entries;
}

absl::StatusOr<const Entry*> Find(const std::string& name) {
  std::vector<std::string> names;
  for (const Entry& e : Entries()) {
    if (e.info.name == name) return &e;
    names.push_back(e.info.name);
  }
  return absl::NotFoundError(
      absl::StrCat("unknown quantizable model '", name, "'; known: ", absl::StrJoin(names, ", ")));
}

}  // namespace

const std::vector<ModelInfo>& ListQuantizableModels() {
  static const auto* infos = [] {
    auto* v = new std::vector<ModelInfo>();
    for (const Entry& e : Entries()) v->push_back(e.info);
    return v;
  }();
  return *infos;
}

absl::StatusOr<std::shared_ptr<nn::Module>> CreateQuantizable(const std::string& name, uint64_t seed) {
  QFX_ASSIGN_OR_RETURN(const Entry* e, Find(name));
  nn::ManualSeed(seed);
  ModulePtr model;
  QFX_RETURN_IF_ERROR(CatchErrors([&] { model = e->make(); }));
  model->eval();
  return model;
}

absl::StatusOr<std::vector<std::vector<std::string>>> FusionLists(const std::string& name, nn::Module& model) {
  QFX_ASSIGN_OR_RETURN(const Entry* e, Find(name));
  return e->lists(model);
}

}  // namespace models
}  // namespace qfx
