// qfx tests: ops added through one registration each (src/nn/ops.cc) — GELU and LeakyReLU as modules and
// functions: traced, fp32, backward, quantized where PyTorch 1.13's x86 backend quantizes them (LeakyReLU:
// a q_unary table; GELU: float, with its reason), saved to and loaded from .qfx; Hardtanh, which already
// had its registration, through the same paths. And a user-defined leaf module registered as a module kind
// so that a model using it can be saved and loaded.
#include <cmath>
#include <cstring>

#include "gtest/gtest.h"
#include "qfx/fx/tracer.h"
#include "qfx/io/model_file.h"
#include "qfx/nn/modules.h"
#include "qfx/nn/ops.h"
#include "qfx/quant/passes.h"
#include "qfx/train/graph_tape.h"
#include "qfx/train/ops.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace {

std::string Tmp(const std::string& name) {
  const char* d = std::getenv("TEST_TMPDIR");
  return std::string(d ? d : "/tmp") + "/" + name;
}

// conv -> GELU -> conv -> LeakyReLU(0.2) -> leaky_relu(0.05) -> gelu -> hardtanh(-0.5, 0.5) -> Hardtanh.
class Activations : public nn::Module {
 public:
  Activations() {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(3, 8, 3, nn::Conv2dArgs{1, 1}));
    gelu = register_module("gelu", std::make_shared<nn::GELU>());
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(8, 8, 1));
    leaky = register_module("leaky", std::make_shared<nn::LeakyReLU>(0.2));
    clamp = register_module("clamp", std::make_shared<nn::Hardtanh>(-0.25f, 0.75f));
  }
  std::string type_name() const override { return "Activations"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*leaky)((*conv2)((*gelu)((*conv1)(x))));
    y = F::hardtanh(F::gelu(F::leaky_relu(y, 0.05)), -0.5f, 0.5f);
    return (*clamp)(y);
  }
  std::shared_ptr<nn::Module> conv1, gelu, conv2, leaky, clamp;
};

float GeluRef(double x) { return static_cast<float>(x * 0.5 * (1 + std::erf(x / std::sqrt(2.0)))); }

TEST(NewOps, TracedAsTheirRegisteredNames) {
  auto gm = *fx::SymbolicTrace(std::make_shared<Activations>());
  std::vector<std::string> targets;
  for (const fx::Node* n : gm->graph()) {
    if (n->op() == fx::Opcode::kCallFunction) targets.push_back(n->target_string());
  }
  EXPECT_EQ(targets, (std::vector<std::string>{"leaky_relu", "gelu", "hardtanh"}));
  EXPECT_STREQ(nn::GetOpSchema(OpId::kGelu).torch_name, "torch._C._nn.gelu");
  EXPECT_EQ(nn::FindOp("leaky_relu", false)->id, OpId::kLeakyRelu);
  EXPECT_EQ(nn::KindOf(nn::GELU())->type, "GELU");
  EXPECT_EQ(nn::ModuleOp(nn::LeakyReLU(0.3)), OpId::kLeakyRelu);
}

TEST(NewOps, Fp32FollowsPyTorchsFormulas) {
  const Tensor x = Tensor::FromVector({6}, std::vector<float>{-3.f, -1.f, -0.f, 0.f, 0.5f, 2.f});
  const Tensor g = F::gelu(x), l = F::leaky_relu(x, 0.1);
  for (int i = 0; i < 6; ++i) {
    const float v = x.data<float>()[i];
    EXPECT_NEAR(g.data<float>()[i], GeluRef(v), 1e-6f) << v;
    EXPECT_EQ(l.data<float>()[i], v > 0 ? v : v * 0.1f) << v;
  }
  EXPECT_EQ(F::leaky_relu(x).data<float>()[0], -3.f * 0.01f);  // PyTorch's default slope
}

TEST(NewOps, BackwardMatchesFiniteDifferences) {
  const Tensor x = testing::HashUniform("x", {64}, -3, 3);
  for (const auto& [op, args] : std::vector<std::pair<OpId, std::vector<OpArg>>>{
           {OpId::kGelu, {}}, {OpId::kLeakyRelu, {0.2}}, {OpId::kHardtanh, {-0.5, 1.5}}}) {
    train::Tape tape;
    const train::Var v = tape.Param(x);
    const train::Var y = train::ag::elementwise(tape, v, op, args);
    tape.Backward(train::ag::mean(tape, y, {0}, false));
    const Tensor grad = tape.ParamGrad(x);
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double xi = x.data<float>()[i], h = 1e-3;
      auto f = [&, op = op, &args = args](double at) {  // structured bindings: captured by name (clang)
        std::vector<OpArg> all = {Tensor::Full({1}, static_cast<float>(at))};
        all.insert(all.end(), args.begin(), args.end());
        return static_cast<double>(nn::RunOp(op, all).data<float>()[0]);
      };
      const double want = (f(xi + h) - f(xi - h)) / (2 * h) / x.numel();
      EXPECT_NEAR(grad.data<float>()[i], want, 2e-4 / x.numel() * 50) << nn::GetOpSchema(op).name << " at " << xi;
    }
  }
}

TEST(NewOps, ModelTrainsThroughTheGraph) {
  auto gm = *fx::SymbolicTrace(std::make_shared<Activations>());
  train::GraphForward fwd(*gm);
  ASSERT_TRUE(fwd.CheckDifferentiable().ok()) << fwd.CheckDifferentiable();
  train::Tape tape;
  auto y = fwd.Run(tape, testing::HashUniform("x", {2, 3, 8, 8}, -1, 1));
  ASSERT_TRUE(y.ok()) << y.status();
  tape.Backward(train::ag::mean(tape, *y, {0, 1, 2, 3}, false));
  auto* conv1 = static_cast<nn::Conv2d*>(gm->submodule("conv1"));
  EXPECT_TRUE(tape.ParamGrad(conv1->weight).defined());
}

// Every module kind that computes an op trains through that op's registration: the taped forward equals
// the module's own forward, bit for bit, and gradients reach the first layer.
class Pools : public nn::Module {
 public:
  Pools() {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(3, 4, 3));
    avg = register_module("avg", std::make_shared<nn::AvgPool2d>(2, 1, 1, false, false));
    max = register_module("max", std::make_shared<nn::MaxPool2d>(2));
    six = register_module("six", std::make_shared<nn::ReLU6>());
    ada = register_module("ada", std::make_shared<nn::AdaptiveAvgPool2d>(2));
    flat = register_module("flat", std::make_shared<nn::Flatten>());
    fc = register_module("fc", std::make_shared<nn::Linear>(16, 5));
    soft = register_module("soft", std::make_shared<nn::Softmax>(1));
  }
  std::string type_name() const override { return "Pools"; }
  Tensor forward(const Tensor& x) override {
    return (*soft)((*fc)((*flat)((*ada)((*six)((*max)((*avg)((*conv)(x))))))));
  }
  std::shared_ptr<nn::Module> conv, avg, max, six, ada, flat, fc, soft;
};

TEST(ModuleKinds, ModulesTrainThroughTheirOps) {
  auto model = std::make_shared<Pools>();
  testing::HashInit(*model);
  model->eval();
  auto gm = *fx::SymbolicTrace(model);
  const Tensor x = testing::HashUniform("x", {2, 3, 10, 10}, -1, 1);
  const Tensor want = *RunModule(*gm, x);
  train::GraphForward fwd(*gm);
  train::Tape tape;
  auto y = fwd.Run(tape, x);
  ASSERT_TRUE(y.ok()) << y.status();
  ASSERT_EQ(y->value.shape(), want.shape());
  EXPECT_EQ(std::memcmp(y->value.raw_data(), want.raw_data(), want.nbytes()), 0);
  tape.Backward(train::ag::mean(tape, train::ag::mul(tape, *y, *y), {0, 1}, false));
  EXPECT_TRUE(tape.ParamGrad(static_cast<nn::Conv2d*>(gm->submodule("conv"))->weight).defined());
}

// `model` quantized with the x86 preset; with `reference_out`, also the output of its Q/DQ reference graph
// (ConvertToReference, before Lower) on `probe`.
std::shared_ptr<fx::GraphModule> Quantized(std::shared_ptr<nn::Module> model, const Shape& shape,
                                           quant::PrepareReport* report, const Tensor& probe = Tensor(),
                                           Tensor* reference_out = nullptr) {
  testing::HashInit(*model);
  model->eval();
  auto gm = *fx::SymbolicTrace(model);
  quant::PrepareOptions opt;
  opt.config = *quant::LoadQuantConfig("x86");
  auto r = quant::Prepare(*gm, opt);
  EXPECT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(RunModule(*gm, testing::HashUniform("calib", shape, -1, 1)).ok());
  EXPECT_TRUE(quant::ConvertToReference(*gm, *r).ok());
  if (reference_out != nullptr) *reference_out = *RunModule(*gm, probe);
  EXPECT_TRUE(quant::Lower(*gm, *r).ok());
  *report = *r;
  return gm;
}

int Count(const fx::Graph& g, OpId op) {
  int n = 0;
  for (const fx::Node* node : g) n += node->op() == fx::Opcode::kCallFunction && node->target().op == op;
  return n;
}

// GELU stays float in PyTorch's backends (the report says so); between two int8 ops its float detour,
// quantize(gelu(dequantize(q))), runs as the same values' q_unary table, byte for byte.
TEST(NewOps, LeakyReluQuantizesThroughTheTableGeluStaysFloatAndRunsAsItsTable) {
  quant::PrepareReport report;
  const Tensor x = testing::HashUniform("x", {2, 3, 8, 8}, -1, 1);
  Tensor want;
  auto gm = Quantized(std::make_shared<Activations>(), {2, 3, 8, 8}, &report, x, &want);
  EXPECT_EQ(report.quantized.at("leaky"), "leaky_relu");
  EXPECT_EQ(report.quantized.at("leaky_relu"), "leaky_relu");
  EXPECT_EQ(report.quantized.at("hardtanh"), "share-qparams");
  EXPECT_EQ(report.left_float.at("gelu"), quant::FloatReason::kNoKernel);
  EXPECT_EQ(report.left_float.at("gelu_1"), quant::FloatReason::kNoKernel);
  EXPECT_EQ(Count(gm->graph(), OpId::kQUnary), 4) << gm->graph().ToString();
  EXPECT_EQ(Count(gm->graph(), OpId::kDequantize), 1) << gm->graph().ToString();  // at the output only
  // Each q_unary is quantize(op(dequantize(q))) with the op's arguments (leaky_relu's slope).
  int gelu = 0;
  for (const fx::Node* n : gm->graph()) {
    if (n->op() != fx::Opcode::kCallFunction || n->target().op != OpId::kQUnary) continue;
    const OpId op = std::get<OpId>(n->args()[1]);
    gelu += op == OpId::kGelu;
    EXPECT_EQ(n->args().size(), op == OpId::kLeakyRelu ? 5u : 4u) << n->name();
  }
  EXPECT_EQ(gelu, 2);
  const Tensor lowered = *RunModule(*gm, x);
  EXPECT_EQ(std::memcmp(lowered.raw_data(), want.raw_data(), want.nbytes()), 0);
  const Tensor q = F::quantize(testing::HashUniform("q", {64}, -2, 2), 0.02, 100);
  const Tensor got = F::q_unary(q, OpId::kLeakyRelu, 0.01, 128, {0.2});
  const Tensor expected = F::quantize(F::leaky_relu(F::dequantize(q), 0.2), 0.01, 128);
  EXPECT_EQ(std::memcmp(got.raw_data(), expected.raw_data(), 64), 0);
}

TEST(NewOps, QfxRoundTripIsBitIdentical) {
  quant::PrepareReport report;
  auto gm = Quantized(std::make_shared<Activations>(), {2, 3, 8, 8}, &report);
  const std::string path = Tmp("activations.qfx");
  ASSERT_TRUE(io::SaveModel(path, *gm, {1, 3, 8, 8}, "new_ops_test").ok());
  auto loaded = io::LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->module->graph().ToString(), gm->graph().ToString());
  const Tensor x = testing::HashUniform("x", {2, 3, 8, 8}, -1, 1);
  auto a = RunModule(*gm, x), b = RunModule(*loaded->module, x);
  ASSERT_TRUE(a.ok() && b.ok()) << b.status();
  EXPECT_EQ(std::memcmp(a->raw_data(), b->raw_data(), a->nbytes()), 0);
}

// A leaf module of a user's own: y = x * sigmoid(gain * x), with a float gain in its config.
class Gate : public nn::Module {
 public:
  explicit Gate(double gain) : gain(gain) {}
  std::string type_name() const override { return "Gate"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override { return F::mul(x, F::sigmoid(F::mul(x, static_cast<float>(gain)))); }
  double gain;
};

class Gated : public nn::Module {
 public:
  Gated() {
    fc = register_module("fc", std::make_shared<nn::Linear>(16, 8));
    gate = register_module("gate", std::make_shared<Gate>(1.5));
  }
  std::string type_name() const override { return "Gated"; }
  Tensor forward(const Tensor& x) override { return (*gate)((*fc)(x)); }
  std::shared_ptr<nn::Module> fc, gate;
};

TEST(ModuleKinds, UserDefinedLeafModuleSavesOnceRegistered) {
  quant::PrepareReport report;
  auto gm = Quantized(std::make_shared<Gated>(), {4, 16}, &report);
  EXPECT_EQ(report.left_float.at("gate"), quant::FloatReason::kNoKernel);
  const std::string path = Tmp("gated.qfx");
  const absl::Status unregistered = io::SaveModel(path, *gm, {1, 16}, "new_ops_test");
  EXPECT_NE(unregistered.message().find("module type Gate cannot be saved"), std::string::npos) << unregistered;
  EXPECT_NE(unregistered.message().find("RegisterModuleKind"), std::string::npos) << unregistered;

  nn::ModuleKind kind;
  kind.type = "Gate";
  kind.cpp_type = typeid(Gate);
  kind.config = [](const nn::Module& m) { return nlohmann::json{{"gain", static_cast<const Gate&>(m).gain}}; };
  kind.make = [](const nlohmann::json& c) { return std::make_shared<Gate>(c.at("gain").get<double>()); };
  ASSERT_TRUE(nn::RegisterModuleKind(kind).ok());
  EXPECT_EQ(nn::RegisterModuleKind(kind).code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(io::SaveModel(path, *gm, {1, 16}, "new_ops_test").ok());
  auto loaded = io::LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(static_cast<Gate*>(loaded->module->submodule("gate"))->gain, 1.5);
  const Tensor x = testing::HashUniform("x", {4, 16}, -1, 1);
  auto a = RunModule(*gm, x), b = RunModule(*loaded->module, x);
  ASSERT_TRUE(a.ok() && b.ok()) << b.status();
  EXPECT_EQ(std::memcmp(a->raw_data(), b->raw_data(), a->nbytes()), 0);
}

}  // namespace
}  // namespace qfx
