// qfx tests: the eager-mode flow (qfx/quant/eager.h) against PyTorch 1.13's eager prepare / convert
// (tests/data/quant/eager_*.json from tools/gen_golden.py), against qfx's own FX flow, and on a model
// that SymbolicTrace refuses.
#include "qfx/quant/eager.h"

#include <cmath>
#include <fstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "qfx/fx/tracer.h"
#include "qfx/io/model_file.h"
#include "qfx/models/quantizable.h"
#include "qfx/models/zoo.h"
#include "qfx/quant/passes.h"
#include "qfx/train/graph_tape.h"
#include "qfx/train/ops.h"
#include "qfx/train/optim.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace quant {
namespace {

using ModulePtr = std::shared_ptr<nn::Module>;

nlohmann::json Fixture(const std::string& name) {
  std::ifstream f("tests/data/quant/" + name + ".json");
  EXPECT_TRUE(f.good()) << name;
  return nlohmann::json::parse(f);
}

QConfigMapping Global(const std::string& preset) {
  QConfigMapping m;
  m.SetGlobal(*PresetQConfig(preset));
  return m;
}

ModulePtr HashModel(const std::string& name) {
  ModulePtr m = *models::CreateQuantizable(name);
  testing::HashInit(*m);
  return m;
}

Tensor Forward(nn::Module& m, const Tensor& x) {
  absl::StatusOr<Tensor> y = nn::RunModule(m, x);
  EXPECT_TRUE(y.ok()) << y.status();
  return y.ok() ? *y : Tensor();
}

// Fused, prepared with `preset`'s global qconfig and calibrated on hash_uniform('calib').
ModulePtr PreparedEager(const std::string& name, const std::string& preset, const Shape& shape,
                        EagerReport* report = nullptr) {
  ModulePtr m = HashModel(name);
  EXPECT_TRUE(FuseModules(*m, *models::FusionLists(name, *m)).ok());
  const QConfigMapping mapping = Global(preset);
  absl::StatusOr<EagerReport> r = PrepareEager(*m, &mapping);
  EXPECT_TRUE(r.ok()) << r.status();
  if (report != nullptr && r.ok()) *report = *r;
  Forward(*m, testing::HashUniform("calib", shape, -1, 1));
  return m;
}

void ExpectQParamsClose(nn::Module& m, const std::vector<std::string>& observed, const nlohmann::json& want) {
  int exact = 0;
  for (const std::string& path : observed) {
    nn::Module* obs = m.submodule(path + ".activation_post_process");
    ASSERT_NE(obs, nullptr) << path;
    QParams qp = dynamic_cast<Observer*>(obs) ? dynamic_cast<Observer*>(obs)->CalculateQParams()
                                              : dynamic_cast<FakeQuantize*>(obs)->qparams();
    const float s = want[path]["scale"].get<float>();
    const int64_t zp = want[path]["zero_point"].get<int64_t>();
    EXPECT_LE(std::fabs(qp.scale[0] - s) / s, 1e-2) << path << ": " << qp.scale[0] << " vs " << s;
    EXPECT_LE(std::abs(qp.zero_point[0] - zp), 2) << path;
    exact += std::fabs(qp.scale[0] - s) / s <= 1e-5 && qp.zero_point[0] == zp;
  }
  std::printf("%zu observers, %d with scale within 1e-5 and the same zero point\n", observed.size(), exact);
  EXPECT_GE(exact, static_cast<int>(observed.size()) * 9 / 10);
}

struct EagerCase {
  std::string model, engine;
  Shape shape;
};

class EagerVsPyTorch : public ::testing::TestWithParam<EagerCase> {};

TEST_P(EagerVsPyTorch, SameObserversQParamsModulesAndInt8Outputs) {
  const auto& [name, engine, shape] = GetParam();
  const nlohmann::json want = Fixture("eager_" + name + "_" + engine);
  const Tensor xt = testing::HashUniform("test", shape, -1, 1);
  ModulePtr float_model = HashModel(name);
  const Tensor y_float = Forward(*float_model, xt);
  EXPECT_LT(testing::MaxRelError(y_float, Tensor::FromVector(y_float.shape(), want["float_output"])), 1e-4);

  EagerReport report;
  ModulePtr m = PreparedEager(name, engine, shape, &report);
  EXPECT_EQ(report.observed, want["observed"].get<std::vector<std::string>>());
  ExpectQParamsClose(*m, report.observed, want["qparams"]);

  ASSERT_TRUE(ConvertEager(*m).ok());
  const std::map<std::string, std::string> names = {{"ConvReLU2d", "QuantizedConvReLU2d"},
                                                    {"Conv2d", "QuantizedConv2d"},
                                                    {"Linear", "QuantizedLinear"},
                                                    {"LinearReLU", "QuantizedLinearReLU"},
                                                    {"Conv2dNormActivation", "Sequential"}};
  std::map<std::string, std::string> got, expected;
  for (const auto& [path, mod] : m->named_modules()) {
    if (!path.empty()) got[path] = mod->type_name();
  }
  for (const auto& [path, type] : want["modules"].items()) {
    if (path.find("_packed_params") != std::string::npos) continue;  // PyTorch's packed weights holder
    const std::string t = type.get<std::string>();
    expected[path] = names.count(t) ? names.at(t) : t;
  }
  EXPECT_EQ(got, expected);

  const Tensor y = Forward(*m, xt);
  const std::string last = name == "stub_cnn" ? "conv" : name == "quantizable_resnet18" ? "fc" : "classifier.1";
  const double step = want["qparams"][last]["scale"].get<double>();
  const std::vector<float> torch_y = want["int8_output"];
  ASSERT_EQ(static_cast<size_t>(y.numel()), torch_y.size());
  int64_t within = 0, exact = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    const double d = std::fabs(y.data<float>()[i] - torch_y[i]);
    within += d <= step * 1.001;
    exact += d <= step * 1e-3;
  }
  std::printf("%s/%s: int8 outputs within one step of PyTorch's: %lld of %lld (%lld equal)\n", name.c_str(),
              engine.c_str(), static_cast<long long>(within), static_cast<long long>(y.numel()),
              static_cast<long long>(exact));
  EXPECT_GE(within, y.numel() * 99 / 100);
}

INSTANTIATE_TEST_SUITE_P(Models, EagerVsPyTorch,
                         ::testing::Values(EagerCase{"stub_cnn", "onednn", {4, 3, 16, 16}},
                                           EagerCase{"stub_cnn", "qnnpack", {4, 3, 16, 16}},
                                           EagerCase{"quantizable_resnet18", "onednn", {2, 3, 64, 64}},
                                           EagerCase{"quantizable_resnet18", "qnnpack", {2, 3, 64, 64}},
                                           EagerCase{"quantizable_mobilenet_v2", "onednn", {2, 3, 64, 64}},
                                           EagerCase{"quantizable_mobilenet_v2", "qnnpack", {2, 3, 64, 64}}),
                         [](const auto& info) { return info.param.model + "_" + info.param.engine; });

TEST(EagerQat, SameFakeQuantPlacementQParamsAndOutputAsPyTorch) {
  for (const std::string engine : {"onednn", "qnnpack"}) {
    const nlohmann::json want = Fixture("eager_qat_stub_cnn_" + engine);
    ModulePtr m = HashModel("stub_cnn");
    m->train();
    ASSERT_TRUE(FuseModulesQat(*m, {{"conv", "bn", "relu"}}).ok());
    const QConfigMapping mapping = Global(engine + "_qat");
    absl::StatusOr<EagerReport> r = PrepareQatEager(*m, &mapping);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->observed, want["observed"].get<std::vector<std::string>>());
    std::map<std::string, std::string> top;
    for (const auto& [name, child] : m->named_children()) top[name] = child->type_name();
    EXPECT_EQ(top, want["modules"].get<decltype(top)>());
    const Tensor x = testing::HashUniform("calib", {4, 3, 16, 16}, -1, 1);
    Forward(*m, x);
    const Tensor y = Forward(*m, F::mul(x, 0.5f));
    ExpectQParamsClose(*m, r->observed, want["qparams"]);
    EXPECT_LT(testing::MaxRelError(y, Tensor::FromVector(y.shape(), want["output"])), 1e-4) << engine;
    ASSERT_TRUE(ConvertEager(*m).ok());
    EXPECT_EQ(m->submodule("conv")->type_name(), "QuantizedConvReLU2d");
    EXPECT_TRUE(Forward(*m, x).defined());
  }
}

class StubClassifier : public nn::Module {
 public:
  StubClassifier() {
    quant_ = register_module("quant", std::make_shared<nn::QuantStub>());
    conv_ = register_module("conv", std::make_shared<nn::Conv2d>(1, 8, 3, nn::Conv2dArgs{1, 1}));
    bn_ = register_module("bn", std::make_shared<nn::BatchNorm2d>(8));
    relu_ = register_module("relu", std::make_shared<nn::ReLU>());
    pool_ = register_module("pool", std::make_shared<nn::MaxPool2d>(2));
    fc_ = register_module("fc", std::make_shared<nn::Linear>(8 * 14 * 14, 10));
    dequant_ = register_module("dequant", std::make_shared<nn::DeQuantStub>());
  }
  std::string type_name() const override { return "StubClassifier"; }
  Tensor forward(const Tensor& x) override {
    const Tensor y = (*pool_)((*relu_)((*bn_)((*conv_)((*quant_)(x)))));
    return (*dequant_)((*fc_)(F::flatten(y, 1)));
  }

 private:
  ModulePtr quant_, conv_, bn_, relu_, pool_, fc_, dequant_;
};

double RelError(const Tensor& got, const Tensor& want) {
  double worst = 0, scale = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    worst = std::max(worst, std::fabs(static_cast<double>(got.data<float>()[i]) - want.data<float>()[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(want.data<float>()[i])));
  }
  return worst / scale;
}

// Eager QAT trains through the prepared model's trace (GraphModule shares the modules): 3 SGD steps agree
// with PyTorch's eager prepare_qat, and so do the fake-quants' qparams after them.
TEST(EagerQat, ThreeSgdStepsMatchPyTorch) {
  const io::Safetensors st = testing::ReadFixture("quant/eager_qat_steps.safetensors");
  auto m = std::make_shared<StubClassifier>();
  testing::HashInit(*m);
  m->train();
  ASSERT_TRUE(FuseModulesQat(*m, {{"conv", "bn", "relu"}}).ok());
  const QConfigMapping mapping = Global("onednn_qat");
  ASSERT_TRUE(PrepareQatEager(*m, &mapping).ok());
  auto gm = *fx::SymbolicTrace(m);
  train::OptimizerOptions o;
  o.kind = "sgd";
  o.lr = 0.05;
  o.momentum = 0.9;
  auto opt = train::MakeOptimizer(gm->named_parameters(), o);
  ASSERT_TRUE(opt.ok()) << opt.status();
  train::GraphForward forward(*gm);
  const Tensor x = testing::Get(st, "x"), y = testing::Get(st, "y"), losses = testing::Get(st, "loss");
  for (int step = 0; step < 3; ++step) {
    train::Tape tape;
    auto out = forward.Run(tape, x);
    ASSERT_TRUE(out.ok()) << out.status();
    const train::Var loss = train::ag::cross_entropy(tape, *out, y);
    EXPECT_NEAR(loss.value.data<float>()[0], losses.data<float>()[step], 1e-4) << "step " << step;
    tape.Backward(loss);
    (*opt)->Step(tape);
  }
  int params = 0, fakes = 0;
  for (const auto& [name, p] : m->named_parameters()) {
    EXPECT_LE(RelError(p, testing::Get(st, "param/" + name)), 1e-4) << name;
    ++params;
  }
  for (const auto& [path, mod] : m->named_modules()) {
    auto* fq = dynamic_cast<FakeQuantize*>(mod);
    if (fq == nullptr) continue;
    const Tensor scale = testing::Get(st, "scale/" + path), zp = testing::Get(st, "zero_point/" + path);
    ASSERT_EQ(fq->qparams().scale.size(), static_cast<size_t>(scale.numel())) << path;
    for (int64_t c = 0; c < scale.numel(); ++c) {
      EXPECT_LE(std::fabs(fq->qparams().scale[c] - scale.data<float>()[c]), 1e-4 * scale.data<float>()[c]) << path;
      EXPECT_EQ(fq->qparams().zero_point[c], zp.data<int64_t>()[c]) << path;
    }
    ++fakes;
  }
  EXPECT_EQ(params, 6);
  EXPECT_EQ(fakes, 5);
  // Convert uses the qparams training ended with (PyTorch's convert recomputes them with the observers'
  // formula, see README "QAT"), so the int8 output is compared by output steps.
  m->eval();
  ASSERT_TRUE(ConvertEager(*m).ok());
  const Tensor got = Forward(*m, x), want = testing::Get(st, "int8_output");
  const float step = dynamic_cast<EagerQuantizedWeighted*>(m->submodule("fc"))->tensor("scale").data<float>()[0];
  int64_t within = 0;
  for (int64_t i = 0; i < want.numel(); ++i)
    within += std::fabs(got.data<float>()[i] - want.data<float>()[i]) <= 1.001 * step;
  std::printf("eager QAT int8 after 3 steps: %lld of %lld outputs within one step of PyTorch's\n",
              static_cast<long long>(within), static_cast<long long>(want.numel()));
  EXPECT_GE(within, want.numel() * 95 / 100);
}

// The same model through both flows: the same qparams, so the same int8 kernels give the same bits. On
// resnet18 the activations use MinMax observers: FX (PyTorch's and qfx's) shares the conv1 observer with the
// maxpool after it, so a histogram observer there sees both tensors and calibrates differently from eager
// mode's, which observes conv1 alone; min/max are the same either way.
TEST(EagerVsFx, BitIdenticalInt8Outputs) {
  for (const auto& [name, fx_name, shape] : std::vector<std::tuple<std::string, std::string, Shape>>{
           {"stub_cnn", "", {4, 3, 16, 16}}, {"quantizable_resnet18", "resnet18", {2, 3, 64, 64}}}) {
    QConfig q = *PresetQConfig("onednn");
    if (!fx_name.empty()) q.activation = ObserverSpec{};  // MinMaxObserver, quint8
    QConfigMapping mapping;
    mapping.SetGlobal(q);
    ModulePtr eager = HashModel(name);
    ASSERT_TRUE(FuseModules(*eager, *models::FusionLists(name, *eager)).ok());
    ASSERT_TRUE(PrepareEager(*eager, &mapping).ok());
    Forward(*eager, testing::HashUniform("calib", shape, -1, 1));
    ASSERT_TRUE(ConvertEager(*eager).ok());
    ModulePtr fx_model = fx_name.empty() ? HashModel(name) : *models::Create(fx_name);
    testing::HashInit(*fx_model);
    auto gm = *fx::SymbolicTrace(fx_model);
    PrepareOptions opt;
    opt.config.mapping = mapping;
    opt.config.backend = *GetBackendConfig("onednn");
    auto report = Prepare(*gm, opt);
    ASSERT_TRUE(report.ok()) << report.status();
    Forward(*gm, testing::HashUniform("calib", shape, -1, 1));
    ASSERT_TRUE(Convert(*gm, *report).ok());
    const Tensor xt = testing::HashUniform("test", shape, -1, 1);
    EXPECT_EQ(testing::MaxRelError(Forward(*eager, xt), Forward(*gm, xt)), 0.0) << name;
  }
}

// forward branches on the input's width, which a traced graph cannot hold.
class Branchy : public nn::Module {
 public:
  explicit Branchy(bool branch) : branch_(branch) {
    quant_ = register_module("quant", std::make_shared<nn::QuantStub>());
    wide_ = register_module("wide", std::make_shared<nn::Conv2d>(3, 8, 3, nn::Conv2dArgs{1, 1}));
    narrow_ = register_module("narrow", std::make_shared<nn::Conv2d>(3, 8, 1));
    relu_ = register_module("relu", std::make_shared<nn::ReLU>());
    dequant_ = register_module("dequant", std::make_shared<nn::DeQuantStub>());
  }
  std::string type_name() const override { return "Branchy"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*quant_)(x);
    y = !branch_ || y.size(3) >= 16 ? (*wide_)(y) : (*narrow_)(y);
    return (*dequant_)((*relu_)(y));
  }

 private:
  bool branch_;
  ModulePtr quant_, wide_, narrow_, relu_, dequant_;
};

double Sqnr(const Tensor& ref, const Tensor& y) {
  double signal = 0, noise = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double r = ref.data<float>()[i], d = r - y.data<float>()[i];
    signal += r * r;
    noise += d * d;
  }
  return 10 * std::log10(signal / noise);
}

TEST(EagerUntraceable, QuantizesAndRunsAsItsTraceableTwin) {
  auto branchy = std::make_shared<Branchy>(true);
  branchy->eval();
  EXPECT_FALSE(fx::SymbolicTrace(branchy).ok());
  auto twin = std::make_shared<Branchy>(false);
  twin->eval();
  testing::HashInit(*branchy);
  testing::HashInit(*twin);
  const Tensor calib = testing::HashUniform("calib", {4, 3, 16, 16}, -1, 1);
  const Tensor xt = testing::HashUniform("test", {4, 3, 16, 16}, -1, 1);
  const Tensor ref = Forward(*branchy, xt);
  const QConfigMapping mapping = Global("x86");
  for (const ModulePtr& m : std::vector<ModulePtr>{branchy, twin}) {
    ASSERT_TRUE(FuseModules(*m, {{"wide", "relu"}}).ok());
    ASSERT_TRUE(PrepareEager(*m, &mapping).ok());
    Forward(*m, calib);
    ASSERT_TRUE(ConvertEager(*m).ok());
  }
  const Tensor y = Forward(*branchy, xt);
  EXPECT_EQ(testing::MaxRelError(y, Forward(*twin, xt)), 0.0);
  // The twin traces: the FX flow on it gives the same bits as eager on the untraceable model.
  auto fx_twin = std::make_shared<Branchy>(false);
  fx_twin->eval();
  testing::HashInit(*fx_twin);
  auto gm = *fx::SymbolicTrace(fx_twin);
  PrepareOptions opt;
  opt.config.mapping = mapping;
  auto report = Prepare(*gm, opt);
  ASSERT_TRUE(report.ok()) << report.status();
  Forward(*gm, calib);
  ASSERT_TRUE(Convert(*gm, *report).ok());
  EXPECT_EQ(testing::MaxRelError(y, Forward(*gm, xt)), 0.0);
  std::printf("untraceable model, int8 vs float: SQNR %.1f dB\n", Sqnr(ref, y));
  EXPECT_GT(Sqnr(ref, y), 30.0);
  // The other branch is quantized too (its own observer saw the narrow inputs).
  EXPECT_EQ(branchy->submodule("narrow")->type_name(), "QuantizedConv2d");
}

TEST(EagerErrors, FloatAndInt8MixedUpNameTheModuleAndTheStub) {
  // conv2 stays float (qconfig none) but no DeQuantStub precedes it.
  class NoDequant : public nn::Module {
   public:
    NoDequant() {
      quant_ = register_module("quant", std::make_shared<nn::QuantStub>());
      conv1_ = register_module("conv1", std::make_shared<nn::Conv2d>(3, 4, 1));
      conv2_ = register_module("conv2", std::make_shared<nn::Conv2d>(4, 4, 1));
    }
    std::string type_name() const override { return "NoDequant"; }
    Tensor forward(const Tensor& x) override { return (*conv2_)((*conv1_)((*quant_)(x))); }
    ModulePtr quant_, conv1_, conv2_;
  };
  auto m = std::make_shared<NoDequant>();
  SetQConfig(*m->conv2_, std::nullopt);
  const QConfigMapping mapping = Global("x86");
  ASSERT_TRUE(PrepareEager(*m, &mapping).ok());
  const Tensor x = testing::HashUniform("calib", {1, 3, 4, 4}, -1, 1);
  Forward(*m, x);
  ASSERT_TRUE(ConvertEager(*m).ok());
  absl::StatusOr<Tensor> y = nn::RunModule(*m, x);
  ASSERT_FALSE(y.ok());
  EXPECT_NE(y.status().message().find("module 'conv2' (Conv2d) stays float but got the quantized tensor"),
            std::string::npos)
      << y.status();
  EXPECT_NE(y.status().message().find("put a DeQuantStub before it"), std::string::npos);

  // An int8 module reached by a float tensor: no QuantStub in front.
  auto plain = *models::Create("mlp");
  ASSERT_TRUE(PrepareEager(*plain, &mapping).ok());
  Forward(*plain, testing::HashUniform("calib", {2, 1, 28, 28}, -1, 1));
  ASSERT_TRUE(ConvertEager(*plain).ok());
  y = nn::RunModule(*plain, testing::HashUniform("calib", {2, 1, 28, 28}, -1, 1));
  ASSERT_FALSE(y.ok());
  EXPECT_NE(y.status().message().find("module 'fc1' (QuantizedLinear) is int8 but got the float tensor"),
            std::string::npos)
      << y.status();
  EXPECT_NE(y.status().message().find("put a QuantStub before it"), std::string::npos);

  auto none = HashModel("stub_cnn");
  EXPECT_NE(PrepareEager(*none, nullptr).status().message().find("no module has a qconfig"), std::string::npos);
}

TEST(EagerErrors, FusionListsAreCheckedAsPyTorchChecksThem) {
  auto m = HashModel("stub_cnn");
  absl::Status s = FuseModules(*m, {{"conv", "relu", "bn"}});
  EXPECT_EQ(
      s.message(),
      "FuseModules [conv, relu, bn]: Cannot fuse modules: (Conv2d, ReLU, BatchNorm2d); fusable lists are "
      "(Conv2d, BatchNorm2d[, ReLU]), (Conv2d, ReLU), (Linear, BatchNorm1d), (Linear, ReLU), (BatchNorm2d, ReLU)");
  EXPECT_NE(FuseModules(*m, {{"conv", "nope"}}).message().find("there is no module 'nope'"), std::string::npos);
  m->train();
  EXPECT_NE(FuseModules(*m, {{"conv", "bn"}}).message().find("call eval() first"), std::string::npos);
  m->eval();
  EXPECT_NE(FuseModulesQat(*m, {{"conv", "bn"}}).message().find("call train() first"), std::string::npos);
  // A float forward is unchanged by fusion; the fused-away modules are Identity.
  const Tensor x = testing::HashUniform("test", {2, 3, 16, 16}, -1, 1);
  const Tensor before = Forward(*m, x);
  ASSERT_TRUE(FuseModules(*m, {{"conv", "bn", "relu"}}).ok());
  EXPECT_EQ(m->submodule("conv")->type_name(), "ConvReLU2d");
  EXPECT_EQ(m->submodule("bn")->type_name(), "Identity");
  EXPECT_LT(testing::MaxRelError(Forward(*m, x), before), 1e-5);
}

TEST(EagerState, Int8StateDictLoadsIntoAFreshInstance) {
  ModulePtr m = PreparedEager("stub_cnn", "x86", {4, 3, 16, 16});
  ASSERT_TRUE(ConvertEager(*m).ok());
  const Tensor xt = testing::HashUniform("test", {4, 3, 16, 16}, -1, 1);
  const Tensor y = Forward(*m, xt);
  nn::NamedTensors saved;
  for (const auto& [k, t] : m->state_dict()) saved.emplace_back(k, t.Clone());

  ModulePtr fresh = *models::CreateQuantizable("stub_cnn", 7);  // other weights, never calibrated
  ASSERT_TRUE(FuseModules(*fresh, {{"conv", "bn", "relu"}}).ok());
  const QConfigMapping mapping = Global("x86");
  ASSERT_TRUE(PrepareEager(*fresh, &mapping).ok());
  absl::StatusOr<EagerReport> r = ConvertEager(*fresh);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->warnings.empty());  // the observers saw no data: reported
  Forward(*fresh, xt);                // packs for the uncalibrated state, which loading must replace
  ASSERT_TRUE(fresh->load_state_dict(saved).ok());
  EXPECT_EQ(testing::MaxRelError(Forward(*fresh, xt), y), 0.0);
}

TEST(EagerSave, ConvertedModelTracesSavesAsQfxAndRunsTheSame) {
  ModulePtr m = PreparedEager("quantizable_resnet18", "x86", {2, 3, 64, 64});
  ASSERT_TRUE(ConvertEager(*m).ok());
  const Tensor xt = testing::HashUniform("test", {2, 3, 64, 64}, -1, 1);
  const Tensor y = Forward(*m, xt);
  absl::StatusOr<std::shared_ptr<fx::GraphModule>> gm = TraceConverted(m, xt);
  ASSERT_TRUE(gm.ok()) << gm.status();
  EXPECT_EQ(testing::MaxRelError(Forward(**gm, xt), y), 0.0);
  const std::string path = ::testing::TempDir() + "/eager_resnet18.qfx";
  ASSERT_TRUE(io::SaveModel(path, **gm, {1, 3, 64, 64}, "eager").ok());
  absl::StatusOr<io::ModelFile> loaded = io::LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(testing::MaxRelError(Forward(*loaded->module, xt), y), 0.0);
  EXPECT_EQ(testing::MaxRelError(Forward(*m, xt), y), 0.0);  // the eager model is unchanged
}

TEST(EagerDynamic, QuantizeDynamicMatchesTheFxFlow) {
  auto eager = *models::Create("mlp");
  testing::HashInit(*eager);
  auto fx_model = *models::Create("mlp");
  testing::HashInit(*fx_model);
  auto gm = *fx::SymbolicTrace(fx_model);
  absl::StatusOr<EagerReport> r = QuantizeDynamicEager(*eager);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->swapped.size(), 3u);
  ASSERT_TRUE(QuantizeDynamic(*gm, *LoadQuantConfig("dynamic")).ok());
  const Tensor x = testing::HashUniform("test", {3, 1, 28, 28}, -1, 1);
  EXPECT_EQ(testing::MaxRelError(Forward(*eager, x), Forward(*gm, x)), 0.0);
}

TEST(EagerHooks, PreAndPostHooksRunAroundForwardAndCanBeRemoved) {
  auto relu = std::make_shared<nn::ReLU>();
  int calls = 0;
  const int64_t pre = relu->RegisterForwardPreHook([&](nn::Module&, nn::ForwardArgs& args) {
    ++calls;
    args.values[0].second = F::mul(std::get<Tensor>(args.values[0].second), -1.f);
  });
  relu->RegisterForwardHook([&](nn::Module&, const nn::ForwardArgs&, Tensor& out) { out = F::add(out, 1.f); });
  const Tensor y = Forward(*relu, Tensor::FromVector({2}, {1.f, -2.f}));
  EXPECT_EQ(calls, 1);
  EXPECT_FLOAT_EQ(y.data<float>()[0], 1.f);
  EXPECT_FLOAT_EQ(y.data<float>()[1], 3.f);
  EXPECT_TRUE(relu->RemoveHook(pre));
  EXPECT_FALSE(relu->RemoveHook(pre));
  const Tensor z = Forward(*relu, Tensor::FromVector({1}, {2.f}));
  EXPECT_FLOAT_EQ(z.data<float>()[0], 3.f);
}

}  // namespace
}  // namespace quant
}  // namespace qfx
