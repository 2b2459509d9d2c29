// qfx tests: device plans (qfx/backend/device_plan.h) run on the host with the CUDA kernels' per-output
// functions, byte for byte against the CPU backend: random layer geometry (odd channels, strides,
// padding, dilation, groups, large accumulators) through every device op, every zoo model, the arena's
// sharing, and the errors for what the device cannot run. No GPU is needed: the CUDA kernels are loops
// over these same functions (tests/backend/cuda_test.cc compares them on a GPU).
#include <cstring>
#include <random>

#include "gtest/gtest.h"
#include "qfx/backend/device_plan.h"
#include "qfx/core/parallel.h"
#include "qfx/fx/tracer.h"
#include "qfx/models/zoo.h"
#include "qfx/nn/functional.h"
#include "qfx/nn/modules.h"
#include "qfx/quant/passes.h"
#include "tests/backend/nets.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace backend {
namespace {

// The plan's result on the host, checked byte for byte against the CPU's.
void ExpectSameAsCpu(fx::GraphModule& gm, const Tensor& x) {
  auto weights = BuildDeviceWeights(gm);
  ASSERT_TRUE(weights.ok()) << weights.status();
  auto plan = BuildDevicePlan(gm, x.shape(), *weights);
  ASSERT_TRUE(plan.ok()) << plan.status();
  auto want = RunModule(gm, x);
  ASSERT_TRUE(want.ok()) << want.status();
  for (uint8_t poison : {0x00, 0xa5, 0xff}) {
    auto got = RunPlanOnHost(*plan, *weights, x, poison);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->shape(), want->shape());
    ASSERT_EQ(got->dtype(), want->dtype());
    ASSERT_EQ(0, std::memcmp(got->raw_data(), want->raw_data(), want->nbytes())) << "poison " << int{poison} << "\n"
                                                                                 << FormatPlan(*plan);
  }
}

TEST(DevicePlan, RandomGeometryThroughEveryOpMatchesTheCpu) {
  SetNumThreads(2);
  std::mt19937 rng(13);
  for (int trial = 0; trial < 24; ++trial) {
    testing::OpsNet::Geometry g = testing::RandomGeometry(rng, {});
    if (trial == 0) g = {300, 40, 3, 1, 1, 1, 1, 9, 7};  // 2700 products per output
    SCOPED_TRACE(::testing::Message() << "trial " << trial << ": " << testing::Describe(g));
    Tensor x;
    auto gm = testing::Int8OpsNet(g, 1 + trial % 3, trial, &x);
    ASSERT_NE(gm, nullptr);
    ExpectSameAsCpu(*gm, x);
  }
}

TEST(DevicePlan, EveryZooModelMatchesTheCpu) {
  SetNumThreads(2);
  for (const models::ModelInfo& info : models::ListModels()) {
    SCOPED_TRACE(info.name);
    Tensor x;
    auto gm = testing::Int8ZooModel(info.name, /*batch=*/2, &x);
    ASSERT_NE(gm, nullptr);
    if (testing::LacksDeviceKernels(info.name)) {
      // Not yet on the device backend: the plan says which node it cannot run, before anything runs.
      auto weights = BuildDeviceWeights(*gm);
      ASSERT_TRUE(weights.ok()) << weights.status();
      const absl::Status plan = BuildDevicePlan(*gm, x.shape(), *weights).status();
      EXPECT_NE(plan.message().find(testing::DeviceGap(info.name)), std::string::npos) << plan;
      continue;
    }
    ExpectSameAsCpu(*gm, x);
  }
}

TEST(DevicePlan, ValuesAliveTogetherNeverShareBytes) {
  Tensor x;
  auto gm = testing::Int8ZooModel("resnet18", 1, &x);
  ASSERT_NE(gm, nullptr);
  auto weights = BuildDeviceWeights(*gm);
  ASSERT_TRUE(weights.ok());
  auto plan = BuildDevicePlan(*gm, x.shape(), *weights);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const int nv = static_cast<int>(plan->values.size());
  std::vector<int> first(nv, 1 << 30), last(nv, -1);
  for (int s = 0; s < static_cast<int>(plan->steps.size()); ++s) {
    for (int v : plan->steps[s].inputs) last[v] = std::max(last[v], s);
    const int o = plan->steps[s].output;
    if (o >= 0) first[o] = std::min(first[o], s), last[o] = std::max(last[o], s);
  }
  for (int a = 0; a < nv; ++a) {
    for (int b = a + 1; b < nv; ++b) {
      if (first[a] > last[b] || first[b] > last[a]) continue;
      const DeviceValue &va = plan->values[a], &vb = plan->values[b];
      const bool apart = va.offset + va.act.Bytes() <= vb.offset || vb.offset + vb.act.Bytes() <= va.offset;
      EXPECT_TRUE(apart) << va.node << " and " << vb.node << " are alive together and overlap";
    }
  }
  EXPECT_LT(plan->arena_bytes * 2, plan->unshared_bytes) << FormatPlan(*plan);
  // Every residual q_add runs in the epilogue of the later of its two operands' convolutions.
  int fused = 0, binary = 0;
  for (const Step& s : plan->steps) {
    fused += s.kind == StepKind::kConv && s.conv.add.enabled;
    binary += s.kind == StepKind::kBinary;
  }
  EXPECT_EQ(fused, 8) << FormatPlan(*plan);
  EXPECT_EQ(binary, 0);
  for (const DeviceValue& v : plan->values) EXPECT_EQ(v.offset % 256, 0);
}

TEST(DevicePlan, FloatOpsAreAnErrorNamingTheNode) {
  auto model = *models::Create("mnist_cnn");
  auto gm = *fx::SymbolicTrace(model);  // fp32: nothing is quantized
  auto weights = BuildDeviceWeights(*gm);
  ASSERT_TRUE(weights.ok());
  auto plan = BuildDevicePlan(*gm, {1, 1, 28, 28}, *weights);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("%conv1"), std::string::npos) << plan.status();
  EXPECT_NE(plan.status().message().find("not a quint8 value on the device"), std::string::npos) << plan.status();
}

TEST(DevicePlan, AFloatOpLeftInTheModelIsAnErrorNamingIt) {
  auto model = *models::Create("resnet18");
  testing::HashInit(*model);
  auto gm = *fx::SymbolicTrace(model);
  quant::PrepareOptions opt;
  opt.config = *quant::LoadQuantConfig("tools/qconfigs/mixed.toml");  // layer4 stays float
  auto report = quant::Prepare(*gm, opt);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(RunModule(*gm, testing::HashUniform("calib", {2, 3, 64, 64}, -1, 1)).ok());
  ASSERT_TRUE(quant::Convert(*gm, *report).ok());
  auto weights = BuildDeviceWeights(*gm);
  ASSERT_TRUE(weights.ok());
  auto plan = BuildDevicePlan(*gm, {1, 3, 64, 64}, *weights);
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("(call_module layer4.0.conv1) runs in float"), std::string::npos)
      << plan.status();
}

TEST(DevicePlan, InputShapeMustMatchThePlan) {
  Tensor x;
  auto gm = testing::Int8ZooModel("mlp", 2, &x);
  ASSERT_NE(gm, nullptr);
  auto weights = BuildDeviceWeights(*gm);
  auto plan = BuildDevicePlan(*gm, x.shape(), *weights);
  ASSERT_TRUE(plan.ok()) << plan.status();
  auto run = RunPlanOnHost(*plan, *weights, Tensor::Zeros({3, 1, 28, 28}));
  ASSERT_FALSE(run.ok());
  EXPECT_NE(run.status().message().find("the shape it was planned for"), std::string::npos) << run.status();
  EXPECT_FALSE(BuildDevicePlan(*gm, {2, 3, 4}, *weights).ok());
}

}  // namespace
}  // namespace backend
}  // namespace qfx
