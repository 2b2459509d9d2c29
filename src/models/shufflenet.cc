// qfx models: ShuffleNetV2 (x1.0) exactly as torchvision 0.14 builds it: the same modules, parameter
// names and PyTorch's default initialisation (torchvision gives ShuffleNetV2 no init of its own).
// torchvision's channel_shuffle reads x.size() and reshapes; qfx calls the channel_shuffle op it equals
// (torch.channel_shuffle), so the trace holds no batch size. x.chunk(2, dim=1) reads the channel count:
// tracing the model needs example inputs (fx::TracerOptions::example_inputs), which specialise the graph
// on the channel dimension only.
#include "src/models/common.h"

namespace qfx {
namespace models {
namespace {

using nn::Module;
using ModulePtr = std::shared_ptr<Module>;

ModulePtr Conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, int64_t groups = 1) {
  return std::make_shared<nn::Conv2d>(in, out, kernel, nn::Conv2dArgs{stride, padding, 1, groups, false});
}
ModulePtr Bn(int64_t c) { return std::make_shared<nn::BatchNorm2d>(c); }
ModulePtr Relu() { return std::make_shared<nn::ReLU>(); }

class InvertedResidual : public Module {
 public:
  InvertedResidual(int64_t inp, int64_t oup, int64_t stride) : stride_(stride) {
    const int64_t branch = oup / 2;
    auto branch1 = std::make_shared<nn::Sequential>();
    if (stride > 1) {
      for (const ModulePtr& m :
           {Conv(inp, inp, 3, stride, 1, inp), Bn(inp), Conv(inp, branch, 1, 1, 0), Bn(branch), Relu()}) {
        branch1->push_back(m);
      }
    }
    branch1_ = register_module("branch1", branch1);
    auto branch2 = std::make_shared<nn::Sequential>();
    for (const ModulePtr& m :
         {Conv(stride > 1 ? inp : branch, branch, 1, 1, 0), Bn(branch), Relu(),
          Conv(branch, branch, 3, stride, 1, branch), Bn(branch), Conv(branch, branch, 1, 1, 0), Bn(branch), Relu()}) {
      branch2->push_back(m);
    }
    branch2_ = register_module("branch2", branch2);
  }
  std::string type_name() const override { return "InvertedResidual"; }
  Tensor forward(const Tensor& x) override {
    Tensor out;
    if (stride_ == 1) {
      const std::vector<Tensor> halves = F::chunk(x, 2, 1);
      out = F::cat({halves.at(0), (*branch2_)(halves.at(1))}, 1);
    } else {
      out = F::cat({(*branch1_)(x), (*branch2_)(x)}, 1);
    }
    return F::channel_shuffle(out, 2);
  }

 private:
  int64_t stride_;
  ModulePtr branch1_, branch2_;
};

class ShuffleNetV2 : public Module {
 public:
  ShuffleNetV2(const std::vector<int64_t>& repeats, const std::vector<int64_t>& channels, int64_t num_classes) {
    conv1_ = register_module("conv1", std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
                                          Conv(3, channels[0], 3, 2, 1), Bn(channels[0]), Relu()}));
    maxpool_ = register_module("maxpool", std::make_shared<nn::MaxPool2d>(3, 2, 1));
    int64_t in = channels[0];
    for (size_t s = 0; s < repeats.size(); ++s) {
      auto stage = std::make_shared<nn::Sequential>();
      stage->push_back(std::make_shared<InvertedResidual>(in, channels[s + 1], 2));
      for (int64_t i = 1; i < repeats[s]; ++i) {
        stage->push_back(std::make_shared<InvertedResidual>(channels[s + 1], channels[s + 1], 1));
      }
      stages_.push_back(register_module("stage" + std::to_string(s + 2), stage));
      in = channels[s + 1];
    }
    const int64_t last = channels.back();
    conv5_ = register_module("conv5", std::make_shared<nn::Sequential>(
                                          std::initializer_list<ModulePtr>{Conv(in, last, 1, 1, 0), Bn(last), Relu()}));
    fc_ = register_module("fc", std::make_shared<nn::Linear>(last, num_classes));
  }
  std::string type_name() const override { return "ShuffleNetV2"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*maxpool_)((*conv1_)(x));
    for (const ModulePtr& stage : stages_) y = (*stage)(y);
    y = F::mean((*conv5_)(y), {2, 3});  // globalpool
    return (*fc_)(y);
  }

 private:
  ModulePtr conv1_, maxpool_, conv5_, fc_;
  std::vector<ModulePtr> stages_;
};

}  // namespace

std::shared_ptr<nn::Module> MakeShuffleNetV2X10() {
  return std::make_shared<ShuffleNetV2>(std::vector<int64_t>{4, 8, 4}, std::vector<int64_t>{24, 116, 232, 464, 1024},
                                        1000);
}

}  // namespace models
}  // namespace qfx
