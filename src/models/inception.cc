// qfx models: Inception-v3 exactly as torchvision 0.14 builds it (inception_v3() without weights: an
// AuxLogits head, no input transform): BasicConv2d (conv, batch norm eps 1e-3, functional relu), the
// InceptionA-E blocks with their 1x7 / 7x1 and 1x3 / 3x1 factorised kernels and concatenations, and
// torchvision's parameter names (Mixed_6b.branch7x7_2.conv.weight). The auxiliary classifier is built, so
// torchvision state_dicts load with strict=true, but forward returns the main logits only (torchvision's
// eval output; its training-mode InceptionOutputs pair has no counterpart here). Inputs are at least 75x75.
#include "src/models/common.h"

namespace qfx {
namespace models {
namespace {

using nn::Module;
using nn::Size2;
using ModulePtr = std::shared_ptr<Module>;

class BasicConv2d : public Module {
 public:
  BasicConv2d(int64_t in, int64_t out, Size2 kernel, Size2 stride = 1, Size2 padding = 0) {
    conv_ = register_module(
        "conv", std::make_shared<nn::Conv2d>(in, out, kernel, nn::Conv2dArgs{stride, padding, 1, 1, false}));
    bn_ = register_module("bn", std::make_shared<nn::BatchNorm2d>(out, 1e-3));
  }
  std::string type_name() const override { return "BasicConv2d"; }
  Tensor forward(const Tensor& x) override { return F::relu((*bn_)((*conv_)(x))); }

 private:
  ModulePtr conv_, bn_;
};

// A module whose forward concatenates its branches along channels; subclasses register their convs.
class InceptionBlock : public Module {
 protected:
  ModulePtr Conv(const std::string& name, int64_t in, int64_t out, Size2 kernel, Size2 stride = 1, Size2 padding = 0) {
    return register_module(name, std::make_shared<BasicConv2d>(in, out, kernel, stride, padding));
  }
  static Tensor AvgPool3x3(const Tensor& x) {
    F::Pool2dOptions o;
    o.kernel_size = {3, 3};
    o.stride = {1, 1};
    o.padding = {1, 1};
    return F::avg_pool2d(x, o);
  }
  static Tensor MaxPool3x3Stride2(const Tensor& x) {
    F::Pool2dOptions o;
    o.kernel_size = {3, 3};
    o.stride = {2, 2};
    return F::max_pool2d(x, o);
  }
};

class InceptionA : public InceptionBlock {
 public:
  InceptionA(int64_t in, int64_t pool_features) {
    b1x1_ = Conv("branch1x1", in, 64, 1);
    b5x5_1_ = Conv("branch5x5_1", in, 48, 1);
    b5x5_2_ = Conv("branch5x5_2", 48, 64, 5, 1, 2);
    b3x3dbl_1_ = Conv("branch3x3dbl_1", in, 64, 1);
    b3x3dbl_2_ = Conv("branch3x3dbl_2", 64, 96, 3, 1, 1);
    b3x3dbl_3_ = Conv("branch3x3dbl_3", 96, 96, 3, 1, 1);
    pool_ = Conv("branch_pool", in, pool_features, 1);
  }
  std::string type_name() const override { return "InceptionA"; }
  Tensor forward(const Tensor& x) override {
    Tensor a = (*b1x1_)(x);
    Tensor b = (*b5x5_2_)((*b5x5_1_)(x));
    Tensor c = (*b3x3dbl_3_)((*b3x3dbl_2_)((*b3x3dbl_1_)(x)));
    Tensor d = (*pool_)(AvgPool3x3(x));
    return F::cat({a, b, c, d}, 1);
  }

 private:
  ModulePtr b1x1_, b5x5_1_, b5x5_2_, b3x3dbl_1_, b3x3dbl_2_, b3x3dbl_3_, pool_;
};

class InceptionB : public InceptionBlock {
 public:
  explicit InceptionB(int64_t in) {
    b3x3_ = Conv("branch3x3", in, 384, 3, 2);
    b3x3dbl_1_ = Conv("branch3x3dbl_1", in, 64, 1);
    b3x3dbl_2_ = Conv("branch3x3dbl_2", 64, 96, 3, 1, 1);
    b3x3dbl_3_ = Conv("branch3x3dbl_3", 96, 96, 3, 2);
  }
  std::string type_name() const override { return "InceptionB"; }
  Tensor forward(const Tensor& x) override {
    Tensor a = (*b3x3_)(x);
    Tensor b = (*b3x3dbl_3_)((*b3x3dbl_2_)((*b3x3dbl_1_)(x)));
    Tensor c = MaxPool3x3Stride2(x);
    return F::cat({a, b, c}, 1);
  }

 private:
  ModulePtr b3x3_, b3x3dbl_1_, b3x3dbl_2_, b3x3dbl_3_;
};

class InceptionC : public InceptionBlock {
 public:
  InceptionC(int64_t in, int64_t c7) {
    b1x1_ = Conv("branch1x1", in, 192, 1);
    b7_[0] = Conv("branch7x7_1", in, c7, 1);
    b7_[1] = Conv("branch7x7_2", c7, c7, Size2(1, 7), 1, Size2(0, 3));
    b7_[2] = Conv("branch7x7_3", c7, 192, Size2(7, 1), 1, Size2(3, 0));
    dbl_[0] = Conv("branch7x7dbl_1", in, c7, 1);
    dbl_[1] = Conv("branch7x7dbl_2", c7, c7, Size2(7, 1), 1, Size2(3, 0));
    dbl_[2] = Conv("branch7x7dbl_3", c7, c7, Size2(1, 7), 1, Size2(0, 3));
    dbl_[3] = Conv("branch7x7dbl_4", c7, c7, Size2(7, 1), 1, Size2(3, 0));
    dbl_[4] = Conv("branch7x7dbl_5", c7, 192, Size2(1, 7), 1, Size2(0, 3));
    pool_ = Conv("branch_pool", in, 192, 1);
  }
  std::string type_name() const override { return "InceptionC"; }
  Tensor forward(const Tensor& x) override {
    Tensor a = (*b1x1_)(x);
    Tensor b = x;
    for (const ModulePtr& m : b7_) b = (*m)(b);
    Tensor c = x;
    for (const ModulePtr& m : dbl_) c = (*m)(c);
    Tensor d = (*pool_)(AvgPool3x3(x));
    return F::cat({a, b, c, d}, 1);
  }

 private:
  ModulePtr b1x1_, b7_[3], dbl_[5], pool_;
};

class InceptionD : public InceptionBlock {
 public:
  explicit InceptionD(int64_t in) {
    b3_[0] = Conv("branch3x3_1", in, 192, 1);
    b3_[1] = Conv("branch3x3_2", 192, 320, 3, 2);
    b7_[0] = Conv("branch7x7x3_1", in, 192, 1);
    b7_[1] = Conv("branch7x7x3_2", 192, 192, Size2(1, 7), 1, Size2(0, 3));
    b7_[2] = Conv("branch7x7x3_3", 192, 192, Size2(7, 1), 1, Size2(3, 0));
    b7_[3] = Conv("branch7x7x3_4", 192, 192, 3, 2);
  }
  std::string type_name() const override { return "InceptionD"; }
  Tensor forward(const Tensor& x) override {
    Tensor a = (*b3_[1])((*b3_[0])(x));
    Tensor b = x;
    for (const ModulePtr& m : b7_) b = (*m)(b);
    Tensor c = MaxPool3x3Stride2(x);
    return F::cat({a, b, c}, 1);
  }

 private:
  ModulePtr b3_[2], b7_[4];
};

class InceptionE : public InceptionBlock {
 public:
  explicit InceptionE(int64_t in) {
    b1x1_ = Conv("branch1x1", in, 320, 1);
    b3_1_ = Conv("branch3x3_1", in, 384, 1);
    b3_2a_ = Conv("branch3x3_2a", 384, 384, Size2(1, 3), 1, Size2(0, 1));
    b3_2b_ = Conv("branch3x3_2b", 384, 384, Size2(3, 1), 1, Size2(1, 0));
    dbl_1_ = Conv("branch3x3dbl_1", in, 448, 1);
    dbl_2_ = Conv("branch3x3dbl_2", 448, 384, 3, 1, 1);
    dbl_3a_ = Conv("branch3x3dbl_3a", 384, 384, Size2(1, 3), 1, Size2(0, 1));
    dbl_3b_ = Conv("branch3x3dbl_3b", 384, 384, Size2(3, 1), 1, Size2(1, 0));
    pool_ = Conv("branch_pool", in, 192, 1);
  }
  std::string type_name() const override { return "InceptionE"; }
  Tensor forward(const Tensor& x) override {
    Tensor a = (*b1x1_)(x);
    Tensor b = (*b3_1_)(x);
    Tensor b_2a = (*b3_2a_)(b);
    Tensor b_2b = (*b3_2b_)(b);
    b = F::cat({b_2a, b_2b}, 1);
    Tensor c = (*dbl_2_)((*dbl_1_)(x));
    Tensor c_3a = (*dbl_3a_)(c);
    Tensor c_3b = (*dbl_3b_)(c);
    c = F::cat({c_3a, c_3b}, 1);
    Tensor d = (*pool_)(AvgPool3x3(x));
    return F::cat({a, b, c, d}, 1);
  }

 private:
  ModulePtr b1x1_, b3_1_, b3_2a_, b3_2b_, dbl_1_, dbl_2_, dbl_3a_, dbl_3b_, pool_;
};

// Built for its parameters (and torchvision's initialisation); torchvision calls it only in training.
class InceptionAux : public Module {
 public:
  InceptionAux(int64_t in, int64_t num_classes) {
    register_module("conv0", std::make_shared<BasicConv2d>(in, 128, 1));
    register_module("conv1", std::make_shared<BasicConv2d>(128, 768, 5));
    register_module("fc", std::make_shared<nn::Linear>(768, num_classes));
  }
  std::string type_name() const override { return "InceptionAux"; }
  Tensor forward(const Tensor&) override {
    ThrowInvalid("InceptionAux: qfx's Inception3 returns the main logits only");
  }
};

class Inception3 : public Module {
 public:
  explicit Inception3(int64_t num_classes = 1000) {
    auto add = [&](const std::string& name, ModulePtr m) { stem_.push_back(register_module(name, std::move(m))); };
    add("Conv2d_1a_3x3", std::make_shared<BasicConv2d>(3, 32, 3, 2));
    add("Conv2d_2a_3x3", std::make_shared<BasicConv2d>(32, 32, 3));
    add("Conv2d_2b_3x3", std::make_shared<BasicConv2d>(32, 64, 3, 1, 1));
    add("maxpool1", std::make_shared<nn::MaxPool2d>(3, 2));
    add("Conv2d_3b_1x1", std::make_shared<BasicConv2d>(64, 80, 1));
    add("Conv2d_4a_3x3", std::make_shared<BasicConv2d>(80, 192, 3));
    add("maxpool2", std::make_shared<nn::MaxPool2d>(3, 2));
    add("Mixed_5b", std::make_shared<InceptionA>(192, 32));
    add("Mixed_5c", std::make_shared<InceptionA>(256, 64));
    add("Mixed_5d", std::make_shared<InceptionA>(288, 64));
    add("Mixed_6a", std::make_shared<InceptionB>(288));
    add("Mixed_6b", std::make_shared<InceptionC>(768, 128));
    add("Mixed_6c", std::make_shared<InceptionC>(768, 160));
    add("Mixed_6d", std::make_shared<InceptionC>(768, 160));
    add("Mixed_6e", std::make_shared<InceptionC>(768, 192));
    register_module("AuxLogits", std::make_shared<InceptionAux>(768, num_classes));
    add("Mixed_7a", std::make_shared<InceptionD>(768));
    add("Mixed_7b", std::make_shared<InceptionE>(1280));
    add("Mixed_7c", std::make_shared<InceptionE>(2048));
    add("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(1));
    add("dropout", std::make_shared<nn::Dropout>(0.5));
    fc_ = register_module("fc", std::make_shared<nn::Linear>(2048, num_classes));
  }
  std::string type_name() const override { return "Inception3"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = x;
    for (const ModulePtr& m : stem_) y = (*m)(y);
    return (*fc_)(F::flatten(y, 1));
  }

 private:
  std::vector<ModulePtr> stem_;  // everything before the classifier, in forward's order
  ModulePtr fc_;
};

// torchvision's init_weights: conv and linear weights normal with std 0.1 (AuxLogits.conv1 0.01,
// AuxLogits.fc 0.001) truncated to [-2, 2] (20 standard deviations: a plain normal here), batch norm 1 / 0;
// linear biases keep PyTorch's default.
void InitLikeInception(nn::Module& model) {
  for (auto& [name, m] : model.named_modules()) {
    const float std = name == "AuxLogits.conv1.conv" ? 0.01f : name == "AuxLogits.fc" ? 0.001f : 0.1f;
    if (auto* conv = dynamic_cast<nn::Conv2d*>(m)) {
      nn::NormalInit(conv->weight, 0.f, std);
    } else if (auto* fc = dynamic_cast<nn::Linear*>(m)) {
      nn::NormalInit(fc->weight, 0.f, std);
    } else if (auto* bn = dynamic_cast<nn::BatchNormBase*>(m)) {
      bn->weight.Fill(1.f);
      bn->bias.Fill(0.f);
    }
  }
}

}  // namespace

std::shared_ptr<nn::Module> MakeInceptionV3() {
  auto m = std::make_shared<Inception3>();
  InitLikeInception(*m);
  return m;
}

}  // namespace models
}  // namespace qfx
