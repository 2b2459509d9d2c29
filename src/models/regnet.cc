// qfx models: RegNetX-400MF exactly as torchvision 0.14 builds it: SimpleStemIN, four AnyStages of
// ResBottleneckBlocks (1x1, grouped 3x3, 1x1, a projection where the shape changes) and the same
// parameter names (trunk_output.block2.block2-0.f.b.0.weight). torchvision derives the stage settings
// from (depth 22, w_0 24, w_a 24.48, w_m 2.54, group width 16); the derived values are written out here.
#include "src/models/common.h"

namespace qfx {
namespace models {
namespace {

using nn::Module;
using ModulePtr = std::shared_ptr<Module>;

ModulePtr Relu() { return std::make_shared<nn::ReLU>(); }

// BottleneckTransform: Sequential(a: 1x1, b: grouped 3x3 with the stride, c: 1x1 without activation),
// bottleneck multiplier 1 (so the inner width is the block's output width).
ModulePtr BottleneckTransform(int64_t in, int64_t out, int64_t stride, int64_t group_width) {
  auto f = std::make_shared<nn::Sequential>();
  f->push_back("a", ConvNormActivation(in, out, 1, 1, 1, Relu()));
  f->push_back("b", ConvNormActivation(out, out, 3, stride, out / group_width, Relu()));
  f->push_back("c", ConvNormActivation(out, out, 1, 1, 1, nullptr));
  return f;
}

class ResBottleneckBlock : public Module {
 public:
  ResBottleneckBlock(int64_t in, int64_t out, int64_t stride, int64_t group_width) {
    if (in != out || stride != 1) proj_ = register_module("proj", ConvNormActivation(in, out, 1, stride, 1, nullptr));
    f_ = register_module("f", BottleneckTransform(in, out, stride, group_width));
    activation_ = register_module("activation", Relu());
  }
  std::string type_name() const override { return "ResBottleneckBlock"; }
  Tensor forward(const Tensor& x) override {
    // proj runs (and traces) before f, as in torchvision's `self.proj(x) + self.f(x)`.
    const Tensor shortcut = proj_ ? (*proj_)(x) : x;
    const Tensor residual = (*f_)(x);
    return (*activation_)(F::add(shortcut, residual));
  }

 private:
  ModulePtr proj_, f_, activation_;
};

struct StageSetting {
  int64_t width, depth;
};

class RegNet : public Module {
 public:
  RegNet(const std::vector<StageSetting>& stages, int64_t group_width, int64_t num_classes = 1000) {
    const int64_t stem_width = 32;
    stem_ = register_module("stem", ConvNormActivation(3, stem_width, 3, 2, 1, Relu()));
    auto trunk = std::make_shared<nn::Sequential>();
    int64_t width = stem_width;
    for (size_t s = 0; s < stages.size(); ++s) {
      const std::string stage_name = "block" + std::to_string(s + 1);
      auto stage = std::make_shared<nn::Sequential>();
      for (int64_t i = 0; i < stages[s].depth; ++i) {
        stage->push_back(stage_name + "-" + std::to_string(i),
                         std::make_shared<ResBottleneckBlock>(i == 0 ? width : stages[s].width, stages[s].width,
                                                              i == 0 ? 2 : 1, group_width));
      }
      trunk->push_back(stage_name, stage);
      width = stages[s].width;
    }
    trunk_output_ = register_module("trunk_output", trunk);
    avgpool_ = register_module("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(1));
    fc_ = register_module("fc", std::make_shared<nn::Linear>(width, num_classes));
  }
  std::string type_name() const override { return "RegNet"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*avgpool_)((*trunk_output_)((*stem_)(x)));
    return (*fc_)(y.Flatten(1));
  }

 private:
  ModulePtr stem_, trunk_output_, avgpool_, fc_;
};

}  // namespace

std::shared_ptr<nn::Module> MakeRegNetX400MF() {
  auto m = std::make_shared<RegNet>(std::vector<StageSetting>{{32, 1}, {64, 2}, {160, 7}, {400, 12}}, 16);
  InitLikeTorchvision(*m, LinearInit::kNormal001);
  return m;
}

}  // namespace models
}  // namespace qfx
