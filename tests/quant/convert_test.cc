// qfx tests: Convert. The reference graph runs; the lowered int8 graph agrees with it (to one output
// quantization step, nearly always exactly) and stays close to fp32; every prepared pattern lowers.
#include <cmath>

#include "gtest/gtest.h"
#include "qfx/fx/tracer.h"
#include "qfx/models/zoo.h"
#include "qfx/nn/functional.h"
#include "qfx/nn/modules.h"
#include "qfx/quant/metrics.h"
#include "qfx/quant/passes.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace quant {
namespace {

struct Case {
  std::string model, qconfig;
};

class ConvertZoo : public ::testing::TestWithParam<Case> {};

TEST_P(ConvertZoo, LoweredMatchesReferenceAndStaysCloseToFloat) {
  const auto& [name, qconfig] = GetParam();
  auto model = *models::Create(name);
  testing::HashInit(*model);
  auto gm = *fx::SymbolicTrace(model);
  const Shape shape = testing::ZooTestShape(name, 2);
  const Tensor calib = testing::HashUniform("calib", shape, -1, 1);
  const Tensor x = testing::HashUniform("test", shape, -1, 1);
  const Tensor fp32 = *RunModule(*model, x);
  PrepareOptions opt;
  opt.config = *LoadQuantConfig(qconfig);
  auto report = Prepare(*gm, opt);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(RunModule(*gm, calib).ok());
  ASSERT_TRUE(ConvertToReference(*gm, *report).ok());
  auto ref = RunModule(*gm, x);
  ASSERT_TRUE(ref.ok()) << ref.status();
  const absl::Status lowered = Lower(*gm, *report);
  ASSERT_TRUE(lowered.ok()) << lowered;
  auto y = RunModule(*gm, x);
  ASSERT_TRUE(y.ok()) << y.status();
  int64_t exact = 0, within_step = 0;
  double max_diff = 0;
  for (int64_t i = 0; i < y->numel(); ++i) {
    const double d = std::fabs(y->data<float>()[i] - ref->data<float>()[i]);
    max_diff = std::max(max_diff, d);
    exact += d == 0;
  }
  // Values are on the output grid; compute its step from distinct values of the reference.
  double grid = 1e30;
  for (int64_t i = 1; i < ref->numel(); ++i) {
    const double d = std::fabs(ref->data<float>()[i] - ref->data<float>()[0]);
    if (d > 1e-9) grid = std::min(grid, d);
  }
  for (int64_t i = 0; i < y->numel(); ++i) {
    within_step += std::fabs(y->data<float>()[i] - ref->data<float>()[i]) <= grid * 1.001 + 1e-7;
  }
  const double sqnr_ref = SqnrDb(fp32, *ref), sqnr_int8 = SqnrDb(fp32, *y);
  std::printf(
      "%s/%s: int8 vs reference: %lld/%lld equal, %lld within one step; SQNR vs fp32: reference %.1f dB, int8 %.1f "
      "dB\n",
      name.c_str(), qconfig.c_str(), (long long)exact, (long long)y->numel(), (long long)within_step, sqnr_ref,
      sqnr_int8);
  const fx::Node* result = std::get<fx::Node*>(gm->graph().output_node()->args()[0]);
  if (result->op() == fx::Opcode::kCallFunction && result->target().op == OpId::kDequantize) {
    EXPECT_GE(within_step, y->numel() * 99 / 100);
  } else {  // a float last layer (mixed.toml leaves fc in float): compare as float
    EXPECT_GT(SqnrDb(*ref, *y), 30.0);
  }
  EXPECT_GT(sqnr_int8, sqnr_ref - 3.0);
  EXPECT_GT(sqnr_int8, 10.0);
  int quantized_modules = 0;
  for (const auto& [path, m] : gm->named_modules()) quantized_modules += m->type_name().rfind("Quantized", 0) == 0;
  EXPECT_GT(quantized_modules, 0);
  // A ReLU6 after a quantized conv becomes the conv's clamp (mobilenet_v2 has 35 of them).
  for (fx::Node* n : gm->graph()) {
    if (n->op() != fx::Opcode::kCallModule || gm->submodule(n->target().path)->type_name() != "ReLU6") continue;
    const fx::Node* in = std::get<fx::Node*>(n->args()[0]);
    EXPECT_FALSE(in->op() == fx::Opcode::kCallModule &&
                 gm->submodule(in->target().path)->type_name().rfind("Quantized", 0) == 0)
        << n->name() << " was not folded into " << in->name();
  }
}

INSTANTIATE_TEST_SUITE_P(Zoo, ConvertZoo,
                         ::testing::Values(Case{"mnist_cnn", "x86"}, Case{"mnist_cnn", "qnnpack"}, Case{"mlp", "x86"},
                                           Case{"resnet18", "x86"}, Case{"mobilenet_v2", "qnnpack"},
                                           Case{"mobilenet_v3_small", "x86"},
                                           Case{"resnet18", "tools/qconfigs/mixed.toml"}),
                         [](const auto& info) {
                           std::string q =
                               info.param.qconfig.find('/') == std::string::npos ? info.param.qconfig : "mixed";
                           return info.param.model + "_" + q;
                         });

}  // namespace
}  // namespace quant
}  // namespace qfx

namespace qfx {
namespace quant {
namespace {

// Ops the zoo does not exercise: cat of two branches, a functional relu6, an avg pool, a method reshape and
// a functional sigmoid.
class Branches : public nn::Module {
 public:
  Branches() {
    stem = register_module("stem", std::make_shared<nn::Conv2d>(3, 8, 3, nn::Conv2dArgs{1, 1}));
    left = register_module("left", std::make_shared<nn::Conv2d>(8, 4, 1));
    right = register_module("right", std::make_shared<nn::Conv2d>(8, 4, 3, nn::Conv2dArgs{1, 1}));
    pool = register_module("pool", std::make_shared<nn::AvgPool2d>(2));
    fc = register_module("fc", std::make_shared<nn::Linear>(8 * 4 * 4, 5));
  }
  std::string type_name() const override { return "Branches"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = F::relu6((*stem)(x));
    y = F::cat({(*left)(y), (*right)(y)}, 1);
    y = (*pool)(y).Reshape({-1, 8 * 4 * 4});
    return F::sigmoid((*fc)(y));
  }
  std::shared_ptr<nn::Module> stem, left, right, pool, fc;
};

TEST(Convert, CatPoolsReshapeAndFunctionalActivationsLower) {
  auto model = std::make_shared<Branches>();
  testing::HashInit(*model);
  model->eval();
  auto gm = *fx::SymbolicTrace(model);
  PrepareOptions opt;
  opt.config = *LoadQuantConfig("qnnpack");
  auto report = Prepare(*gm, opt);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->left_float.empty()) << report->left_float.begin()->first;
  ASSERT_TRUE(RunModule(*gm, testing::HashUniform("calib", {4, 3, 8, 8}, -1, 1)).ok());
  ASSERT_TRUE(ConvertToReference(*gm, *report).ok());
  const Tensor x = testing::HashUniform("x", {2, 3, 8, 8}, -1, 1);
  const Tensor ref = *RunModule(*gm, x);
  const absl::Status s = Lower(*gm, *report);
  ASSERT_TRUE(s.ok()) << s;
  const std::string code = gm->graph().ToString();
  EXPECT_NE(code.find("call_function[target=q_cat]"), std::string::npos) << code;
  EXPECT_NE(code.find("call_function[target=q_unary]"), std::string::npos) << code;
  EXPECT_EQ(code.find("call_function[target=relu6]"), std::string::npos) << "relu6 folds into the stem's clamp\n"
                                                                         << code;
  const Tensor y = *RunModule(*gm, x);
  // sigmoid's output grid is fixed at 1/256: int8 and reference agree to one step.
  for (int64_t i = 0; i < y.numel(); ++i) EXPECT_NEAR(y.data<float>()[i], ref.data<float>()[i], 1.0 / 256 + 1e-6) << i;
}

}  // namespace
}  // namespace quant
}  // namespace qfx
