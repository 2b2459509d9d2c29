// qfx tests: dynamic quantization — the `dynamic` preset and its rule file, QuantizeDynamic on the mlp
// against PyTorch 1.13's dynamically quantized mlp (onednn engine), accuracy on real MNIST digits, .qfx
// round trips, and clear errors for mappings that mix dynamic and static qconfigs.
#include <cmath>
#include <cstring>

#include "gtest/gtest.h"
#include "qfx/fx/tracer.h"
#include "qfx/io/model_file.h"
#include "qfx/io/npy.h"
#include "qfx/io/safetensors.h"
#include "qfx/models/zoo.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/quantized_modules.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace quant {
namespace {

using io::LoadModel;
using io::SaveModel;

std::shared_ptr<fx::GraphModule> HashMlp() {
  auto model = *models::Create("mlp");
  testing::HashInit(*model);
  model->eval();
  return *fx::SymbolicTrace(model);
}

TEST(Dynamic, PresetQuantizesEveryLinearAndNothingElse) {
  auto gm = HashMlp();
  auto report = QuantizeDynamic(*gm, *LoadQuantConfig("dynamic"));
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->quantized, (std::vector<std::string>{"fc1", "fc2", "fc3"}));
  for (const char* path : {"fc1", "fc2", "fc3"}) EXPECT_EQ(gm->submodule(path)->type_name(), "DynamicQuantizedLinear");
  EXPECT_EQ(report->left_float.at("relu"), "qconfig none");
  // The rule file spelling gives the same result.
  auto gm2 = HashMlp();
  ASSERT_TRUE(QuantizeDynamic(*gm2, *LoadQuantConfig("tools/qconfigs/dynamic.toml")).ok());
  const Tensor x = testing::HashUniform("x", {3, 1, 28, 28}, 0, 1);
  const Tensor a = *RunModule(*gm, x), b = *RunModule(*gm2, x);
  EXPECT_EQ(0, std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()));
}

TEST(Dynamic, CloseToPyTorchDynamicQuantization) {
  const io::Safetensors st = testing::ReadFixture("quant/mlp_dynamic.safetensors");
  auto gm = HashMlp();
  const Tensor x = testing::Get(st, "x"), fp32 = testing::Get(st, "fp32");
  const Tensor ours_fp32 = *RunModule(*gm, x);
  ASSERT_TRUE(QuantizeDynamic(*gm, *LoadQuantConfig("dynamic")).ok());
  for (const auto& [in, want_name] :
       {std::pair<Tensor, std::string>{x, "dynamic"}, {testing::Get(st, "x1"), "dynamic1"}}) {
    const Tensor got = *RunModule(*gm, in), want = testing::Get(st, want_name);
    ASSERT_EQ(got.shape(), want.shape());
    // Both quantize each layer's input from its own range with the same formulas: the int8 products are
    // equal and only float rounding in the output scaling differs. Also measure the error against fp32.
    double max_diff = 0, scale = 0, err_ours = 0, err_torch = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      const double g = got.data<float>()[i], w = want.data<float>()[i];
      const double f = want_name == "dynamic" ? fp32.data<float>()[i] : ours_fp32.data<float>()[i];
      max_diff = std::max(max_diff, std::fabs(g - w));
      scale = std::max(scale, std::fabs(w));
      err_ours += (g - f) * (g - f);
      err_torch += (w - f) * (w - f);
    }
    EXPECT_LE(max_diff, 1e-5 * scale) << want_name;
    EXPECT_LE(err_ours, 1.1 * err_torch + 1e-12) << want_name;
    std::printf("%s: max |qfx - torch| %.3g (max |y| %.3g); squared error vs fp32: qfx %.3g, torch %.3g\n",
                want_name.c_str(), max_diff, scale, err_ours, err_torch);
  }
}

TEST(Dynamic, MnistAccuracyAndFileRoundTrip) {
  auto model = *models::Create("mnist_cnn");
  ASSERT_TRUE(io::LoadWeights(*model, "tests/data/mnist/mnist_cnn_trained.safetensors").ok());
  model->eval();
  auto gm = *fx::SymbolicTrace(model);
  const Tensor x = *io::ReadNpy("tests/data/mnist/test400_x.npy"), y = *io::ReadNpy("tests/data/mnist/test400_y.npy");
  auto top1 = [&](nn::Module& m) {
    const Tensor pred = F::argmax(*RunModule(m, x));
    int ok = 0;
    for (int64_t i = 0; i < y.numel(); ++i) ok += pred.data<int64_t>()[i] == y.data<int64_t>()[i];
    return ok / 400.0;
  };
  const double fp32 = top1(*gm);
  auto report = QuantizeDynamic(*gm, *LoadQuantConfig("dynamic"));
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->quantized, (std::vector<std::string>{"fc1", "fc2"}));
  const double dyn = top1(*gm);
  EXPECT_GE(dyn, fp32 - 0.005) << "fp32 " << fp32;
  const std::string path = ::testing::TempDir() + "/dyn.qfx";
  ASSERT_TRUE(SaveModel(path, *gm, {1, 1, 28, 28}, "dynamic test").ok());
  auto loaded = LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tensor a = *RunModule(*gm, x), b = *RunModule(*loaded->module, x);
  EXPECT_EQ(0, std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()));
}

TEST(Dynamic, MixedMappingsAndNonLinearTargetsAreExplained) {
  auto gm = HashMlp();
  QuantConfig config = *LoadQuantConfig("dynamic");
  config.mapping.SetModuleName("fc3", *PresetQConfig("x86"));
  auto report = QuantizeDynamic(*gm, config);
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("%fc3 gets a static qconfig"), std::string::npos) << report.status();
  // Static Prepare points a dynamic qconfig at the dynamic path.
  auto gm2 = HashMlp();
  PrepareOptions po;
  po.config = *LoadQuantConfig("dynamic");
  po.config.mapping.SetGlobal(*PresetQConfig("dynamic"));
  auto prepared = Prepare(*gm2, po);
  ASSERT_FALSE(prepared.ok());
  EXPECT_NE(prepared.status().message().find("dynamic qconfig"), std::string::npos) << prepared.status();
  // A dynamic qconfig on a non-Linear node leaves it float, with the reason.
  auto gm3 = HashMlp();
  QuantConfig all = *LoadQuantConfig("dynamic");
  all.mapping.SetGlobal(*PresetQConfig("dynamic"));
  auto r3 = QuantizeDynamic(*gm3, all);
  ASSERT_TRUE(r3.ok()) << r3.status();
  EXPECT_EQ(r3->left_float.at("relu"),
            "dynamic quantization covers Linear modules and linear calls on parameters only");
}

// A model calling F::linear on its own parameters (traced as get_attr + call_function linear).
class FunctionalHead : public nn::Module {
 public:
  FunctionalHead() {
    w = register_parameter("w", testing::HashUniform("fw", {6, 5}, -1, 1));
    b = register_parameter("b", testing::HashUniform("fb", {6}, -0.1, 0.1));
  }
  std::string type_name() const override { return "FunctionalHead"; }
  Tensor forward(const Tensor& x) override { return F::relu(F::linear(x, w, b)); }
  Tensor w, b;
};

TEST(Dynamic, FunctionalLinearOnParameters) {
  auto model = std::make_shared<FunctionalHead>();
  model->eval();
  auto gm = *fx::SymbolicTrace(model);
  const Tensor x = testing::HashUniform("fx", {3, 5}, -1, 1);
  const Tensor fp32 = *RunModule(*gm, x);
  auto report = QuantizeDynamic(*gm, *LoadQuantConfig("dynamic"));
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->quantized, (std::vector<std::string>{"linear_dynamic"}));
  EXPECT_EQ(gm->submodule("linear_dynamic")->type_name(), "DynamicQuantizedLinear");
  for (fx::Node* n : gm->graph()) EXPECT_NE(n->op(), fx::Opcode::kGetAttr) << n->name();
  const Tensor y = *RunModule(*gm, x);
  for (int64_t i = 0; i < y.numel(); ++i) EXPECT_NEAR(y.data<float>()[i], fp32.data<float>()[i], 0.05);
}

TEST(Dynamic, BadInputIsNamed) {
  auto gm = HashMlp();
  ASSERT_TRUE(QuantizeDynamic(*gm, *LoadQuantConfig("dynamic")).ok());
  auto* fc1 = gm->submodule("fc1");
  auto y = RunModule(*fc1, Tensor::Zeros({2, 100}));
  ASSERT_FALSE(y.ok());
  EXPECT_NE(y.status().message().find("must be f32 [..., 784]"), std::string::npos) << y.status();
  Tensor bad = Tensor::Zeros({1, 784});
  bad.data<float>()[3] = std::nanf("");
  auto nan = RunModule(*fc1, bad);
  ASSERT_FALSE(nan.ok());
  EXPECT_NE(nan.status().message().find("holds NaN or infinite values"), std::string::npos) << nan.status();
}

}  // namespace
}  // namespace quant
}  // namespace qfx
