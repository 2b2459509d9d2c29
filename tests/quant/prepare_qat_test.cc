// qfx tests: PrepareQat. Fake-quant placement and module swaps as PyTorch's prepare_qat_fx (fixtures), the
// fake-quantized output of a train-mode mnist_cnn against PyTorch's, BN freezing and the QAT switches.
#include <cmath>
#include <fstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "qfx/fx/tracer.h"
#include "qfx/models/zoo.h"
#include "qfx/quant/observer.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/qat_modules.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace quant {
namespace {

std::shared_ptr<fx::GraphModule> TrainingHashModel(const std::string& name) {
  auto model = *models::Create(name);
  testing::HashInit(*model);
  model->train();
  return *fx::SymbolicTrace(model);
}

class PrepareQatVsPyTorch : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(PrepareQatVsPyTorch, SamePlacementModulesAndOutput) {
  const auto& [name, preset] = GetParam();
  std::ifstream f("tests/data/quant/prepare_qat_" + name + "_" + preset + ".json");
  ASSERT_TRUE(f.good());
  const auto want = nlohmann::json::parse(f);
  auto gm = TrainingHashModel(name);
  PrepareOptions opt;
  opt.config = *LoadQuantConfig(preset + "_qat");
  auto report = PrepareQat(*gm, opt);
  ASSERT_TRUE(report.ok()) << report.status();
  std::vector<std::string> observed;
  for (fx::Node* n : gm->graph()) {
    if (n->op() == fx::Opcode::kCallModule && n->target().path.rfind("activation_post_process_", 0) == 0) {
      observed.push_back(std::get<fx::Node*>(n->args()[0])->name());
      EXPECT_EQ(gm->submodule(n->target().path)->type_name(), "FakeQuantize");
    }
  }
  EXPECT_EQ(observed, want["observed"].get<std::vector<std::string>>());
  for (const auto& [path, type] : want["modules"].items()) {
    if (type == "Module") continue;  // torch.fx's plain parent containers
    ASSERT_NE(gm->submodule(path), nullptr) << path;
    EXPECT_EQ(gm->submodule(path)->type_name(), type.get<std::string>()) << path;
  }
  if (!want.contains("output")) return;
  const Tensor x = testing::HashUniform("calib", want["calib_shape"].get<Shape>(), -1, 1);
  ASSERT_TRUE(RunModule(*gm, x).ok());
  auto y = RunModule(*gm, F::mul(x, 0.5f));
  ASSERT_TRUE(y.ok()) << y.status();
  const auto ref = want["output"].get<std::vector<float>>();
  ASSERT_EQ(y->numel(), static_cast<int64_t>(ref.size()));
  // The output is fake-quantized: values sit on a grid; allow a value to land one grid step away.
  auto* out_fq = dynamic_cast<FakeQuantize*>(
      gm->submodule(std::get<fx::Node*>(gm->graph().output_node()->args()[0])->target().path));
  ASSERT_NE(out_fq, nullptr);
  const float step = out_fq->qparams().scale[0];
  int same = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const float d = std::fabs(y->data<float>()[i] - ref[i]);
    EXPECT_LE(d, step * 1.01f) << i;
    same += d <= 1e-4f * std::max(1.f, std::fabs(ref[i]));
  }
  EXPECT_GE(same, static_cast<int>(ref.size()) * 9 / 10);
  const auto rm = want["conv1_bn_running_mean"].get<std::vector<float>>();
  auto* conv1 = dynamic_cast<QatConv2d*>(gm->submodule("conv1"));
  ASSERT_NE(conv1, nullptr);
  for (size_t c = 0; c < rm.size(); ++c) EXPECT_NEAR(conv1->bn->running_mean.data<float>()[c], rm[c], 1e-4) << c;
}

INSTANTIATE_TEST_SUITE_P(Zoo, PrepareQatVsPyTorch,
                         ::testing::Values(std::make_pair(std::string("mnist_cnn"), std::string("x86")),
                                           std::make_pair(std::string("mnist_cnn"), std::string("qnnpack")),
                                           std::make_pair(std::string("resnet18"), std::string("x86")),
                                           std::make_pair(std::string("resnet18"), std::string("qnnpack"))),
                         [](const auto& info) { return info.param.first + "_" + info.param.second; });

TEST(PrepareQat, NeedsTrainingModeAndFakeQuantSpecs) {
  auto gm = TrainingHashModel("mnist_cnn");
  gm->eval();
  PrepareOptions opt;
  opt.config = *LoadQuantConfig("x86_qat");
  EXPECT_EQ(PrepareQat(*gm, opt).status().code(), absl::StatusCode::kFailedPrecondition);
  gm->train();
  opt.config = *LoadQuantConfig("x86");
  auto r = PrepareQat(*gm, opt);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("must be a fake-quant spec for QAT (use a _qat preset"), std::string::npos)
      << r.status();
}

TEST(PrepareQat, FreezeBnStatsAndSwitches) {
  auto gm = TrainingHashModel("mnist_cnn");
  PrepareOptions opt;
  opt.config = *LoadQuantConfig("x86_qat");
  ASSERT_TRUE(PrepareQat(*gm, opt).ok());
  auto* conv1 = dynamic_cast<QatConv2d*>(gm->submodule("conv1"));
  ASSERT_NE(conv1, nullptr);
  const Tensor x = testing::HashUniform("q", {2, 1, 28, 28}, 0, 1);
  ASSERT_TRUE(RunModule(*gm, x).ok());
  FreezeBnStats(*gm);
  const float frozen = conv1->bn->running_mean.data<float>()[0];
  gm->train();  // training again must not unfreeze
  ASSERT_TRUE(RunModule(*gm, F::mul(x, 3.f)).ok());
  EXPECT_EQ(conv1->bn->running_mean.data<float>()[0], frozen);
  EXPECT_FALSE(conv1->bn->is_training());
  FreezeBnStats(*gm, false);
  ASSERT_TRUE(RunModule(*gm, F::mul(x, 3.f)).ok());
  EXPECT_NE(conv1->bn->running_mean.data<float>()[0], frozen);
  // With fake quantization off and observers off, the QAT model computes conv-bn-relu in float.
  EnableFakeQuant(*gm, false);
  EnableObservers(*gm, false);
  auto y1 = RunModule(*gm, x), y2 = RunModule(*gm, x);
  ASSERT_TRUE(y1.ok() && y2.ok());
}

}  // namespace
}  // namespace quant
}  // namespace qfx
