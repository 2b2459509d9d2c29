// qfx tests: layers past the square CNNs of the zoo, end to end. NonSquareCnn has inception's 1x7 / 7x1
// kernels and asymmetric strides, padding and dilation in dense, depthwise and pooling layers: fp32 equal
// to PyTorch's (tests/data/quant/nonsquare_cnn_int8.safetensors, tools/gen_golden.py), traced, trained
// through the graph, quantized by the FX flow (every conv int8, SQNR at least PyTorch 1.13 FX int8's
// minus 0.5 dB) and by the PT2E flow, saved and loaded bit for bit with per-axis sizes in the .qfx file.
// TinyAttention is one self-attention block (LayerNorm, matmul / bmm between activations, transpose,
// permute, softmax on the last dim, GELU): torch.fx's node sequence, fp32 and every new op's gradient
// equal to PyTorch's (tests/data/coverage/), quantized with its linear layers int8 and the rest float
// with the reason in the report.
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "qfx/fx/tracer.h"
#include "qfx/io/model_file.h"
#include "qfx/nn/modules.h"
#include "qfx/nn/ops.h"
#include "qfx/quant/metrics.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/pt2e.h"
#include "qfx/quant/quantized_modules.h"
#include "qfx/train/graph_tape.h"
#include "qfx/train/ops.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace quant {
namespace {

using nn::Conv2dArgs;
using nn::Size2;

// tools/gen_golden.py's NonSquareCnn, with the same parameter names; input [N, 3, 20, 20].
class NonSquareCnn : public nn::Module {
 public:
  NonSquareCnn() {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(3, 16, Size2(1, 7), Conv2dArgs{1, Size2(0, 3)}));
    bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(16));
    relu1 = register_module("relu1", std::make_shared<nn::ReLU>());
    conv2 = register_module("conv2",
                            std::make_shared<nn::Conv2d>(16, 16, Size2(7, 1), Conv2dArgs{Size2(2, 1), Size2(3, 0)}));
    relu2 = register_module("relu2", std::make_shared<nn::ReLU>());
    dw = register_module(
        "dw", std::make_shared<nn::Conv2d>(16, 16, Size2(1, 5), Conv2dArgs{Size2(1, 2), Size2(0, 4), Size2(1, 2), 16}));
    conv3 = register_module("conv3",
                            std::make_shared<nn::Conv2d>(16, 24, Size2(3, 2), Conv2dArgs{1, Size2(1, 1), Size2(2, 1)}));
    pool = register_module("pool", std::make_shared<nn::MaxPool2d>(Size2(3, 2), Size2(2, 1), Size2(1, 0)));
    avg = register_module("avg", std::make_shared<nn::AvgPool2d>(Size2(2, 3), Size2(1, 2), Size2(1, 1), false, false));
    fc = register_module("fc", std::make_shared<nn::Linear>(24 * 5 * 5, 10));
  }
  std::string type_name() const override { return "NonSquareCnn"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*relu1)((*bn1)((*conv1)(x)));
    y = (*relu2)((*conv2)(y));
    y = (*avg)((*pool)((*conv3)((*dw)(y))));
    return (*fc)(F::flatten(y, 1));
  }
  std::shared_ptr<nn::Module> conv1, bn1, relu1, conv2, relu2, dw, conv3, pool, avg, fc;
};

const Shape kShape = {4, 3, 20, 20};

std::shared_ptr<NonSquareCnn> Seeded() {
  auto m = std::make_shared<NonSquareCnn>();
  testing::HashInit(*m);
  m->eval();
  return m;
}

TEST(NonSquare, Fp32MatchesPyTorchAndTheTracedGraph) {
  const io::Safetensors fixture = testing::ReadFixture("quant/nonsquare_cnn_int8.safetensors");
  auto model = Seeded();
  const Tensor x = testing::HashUniform("test", kShape, -1, 1);
  const Tensor y = *RunModule(*model, x);
  EXPECT_LT(testing::MaxRelError(y, testing::Get(fixture, "fp32")), 1e-4);
  auto gm = *fx::SymbolicTrace(model);
  const Tensor traced = *RunModule(*gm, x);
  ASSERT_EQ(traced.shape(), y.shape());
  EXPECT_EQ(std::memcmp(traced.raw_data(), y.raw_data(), y.nbytes()), 0);
}

TEST(NonSquare, TrainsThroughTheGraph) {
  auto model = Seeded();
  model->train();
  auto gm = *fx::SymbolicTrace(model);
  train::GraphForward fwd(*gm);
  ASSERT_TRUE(fwd.CheckDifferentiable().ok()) << fwd.CheckDifferentiable();
  train::Tape tape;
  auto y = fwd.Run(tape, testing::HashUniform("x", kShape, -1, 1));
  ASSERT_TRUE(y.ok()) << y.status();
  tape.Backward(train::ag::mean(tape, train::ag::mul(tape, *y, *y), {0, 1}, false));
  for (const char* conv : {"conv1", "conv2", "dw", "conv3"}) {
    const Tensor g = tape.ParamGrad(static_cast<nn::Conv2d*>(gm->submodule(conv))->weight);
    ASSERT_TRUE(g.defined()) << conv;
    EXPECT_EQ(g.shape(), static_cast<nn::Conv2d*>(gm->submodule(conv))->weight.shape()) << conv;
  }
}

class NonSquareInt8 : public ::testing::TestWithParam<std::string> {};

// Every conv, whatever its per-axis geometry, becomes an int8 layer; the model is as close to fp32 as
// PyTorch's FX int8 model with the same preset, less 0.5 dB; and it saves and loads bit for bit.
TEST_P(NonSquareInt8, EveryConvInt8AndSqnrAtLeastPyTorchs) {
  const io::Safetensors fixture = testing::ReadFixture("quant/nonsquare_cnn_int8.safetensors");
  auto model = Seeded();
  const Tensor calib = testing::HashUniform("calib", kShape, -1, 1), x = testing::HashUniform("test", kShape, -1, 1);
  const Tensor fp32 = *RunModule(*model, x);
  auto gm = *fx::SymbolicTrace(model);
  PrepareOptions opt;
  opt.config = *LoadQuantConfig(GetParam());
  auto report = Prepare(*gm, opt);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(RunModule(*gm, calib).ok());
  ASSERT_TRUE(Convert(*gm, *report).ok());
  std::map<std::string, Size2> kernels;
  for (const auto& [path, m] : gm->named_modules()) {
    if (const auto* q = dynamic_cast<const QuantizedConv2d*>(m)) kernels.emplace(path, q->layer().kernel);
  }
  ASSERT_EQ(kernels.size(), 4u) << gm->graph().ToString();
  EXPECT_EQ(kernels.begin()->second, Size2(1, 7));  // conv1 (fused with bn1 and relu1)
  const Tensor y = *RunModule(*gm, x);
  const double ours = SqnrDb(fp32, y),
               theirs = SqnrDb(testing::Get(fixture, "fp32"), testing::Get(fixture, GetParam()));
  std::printf("nonsquare_cnn %s: SQNR vs fp32: qfx %.2f dB, PyTorch %.2f dB\n", GetParam().c_str(), ours, theirs);
  EXPECT_GE(ours, theirs - 0.5);

  const std::string path = ::testing::TempDir() + "/nonsquare_" + GetParam() + ".qfx";
  ASSERT_TRUE(io::SaveModel(path, *gm, kShape, "coverage test").ok());
  auto loaded = io::LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tensor again = *RunModule(*loaded->module, x);
  EXPECT_EQ(std::memcmp(again.raw_data(), y.raw_data(), y.nbytes()), 0);
}

INSTANTIATE_TEST_SUITE_P(Presets, NonSquareInt8, ::testing::Values("qnnpack", "onednn"));

TEST(NonSquare, Pt2eLowersEveryConvToInt8) {
  auto model = Seeded();
  auto gm = *Export(model, {kShape});
  XNNPACKQuantizer q;
  q.set_global(get_symmetric_quantization_config(/*per_channel=*/true));
  auto report = PreparePt2e(*gm, q);
  ASSERT_TRUE(report.ok()) << report.status();
  const Tensor x = testing::HashUniform("test", kShape, -1, 1);
  ASSERT_TRUE(RunModule(*gm, testing::HashUniform("calib", kShape, -1, 1)).ok());
  ASSERT_TRUE(ConvertPt2e(*gm).ok());
  const absl::Status lowered = LowerPt2e(*gm);
  ASSERT_TRUE(lowered.ok()) << lowered;
  int convs = 0;
  for (const auto& [path, m] : gm->named_modules()) convs += dynamic_cast<const QuantizedConv2d*>(m) != nullptr;
  EXPECT_EQ(convs, 4) << gm->graph().ToString();
  const double sqnr = SqnrDb(*RunModule(*model, x), *RunModule(*gm, x));
  std::printf("nonsquare_cnn PT2E XNNPACKQuantizer: SQNR vs fp32 %.2f dB\n", sqnr);
  EXPECT_GT(sqnr, 15.0);
}

// Sizes in .qfx configs: an integer when square (every earlier file), [h, w] otherwise; anything else is
// an error naming the field.
TEST(NonSquare, ConfigSizesReadBothFormsAndNameTheBadField) {
  const nn::Conv2d conv(4, 8, Size2(1, 7), Conv2dArgs{Size2(2, 1), Size2(0, 3)});
  const nlohmann::json c = *nn::ModuleConfig(conv);
  EXPECT_EQ(c.at("kernel"), nlohmann::json::parse("[1, 7]"));
  EXPECT_EQ(c.at("dilation"), nlohmann::json(1));
  auto rebuilt = nn::MakeModule("Conv2d", c);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ(static_cast<nn::Conv2d&>(**rebuilt).options.stride, (std::vector<int64_t>{2, 1}));
  nlohmann::json bad = c;
  bad["kernel"] = nlohmann::json::parse("[1, 7, 2]");
  const absl::Status s = nn::MakeModule("Conv2d", bad).status();
  EXPECT_NE(s.message().find("'kernel' is [1,7,2]; it must be an integer or a list [h, w]"), std::string::npos) << s;
  EXPECT_THROW(nn::Conv2d(4, 8, Size2(1, 0)), std::exception);
  EXPECT_THROW(nn::Conv2d(4, 8, 3, Conv2dArgs{Size2(1, 0)}), std::exception);
}

F::InterpolateOptions Interp(std::vector<int64_t> size, std::vector<double> scale, bool bilinear, bool align) {
  F::InterpolateOptions o;
  o.size = std::move(size);
  o.scale_factor = std::move(scale);
  o.mode = bilinear ? F::InterpolateOptions::Mode::kBilinear : F::InterpolateOptions::Mode::kNearest;
  o.align_corners = align;
  return o;
}

// tools/gen_golden.py's UpsampleCnn, with the same parameter names; input [4, 3, 12, 10].
class UpsampleCnn : public nn::Module {
 public:
  UpsampleCnn() {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(3, 8, 3, Conv2dArgs{2, 1}));
    relu1 = register_module("relu1", std::make_shared<nn::ReLU>());
    up1 = register_module("up1", std::make_shared<nn::Upsample>(Interp({}, {2.0}, false, false)));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(8, 8, 3, Conv2dArgs{1, 1}));
    relu2 = register_module("relu2", std::make_shared<nn::ReLU>());
    up2 = register_module("up2", std::make_shared<nn::Upsample>(Interp({15, 13}, {}, true, false)));
    conv3 = register_module("conv3", std::make_shared<nn::Conv2d>(8, 4, 1));
  }
  std::string type_name() const override { return "UpsampleCnn"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*up1)((*relu1)((*conv1)(x)));
    y = (*up2)((*relu2)((*conv2)(y)));
    return (*conv3)(F::interpolate(y, Interp({}, {0.5}, true, true)));
  }
  std::shared_ptr<nn::Module> conv1, relu1, up1, conv2, relu2, up2, conv3;
};

class UpsampleInt8 : public ::testing::TestWithParam<std::string> {};

// fp32 equal to PyTorch's; under int8 the upsampling runs on quantized tensors (share-qparams, as in
// PyTorch's backends) and the model is as close to fp32 as PyTorch 1.13 FX int8's, less 0.5 dB.
TEST_P(UpsampleInt8, Fp32MatchesAndInt8SqnrAtLeastPyTorchs) {
  const io::Safetensors fixture = testing::ReadFixture("quant/upsample_cnn_int8.safetensors");
  auto model = std::make_shared<UpsampleCnn>();
  testing::HashInit(*model);
  model->eval();
  const Shape shape = {4, 3, 12, 10};
  const Tensor calib = testing::HashUniform("calib", shape, -1, 1), x = testing::HashUniform("test", shape, -1, 1);
  const Tensor fp32 = *RunModule(*model, x);
  EXPECT_LT(testing::MaxRelError(fp32, testing::Get(fixture, "fp32")), 1e-4);
  auto gm = *fx::SymbolicTrace(model);
  PrepareOptions opt;
  opt.config = *LoadQuantConfig(GetParam());
  auto report = Prepare(*gm, opt);
  ASSERT_TRUE(report.ok()) << report.status();
  for (const char* n : {"up1", "up2", "interpolate"}) {
    ASSERT_TRUE(report->quantized.count(n)) << n;
    EXPECT_EQ(report->quantized.at(n), "share-qparams") << n;
  }
  ASSERT_TRUE(RunModule(*gm, calib).ok());
  ASSERT_TRUE(Convert(*gm, *report).ok());
  const Tensor y = *RunModule(*gm, x);
  const double ours = SqnrDb(fp32, y),
               theirs = SqnrDb(testing::Get(fixture, "fp32"), testing::Get(fixture, GetParam()));
  std::printf("upsample_cnn %s: SQNR vs fp32: qfx %.2f dB, PyTorch %.2f dB\n", GetParam().c_str(), ours, theirs);
  EXPECT_GE(ours, theirs - 0.5);
  const std::string path = ::testing::TempDir() + "/upsample_" + GetParam() + ".qfx";
  ASSERT_TRUE(io::SaveModel(path, *gm, shape, "coverage test").ok());
  auto loaded = io::LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tensor again = *RunModule(*loaded->module, x);
  EXPECT_EQ(std::memcmp(again.raw_data(), y.raw_data(), y.nbytes()), 0);
}

INSTANTIATE_TEST_SUITE_P(Presets, UpsampleInt8, ::testing::Values("qnnpack", "onednn"));

// tools/gen_golden.py's TinyAttention, with the same parameter names; input [2, 5, 16].
class TinyAttention : public nn::Module {
 public:
  TinyAttention() {
    norm1 = register_module("norm1", std::make_shared<nn::LayerNorm>(std::vector<int64_t>{16}));
    for (auto [name, m] : {std::pair<const char*, std::shared_ptr<nn::Module>*>{"q", &q}, {"k", &k}, {"v", &v}}) {
      *m = register_module(name, std::make_shared<nn::Linear>(16, 16));
    }
    proj = register_module("proj", std::make_shared<nn::Linear>(16, 16));
    norm2 = register_module("norm2", std::make_shared<nn::LayerNorm>(std::vector<int64_t>{16}, 1e-6));
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(16, 32));
    act = register_module("act", std::make_shared<nn::GELU>());
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(32, 16));
  }
  std::string type_name() const override { return "TinyAttention"; }
  Tensor forward(const Tensor& x) override {
    const Tensor h = (*norm1)(x);
    const auto heads = [&](nn::Module& m) { return m(h).Reshape({2, 5, 2, 8}).Permute({0, 2, 1, 3}); };
    const Tensor qh = heads(*q), kh = heads(*k), vh = heads(*v);
    const Tensor a = F::softmax(F::mul(F::matmul(qh, kh.Transpose(-2, -1)), 0.35355339f), -1);
    Tensor y = F::add(x, (*proj)(F::matmul(a, vh).Permute({0, 2, 1, 3}).Reshape({2, 5, 16})));
    const Tensor n2 = (*norm2)(y);
    y = F::add(y, F::bmm(F::softmax(F::bmm(n2, n2.Transpose(1, 2)), -1), n2));
    return F::add(y, (*fc2)((*act)((*fc1)(n2))));
  }
  std::shared_ptr<nn::Module> norm1, q, k, v, proj, norm2, fc1, act, fc2;
};

const io::Safetensors& AttentionFixture() {
  static const auto* st = new io::Safetensors(testing::ReadFixture("coverage/tiny_attention.safetensors"));
  return *st;
}

std::shared_ptr<TinyAttention> SeededAttention() {
  auto m = std::make_shared<TinyAttention>();
  testing::HashInit(*m);
  m->eval();
  return m;
}

std::string TorchTarget(const fx::Node& n) {
  if (n.op() == fx::Opcode::kCallFunction || n.op() == fx::Opcode::kCallMethod)
    return nn::GetOpSchema(n.target().op).torch_name;
  return n.target().path;
}

TEST(TinyAttention, TracesAsTorchFxAndMatchesPyTorchInFp32) {
  auto model = SeededAttention();
  const Tensor x = testing::Get(AttentionFixture(), "input");
  const Tensor y = *RunModule(*model, x);
  EXPECT_LT(testing::MaxRelError(y, testing::Get(AttentionFixture(), "fp32")), 1e-4);
  auto gm = *fx::SymbolicTrace(model);
  const auto want = nlohmann::json::parse(AttentionFixture().metadata.at("fx_nodes"));
  const std::vector<fx::Node*> nodes = gm->graph().nodes();
  ASSERT_EQ(nodes.size(), want.size()) << gm->graph().ToString();
  for (size_t i = 0; i < nodes.size(); ++i) {
    EXPECT_EQ(fx::OpcodeName(nodes[i]->op()), want[i][0].get<std::string>()) << "node " << i;
    EXPECT_EQ(TorchTarget(*nodes[i]), want[i][1].get<std::string>()) << "node " << i;
    EXPECT_EQ(nodes[i]->name(), want[i][2].get<std::string>()) << "node " << i;
  }
  const Tensor traced = *RunModule(*gm, x);
  EXPECT_EQ(std::memcmp(traced.raw_data(), y.raw_data(), y.nbytes()), 0);
}

TEST(TinyAttention, TrainsThroughTheGraph) {
  auto gm = *fx::SymbolicTrace(SeededAttention());
  train::GraphForward fwd(*gm);
  ASSERT_TRUE(fwd.CheckDifferentiable().ok()) << fwd.CheckDifferentiable();
  train::Tape tape;
  auto y = fwd.Run(tape, testing::Get(AttentionFixture(), "input"));
  ASSERT_TRUE(y.ok()) << y.status();
  tape.Backward(train::ag::mean(tape, train::ag::mul(tape, *y, *y), {0, 1, 2}, false));
  for (const char* p : {"norm1.weight", "norm1.bias", "q.weight", "k.weight", "v.weight", "norm2.weight", "fc1.bias"}) {
    EXPECT_TRUE(tape.ParamGrad(gm->tensor_at(p)).defined()) << p;
  }
}

// Linear layers, the residual adds, the scale and matmul (q_matmul) int8; layer_norm observed on quint8 with its
// own output qparams, as PyTorch 1.13's native backend config (prepare_fx's default) quantizes both; bmm and
// softmax stay float (in no backend list) and the report says why. The int8 model is at least as close to
// fp32 as PyTorch 1.13 FX onednn's.
TEST(TinyAttention, QuantizesLinearLayersAndSaysWhyTheRestStaysFloat) {
  auto model = SeededAttention();
  const Tensor x = testing::Get(AttentionFixture(), "input");
  auto gm = *fx::SymbolicTrace(model);
  PrepareOptions opt;
  opt.config = *LoadQuantConfig("onednn");
  auto report = Prepare(*gm, opt);
  ASSERT_TRUE(report.ok()) << report.status();
  for (const char* n : {"bmm", "bmm_1"}) {
    ASSERT_TRUE(report->left_float.count(n)) << n;
    EXPECT_EQ(report->left_float.at(n), FloatReason::kNoKernel) << n;
  }
  for (const char* n : {"q", "k", "v", "proj", "fc1", "fc2", "norm1", "norm2", "matmul", "matmul_1"}) {
    EXPECT_TRUE(report->quantized.count(n)) << n;
  }
  ASSERT_TRUE(RunModule(*gm, testing::HashUniform("calib", {2, 5, 16}, -1, 1)).ok());
  const absl::Status converted = Convert(*gm, *report);
  ASSERT_TRUE(converted.ok()) << converted;
  const Tensor y = *RunModule(*gm, x);
  const io::Safetensors& fixture = AttentionFixture();
  const double ours = SqnrDb(testing::Get(fixture, "fp32"), y),
               theirs = SqnrDb(testing::Get(fixture, "fp32"), testing::Get(fixture, "onednn"));
  std::printf("tiny_attention onednn: SQNR vs fp32: qfx %.2f dB, PyTorch %.2f dB\n", ours, theirs);
  EXPECT_GE(ours, theirs - 0.5);
  const std::string path = ::testing::TempDir() + "/tiny_attention.qfx";
  ASSERT_TRUE(io::SaveModel(path, *gm, {2, 5, 16}, "coverage test").ok());
  auto loaded = io::LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tensor again = *RunModule(*loaded->module, x);
  EXPECT_EQ(std::memcmp(again.raw_data(), y.raw_data(), y.nbytes()), 0);
}

// PT2E: Export inlines LayerNorm into layer_norm with get_attr parameters; XNNPACKQuantizer annotates the
// linear layers and leaves the rest float; the lowered model runs int8 linear layers.
TEST(TinyAttention, Pt2eQuantizesTheLinearLayers) {
  auto model = SeededAttention();
  auto gm = *Export(model, {{2, 5, 16}});
  int layer_norms = 0;
  for (const fx::Node* n : gm->graph()) {
    layer_norms += n->op() == fx::Opcode::kCallFunction && n->target().op == OpId::kLayerNorm;
  }
  EXPECT_EQ(layer_norms, 2) << gm->graph().ToString();
  XNNPACKQuantizer q;
  q.set_global(get_symmetric_quantization_config(/*per_channel=*/true));
  auto report = PreparePt2e(*gm, q);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(RunModule(*gm, testing::HashUniform("calib", {2, 5, 16}, -1, 1)).ok());
  ASSERT_TRUE(ConvertPt2e(*gm).ok());
  const absl::Status lowered = LowerPt2e(*gm);
  ASSERT_TRUE(lowered.ok()) << lowered;
  int linears = 0;
  for (const auto& [path, m] : gm->named_modules()) linears += dynamic_cast<const QuantizedLinear*>(m) != nullptr;
  EXPECT_EQ(linears, 6) << gm->graph().ToString();
  const Tensor x = testing::Get(AttentionFixture(), "input");
  const double sqnr = SqnrDb(*RunModule(*model, x), *RunModule(*gm, x));
  std::printf("tiny_attention PT2E XNNPACKQuantizer: SQNR vs fp32 %.2f dB\n", sqnr);
  EXPECT_GT(sqnr, 20.0);
}

Tensor Indices(Shape shape, const std::vector<int64_t>& values) {
  Tensor t = Tensor::Empty(std::move(shape), DType::kI64);
  std::copy(values.begin(), values.end(), t.data<int64_t>());
  return t;
}

// Each new op's backward against PyTorch's gradients of mean(op(inputs) * r).
TEST(TransformerOps, GradientsMatchPyTorch) {
  using Fn = std::function<train::Var(train::Tape&, const std::vector<train::Var>&)>;
  const io::Safetensors st = testing::ReadFixture("coverage/grads.safetensors");
  namespace ag = train::ag;
  const std::map<std::string, std::pair<int, Fn>> cases = {
      {"layer_norm",
       {3, [](train::Tape& t,
              const std::vector<train::Var>& v) { return ag::layer_norm(t, v[0], {6}, v[1], v[2], 1e-5); }}},
      {"layer_norm_2d_plain",
       {1,
        [](train::Tape& t, const std::vector<train::Var>& v) {
          return ag::layer_norm(t, v[0], {3, 4}, train::Var{}, train::Var{}, 1e-3);
        }}},
      {"matmul_broadcast",
       {2, [](train::Tape& t, const std::vector<train::Var>& v) { return ag::matmul(t, v[0], v[1]); }}},
      {"matmul_2d", {2, [](train::Tape& t, const std::vector<train::Var>& v) { return ag::matmul(t, v[0], v[1]); }}},
      {"bmm", {2, [](train::Tape& t, const std::vector<train::Var>& v) { return ag::bmm(t, v[0], v[1]); }}},
      {"transpose", {1, [](train::Tape& t, const std::vector<train::Var>& v) { return ag::transpose(t, v[0], 0, 2); }}},
      {"permute",
       {1,
        [](train::Tape& t, const std::vector<train::Var>& v) {
          return ag::permute(t, v[0], {2, 0, 3, 1});
        }}},
      {"embedding_padding",
       {1,
        [](train::Tape& t, const std::vector<train::Var>& v) {
          return ag::embedding(t, train::Tape::Constant(Indices({2, 3}, {0, 2, 1, 4, 1, 2})), v[0], 1);
        }}},
      {"channel_shuffle",
       {1, [](train::Tape& t, const std::vector<train::Var>& v) { return ag::channel_shuffle(t, v[0], 3); }}},
      {"narrow", {1, [](train::Tape& t, const std::vector<train::Var>& v) { return ag::narrow(t, v[0], 1, 1, 3); }}},
      {"narrow_last_dim_negative_start",
       {1, [](train::Tape& t, const std::vector<train::Var>& v) { return ag::narrow(t, v[0], -1, -3, 2); }}},
      {"multi_head_attention",
       {5,
        [](train::Tape& t, const std::vector<train::Var>& v) {
          return ag::multi_head_attention(t, v[0], v[1], v[2], v[3], v[4], 2, true);
        }}},
      {"multi_head_attention_seq_first_no_bias",
       {3,
        [](train::Tape& t, const std::vector<train::Var>& v) {
          return ag::multi_head_attention(t, v[0], v[1], train::Var{}, v[2], train::Var{}, 4, false);
        }}},
      {"select", {1, [](train::Tape& t, const std::vector<train::Var>& v) { return ag::select(t, v[0], 1, 1); }}},
      {"select_negative",
       {1, [](train::Tape& t, const std::vector<train::Var>& v) { return ag::select(t, v[0], -1, -2); }}},
      {"expand", {1, [](train::Tape& t, const std::vector<train::Var>& v) { return ag::expand(t, v[0], {2, 3, -1, 4}); }}},
      {"conv_transpose2d", {3,
                            [](train::Tape& t, const std::vector<train::Var>& v) {
                              F::ConvTranspose2dOptions o;
                              o.stride = {2, 2};
                              o.padding = {1, 1};
                              o.output_padding = {1, 1};
                              return ag::conv_transpose2d(t, v[0], v[1], v[2], o);
                            }}},
      {"conv_transpose2d_groups_dilation", {2,
                                            [](train::Tape& t, const std::vector<train::Var>& v) {
                                              F::ConvTranspose2dOptions o;
                                              o.stride = {1, 2};
                                              o.padding = {1, 0};
                                              o.groups = 2;
                                              o.dilation = {2, 1};
                                              return ag::conv_transpose2d(t, v[0], v[1], train::Var{}, o);
                                            }}},
      {"interpolate_nearest",
       {1,
        [](train::Tape& t,
           const std::vector<train::Var>& v) { return ag::interpolate(t, v[0], Interp({7, 5}, {}, false, false)); }}},
      {"interpolate_bilinear",
       {1, [](train::Tape& t,
              const std::vector<train::Var>& v) { return ag::interpolate(t, v[0], Interp({}, {1.5}, true, false)); }}},
      {"interpolate_bilinear_align",
       {1, [](train::Tape& t,
              const std::vector<train::Var>& v) { return ag::interpolate(t, v[0], Interp({9, 7}, {}, true, true)); }}},
  };
  for (const auto& [name, c] : cases) {
    SCOPED_TRACE(name);
    train::Tape tape;
    std::vector<train::Var> vars;
    std::vector<Tensor> inputs;
    for (int i = 0; i < c.first; ++i) {
      inputs.push_back(testing::Get(st, name + "/in" + std::to_string(i)).Clone());
      vars.push_back(tape.Param(inputs.back()));
    }
    const train::Var y = c.second(tape, vars);
    EXPECT_LT(testing::MaxRelError(y.value, testing::Get(st, name + "/out")), 1e-5);
    tape.Backward(ag::mean(tape, ag::mul(tape, y, train::Tape::Constant(testing::Get(st, name + "/r"))), {}, false));
    for (int i = 0; i < c.first; ++i) {
      EXPECT_LT(testing::MaxRelError(tape.ParamGrad(inputs[i]), testing::Get(st, name + "/grad" + std::to_string(i))),
                1e-4)
          << "input " << i;
    }
  }
}

// Embedding tokens [N, T] -> [N, T, 16] -> Linear; a ShuffleNet-style conv -> ChannelShuffle -> conv.
class EmbedLinear : public nn::Module {
 public:
  EmbedLinear() {
    emb = register_module("emb", std::make_shared<nn::Embedding>(10, 16, 0));
    fc = register_module("fc", std::make_shared<nn::Linear>(16, 4));
  }
  std::string type_name() const override { return "EmbedLinear"; }
  Tensor forward(const Tensor& x) override { return (*fc)((*emb)(x)); }
  std::shared_ptr<nn::Module> emb, fc;
};

class ShuffleCnn : public nn::Module {
 public:
  ShuffleCnn() {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(4, 8, 3, Conv2dArgs{1, 1, 1, 2}));
    relu = register_module("relu", std::make_shared<nn::ReLU>());
    shuffle = register_module("shuffle", std::make_shared<nn::ChannelShuffle>(2));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(8, 8, 3, Conv2dArgs{1, 1, 1, 8}));
  }
  std::string type_name() const override { return "ShuffleCnn"; }
  Tensor forward(const Tensor& x) override { return (*conv2)(F::channel_shuffle((*shuffle)((*relu)((*conv1)(x))), 4)); }
  std::shared_ptr<nn::Module> conv1, relu, shuffle, conv2;
};

// Embedding stays float (PyTorch's static int8 flows keep it float too) with its reason, the linear layer
// after it runs int8, and the model saves and loads bit for bit; channel_shuffle runs on quint8 tensors
// between int8 convs.
TEST(MoreOps, EmbeddingStaysFloatChannelShuffleRunsInt8) {
  auto emb_model = std::make_shared<EmbedLinear>();
  testing::HashInit(*emb_model);
  emb_model->eval();
  const Tensor tokens = Indices({2, 6}, {1, 0, 9, 3, 3, 7, 2, 8, 0, 5, 4, 6});
  const Tensor fp32 = *RunModule(*emb_model, tokens);
  auto gm = *fx::SymbolicTrace(emb_model);
  PrepareOptions opt;
  opt.config = *LoadQuantConfig("x86");
  auto report = Prepare(*gm, opt);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->left_float.at("emb"), FloatReason::kNoKernel);
  ASSERT_TRUE(RunModule(*gm, tokens).ok());
  ASSERT_TRUE(Convert(*gm, *report).ok());
  EXPECT_NE(dynamic_cast<QuantizedLinear*>(gm->submodule("fc")), nullptr) << gm->graph().ToString();
  const Tensor y = *RunModule(*gm, tokens);
  EXPECT_GT(SqnrDb(fp32, y), 30.0);
  const std::string path = ::testing::TempDir() + "/embed.qfx";
  const absl::Status saved = io::SaveModel(path, *gm, {2, 6}, "coverage test");
  ASSERT_TRUE(saved.ok()) << saved;
  auto loaded = io::LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tensor again = *RunModule(*loaded->module, tokens);
  EXPECT_EQ(std::memcmp(again.raw_data(), y.raw_data(), y.nbytes()), 0);

  auto shuffle_model = std::make_shared<ShuffleCnn>();
  testing::HashInit(*shuffle_model);
  shuffle_model->eval();
  const Tensor x = testing::HashUniform("test", {2, 4, 7, 6}, -1, 1);
  const Tensor want = *RunModule(*shuffle_model, x);
  auto sg = *fx::SymbolicTrace(shuffle_model);
  auto sr = Prepare(*sg, opt);
  ASSERT_TRUE(sr.ok()) << sr.status();
  EXPECT_EQ(sr->quantized.at("shuffle"), "share-qparams");
  EXPECT_EQ(sr->quantized.at("channel_shuffle"), "share-qparams");
  ASSERT_TRUE(RunModule(*sg, testing::HashUniform("calib", {2, 4, 7, 6}, -1, 1)).ok());
  ASSERT_TRUE(Convert(*sg, *sr).ok());
  const double sqnr = SqnrDb(want, *RunModule(*sg, x));
  std::printf("shuffle_cnn x86: SQNR vs fp32 %.2f dB\n", sqnr);
  EXPECT_GT(sqnr, 25.0);
}

// A decoder: conv -> ConvTranspose2d (float: no int8 kernel yet, the reason in the report) -> conv, the
// convs int8 around it; saved and loaded bit for bit.
class Decoder : public nn::Module {
 public:
  Decoder() {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(3, 8, 3, Conv2dArgs{2, 1}));
    up = register_module("up", std::make_shared<nn::ConvTranspose2d>(8, 6, 3, nn::ConvTranspose2dArgs{2, 1, 1}));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(6, 4, 3, Conv2dArgs{1, 1}));
  }
  std::string type_name() const override { return "Decoder"; }
  Tensor forward(const Tensor& x) override { return (*conv2)(F::relu((*up)(F::relu((*conv1)(x))))); }
  std::shared_ptr<nn::Module> conv1, up, conv2;
};

TEST(MoreOps, ConvTransposeStaysFloatBetweenInt8Convs) {
  auto model = std::make_shared<Decoder>();
  testing::HashInit(*model);
  model->eval();
  const Tensor x = testing::HashUniform("test", {2, 3, 8, 6}, -1, 1);
  const Tensor fp32 = *RunModule(*model, x);
  EXPECT_EQ(fp32.shape(), (Shape{2, 4, 8, 6}));
  auto gm = *fx::SymbolicTrace(model);
  PrepareOptions opt;
  opt.config = *LoadQuantConfig("x86");
  auto report = Prepare(*gm, opt);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->left_float.at("up"), FloatReason::kNoKernel);
  ASSERT_TRUE(RunModule(*gm, testing::HashUniform("calib", {2, 3, 8, 6}, -1, 1)).ok());
  ASSERT_TRUE(Convert(*gm, *report).ok());
  EXPECT_NE(dynamic_cast<QuantizedConv2d*>(gm->submodule("conv2")), nullptr) << gm->graph().ToString();
  const Tensor y = *RunModule(*gm, x);
  const double sqnr = SqnrDb(fp32, y);
  std::printf("decoder x86: SQNR vs fp32 %.2f dB\n", sqnr);
  EXPECT_GT(sqnr, 25.0);
  const std::string path = ::testing::TempDir() + "/decoder.qfx";
  ASSERT_TRUE(io::SaveModel(path, *gm, {2, 3, 8, 6}, "coverage test").ok());
  auto loaded = io::LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tensor again = *RunModule(*loaded->module, x);
  EXPECT_EQ(std::memcmp(again.raw_data(), y.raw_data(), y.nbytes()), 0);
}

// Transposes copy any dtype (a quantized tensor keeps its qparams); bad dims and shapes are errors that
// name the op, the operands and the rule.
// chunk / split give PyTorch's pieces (sizes checked against torch.chunk / torch.split on the same sizes),
// narrow copies any dtype and keeps qparams, and bad arguments name the rule.
TEST(SplitOps, PiecesAsPyTorchNarrowKeepsQParamsErrorsNameTheRule) {
  const auto lengths = [](const std::vector<Tensor>& pieces) {
    std::vector<int64_t> out;
    for (const Tensor& p : pieces) out.push_back(p.size(1));
    return out;
  };
  const auto row = [](int64_t n) { return Tensor::Zeros({2, n, 3}); };
  EXPECT_EQ(lengths(F::chunk(row(5), 4, 1)), (std::vector<int64_t>{2, 2, 1}));
  EXPECT_EQ(lengths(F::chunk(row(6), 4, 1)), (std::vector<int64_t>{2, 2, 2}));
  EXPECT_EQ(lengths(F::chunk(row(0), 2, 1)), (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(lengths(F::chunk(row(3), 5, 1)), (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(lengths(F::chunk(row(7), 3, -2)), (std::vector<int64_t>{3, 3, 1}));
  EXPECT_EQ(lengths(F::split(row(5), 2, 1)), (std::vector<int64_t>{2, 2, 1}));
  EXPECT_EQ(lengths(F::split(row(0), 3, 1)), (std::vector<int64_t>{0}));
  EXPECT_EQ(lengths(F::split(row(4), 4, 1)), (std::vector<int64_t>{4}));
  EXPECT_EQ(lengths(F::split(row(6), std::vector<int64_t>{1, 0, 5}, 1)), (std::vector<int64_t>{1, 0, 5}));
  // Values: piece i of x holds x's entries [start, start + length) along the dim.
  Tensor x = Tensor::Zeros({2, 5, 3});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(i);
  const std::vector<Tensor> pieces = F::split(x, std::vector<int64_t>{2, 3}, 1);
  EXPECT_EQ(pieces[1].at({1, 0, 2}), x.at({1, 2, 2}));
  EXPECT_EQ(F::narrow(x, 2, -1, 1).at({1, 4, 0}), x.at({1, 4, 2}));
  Tensor q = Tensor::Quantized({1, 4, 2}, DType::kU8, QuantInfo{0.25f, 9});
  for (int i = 0; i < 8; ++i) q.data<uint8_t>()[i] = static_cast<uint8_t>(10 * i);
  const Tensor qn = F::narrow(q, 1, 1, 2);
  EXPECT_EQ(qn.quant().zero_point, 9);
  EXPECT_EQ(qn.data<uint8_t>()[0], 20);
  const auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { F::narrow(x, 1, 4, 2); }).find("length 2 from start 4 must fit in the 5 entries of dim 1"),
            std::string::npos);
  EXPECT_NE(message([&] { F::narrow(x, 3, 0, 1); }).find("narrow dim"), std::string::npos);
  EXPECT_NE(message([&] { F::chunk(x, 0, 1); }).find("chunks must be positive"), std::string::npos);
  EXPECT_NE(message([&] {
              F::split(x, std::vector<int64_t>{2, 2}, 1);
            }).find("sum to 4, not to the 5 entries"),
            std::string::npos);
  EXPECT_NE(message([&] { F::chunk(row(0), int64_t{1} << 40, 1); }).find("is more than 65536"), std::string::npos);
}

TEST(TransformerOps, ShapesDtypesAndErrors) {
  Tensor q = Tensor::Quantized({2, 3}, DType::kU8, QuantInfo{0.5f, 7});
  for (int i = 0; i < 6; ++i) q.data<uint8_t>()[i] = static_cast<uint8_t>(i);
  const Tensor t = q.Transpose(0, 1);
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  EXPECT_EQ(t.quant().zero_point, 7);
  EXPECT_EQ(t.data<uint8_t>()[1], 3);  // t[0][1] = q[1][0]
  const auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const Tensor a = Tensor::Zeros({2, 3, 4});
  EXPECT_NE(message([&] {
              a.Permute({0, 0, 1});
            }).find("dims must name each of the 3 dimensions once"),
            std::string::npos);
  EXPECT_NE(message([&] {
              F::matmul(a, Tensor::Zeros({5, 2}));
            }).find("the input's last size 4 must equal"),
            std::string::npos);
  EXPECT_NE(message([&] { F::matmul(a, Tensor::Zeros({4})); }).find("rank 2 or more"), std::string::npos);
  EXPECT_NE(message([&] { F::bmm(a, Tensor::Zeros({3, 4, 2})); }).find("with one B"), std::string::npos);
  EXPECT_NE(message([&] { F::layer_norm(a, {3}, Tensor(), Tensor()); }).find("must end in normalized_shape [3]"),
            std::string::npos);
  EXPECT_EQ(F::matmul(Tensor::Full({3, 2, 4}, 1.f), Tensor::Full({4, 5}, 2.f)).shape(), (Shape{3, 2, 5}));
  // q_matmul: the product of the dequantized values, requantized (exact here).
  const Tensor qa = F::quantize(Tensor::Full({2, 2, 3}, 1.f), 0.5, 10),
               qb = F::quantize(Tensor::Full({2, 3, 4}, 2.f), 0.25, 3);
  const Tensor qy = F::q_matmul(qa, qb, 0.5, 5);
  EXPECT_EQ(qy.shape(), (Shape{2, 2, 4}));
  EXPECT_EQ(F::dequantize(qy).data<float>()[7], 6.f);  // 1 * 2 summed over 3
  // Batch dimensions that broadcast take the float detour: the same values here.
  const Tensor qy2 = F::q_matmul(qa, F::quantize(Tensor::Full({3, 4}, 2.f), 0.25, 3), 0.5, 5);
  EXPECT_EQ(qy2.shape(), (Shape{2, 2, 4}));
  EXPECT_EQ(std::memcmp(qy2.raw_data(), qy.raw_data(), qy.nbytes()), 0);
  EXPECT_NE(message([&] {
              F::q_matmul(qa, F::quantize(Tensor::Zeros({4, 4}), 0.5, 0), 1.0, 0);
            }).find("[..., k, n]"),
            std::string::npos);
  EXPECT_NE(message([&] { F::q_matmul(qa, Tensor::Zeros({2, 3, 4}), 1.0, 0); }).find("q_matmul"), std::string::npos);
  const Tensor image = Tensor::Zeros({1, 1, 4, 4});
  EXPECT_NE(message([&] {
              F::interpolate(image, Interp({40000, 40000}, {}, false, false));
            }).find("at most 2^26 values per plane"),
            std::string::npos);
  EXPECT_NE(message([&] { F::interpolate(image, Interp({}, {1e9}, true, false)); }).find("size of at most 65536"),
            std::string::npos);
  EXPECT_NE(message([&] {
              F::interpolate(image, Interp({8, 8}, {2.0}, false, false));
            }).find("exactly one of"),
            std::string::npos);
  EXPECT_NE(message([&] {
              F::embedding(Indices({2}, {0, 7}), Tensor::Zeros({5, 3}));
            }).find("index 7 (element 1 of i64[2]) is out of range for 5 embeddings"),
            std::string::npos);
  EXPECT_NE(message([&] {
              F::channel_shuffle(Tensor::Zeros({1, 6, 2}), 4);
            }).find("divide the 6 channels"),
            std::string::npos);
  F::ConvTranspose2dOptions wide;
  wide.stride = {60000, 60000};
  EXPECT_NE(message([&] {
              F::conv_transpose2d(image, Tensor::Zeros({1, 1, 3, 3}), Tensor(), wide);
            }).find("2^26 values per plane"),
            std::string::npos);
  wide.stride = {1, 1};
  wide.output_padding = {1, 0};
  EXPECT_NE(message([&] {
              F::conv_transpose2d(image, Tensor::Zeros({1, 1, 3, 3}), Tensor(), wide);
            }).find("must be smaller than the stride or the dilation"),
            std::string::npos);
  EXPECT_NE(message([&] {
              F::conv_transpose2d(image, Tensor::Zeros({2, 1, 3, 3}), Tensor(), {});
            }).find("must start with the input's 1 channels"),
            std::string::npos);
}

}  // namespace
}  // namespace quant
}  // namespace qfx
