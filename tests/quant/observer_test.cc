// qfx tests: every observer kind against PyTorch 1.13 (tests/data/quant/observers.json from
// gen_golden.py): scale within 1e-5 relative and zero point exactly equal, after each batch; spec
// validation; fake-quantize numerics.
#include <cmath>
#include <fstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "qfx/quant/observer.h"

namespace qfx {
namespace quant {
namespace {

ObserverSpec SpecFrom(const std::string& kind, const nlohmann::json& args) {
  ObserverSpec s;
  EXPECT_TRUE(ParseObserverKind(kind, &s.kind)) << kind;
  EXPECT_TRUE(ParseQDType(args.at("dtype").get<std::string>(), &s.dtype));
  EXPECT_TRUE(ParseQScheme(args.at("qscheme").get<std::string>(), &s.qscheme));
  s.reduce_range = args.value("reduce_range", false);
  if (args.contains("quant_min")) s.quant_min = args["quant_min"].get<int64_t>();
  if (args.contains("quant_max")) s.quant_max = args["quant_max"].get<int64_t>();
  s.ch_axis = args.value("ch_axis", 0);
  s.averaging_constant = args.value("averaging_constant", 0.01);
  return s;
}

TEST(Observers, MatchPyTorchOnEveryInputAndBatch) {
  std::ifstream f("tests/data/quant/observers.json");
  ASSERT_TRUE(f.good());
  const auto cases = nlohmann::json::parse(f);
  int checked = 0, exact_scales = 0;
  for (const auto& c : cases) {
    const Shape shape = c["shape"].get<Shape>();
    std::vector<Tensor> batches;
    for (const auto& b : c["batches"]) batches.push_back(Tensor::FromVector(shape, b.get<std::vector<float>>()));
    for (const auto& o : c["observers"]) {
      const std::string where = c["name"].get<std::string>() + " / " + o["name"].get<std::string>();
      auto obs = MakeObserver(SpecFrom(o["kind"], o["args"]));
      ASSERT_TRUE(obs.ok()) << where << ": " << obs.status();
      for (size_t i = 0; i < batches.size(); ++i) {
        (**obs)(batches[i]);
        const QParams qp = (*obs)->CalculateQParams();
        const auto want_scale = o["after"][i]["scale"].get<std::vector<float>>();
        const auto want_zp = o["after"][i]["zero_point"].get<std::vector<int64_t>>();
        ASSERT_EQ(qp.scale.size(), want_scale.size()) << where;
        for (size_t k = 0; k < want_scale.size(); ++k) {
          EXPECT_LE(std::fabs(qp.scale[k] - want_scale[k]), 1e-5 * std::fabs(want_scale[k]))
              << where << " batch " << i << " channel " << k << ": " << qp.scale[k] << " vs " << want_scale[k];
          EXPECT_EQ(qp.zero_point[k], want_zp[k]) << where << " batch " << i << " channel " << k;
          exact_scales += qp.scale[k] == want_scale[k];
          ++checked;
        }
      }
    }
  }
  std::printf("checked %d scales against PyTorch, %d bit-exact\n", checked, exact_scales);
  EXPECT_GT(checked, 400);
}

TEST(Observers, SpecValidationSaysWhatToChange) {
  ObserverSpec s;
  s.kind = ObserverKind::kMinMax;
  s.qscheme = QScheme::kPerChannelSymmetric;
  EXPECT_EQ(ValidateSpec(s).message(),
            "minmax observer needs a per_tensor qscheme, got per_channel_symmetric (use per_channel_minmax for "
            "per-channel quantization)");
  s = ObserverSpec{};
  s.quant_min = 1;
  s.quant_max = 10;
  EXPECT_EQ(ValidateSpec(s).message(), "custom range 1..10 must include 0");
  s.quant_min = -1;
  EXPECT_EQ(ValidateSpec(s).message(), "custom range -1..10 does not fit quint8 (0..255)");
  s = ObserverSpec{};
  s.quant_min = 0;
  EXPECT_EQ(ValidateSpec(s).message(), "quant_min and quant_max must be given together");
  s = ObserverSpec{};
  s.dtype = QDType::kFloat16;
  EXPECT_NE(ValidateSpec(s).message().find("use observer = \"placeholder\""), std::string::npos);
  s = ObserverSpec{};
  s.qscheme = QScheme::kPerTensorSymmetric;
  s.reduce_range = true;
  EXPECT_NE(ValidateSpec(s).message().find("reduce_range is not supported"), std::string::npos);
  // reduce_range halves ranges like PyTorch (floor division on custom ranges).
  s = ObserverSpec{};
  s.dtype = QDType::kQInt8;
  s.quant_min = -127;
  s.quant_max = 127;
  s.reduce_range = true;
  EXPECT_EQ(QuantRange(s)->first, -64);
  EXPECT_EQ(QuantRange(s)->second, 63);
}

TEST(Observers, UnobservedGiveDefaultsAndPassThroughHaveNone) {
  ObserverSpec s;
  auto obs = MakeObserver(s);
  EXPECT_EQ((*obs)->CalculateQParams().scale, std::vector<float>{1.f});
  s.kind = ObserverKind::kPlaceholder;
  s.dtype = QDType::kFloat16;
  auto ph = MakeObserver(s);
  ASSERT_TRUE(ph.ok());
  EXPECT_THROW((*ph)->CalculateQParams(), Error);
}

TEST(FakeQuantize, MatchesTheFormulaWithRoundHalfToEven) {
  QParams qp;
  qp.scale = {0.5f};
  qp.zero_point = {3};
  qp.quant_min = 0;
  qp.quant_max = 10;
  // x / s = -3.5 .. 6.25: nearbyint ties to even (0.25 -> 0, 0.75 -> 2 (1.5 -> 2), 1.25 -> 2 (2.5 -> 2)).
  const Tensor x = Tensor::FromVector({7}, {-3.f, 0.25f, 0.75f, 1.25f, 1.75f, 3.1f, 100.f});
  const Tensor y = FakeQuantizeTensor(x, qp);
  const std::vector<float> want = {-1.5f, 0.f, 1.f, 1.f, 2.f, 3.f, 3.5f};
  for (int i = 0; i < 7; ++i) EXPECT_EQ(y.data<float>()[i], want[i]) << i;
  // Per channel on axis 1.
  QParams pc;
  pc.scale = {1.f, 0.1f};
  pc.zero_point = {0, 0};
  pc.quant_min = -128;
  pc.quant_max = 127;
  pc.ch_axis = 1;
  const Tensor z = FakeQuantizeTensor(Tensor::FromVector({1, 2, 2}, {1.4f, 2.6f, 0.14f, 0.26f}), pc);
  EXPECT_EQ(z.data<float>()[0], 1.f);
  EXPECT_EQ(z.data<float>()[1], 3.f);
  EXPECT_FLOAT_EQ(z.data<float>()[2], 0.1f);
  EXPECT_FLOAT_EQ(z.data<float>()[3], 0.3f);
}

TEST(FakeQuantize, ObservesThenQuantizesAndHonoursSwitches) {
  ObserverSpec s;
  s.kind = ObserverKind::kMovingAverageMinMax;
  s.fake_quant = true;
  auto m = MakeObserverOrFakeQuantize(s);
  ASSERT_TRUE(m.ok());
  auto* fq = dynamic_cast<FakeQuantize*>(m->get());
  ASSERT_NE(fq, nullptr);
  const Tensor x = Tensor::FromVector({4}, {-1.f, 0.f, 0.3f, 2.f});
  const Tensor y = (*fq)(x);
  EXPECT_FLOAT_EQ(fq->qparams().scale[0], 3.f / 255.f);
  EXPECT_EQ(fq->qparams().zero_point[0], 85);
  EXPECT_NE(y.data<float>()[2], 0.3f);  // quantized
  fq->enable_fake_quant(false);
  EXPECT_TRUE((*fq)(x).SharesStorage(x));
  fq->enable_observer(false);
  fq->enable_fake_quant(true);
  (*fq)(Tensor::FromVector({1}, {100.f}));
  EXPECT_FLOAT_EQ(fq->qparams().scale[0], 3.f / 255.f);  // frozen
}

}  // namespace
}  // namespace quant
}  // namespace qfx
