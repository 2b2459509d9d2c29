// qfx tests: ShuffleNetV2 x1.0 (torchvision's structure and names), the zoo model that needs a trace
// specialised on example inputs (x.chunk(2, dim=1) reads the channel count). Traced, it has one narrow
// node per chunk and is specialised on the channel dimension of each chunk input only, so it runs at
// other batch sizes and resolutions bit-identically to the eager model; quantized by the FX flow, every
// conv is int8, chunk's narrows and channel_shuffle run on quint8 tensors, the SQNR against fp32 is at
// least PyTorch 1.13 FX int8's minus 0.5 dB (tests/data/quant/shufflenet_v2_int8.safetensors from
// tools/gen_golden.py), and the .qfx file keeps the specialisation.
#include <cstdio>
#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "qfx/fx/tracer.h"
#include "qfx/io/model_file.h"
#include "qfx/models/zoo.h"
#include "qfx/nn/ops.h"
#include "qfx/quant/metrics.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/pt2e.h"
#include "qfx/quant/quantized_modules.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace quant {
namespace {

const char* kName = "shufflenet_v2_x1_0";
const Shape kShape = {2, 3, 64, 64};

std::shared_ptr<nn::Module> Seeded() {
  auto m = *models::Create(kName);
  testing::HashInit(*m);
  return m;
}

std::shared_ptr<fx::GraphModule> Traced(std::shared_ptr<nn::Module> m) {
  fx::TracerOptions opt;
  opt.example_inputs = {Tensor::Zeros({1, 3, 224, 224})};  // the zoo's default input
  auto gm = fx::SymbolicTrace(m, opt);
  EXPECT_TRUE(gm.ok()) << gm.status();
  return gm.ok() ? *gm : nullptr;
}

int CountOps(const fx::Graph& g, OpId op) {
  int n = 0;
  for (const fx::Node* node : g) n += node->target().op == op;
  return n;
}

TEST(ShuffleNet, TracesOnExampleInputsSpecialisedOnChannelsOnly) {
  auto model = Seeded();
  const absl::Status plain = fx::SymbolicTrace(model).status();
  EXPECT_NE(plain.message().find("forward needs the shape of a traced value"), std::string::npos) << plain;
  EXPECT_NE(plain.message().find("trace with example inputs"), std::string::npos) << plain;
  auto gm = Traced(model);
  ASSERT_NE(gm, nullptr);
  EXPECT_EQ(CountOps(gm->graph(), OpId::kNarrow), 2 * 13);  // two halves in each of the 13 stride-1 blocks
  EXPECT_EQ(CountOps(gm->graph(), OpId::kChannelShuffle), 16);
  int specialised = 0;
  for (const fx::Node* n : gm->graph()) {
    if (!n->meta.specialized) continue;
    ++specialised;
    const std::vector<int64_t>& s = *n->meta.specialized;
    ASSERT_EQ(s.size(), 4u) << n->name();
    EXPECT_TRUE(s[0] == -1 && s[1] > 0 && s[2] == -1 && s[3] == -1) << n->name() << " " << fx::SpecializedToString(s);
  }
  EXPECT_EQ(specialised, 13);
  // Another batch size and resolution than the traced one: bit-identical to the eager model.
  const Tensor x = testing::HashUniform("input", kShape, -1, 1);
  const Tensor eager = *RunModule(*model, x), traced = *RunModule(*gm, x);
  ASSERT_EQ(eager.shape(), (Shape{2, 1000}));
  EXPECT_EQ(std::memcmp(eager.raw_data(), traced.raw_data(), eager.nbytes()), 0);
}

class ShuffleNetInt8 : public ::testing::TestWithParam<std::string> {};

TEST_P(ShuffleNetInt8, EveryConvInt8AndSqnrAtLeastPyTorchs) {
  const io::Safetensors fixture = testing::ReadFixture("quant/shufflenet_v2_int8.safetensors");
  auto model = Seeded();
  const Tensor calib = testing::HashUniform("calib", kShape, -1, 1), x = testing::HashUniform("test", kShape, -1, 1);
  const Tensor fp32 = *RunModule(*model, x);
  EXPECT_LT(testing::MaxRelError(fp32, testing::Get(fixture, "fp32")), 1e-4);
  auto gm = Traced(model);
  ASSERT_NE(gm, nullptr);
  PrepareOptions opt;
  opt.config = *LoadQuantConfig(GetParam());
  auto report = Prepare(*gm, opt);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(RunModule(*gm, calib).ok());
  ASSERT_TRUE(Convert(*gm, *report).ok());
  int convs = 0;
  for (const auto& [path, m] : gm->named_modules()) convs += dynamic_cast<const QuantizedConv2d*>(m) != nullptr;
  EXPECT_EQ(convs, 56) << gm->graph().ToString();
  // Chunk's narrows run on quint8: no dequantize feeds one.
  for (const fx::Node* n : gm->graph()) {
    if (n->target().op != OpId::kNarrow && n->target().op != OpId::kChannelShuffle) continue;
    const fx::Node* in = std::get<fx::Node*>(n->args()[0]);
    EXPECT_NE(in->target().op, OpId::kDequantize) << n->name();
  }
  const Tensor y = *RunModule(*gm, x);
  const double ours = SqnrDb(fp32, y),
               theirs = SqnrDb(testing::Get(fixture, "fp32"), testing::Get(fixture, GetParam()));
  std::printf("shufflenet_v2_x1_0 %s: SQNR vs fp32: qfx %.2f dB, PyTorch %.2f dB\n", GetParam().c_str(), ours, theirs);
  EXPECT_GE(ours, theirs - 0.5);

  const std::string path = ::testing::TempDir() + "/shufflenet_" + GetParam() + ".qfx";
  ASSERT_TRUE(io::SaveModel(path, *gm, kShape, "shufflenet test").ok());
  auto loaded = io::LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tensor again = *RunModule(*loaded->module, x);
  EXPECT_EQ(std::memcmp(again.raw_data(), y.raw_data(), y.nbytes()), 0);
  auto* lgm = dynamic_cast<fx::GraphModule*>(loaded->module.get());
  ASSERT_NE(lgm, nullptr);
  int specialised = 0;
  for (const fx::Node* n : lgm->graph()) specialised += n->meta.specialized.has_value();
  EXPECT_GT(specialised, 0);
  // A run with another channel count fails at the specialised node (not silently, not in a kernel).
  auto wrong = RunModule(*loaded->module, testing::HashUniform("test", {1, 4, 64, 64}, -1, 1));
  EXPECT_FALSE(wrong.ok());
}

INSTANTIATE_TEST_SUITE_P(Presets, ShuffleNetInt8, ::testing::Values("qnnpack", "onednn"));

// PT2E: Export specialises on the example shape too; XNNPACKQuantizer's share-qparams ops (narrow's
// producers, mean) lower, so every conv runs int8.
TEST(ShuffleNet, Pt2eXnnpackLowersEveryConvToInt8) {
  auto model = Seeded();
  auto gm = Export(model, {kShape});
  ASSERT_TRUE(gm.ok()) << gm.status();
  XNNPACKQuantizer q;
  q.set_global(get_symmetric_quantization_config(/*per_channel=*/true));
  auto report = PreparePt2e(**gm, q);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(RunModule(**gm, testing::HashUniform("calib", kShape, -1, 1)).ok());
  ASSERT_TRUE(ConvertPt2e(**gm).ok());
  const absl::Status lowered = LowerPt2e(**gm);
  ASSERT_TRUE(lowered.ok()) << lowered;
  int convs = 0;
  for (const auto& [path, m] : (*gm)->named_modules()) convs += dynamic_cast<const QuantizedConv2d*>(m) != nullptr;
  EXPECT_EQ(convs, 56);
  const Tensor x = testing::HashUniform("test", kShape, -1, 1);
  const double sqnr = SqnrDb(*RunModule(*model, x), *RunModule(**gm, x));
  std::printf("shufflenet_v2_x1_0 PT2E XNNPACKQuantizer: SQNR vs fp32 %.2f dB\n", sqnr);
  EXPECT_GT(sqnr, 30.0);
}

}  // namespace
}  // namespace quant
}  // namespace qfx
