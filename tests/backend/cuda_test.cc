// qfx tests: the CUDA backend on a GPU. Every kernel, through small nets at random geometry and the zoo
// models, gives the bytes of the host emulator (the same per-output functions on the CPU) and of the CPU
// backend; the arena is poisoned at the start of every forward; graph replay gives the same bytes each
// time and across shapes. Without a GPU (or in a build without CUDA) the GPU tests skip, and the one that
// runs everywhere checks that loading says why.
#include <cstring>
#include <random>

#include "gtest/gtest.h"
#include "qfx/backend/cuda_model.h"
#include "qfx/core/parallel.h"
#include "qfx/kernels/cuda.h"
#include "qfx/models/zoo.h"
#include "tests/backend/nets.h"

namespace qfx {
namespace backend {
namespace {

#define QFX_REQUIRE_GPU()                                                \
  do {                                                                   \
    const absl::Status gpu = CudaStatus();                               \
    if (!gpu.ok()) GTEST_SKIP() << "no GPU for the CUDA tests: " << gpu; \
  } while (0)

bool SameBytes(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

// The GPU's output for x, checked against the host emulator's and the CPU's, twice (graph replay).
void ExpectSameOnGpu(fx::GraphModule& gm, const Tensor& x) {
  auto cpu = RunModule(gm, x);
  ASSERT_TRUE(cpu.ok()) << cpu.status();
  auto weights = BuildDeviceWeights(gm);
  ASSERT_TRUE(weights.ok()) << weights.status();
  auto plan = BuildDevicePlan(gm, x.shape(), *weights);
  ASSERT_TRUE(plan.ok()) << plan.status();
  auto host = RunPlanOnHost(*plan, *weights, x);
  ASSERT_TRUE(host.ok()) << host.status();
  ASSERT_TRUE(SameBytes(*host, *cpu));
  for (int poison : {0x00, 0xa5}) {
    CudaModel::Options options;
    options.poison = poison;
    auto gpu = CudaModel::Load(gm, options);
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    for (int run = 0; run < 2; ++run) {
      auto y = (*gpu)->Run(x);
      ASSERT_TRUE(y.ok()) << y.status();
      EXPECT_TRUE(SameBytes(*y, *cpu)) << "poison " << poison << ", run " << run << "\n" << FormatPlan(*plan);
    }
  }
}

TEST(Cuda, LoadSaysWhyWithoutAGpu) {
  const absl::Status gpu = CudaStatus();
  if (gpu.ok()) GTEST_SKIP() << "a GPU answers: " << CudaDeviceName();
  Tensor x;
  auto gm = testing::Int8ZooModel("mlp", 1, &x);
  ASSERT_NE(gm, nullptr);
  auto loaded = CudaModel::Load(*gm);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status(), gpu);
  const std::string why(gpu.message());
  if (kernels::cuda::Built()) {
    EXPECT_NE(why.find("no GPU: cudaGetDeviceCount answered"), std::string::npos) << why;
  } else {
    EXPECT_NE(why.find("qfx was built without CUDA"), std::string::npos) << why;
  }
}

TEST(Cuda, RandomGeometryThroughEveryKernelMatchesTheCpu) {
  QFX_REQUIRE_GPU();
  SetNumThreads(2);
  std::mt19937 rng(29);
  testing::OpsNet::Range range;
  range.max_cin = 40;
  range.max_cout = 48;
  range.max_dilation = 3;
  range.max_h = 40;
  range.max_w = 41;
  range.kernels = {1, 2, 3, 5, 7};
  for (int trial = 0; trial < 32; ++trial) {
    testing::OpsNet::Geometry g = testing::RandomGeometry(rng, range);
    if (trial == 0) g = {512, 64, 3, 1, 1, 1, 1, 14, 14};  // 4608 products per output
    SCOPED_TRACE(::testing::Message() << "trial " << trial << ": " << testing::Describe(g));
    Tensor x;
    auto gm = testing::Int8OpsNet(g, 1 + trial % 4, trial, &x);
    ASSERT_NE(gm, nullptr);
    ExpectSameOnGpu(*gm, x);
  }
}

TEST(Cuda, EveryZooModelMatchesTheCpu) {
  QFX_REQUIRE_GPU();
  SetNumThreads(2);
  for (const models::ModelInfo& info : models::ListModels()) {
    SCOPED_TRACE(info.name);
    if (testing::LacksDeviceKernels(info.name)) continue;  // device_plan_test checks the error it gives
    Tensor x;
    auto gm = testing::Int8ZooModel(info.name, 3, &x);
    ASSERT_NE(gm, nullptr);
    ExpectSameOnGpu(*gm, x);
  }
}

TEST(Cuda, GraphsPerShapeReplayTheSameBytes) {
  QFX_REQUIRE_GPU();
  Tensor x1, x4;
  auto gm = testing::Int8ZooModel("mobilenet_v2", 1, &x1);
  ASSERT_NE(gm, nullptr);
  testing::Int8ZooModel("mobilenet_v2", 4, &x4);
  auto gpu = CudaModel::Load(*gm);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  const Tensor want1 = *RunModule(*gm, x1), want4 = *RunModule(*gm, x4);
  for (int round = 0; round < 3; ++round) {
    EXPECT_TRUE(SameBytes(*(*gpu)->Run(x1), want1));
    EXPECT_TRUE(SameBytes(*(*gpu)->Run(x4), want4));
  }
  EXPECT_GT((*gpu)->arena_bytes(x4.shape()), (*gpu)->arena_bytes(x1.shape()));
}

}  // namespace
}  // namespace backend
}  // namespace qfx
