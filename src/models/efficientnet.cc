// qfx models: EfficientNet-B0 exactly as torchvision 0.14 builds it: a SiLU stem, seven stages of MBConv
// blocks (1x1 expansion, depthwise conv, squeeze-and-excitation with SiLU and Sigmoid, 1x1 projection; a
// residual through StochasticDepth where the shape allows), a 1x1 head and a dropout + linear classifier,
// with torchvision's parameter names (features.2.0.block.1.0.weight) and initialisation.
#include "src/models/common.h"

namespace qfx {
namespace models {
namespace {

using nn::Module;
using ModulePtr = std::shared_ptr<Module>;

ModulePtr Silu() { return std::make_shared<nn::SiLU>(); }

// torchvision's MBConvConfig at width and depth multiplier 1.
struct MBConvConfig {
  int64_t expand_ratio, kernel, stride, in, out, layers;
};

class MBConv : public Module {
 public:
  MBConv(const MBConvConfig& c, double stochastic_depth_prob) : use_res_connect_(c.stride == 1 && c.in == c.out) {
    const int64_t expanded = MakeDivisible(static_cast<double>(c.in * c.expand_ratio));
    auto block = std::make_shared<nn::Sequential>();
    if (expanded != c.in) block->push_back(ConvNormActivation(c.in, expanded, 1, 1, 1, Silu()));
    block->push_back(ConvNormActivation(expanded, expanded, c.kernel, c.stride, expanded, Silu()));
    block->push_back(
        SqueezeExcitation(expanded, std::max<int64_t>(1, c.in / 4), Silu(), std::make_shared<nn::Sigmoid>()));
    block->push_back(ConvNormActivation(expanded, c.out, 1, 1, 1, nullptr));
    block_ = register_module("block", block);
    stochastic_depth_ = register_module(
        "stochastic_depth", std::make_shared<nn::StochasticDepth>(stochastic_depth_prob, F::StochasticDepthMode::kRow));
  }
  std::string type_name() const override { return "MBConv"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*block_)(x);
    if (!use_res_connect_) return y;
    return F::add((*stochastic_depth_)(y), x);  // torchvision's `result += input`, traced as add
  }

 private:
  bool use_res_connect_;
  ModulePtr block_, stochastic_depth_;
};

class EfficientNet : public Module {
 public:
  EfficientNet(const std::vector<MBConvConfig>& setting, double dropout, double stochastic_depth_prob = 0.2,
               int64_t num_classes = 1000) {
    auto features = std::make_shared<nn::Sequential>();
    features->push_back(ConvNormActivation(3, setting[0].in, 3, 2, 1, Silu()));
    int64_t total_blocks = 0, block_id = 0;
    for (const MBConvConfig& c : setting) total_blocks += c.layers;
    for (const MBConvConfig& c : setting) {
      auto stage = std::make_shared<nn::Sequential>();
      for (int64_t i = 0; i < c.layers; ++i) {
        MBConvConfig block = c;
        if (i > 0) {
          block.in = c.out;
          block.stride = 1;
        }
        const double sd_prob = stochastic_depth_prob * static_cast<double>(block_id++) / total_blocks;
        stage->push_back(std::make_shared<MBConv>(block, sd_prob));
      }
      features->push_back(stage);
    }
    const int64_t last_in = setting.back().out, last_out = 4 * last_in;
    features->push_back(ConvNormActivation(last_in, last_out, 1, 1, 1, Silu()));
    features_ = register_module("features", features);
    avgpool_ = register_module("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(1));
    classifier_ = register_module("classifier", std::make_shared<nn::Sequential>(std::initializer_list<ModulePtr>{
                                                    std::make_shared<nn::Dropout>(dropout),
                                                    std::make_shared<nn::Linear>(last_out, num_classes)}));
  }
  std::string type_name() const override { return "EfficientNet"; }
  Tensor forward(const Tensor& x) override {
    const Tensor y = F::flatten((*avgpool_)((*features_)(x)), 1);
    return (*classifier_)(y);
  }

 private:
  ModulePtr features_, avgpool_, classifier_;
};

}  // namespace

std::shared_ptr<nn::Module> MakeEfficientNetB0() {
  const std::vector<MBConvConfig> setting = {{1, 3, 1, 32, 16, 1},  {6, 3, 2, 16, 24, 2},  {6, 5, 2, 24, 40, 2},
                                             {6, 3, 2, 40, 80, 3},  {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4},
                                             {6, 3, 1, 192, 320, 1}};
  auto m = std::make_shared<EfficientNet>(setting, 0.2);
  InitLikeTorchvision(*m, LinearInit::kUniformInvSqrtOut);
  return m;
}

}  // namespace models
}  // namespace qfx
