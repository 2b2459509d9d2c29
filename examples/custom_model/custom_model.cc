// A user's own model quantized to int8 with qfx's C++ API: trace, PTQ with one module left in float by
// name, calibrate, convert, save a .qfx file that `qfx run` runs without this program.
//
//   bazel run //:custom_model -- out      writes out/custom_model.qfx and out/input.npy
//   bazel run @qfx//tools:qfx -- run out/custom_model.qfx --input out/input.npy --output out/logits.npy
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "qfx/fx/tracer.h"
#include "qfx/io/model_file.h"
#include "qfx/io/npy.h"
#include "qfx/nn/functional.h"
#include "qfx/nn/modules.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/qconfig_mapping.h"

namespace {

using qfx::Tensor;
namespace F = qfx::F;
namespace nn = qfx::nn;

std::shared_ptr<nn::Conv2d> Conv(int64_t in, int64_t out, int64_t k) {
  return std::make_shared<nn::Conv2d>(in, out, k, nn::Conv2dArgs{1, k / 2, 1, 1, false});
}

// conv -> bn -> relu -> conv -> bn, plus the input (a functional add), then relu.
class Residual : public nn::Module {
 public:
  explicit Residual(int64_t c) {
    conv1 = register_module("conv1", Conv(c, c, 3));
    bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(c));
    relu = register_module("relu", std::make_shared<nn::ReLU>());
    conv2 = register_module("conv2", Conv(c, c, 3));
    bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(c));
  }
  std::string type_name() const override { return "Residual"; }
  Tensor forward(const Tensor& x) override {
    const Tensor y = (*bn2)((*conv2)((*relu)((*bn1)((*conv1)(x)))));
    return (*relu)(F::add(y, x));
  }

 private:
  std::shared_ptr<nn::Module> conv1, bn1, relu, conv2, bn2;
};

// Two branches (1x1 and 3x3 convolutions) concatenated along the channels.
class Branches : public nn::Module {
 public:
  Branches(int64_t in, int64_t each) {
    a = register_module("a", Conv(in, each, 1));
    b = register_module("b", Conv(in, each, 3));
  }
  std::string type_name() const override { return "Branches"; }
  Tensor forward(const Tensor& x) override { return F::cat({F::relu((*a)(x)), F::relu((*b)(x))}, 1); }

 private:
  std::shared_ptr<nn::Module> a, b;
};

class CustomNet : public nn::Module {
 public:
  CustomNet() {
    stem = register_module("stem", Conv(3, 16, 3));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(16));
    relu = register_module("relu", std::make_shared<nn::ReLU>());
    block = register_module("block", std::make_shared<Residual>(16));
    branches = register_module("branches", std::make_shared<Branches>(16, 8));
    pool = register_module("pool", std::make_shared<nn::AdaptiveAvgPool2d>(1));
    head = register_module("head", std::make_shared<nn::Linear>(16, 10));
  }
  std::string type_name() const override { return "CustomNet"; }
  Tensor forward(const Tensor& x) override {
    const Tensor y = (*branches)((*block)((*relu)((*bn)((*stem)(x)))));
    return (*head)(F::flatten((*pool)(y), 1));
  }

 private:
  std::shared_ptr<nn::Module> stem, bn, relu, block, branches, pool, head;
};

Tensor RandomImages(int64_t n) {
  Tensor x = Tensor::Zeros({n, 3, 32, 32});
  nn::NormalInit(x, 0.f, 1.f);
  return x;
}

float MaxAbsDiff(const Tensor& a, const Tensor& b) {
  float d = 0;
  for (int64_t i = 0; i < a.numel(); ++i) d = std::fmax(d, std::fabs(a.data<float>()[i] - b.data<float>()[i]));
  return d;
}

absl::Status QuantizeCustomNet(const std::string& out_dir) {
  nn::ManualSeed(0);
  auto model = std::make_shared<CustomNet>();
  model->eval();  // post-training quantization folds batch norm: the model must be in eval mode
  QFX_ASSIGN_OR_RETURN(auto gm, qfx::fx::SymbolicTrace(model));

  // PyTorch's x86 defaults, with the 3x3 branch kept in float by its module name.
  QFX_ASSIGN_OR_RETURN(qfx::quant::QuantConfig config, qfx::quant::LoadQuantConfig("x86"));
  config.mapping.SetModuleName("branches.b", std::nullopt);
  qfx::quant::PrepareOptions options;
  options.config = config;
  QFX_ASSIGN_OR_RETURN(qfx::quant::PrepareReport report, qfx::quant::Prepare(*gm, options));
  for (const auto& [node, pattern] : report.quantized)
    std::printf("  int8:  %%%s (%s)\n", node.c_str(), pattern.c_str());
  for (const auto& [node, reason] : report.left_float) {
    std::printf("  float: %%%s (%s)\n", node.c_str(), qfx::quant::FloatReasonText(reason));
  }

  for (int i = 0; i < 8; ++i) QFX_RETURN_IF_ERROR(qfx::nn::RunModule(*gm, RandomImages(4)).status());  // calibrate
  QFX_RETURN_IF_ERROR(qfx::quant::Convert(*gm, report));

  const Tensor x = RandomImages(4);
  QFX_ASSIGN_OR_RETURN(const Tensor fp32, qfx::nn::RunModule(*model, x));
  QFX_ASSIGN_OR_RETURN(const Tensor int8, qfx::nn::RunModule(*gm, x));
  std::printf("int8 vs fp32 logits on 4 images: max |difference| %.4f\n", MaxAbsDiff(int8, fp32));

  const std::string model_path = out_dir + "/custom_model.qfx", input_path = out_dir + "/input.npy";
  QFX_RETURN_IF_ERROR(qfx::io::SaveModel(model_path, *gm, {1, 3, 32, 32}, "examples/custom_model"));
  QFX_RETURN_IF_ERROR(qfx::io::WriteNpy(input_path, x));
  std::printf("wrote %s and %s\n", model_path.c_str(), input_path.c_str());
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  // `bazel run` starts programs in their runfiles tree: paths on the command line are the caller's.
  if (const char* dir = std::getenv("BUILD_WORKING_DIRECTORY"); dir != nullptr && chdir(dir) != 0) {
    std::perror(dir);
    return 1;
  }
  const std::string out_dir = argc > 1 ? argv[1] : "out";
  if (mkdir(out_dir.c_str(), 0755) != 0 && errno != EEXIST) {
    std::perror(out_dir.c_str());
    return 1;
  }
  const absl::Status status = QuantizeCustomNet(out_dir);
  if (!status.ok()) {
    std::fprintf(stderr, "custom_model: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
