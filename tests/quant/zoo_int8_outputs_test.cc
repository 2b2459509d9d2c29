// qfx tests: the int8 outputs of every zoo model, pinned. Each model is hash-initialised, prepared with
// the x86 qconfig, calibrated and converted, and its lowered int8 graph runs on every compiled Highway
// target; every output must equal tests/data/quant/zoo_int8_outputs.safetensors bit for bit. The fixture
// was written before the kernel layer was reshaped (issue 11), so it holds any later kernel change to
// today's numbers.
//
// Calibration runs fp32 kernels, whose rounding differs between SIMD targets (FMA or not), and the
// qparams follow from it; so calibration runs on one fixed target (the lowest compiled one, present on
// every x86-64 CPU) with two threads, and the qparams are the same on every machine. The int8 part must
// be bit-identical on every target by THE RULES (qfx/kernels/int8.h). A model that keeps fp32 compute
// between its int8 ops (the vision transformers' LayerNorm and attention, as PyTorch's backends leave them)
// gives target-dependent bytes there, like calibration: it is pinned on the calibration target, and on the
// other targets it must stay within 30 dB SQNR of the pinned output.
//
// QFX_WRITE_ZOO_INT8_OUTPUTS=PATH writes the fixture instead of checking it (by hand, before a change).
#include <cstdlib>
#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "qfx/core/parallel.h"
#include "qfx/fx/tracer.h"
#include "qfx/io/safetensors.h"
#include "qfx/models/zoo.h"
#include "qfx/quant/backend.h"
#include "qfx/quant/metrics.h"
#include "qfx/quant/passes.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace quant {
namespace {

// The lowest compiled and supported target: the fp32 reference for calibration.
int64_t CalibrationTarget() {
  const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  return targets.back();  // ordered best first
}

// Whether the lowered graph computes in fp32 between int8 ops (GEMMs, normalisations, softmax), whose
// rounding differs between SIMD targets.
bool HasFloatCompute(fx::GraphModule& gm) {
  for (const fx::Node* n : gm.graph()) {
    switch (NodeOp(gm, *n)) {
      case OpId::kMultiheadAttention:
      case OpId::kLayerNorm:
      case OpId::kMatmul:
      case OpId::kBmm:
      case OpId::kSoftmax:
      case OpId::kLinear:
      case OpId::kConv2d:
        return true;
      default:
        break;
    }
  }
  return false;
}

// The lowered int8 model of `name` (calibrated on the fixed target) and its test input.
std::shared_ptr<fx::GraphModule> Int8Model(const std::string& name, Tensor* x) {
  auto model = *models::Create(name);
  testing::HashInit(*model);
  const Shape shape = testing::ZooTestShape(name, 2);
  const Tensor calib = testing::HashUniform("calib", shape, -1, 1);
  fx::TracerOptions trace;
  trace.example_inputs = {calib};  // shufflenet's chunk reads the channel count
  auto gm = *fx::SymbolicTrace(model, trace);
  *x = testing::HashUniform("test", shape, -1, 1);
  PrepareOptions opt;
  opt.config = *LoadQuantConfig("x86");
  auto report = Prepare(*gm, opt);
  EXPECT_TRUE(report.ok()) << report.status();
  hwy::SetSupportedTargetsForTest(CalibrationTarget());
  EXPECT_TRUE(RunModule(*gm, calib).ok());
  hwy::SetSupportedTargetsForTest(0);
  EXPECT_TRUE(ConvertToReference(*gm, *report).ok());
  EXPECT_TRUE(Lower(*gm, *report).ok());
  return gm;
}

TEST(ZooInt8Outputs, EveryModelOnEveryTargetMatchesTheFixture) {
  SetNumThreads(2);
  const char* write_to = std::getenv("QFX_WRITE_ZOO_INT8_OUTPUTS");
  nn::NamedTensors written;
  io::Safetensors fixture;
  if (write_to == nullptr) fixture = testing::ReadFixture("quant/zoo_int8_outputs.safetensors");
  int checked = 0;
  for (const models::ModelInfo& info : models::ListModels()) {
    SCOPED_TRACE(info.name);
    Tensor x;
    auto gm = Int8Model(info.name, &x);
    const bool float_compute = HasFloatCompute(*gm);
    EXPECT_EQ(float_compute, info.name.rfind("vit_", 0) == 0) << "the CNNs are int8 from input to output";
    if (write_to != nullptr) {
      if (float_compute) hwy::SetSupportedTargetsForTest(CalibrationTarget());
      written.emplace_back(info.name, (*RunModule(*gm, x)).Clone());
      hwy::SetSupportedTargetsForTest(0);
      continue;
    }
    const Tensor want = testing::Get(fixture, info.name);
    const int64_t pinned = CalibrationTarget();  // before SetSupportedTargetsForTest narrows the list
    for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
      hwy::SetSupportedTargetsForTest(target);
      SCOPED_TRACE(hwy::TargetName(target));
      auto y = RunModule(*gm, x);
      ASSERT_TRUE(y.ok()) << y.status();
      ASSERT_EQ(y->shape(), want.shape());
      ASSERT_EQ(y->dtype(), want.dtype());
      if (float_compute && target != pinned) {
        EXPECT_GT(SqnrDb(want, *y), 30.0) << "int8 outputs changed beyond the fp32 parts' rounding";
      } else {
        EXPECT_EQ(0, std::memcmp(y->raw_data(), want.raw_data(), want.nbytes())) << "int8 outputs changed";
      }
      ++checked;
    }
    hwy::SetSupportedTargetsForTest(0);
  }
  if (write_to != nullptr) {
    ASSERT_TRUE(io::WriteSafetensors(write_to, written).ok());
    GTEST_SKIP() << "wrote " << write_to;
  }
  EXPECT_EQ(checked, static_cast<int>(models::ListModels().size() * hwy::SupportedAndGeneratedTargets().size()));
}

}  // namespace
}  // namespace quant
}  // namespace qfx
