// qfx tests: accuracy on real data. A mnist_cnn trained by PyTorch on real MNIST digits (fixtures from
// gen_golden.py), quantized by qfx with the x86, qnnpack and onednn presets: int8 top-1 within 0.3 points
// of fp32 on 400 test images, and (qnnpack, onednn) argmax agreeing with PyTorch's FX int8 model on at least
// 99.5% of them.
#include <cmath>

#include "gtest/gtest.h"
#include "qfx/fx/tracer.h"
#include "qfx/io/npy.h"
#include "qfx/io/safetensors.h"
#include "qfx/models/zoo.h"
#include "qfx/nn/functional.h"
#include "qfx/quant/metrics.h"
#include "qfx/quant/passes.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace quant {
namespace {

double Top1(const Tensor& logits, const Tensor& labels) {
  const Tensor pred = F::argmax(logits);
  int64_t correct = 0;
  for (int64_t i = 0; i < labels.numel(); ++i) correct += pred.data<int64_t>()[i] == labels.data<int64_t>()[i];
  return static_cast<double>(correct) / static_cast<double>(labels.numel());
}

double Agreement(const Tensor& a, const Tensor& b) {
  const Tensor pa = F::argmax(a), pb = F::argmax(b);
  int64_t same = 0;
  for (int64_t i = 0; i < pa.numel(); ++i) same += pa.data<int64_t>()[i] == pb.data<int64_t>()[i];
  return static_cast<double>(same) / static_cast<double>(pa.numel());
}

class MnistAccuracy : public ::testing::TestWithParam<std::string> {};

TEST_P(MnistAccuracy, Int8StaysWithinAPointOfFp32AndAgreesWithPyTorch) {
  auto model = *models::Create("mnist_cnn");
  ASSERT_TRUE(io::LoadWeights(*model, "tests/data/mnist/mnist_cnn_trained.safetensors").ok());
  const Tensor calib = *io::ReadNpy("tests/data/mnist/calib200_x.npy");
  const Tensor x = *io::ReadNpy("tests/data/mnist/test400_x.npy");
  const Tensor y = *io::ReadNpy("tests/data/mnist/test400_y.npy");
  const io::Safetensors torch = testing::ReadFixture("mnist/torch_logits.safetensors");
  const Tensor fp32 = *RunModule(*model, x);
  EXPECT_LT(testing::MaxRelError(fp32, testing::Get(torch, "fp32")), 1e-4);

  auto gm = *fx::SymbolicTrace(model);
  PrepareOptions opt;
  opt.config = *LoadQuantConfig(GetParam());
  auto report = Prepare(*gm, opt);
  ASSERT_TRUE(report.ok()) << report.status();
  for (int64_t i = 0; i < calib.size(0); i += 50) ASSERT_TRUE(RunModule(*gm, calib.Narrow0(i, 50)).ok());
  ASSERT_TRUE(Convert(*gm, *report).ok());
  const Tensor int8 = *RunModule(*gm, x);
  const double top1_fp32 = Top1(fp32, y), top1_int8 = Top1(int8, y);
  std::printf("%s: fp32 top-1 %.4f, int8 top-1 %.4f", GetParam().c_str(), top1_fp32, top1_int8);
  EXPECT_LE(top1_fp32 - top1_int8, 0.003 + 1e-9);
  if (GetParam() != "x86") {  // Debian's PyTorch has no x86/fbgemm engine
    const double agree = Agreement(int8, testing::Get(torch, GetParam()));
    std::printf(", argmax agreement with PyTorch %s int8 %.4f", GetParam().c_str(), agree);
    EXPECT_GE(agree, 0.995);
  }
  std::printf("\n");
}

INSTANTIATE_TEST_SUITE_P(Presets, MnistAccuracy, ::testing::Values("x86", "qnnpack", "onednn"));

}  // namespace
}  // namespace quant
}  // namespace qfx

namespace qfx {
namespace quant {
namespace {

class Resnet18Sqnr : public ::testing::TestWithParam<std::string> {};

// On the same (hash) weights and calibration data, qfx's int8 resnet18 is at least as close to fp32 as
// PyTorch's FX int8 model with the same preset, less 0.5 dB.
TEST_P(Resnet18Sqnr, AtLeastPyTorchsMinusHalfADecibel) {
  const io::Safetensors fx = testing::ReadFixture("quant/resnet18_int8.safetensors");
  auto model = *models::Create("resnet18");
  testing::HashInit(*model);
  const Shape shape = {4, 3, 64, 64};
  const Tensor calib = testing::HashUniform("calib", shape, -1, 1), x = testing::HashUniform("test", shape, -1, 1);
  const Tensor fp32 = *RunModule(*model, x);
  EXPECT_LT(testing::MaxRelError(fp32, testing::Get(fx, "fp32")), 1e-4);
  auto gm = *fx::SymbolicTrace(model);
  PrepareOptions opt;
  opt.config = *LoadQuantConfig(GetParam());
  auto report = Prepare(*gm, opt);
  ASSERT_TRUE(report.ok());
  ASSERT_TRUE(RunModule(*gm, calib).ok());
  ASSERT_TRUE(Convert(*gm, *report).ok());
  const double ours = SqnrDb(fp32, *RunModule(*gm, x)),
               theirs = SqnrDb(testing::Get(fx, "fp32"), testing::Get(fx, GetParam()));
  std::printf("resnet18 %s: SQNR vs fp32: qfx %.2f dB, PyTorch %.2f dB\n", GetParam().c_str(), ours, theirs);
  EXPECT_GE(ours, theirs - 0.5);
}

INSTANTIATE_TEST_SUITE_P(Presets, Resnet18Sqnr, ::testing::Values("qnnpack", "onednn"));

}  // namespace
}  // namespace quant
}  // namespace qfx
