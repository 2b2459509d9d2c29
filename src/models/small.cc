// qfx models: the small MNIST models, mlp (784-256-128-10) and mnist_cnn (defined in issue 2 exactly).
#include "src/models/common.h"

namespace qfx {
namespace models {
namespace {

using ModulePtr = std::shared_ptr<nn::Module>;

// x = flatten(x, 1); fc1 -> relu -> fc2 -> relu -> fc3, one `relu` module reused.
class Mlp : public nn::Module {
 public:
  Mlp() {
    fc1_ = register_module("fc1", std::make_shared<nn::Linear>(784, 256));
    fc2_ = register_module("fc2", std::make_shared<nn::Linear>(256, 128));
    fc3_ = register_module("fc3", std::make_shared<nn::Linear>(128, 10));
    relu_ = register_module("relu", std::make_shared<nn::ReLU>());
  }
  std::string type_name() const override { return "Mlp"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*relu_)((*fc1_)(F::flatten(x, 1)));
    y = (*relu_)((*fc2_)(y));
    return (*fc3_)(y);
  }

 private:
  ModulePtr fc1_, fc2_, fc3_, relu_;
};

class MnistCnn : public nn::Module {
 public:
  MnistCnn() {
    conv1_ = register_module("conv1", std::make_shared<nn::Conv2d>(1, 16, 3, nn::Conv2dArgs{1, 1}));
    bn1_ = register_module("bn1", std::make_shared<nn::BatchNorm2d>(16));
    conv2_ = register_module("conv2", std::make_shared<nn::Conv2d>(16, 32, 3, nn::Conv2dArgs{1, 1}));
    bn2_ = register_module("bn2", std::make_shared<nn::BatchNorm2d>(32));
    relu_ = register_module("relu", std::make_shared<nn::ReLU>());
    pool_ = register_module("pool", std::make_shared<nn::MaxPool2d>(2));
    fc1_ = register_module("fc1", std::make_shared<nn::Linear>(32 * 7 * 7, 128));
    fc2_ = register_module("fc2", std::make_shared<nn::Linear>(128, 10));
  }
  std::string type_name() const override { return "MnistCnn"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*pool_)((*relu_)((*bn1_)((*conv1_)(x))));
    y = (*pool_)((*relu_)((*bn2_)((*conv2_)(y))));
    y = F::flatten(y, 1);
    y = F::relu((*fc1_)(y));
    return (*fc2_)(y);
  }

 private:
  ModulePtr conv1_, bn1_, conv2_, bn2_, relu_, pool_, fc1_, fc2_;
};

}  // namespace

std::shared_ptr<nn::Module> MakeMlp() { return std::make_shared<Mlp>(); }

std::shared_ptr<nn::Module> MakeMnistCnn() {
  auto m = std::make_shared<MnistCnn>();
  InitLikeTorchvision(*m, LinearInit::kPyTorchDefault);
  return m;
}

}  // namespace models
}  // namespace qfx
