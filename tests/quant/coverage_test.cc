// qfx tests: layers past the square CNNs of the zoo, end to end. NonSquareCnn has inception's 1x7 / 7x1
// kernels and asymmetric strides, padding and dilation in dense, depthwise and pooling layers: fp32 equal
// to PyTorch's (tests/data/quant/nonsquare_cnn_int8.safetensors, tools/gen_golden.py), traced, trained
// through the graph, quantized by the FX flow (every conv int8, SQNR at least PyTorch 1.13 FX int8's
// minus 0.5 dB) and by the PT2E flow, saved and loaded bit for bit with per-axis sizes in the .qfx file.
#include <cstdio>
#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "qfx/fx/tracer.h"
#include "qfx/io/model_file.h"
#include "qfx/nn/modules.h"
#include "qfx/nn/ops.h"
#include "qfx/quant/metrics.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/pt2e.h"
#include "qfx/quant/quantized_modules.h"
#include "qfx/train/graph_tape.h"
#include "qfx/train/ops.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace quant {
namespace {

using nn::Conv2dArgs;
using nn::Size2;

// tools/gen_golden.py's NonSquareCnn, with the same parameter names; input [N, 3, 20, 20].
class NonSquareCnn : public nn::Module {
 public:
  NonSquareCnn() {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(3, 16, Size2(1, 7), Conv2dArgs{1, Size2(0, 3)}));
    bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(16));
    relu1 = register_module("relu1", std::make_shared<nn::ReLU>());
    conv2 = register_module("conv2",
                            std::make_shared<nn::Conv2d>(16, 16, Size2(7, 1), Conv2dArgs{Size2(2, 1), Size2(3, 0)}));
    relu2 = register_module("relu2", std::make_shared<nn::ReLU>());
    dw = register_module(
        "dw", std::make_shared<nn::Conv2d>(16, 16, Size2(1, 5), Conv2dArgs{Size2(1, 2), Size2(0, 4), Size2(1, 2), 16}));
    conv3 = register_module("conv3",
                            std::make_shared<nn::Conv2d>(16, 24, Size2(3, 2), Conv2dArgs{1, Size2(1, 1), Size2(2, 1)}));
    pool = register_module("pool", std::make_shared<nn::MaxPool2d>(Size2(3, 2), Size2(2, 1), Size2(1, 0)));
    avg = register_module("avg", std::make_shared<nn::AvgPool2d>(Size2(2, 3), Size2(1, 2), Size2(1, 1), false, false));
    fc = register_module("fc", std::make_shared<nn::Linear>(24 * 5 * 5, 10));
  }
  std::string type_name() const override { return "NonSquareCnn"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*relu1)((*bn1)((*conv1)(x)));
    y = (*relu2)((*conv2)(y));
    y = (*avg)((*pool)((*conv3)((*dw)(y))));
    return (*fc)(F::flatten(y, 1));
  }
  std::shared_ptr<nn::Module> conv1, bn1, relu1, conv2, relu2, dw, conv3, pool, avg, fc;
};

const Shape kShape = {4, 3, 20, 20};

std::shared_ptr<NonSquareCnn> Seeded() {
  auto m = std::make_shared<NonSquareCnn>();
  testing::HashInit(*m);
  m->eval();
  return m;
}

TEST(NonSquare, Fp32MatchesPyTorchAndTheTracedGraph) {
  const io::Safetensors fixture = testing::ReadFixture("quant/nonsquare_cnn_int8.safetensors");
  auto model = Seeded();
  const Tensor x = testing::HashUniform("test", kShape, -1, 1);
  const Tensor y = *RunModule(*model, x);
  EXPECT_LT(testing::MaxRelError(y, testing::Get(fixture, "fp32")), 1e-4);
  auto gm = *fx::SymbolicTrace(model);
  const Tensor traced = *RunModule(*gm, x);
  ASSERT_EQ(traced.shape(), y.shape());
  EXPECT_EQ(std::memcmp(traced.raw_data(), y.raw_data(), y.nbytes()), 0);
}

TEST(NonSquare, TrainsThroughTheGraph) {
  auto model = Seeded();
  model->train();
  auto gm = *fx::SymbolicTrace(model);
  train::GraphForward fwd(*gm);
  ASSERT_TRUE(fwd.CheckDifferentiable().ok()) << fwd.CheckDifferentiable();
  train::Tape tape;
  auto y = fwd.Run(tape, testing::HashUniform("x", kShape, -1, 1));
  ASSERT_TRUE(y.ok()) << y.status();
  tape.Backward(train::ag::mean(tape, train::ag::mul(tape, *y, *y), {0, 1}, false));
  for (const char* conv : {"conv1", "conv2", "dw", "conv3"}) {
    const Tensor g = tape.ParamGrad(static_cast<nn::Conv2d*>(gm->submodule(conv))->weight);
    ASSERT_TRUE(g.defined()) << conv;
    EXPECT_EQ(g.shape(), static_cast<nn::Conv2d*>(gm->submodule(conv))->weight.shape()) << conv;
  }
}

class NonSquareInt8 : public ::testing::TestWithParam<std::string> {};

// Every conv, whatever its per-axis geometry, becomes an int8 layer; the model is as close to fp32 as
// PyTorch's FX int8 model with the same preset, less 0.5 dB; and it saves and loads bit for bit.
TEST_P(NonSquareInt8, EveryConvInt8AndSqnrAtLeastPyTorchs) {
  const io::Safetensors fixture = testing::ReadFixture("quant/nonsquare_cnn_int8.safetensors");
  auto model = Seeded();
  const Tensor calib = testing::HashUniform("calib", kShape, -1, 1), x = testing::HashUniform("test", kShape, -1, 1);
  const Tensor fp32 = *RunModule(*model, x);
  auto gm = *fx::SymbolicTrace(model);
  PrepareOptions opt;
  opt.config = *LoadQuantConfig(GetParam());
  auto report = Prepare(*gm, opt);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(RunModule(*gm, calib).ok());
  ASSERT_TRUE(Convert(*gm, *report).ok());
  std::map<std::string, Size2> kernels;
  for (const auto& [path, m] : gm->named_modules()) {
    if (const auto* q = dynamic_cast<const QuantizedConv2d*>(m)) kernels.emplace(path, q->layer().kernel);
  }
  ASSERT_EQ(kernels.size(), 4u) << gm->graph().ToString();
  EXPECT_EQ(kernels.begin()->second, Size2(1, 7));  // conv1 (fused with bn1 and relu1)
  const Tensor y = *RunModule(*gm, x);
  const double ours = SqnrDb(fp32, y),
               theirs = SqnrDb(testing::Get(fixture, "fp32"), testing::Get(fixture, GetParam()));
  std::printf("nonsquare_cnn %s: SQNR vs fp32: qfx %.2f dB, PyTorch %.2f dB\n", GetParam().c_str(), ours, theirs);
  EXPECT_GE(ours, theirs - 0.5);

  const std::string path = ::testing::TempDir() + "/nonsquare_" + GetParam() + ".qfx";
  ASSERT_TRUE(io::SaveModel(path, *gm, kShape, "coverage test").ok());
  auto loaded = io::LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tensor again = *RunModule(*loaded->module, x);
  EXPECT_EQ(std::memcmp(again.raw_data(), y.raw_data(), y.nbytes()), 0);
}

INSTANTIATE_TEST_SUITE_P(Presets, NonSquareInt8, ::testing::Values("qnnpack", "onednn"));

TEST(NonSquare, Pt2eLowersEveryConvToInt8) {
  auto model = Seeded();
  auto gm = *Export(model, {kShape});
  XNNPACKQuantizer q;
  q.set_global(get_symmetric_quantization_config(/*per_channel=*/true));
  auto report = PreparePt2e(*gm, q);
  ASSERT_TRUE(report.ok()) << report.status();
  const Tensor x = testing::HashUniform("test", kShape, -1, 1);
  ASSERT_TRUE(RunModule(*gm, testing::HashUniform("calib", kShape, -1, 1)).ok());
  ASSERT_TRUE(ConvertPt2e(*gm).ok());
  const absl::Status lowered = LowerPt2e(*gm);
  ASSERT_TRUE(lowered.ok()) << lowered;
  int convs = 0;
  for (const auto& [path, m] : gm->named_modules()) convs += dynamic_cast<const QuantizedConv2d*>(m) != nullptr;
  EXPECT_EQ(convs, 4) << gm->graph().ToString();
  const double sqnr = SqnrDb(*RunModule(*model, x), *RunModule(*gm, x));
  std::printf("nonsquare_cnn PT2E XNNPACKQuantizer: SQNR vs fp32 %.2f dB\n", sqnr);
  EXPECT_GT(sqnr, 15.0);
}

// Sizes in .qfx configs: an integer when square (every earlier file), [h, w] otherwise; anything else is
// an error naming the field.
TEST(NonSquare, ConfigSizesReadBothFormsAndNameTheBadField) {
  const nn::Conv2d conv(4, 8, Size2(1, 7), Conv2dArgs{Size2(2, 1), Size2(0, 3)});
  const nlohmann::json c = *nn::ModuleConfig(conv);
  EXPECT_EQ(c.at("kernel"), nlohmann::json::parse("[1, 7]"));
  EXPECT_EQ(c.at("dilation"), nlohmann::json(1));
  auto rebuilt = nn::MakeModule("Conv2d", c);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ(static_cast<nn::Conv2d&>(**rebuilt).options.stride, (std::vector<int64_t>{2, 1}));
  nlohmann::json bad = c;
  bad["kernel"] = nlohmann::json::parse("[1, 7, 2]");
  const absl::Status s = nn::MakeModule("Conv2d", bad).status();
  EXPECT_NE(s.message().find("'kernel' is [1,7,2]; it must be an integer or a list [h, w]"), std::string::npos) << s;
  EXPECT_THROW(nn::Conv2d(4, 8, Size2(1, 0)), std::exception);
  EXPECT_THROW(nn::Conv2d(4, 8, 3, Conv2dArgs{Size2(1, 0)}), std::exception);
}

}  // namespace
}  // namespace quant
}  // namespace qfx
