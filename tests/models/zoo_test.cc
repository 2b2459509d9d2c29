// qfx tests: every zoo model against PyTorch/torchvision (fixtures from tools/gen_golden.py):
// same state_dict keys, dtypes and shapes in the same order, and the same fp32 output (1e-4 relative)
// on deterministic hash weights; plus a real PyTorch-exported state_dict loading with strict=true.
#include "qfx/models/zoo.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "qfx/io/safetensors.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace {

using testing::Get;
using testing::MaxRelError;
using testing::ReadFixture;

class ZooTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ZooTest, StateDictMatchesTorchvision) {
  const io::Safetensors fx = ReadFixture("models/" + GetParam() + ".safetensors");
  const auto want = nlohmann::json::parse(fx.metadata.at("state_dict"));
  auto model = models::Create(GetParam());
  ASSERT_TRUE(model.ok()) << model.status();
  const nn::NamedTensors mine = (*model)->state_dict();
  ASSERT_EQ(mine.size(), want.size());
  for (size_t i = 0; i < mine.size(); ++i) {
    EXPECT_EQ(mine[i].first, want[i][0].get<std::string>()) << "entry " << i;
    const std::string dtype = mine[i].second.dtype() == DType::kF32 ? "F32" : "I64";
    EXPECT_EQ(dtype, want[i][1].get<std::string>()) << mine[i].first;
    EXPECT_EQ(mine[i].second.shape(), want[i][2].get<Shape>()) << mine[i].first;
  }
}

TEST_P(ZooTest, OutputMatchesPyTorch) {
  const io::Safetensors fx = ReadFixture("models/" + GetParam() + ".safetensors");
  auto model = models::Create(GetParam());
  ASSERT_TRUE(model.ok()) << model.status();
  testing::HashInit(**model);
  const Tensor x = Get(fx, "input");
  // The fixture's input is hash_uniform('input', n, -1, 1) too: check the mirror is exact.
  const Tensor x2 = testing::HashUniform("input", x.shape(), -1.0, 1.0);
  ASSERT_EQ(MaxRelError(x2, x), 0.0);
  auto y = RunModule(**model, x);
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_LT(MaxRelError(*y, Get(fx, "output")), 1e-4) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Zoo, ZooTest,
                         ::testing::Values("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small",
                                           "shufflenet_v2_x1_0", "regnet_x_400mf", "efficientnet_b0", "inception_v3",
                                           "vit_b_16", "vit_fmnist", "mlp", "mnist_cnn"));

TEST(Zoo, LoadsPyTorchExportedStateDictStrict) {
  const io::Safetensors fx = ReadFixture("models/mnist_cnn_state_dict.safetensors");
  nn::NamedTensors weights;
  for (const auto& e : fx.tensors) {
    if (e.first[0] != '_') weights.push_back(e);
  }
  auto model = models::Create("mnist_cnn", /*seed=*/123);
  ASSERT_TRUE(model.ok());
  ASSERT_TRUE((*model)->load_state_dict(weights, /*strict=*/true).ok());
  auto y = RunModule(**model, Get(fx, "__input__"));
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_LT(MaxRelError(*y, Get(fx, "__output__")), 1e-4);
}

TEST(Zoo, RegistryRejectsUnknownNamesListingKnownOnes) {
  auto model = models::Create("resnet19");
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(model.status().message().find("resnet18"), std::string::npos);
  EXPECT_EQ(models::ListModels().size(), 12u);
}

TEST(Zoo, SeededInitIsDeterministicAndTorchvisionLike) {
  auto a = models::Create("resnet18", 7), b = models::Create("resnet18", 7), c = models::Create("resnet18", 8);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  const Tensor wa = (*a)->state_dict()[0].second, wb = (*b)->state_dict()[0].second, wc = (*c)->state_dict()[0].second;
  EXPECT_EQ(MaxRelError(wa, wb), 0.0);
  EXPECT_GT(MaxRelError(wa, wc), 0.0);
  // Kaiming normal, fan_out = 64 * 7 * 7: standard deviation sqrt(2 / 3136).
  double sq = 0;
  for (int64_t i = 0; i < wa.numel(); ++i) sq += wa.data<float>()[i] * wa.data<float>()[i];
  EXPECT_NEAR(std::sqrt(sq / wa.numel()), std::sqrt(2.0 / 3136), 0.002);
  nn::Module* bn = (*a)->submodule("layer1.0.bn1");
  ASSERT_NE(bn, nullptr);
  EXPECT_EQ(bn->tensor("weight").data<float>()[0], 1.f);
  EXPECT_EQ(bn->tensor("bias").data<float>()[0], 0.f);
}

}  // namespace
}  // namespace qfx
