// qfx tests: the zoo models of the coverage issue (regnet_x_400mf, ...) quantized by the FX flow with the
// qnnpack and onednn presets, against PyTorch 1.13 FX on the same hash weights and data
// (tests/data/quant/<model>_int8.safetensors from tools/gen_golden.py): every convolution and the
// classifier run int8, the SQNR against fp32 is at least PyTorch's minus 0.5 dB, and the .qfx file
// gives the same outputs bit for bit. Observer placement against prepare_fx is in prepare_test.cc, the
// torch.fx node sequence in fx/tracer_test.cc, fp32 against torchvision in models/zoo_test.cc.
#include <cstdio>
#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "qfx/fx/tracer.h"
#include "qfx/io/model_file.h"
#include "qfx/models/zoo.h"
#include "qfx/quant/metrics.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/quantized_modules.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace quant {
namespace {

struct Case {
  std::string model, preset;
};

class ZooInt8VsPyTorch : public ::testing::TestWithParam<Case> {};

TEST_P(ZooInt8VsPyTorch, EveryConvInt8AndSqnrAtLeastPyTorchs) {
  const auto& [name, preset] = GetParam();
  // 16 images: over two, the SQNR of these models moves by more than the 0.5 dB margin from one input to
  // the next (efficientnet_b0, qnnpack: qfx's int8 against its own Q/DQ reference -0.6 to +1.2 dB).
  const Shape shape = testing::ZooTestShape(name, 16);
  const io::Safetensors fixture = testing::ReadFixture("quant/" + name + "_int8.safetensors");
  auto model = *models::Create(name);
  testing::HashInit(*model);
  const Tensor calib = testing::HashUniform("calib", shape, -1, 1), x = testing::HashUniform("test", shape, -1, 1);
  const Tensor fp32 = *RunModule(*model, x);
  EXPECT_LT(testing::MaxRelError(fp32, testing::Get(fixture, "fp32")), 1e-4);

  auto gm = fx::SymbolicTrace(model);
  ASSERT_TRUE(gm.ok()) << gm.status();
  int float_convs = 0;  // the convs forward calls (not inception's training-only auxiliary head)
  for (const fx::Node* n : (*gm)->graph()) {
    if (n->op() != fx::Opcode::kCallModule) continue;
    float_convs += dynamic_cast<const nn::Conv2d*>((*gm)->submodule(n->target().path)) != nullptr;
  }
  PrepareOptions opt;
  opt.config = *LoadQuantConfig(preset);
  auto report = Prepare(**gm, opt);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(RunModule(**gm, calib).ok());
  ASSERT_TRUE(Convert(**gm, *report).ok());
  int convs = 0, linears = 0;
  for (const auto& [path, m] : (*gm)->named_modules()) {
    convs += dynamic_cast<const QuantizedConv2d*>(m) != nullptr;
    linears += dynamic_cast<const QuantizedLinear*>(m) != nullptr;
  }
  EXPECT_EQ(convs, float_convs) << (*gm)->graph().ToString();
  EXPECT_EQ(linears, 1);

  const Tensor y = *RunModule(**gm, x);
  const double ours = SqnrDb(fp32, y), theirs = SqnrDb(testing::Get(fixture, "fp32"), testing::Get(fixture, preset));
  std::printf("%s %s: SQNR vs fp32: qfx %.2f dB, PyTorch 1.13 FX %.2f dB\n", name.c_str(), preset.c_str(), ours,
              theirs);
  EXPECT_GE(ours, theirs - 0.5);

  const std::string path = ::testing::TempDir() + "/" + name + "_" + preset + ".qfx";
  ASSERT_TRUE(io::SaveModel(path, **gm, shape, "zoo coverage test").ok());
  auto loaded = io::LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tensor again = *RunModule(*loaded->module, x);
  ASSERT_EQ(again.shape(), y.shape());
  EXPECT_EQ(std::memcmp(again.raw_data(), y.raw_data(), y.nbytes()), 0);
}

INSTANTIATE_TEST_SUITE_P(Zoo, ZooInt8VsPyTorch,
                         ::testing::Values(Case{"regnet_x_400mf", "qnnpack"}, Case{"regnet_x_400mf", "onednn"},
                                           Case{"efficientnet_b0", "qnnpack"}, Case{"efficientnet_b0", "onednn"},
                                           Case{"inception_v3", "qnnpack"}, Case{"inception_v3", "onednn"}),
                         [](const auto& info) { return info.param.model + "_" + info.param.preset; });

}  // namespace
}  // namespace quant
}  // namespace qfx
