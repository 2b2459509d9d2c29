// qfx tests: the vision transformer (torchvision's VisionTransformer, zoo vit_fmnist / vit_b_16) and what it
// needs: nn.MultiheadAttention, select, expand / expand_as, parameters read by ops (get_attr), a trace
// specialised on example inputs that still takes any batch, training through the graph, and int8 with the
// x86 preset (Linear and conv int8; LayerNorm, attention and GELU's table as PyTorch's backends leave them).
// fp32 outputs and gradients against PyTorch are in models_zoo_test and quant_coverage_test.
#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "qfx/fx/tracer.h"
#include "qfx/io/model_file.h"
#include "qfx/io/safetensors.h"
#include "qfx/models/zoo.h"
#include "qfx/nn/functional.h"
#include "qfx/nn/modules.h"
#include "qfx/quant/metrics.h"
#include "qfx/quant/observer.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/quantized_modules.h"
#include "qfx/train/graph_tape.h"
#include "qfx/train/ops.h"
#include "qfx/train/trainer.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace {

using quant::SqnrDb;

std::shared_ptr<nn::Module> SeededVit() {
  auto model = *models::Create("vit_fmnist");
  testing::HashInit(*model);  // also gives the (zero-initialised) head weights
  return model;
}

std::shared_ptr<fx::GraphModule> TraceVit(std::shared_ptr<nn::Module> model) {
  fx::TracerOptions opt;
  opt.example_inputs = {Tensor::Zeros({1, 1, 28, 28})};
  auto gm = fx::SymbolicTrace(std::move(model), opt);
  EXPECT_TRUE(gm.ok()) << gm.status();
  return gm.ok() ? *gm : nullptr;
}

bool Contains(const absl::Status& s, const std::string& text) {
  return std::string(s.message()).find(text) != std::string::npos;
}

// The trace reads the image size but never the batch size: a graph traced at batch 1 runs batch 3, and
// gives the model's bytes.
TEST(Vit, TraceSpecialisedOnExampleInputsTakesAnyBatch) {
  auto model = SeededVit();
  auto gm = TraceVit(model);
  ASSERT_NE(gm, nullptr);
  const Tensor x = testing::HashUniform("x", {3, 1, 28, 28}, 0, 1);
  const Tensor want = *nn::RunModule(*model, x);
  auto got = nn::RunModule(*gm, x);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->shape(), (Shape{3, 10}));
  EXPECT_EQ(std::memcmp(got->raw_data(), want.raw_data(), want.nbytes()), 0);
  // The class token and the position embedding are get_attr nodes, as torch.fx records them.
  int attrs = 0;
  for (const fx::Node* n : gm->graph()) attrs += n->op() == fx::Opcode::kGetAttr;
  EXPECT_EQ(attrs, 2) << gm->graph().ToString();
  // Another image size is an error naming the traced sizes.
  auto other = nn::RunModule(*gm, Tensor::Zeros({1, 1, 32, 32}));
  ASSERT_FALSE(other.ok());
  EXPECT_TRUE(Contains(other.status(), "28")) << other.status();
}

TEST(Vit, TracingWithoutExampleInputsSaysHowToTraceIt) {
  auto gm = fx::SymbolicTrace(SeededVit());
  ASSERT_FALSE(gm.ok());
  EXPECT_TRUE(Contains(gm.status(), "example input")) << gm.status();
}

TEST(Vit, WrongImageSizeIsAnErrorNamingTheSizeItTakes) {
  auto y = nn::RunModule(*SeededVit(), Tensor::Zeros({1, 1, 32, 32}));
  ASSERT_FALSE(y.ok());
  EXPECT_TRUE(Contains(y.status(), "[N, 1, 28, 28]")) << y.status();
}

TEST(MultiheadAttention, HasPyTorchsNamesAndRefusesWhatItCannotDo) {
  nn::MultiheadAttention mha(8, 2, 0.0, true, true);
  std::vector<std::string> names;
  for (const auto& [name, t] : mha.state_dict()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"}));
  EXPECT_EQ(mha.out_proj->type_name(), "NonDynamicallyQuantizableLinear");
  const Tensor q = testing::HashUniform("q", {2, 3, 8}, -1, 1), k = testing::HashUniform("k", {2, 3, 8}, -1, 1);
  auto self = nn::RunModule(mha, nn::ForwardArgs{{{"query", q}, {"key", q}, {"value", q}}});
  ASSERT_TRUE(self.ok()) << self.status();
  EXPECT_EQ(std::memcmp(self->raw_data(), nn::RunModule(mha, q)->raw_data(), self->nbytes()), 0);
  auto cross = nn::RunModule(mha, nn::ForwardArgs{{{"query", q}, {"key", k}, {"value", k}}});
  ASSERT_FALSE(cross.ok());
  EXPECT_TRUE(Contains(cross.status(), "cross-attention")) << cross.status();
  EXPECT_FALSE(nn::RunModule(mha, Tensor::Zeros({2, 3, 6})).ok());  // embedding size 6, not 8
  nn::MultiheadAttention dropping(8, 2, 0.1);
  dropping.train();
  auto y = nn::RunModule(dropping, Tensor::Zeros({3, 2, 8}));
  ASSERT_FALSE(y.ok());
  EXPECT_TRUE(Contains(y.status(), "dropout")) << y.status();
  EXPECT_THROW(nn::MultiheadAttention(10, 4), Error);
}

// Biases off: the graph passes None for them, and the backward gives gradients for the weights only.
TEST(MultiheadAttention, TrainsWithoutBiases) {
  auto mha = std::make_shared<nn::MultiheadAttention>(8, 2, 0.0, /*bias=*/false, /*batch_first=*/true);
  auto gm = fx::SymbolicTrace(mha);
  ASSERT_TRUE(gm.ok()) << gm.status();
  train::GraphForward fwd(**gm);
  train::Tape tape;
  auto y = fwd.Run(tape, testing::HashUniform("nb", {2, 3, 8}, -1, 1));
  ASSERT_TRUE(y.ok()) << y.status();
  tape.Backward(train::ag::mean(tape, train::ag::mul(tape, *y, *y), {0, 1, 2}, false));
  EXPECT_TRUE(tape.ParamGrad(mha->in_proj_weight).defined());
  EXPECT_TRUE(tape.ParamGrad(mha->out_proj->weight).defined());
}

TEST(ExpandAndSelect, FollowPyTorchsRules) {
  const Tensor x = testing::HashUniform("e", {3, 1}, -1, 1);
  const Tensor y = F::expand(x, {2, -1, 4});
  ASSERT_EQ(y.shape(), (Shape{2, 3, 4}));
  for (int64_t b = 0; b < 2; ++b) {
    for (int64_t i = 0; i < 3; ++i) {
      for (int64_t j = 0; j < 4; ++j) EXPECT_EQ(y.at({b, i, j}), x.at({i, 0}));
    }
  }
  EXPECT_EQ(F::expand_as(x, Tensor::Zeros({2, 3, 4})).shape(), (Shape{2, 3, 4}));
  EXPECT_THROW(F::expand(x, {3, 2, 4}), Error);   // only size-1 dimensions grow
  EXPECT_THROW(F::expand(x, {4}), Error);         // fewer dimensions
  EXPECT_THROW(F::expand(x, {-1, 3, 4}), Error);  // -1 in a new leading dimension
  const Tensor s = F::select(y, -1, -1);
  ASSERT_EQ(s.shape(), (Shape{2, 3}));
  EXPECT_EQ(s.at({1, 2}), x.at({2, 0}));
  EXPECT_THROW(F::select(y, 1, 3), Error);
}

// A few Adam steps through the graph (multi_head_attention's backward, expand_as, select, the class token
// and position embedding as parameters) lower the loss on a fixed batch.
TEST(Vit, TrainsThroughTheGraph) {
  auto model = *models::Create("vit_fmnist");
  auto gm = TraceVit(model);
  ASSERT_NE(gm, nullptr);
  // Class k: a pattern at brightness k / 10, so the labels can be learnt.
  const Tensor x = testing::HashUniform("tx", {16, 1, 28, 28}, 0, 0.2);
  Tensor labels = Tensor::Empty({16}, DType::kI64);
  for (int64_t i = 0; i < 16; ++i) {
    labels.data<int64_t>()[i] = i % 10;
    for (int64_t j = 0; j < 784; ++j) x.data<float>()[i * 784 + j] += 0.08f * static_cast<float>(i % 10);
  }
  train::TrainOptions opt;
  opt.epochs = 10;
  opt.batch = 8;
  const Tensor token_before = gm->tensor_at("class_token").Clone();
  auto stats = train::Train(*gm, x, labels, opt);
  ASSERT_TRUE(stats.ok()) << stats.status();
  std::printf("vit_fmnist training loss: epoch 1 %.4f, epoch %zu %.4f\n", stats->front().loss, stats->size(),
              stats->back().loss);
  EXPECT_LT(stats->back().loss, stats->front().loss * 0.85);
  EXPECT_GT(testing::MaxRelError(gm->tensor_at("class_token"), token_before), 0.0);

  // Attention dropout in training is refused with an error naming it (not silently skipped).
  models::VisionTransformerOptions o;
  o.image_size = 28;
  o.patch_size = 7;
  o.num_layers = 1;
  o.num_heads = 2;
  o.hidden_dim = 16;
  o.mlp_dim = 16;
  o.in_channels = 1;
  o.num_classes = 10;
  o.attention_dropout = 0.1;
  auto dropping_model = models::MakeVisionTransformer(o);
  dropping_model->eval();  // traced in eval, trained in training mode
  auto dropping = TraceVit(dropping_model);
  ASSERT_NE(dropping, nullptr);
  opt.epochs = 1;
  auto refused = train::Train(*dropping, x, labels, opt);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(Contains(refused.status(), "attention dropout")) << refused.status();
}

// x86 PTQ: conv_proj, every Linear (fc1, fc2, head) int8 and LayerNorm observed on quint8 (PyTorch's native
// backend config); attention, select and expand_as float with their reason; the .qfx round trip is
// byte-identical.
TEST(Vit, QuantizesWithTheX86Preset) {
  auto model = SeededVit();
  auto gm = TraceVit(model);
  ASSERT_NE(gm, nullptr);
  quant::PrepareOptions opt;
  opt.config = *quant::LoadQuantConfig("x86");
  auto report = quant::Prepare(*gm, opt);
  ASSERT_TRUE(report.ok()) << report.status();
  for (const char* n : {"encoder_layers_encoder_layer_0_self_attention", "select", "expand_as"}) {
    ASSERT_TRUE(report->left_float.count(n)) << n;
    EXPECT_EQ(report->left_float.at(n), quant::FloatReason::kNoKernel) << n;
  }
  for (const char* n : {"encoder_layers_encoder_layer_0_ln_1", "encoder_ln", "conv_proj", "heads_head"}) {
    EXPECT_TRUE(report->quantized.count(n)) << n;
  }
  ASSERT_TRUE(nn::RunModule(*gm, testing::HashUniform("calib", {8, 1, 28, 28}, 0, 1)).ok());
  const absl::Status converted = quant::Convert(*gm, *report);
  ASSERT_TRUE(converted.ok()) << converted;
  int linears = 0, convs = 0;
  for (const auto& [path, m] : gm->named_modules()) {
    linears += dynamic_cast<const quant::QuantizedLinear*>(m) != nullptr;
    convs += dynamic_cast<const quant::QuantizedConv2d*>(m) != nullptr;
  }
  EXPECT_EQ(linears, 9);  // 2 per encoder layer and the head
  EXPECT_EQ(convs, 1);
  const Tensor x = testing::HashUniform("test", {4, 1, 28, 28}, 0, 1);
  const Tensor y = *nn::RunModule(*gm, x);
  const double sqnr = SqnrDb(*nn::RunModule(*model, x), y);
  std::printf("vit_fmnist x86 int8: SQNR vs fp32 %.2f dB\n", sqnr);
  EXPECT_GT(sqnr, 20.0);
  const std::string path = ::testing::TempDir() + "/vit_fmnist.qfx";
  ASSERT_TRUE(io::SaveModel(path, *gm, {1, 1, 28, 28}, "vit test").ok());
  auto loaded = io::LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tensor again = *nn::RunModule(*loaded->module, x);
  EXPECT_EQ(std::memcmp(again.raw_data(), y.raw_data(), y.nbytes()), 0);
}

// Against PyTorch 1.13 FX (tests/data/quant/vit_fmnist_int8.safetensors: torchvision's VisionTransformer with
// forward written so that torch.fx traces it, the same ops as qfx's trace; hash weights, 16 images): fp32
// within 1e-4, and int8 SQNR against fp32 at least PyTorch's minus 0.5 dB under qnnpack and onednn.
class VitVsPyTorch : public ::testing::TestWithParam<std::string> {};

TEST_P(VitVsPyTorch, Int8SqnrAtLeastPyTorchs) {
  const std::string preset = GetParam();
  const io::Safetensors fixture = testing::ReadFixture("quant/vit_fmnist_int8.safetensors");
  auto model = SeededVit();
  const Shape shape = {16, 1, 28, 28};
  const Tensor calib = testing::HashUniform("calib", shape, -1, 1), x = testing::HashUniform("test", shape, -1, 1);
  const Tensor fp32 = *nn::RunModule(*model, x);
  EXPECT_LT(testing::MaxRelError(fp32, testing::Get(fixture, "fp32")), 1e-4);
  auto gm = TraceVit(model);
  ASSERT_NE(gm, nullptr);
  quant::PrepareOptions opt;
  opt.config = *quant::LoadQuantConfig(preset);
  auto report = quant::Prepare(*gm, opt);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(nn::RunModule(*gm, calib).ok());
  ASSERT_TRUE(quant::Convert(*gm, *report).ok());
  const double ours = SqnrDb(fp32, *nn::RunModule(*gm, x)),
               theirs = SqnrDb(testing::Get(fixture, "fp32"), testing::Get(fixture, preset));
  std::printf("vit_fmnist %s: SQNR vs fp32: qfx %.2f dB, PyTorch 1.13 FX %.2f dB\n", preset.c_str(), ours, theirs);
  EXPECT_GE(ours, theirs - 0.5);
}

INSTANTIATE_TEST_SUITE_P(Presets, VitVsPyTorch, ::testing::Values("qnnpack", "onednn"));

// prepare_fx's observer placement and calibrated qparams (tests/data/quant/prepare_vit_fmnist_<preset>.json, on
// the torch.fx-traceable forward). The graphs differ by design in three names: torch.fx indexes the attention's
// output tuple (getitem_N) and the class token (getitem_4) where qfx has the attention node and select, and qfx
// observes the narrow its expand_as reads (torch.narrow is share-qparams in qfx; PyTorch 1.13 lists it nowhere).
class VitPrepareVsPyTorch : public ::testing::TestWithParam<std::string> {};

// torch.fx's name for the node qfx names `name`, where the two graphs differ by design.
std::string TorchFxName(const std::string& name) {
  const std::string prefix = "encoder_layers_encoder_layer_", suffix = "_self_attention";
  if (name == "select") return "getitem_4";
  if (name.size() > prefix.size() + suffix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
    const std::string layer = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
    return layer == "0" ? "getitem" : "getitem_" + layer;
  }
  return name;
}

TEST_P(VitPrepareVsPyTorch, SameObserverPlacementAndQParams) {
  const std::string preset = GetParam();
  std::ifstream f("tests/data/quant/prepare_vit_fmnist_" + preset + ".json");
  ASSERT_TRUE(f.good());
  const auto want = nlohmann::json::parse(f);
  auto gm = TraceVit(SeededVit());
  ASSERT_NE(gm, nullptr);
  quant::PrepareOptions opt;
  opt.config = *quant::LoadQuantConfig(preset == "minmax" ? "tests/data/quant/minmax.toml" : preset);
  ASSERT_TRUE(quant::Prepare(*gm, opt).ok());
  std::vector<std::string> observed;
  std::vector<fx::Node*> observers;
  for (fx::Node* n : gm->graph()) {
    if (n->op() != fx::Opcode::kCallModule || n->target().path.rfind("activation_post_process_", 0) != 0) continue;
    const std::string src = std::get<fx::Node*>(n->args()[0])->name();
    if (src == "narrow") continue;
    observed.push_back(TorchFxName(src));
    observers.push_back(n);
  }
  EXPECT_EQ(observed, want["observed"].get<std::vector<std::string>>());
  ASSERT_TRUE(nn::RunModule(*gm, testing::HashUniform("calib", want["calib_shape"].get<Shape>(), -1, 1)).ok());
  int close = 0;
  for (size_t i = 0; i < observers.size(); ++i) {
    const auto& qp_want = want["qparams"][observed[i]];
    const quant::QParams qp =
        dynamic_cast<quant::Observer*>(gm->submodule(observers[i]->target().path))->CalculateQParams();
    const double rel = std::fabs(qp.scale[0] - qp_want["scale"].get<float>()) / qp_want["scale"].get<float>();
    EXPECT_LE(rel, 1e-2) << observed[i];
    EXPECT_LE(std::abs(qp.zero_point[0] - qp_want["zero_point"].get<int64_t>()), 2) << observed[i];
    close += rel <= 1e-5 && qp.zero_point[0] == qp_want["zero_point"].get<int64_t>();
  }
  std::printf("vit_fmnist/%s: %zu observers, %d within 1e-5\n", preset.c_str(), observers.size(), close);
  EXPECT_GE(close, static_cast<int>(observers.size()) * 9 / 10);
}

INSTANTIATE_TEST_SUITE_P(Presets, VitPrepareVsPyTorch, ::testing::Values("x86", "qnnpack", "minmax"));

}  // namespace
}  // namespace qfx
