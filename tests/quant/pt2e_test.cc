// qfx tests: the PT2E flow. Export inlines modules into ops with get_attr parameters and module scopes;
// the built-in quantizers place observers by their patterns; a user-written quantizer gets exactly its
// placement; conflicting or unsupported annotations are errors naming the node and the specs; convert ->
// lower gives int8 models that agree with the Q/DQ reference, save as .qfx, and equal the FX flow's int8
// output bit for bit under an equivalent config.
#include <cmath>
#include <cstdio>

#include "gtest/gtest.h"
#include "qfx/fx/tracer.h"
#include "qfx/io/model_file.h"
#include "qfx/models/zoo.h"
#include "qfx/nn/functional.h"
#include "qfx/quant/metrics.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/pt2e.h"
#include "qfx/quant/qat_modules.h"
#include "qfx/quant/quantized_modules.h"
#include "qfx/train/trainer.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace quant {
namespace {

struct Model {
  std::shared_ptr<nn::Module> model;
  Shape shape;
};

Model Seeded(const std::string& name, int64_t hw) {
  auto model = *models::Create(name);
  testing::HashInit(*model);
  Shape shape = models::GetModelInfo(name)->input_shape;
  shape[0] = 2;
  if (hw > 0) shape[2] = shape[3] = hw;
  return {model, shape};
}

int CountOpcode(const fx::GraphModule& gm, fx::Opcode op) {
  int n = 0;
  for (fx::Node* node : gm.graph()) n += node->op() == op;
  return n;
}

TEST(Pt2eExport, InlinesModulesIntoOpsWithParametersAndScopes) {
  Model m = Seeded("resnet18", 32);
  auto gm = Export(m.model, {m.shape});
  ASSERT_TRUE(gm.ok()) << gm.status();
  EXPECT_EQ(CountOpcode(**gm, fx::Opcode::kCallModule), 0) << (*gm)->graph().ToString();
  int convs = 0;
  for (fx::Node* n : (*gm)->graph()) {
    if (n->op() != fx::Opcode::kCallFunction || n->target().op != OpId::kConv2d) continue;
    const auto* w = std::get_if<fx::Node*>(&n->args()[1]);
    ASSERT_NE(w, nullptr);
    EXPECT_EQ((*w)->op(), fx::Opcode::kGetAttr);
    EXPECT_EQ((*w)->target().path, n->meta.scope.path + ".weight");
    EXPECT_EQ(n->meta.scope.type, "Conv2d");
    ++convs;
  }
  EXPECT_EQ(convs, 20);
  const Tensor x = testing::HashUniform("x", m.shape, -1, 1);
  const Tensor want = *RunModule(*m.model, x);
  const Tensor got = *RunModule(**gm, x);
  ASSERT_EQ(want.numel(), got.numel());
  for (int64_t i = 0; i < want.numel(); ++i) ASSERT_EQ(want.data<float>()[i], got.data<float>()[i]) << i;
}

TEST(Pt2eExport, KeepsModulesWithoutAnOpAndReportsThemFloat) {
  struct Odd : nn::Module {
    std::string type_name() const override { return "Odd"; }
    bool is_leaf() const override { return true; }
    Tensor forward(const Tensor& x) override { return F::relu(x); }
  };
  struct Net : nn::Module {
    std::shared_ptr<nn::Conv2d> conv = register_module("conv", std::make_shared<nn::Conv2d>(1, 2, 3));
    std::shared_ptr<Odd> odd = register_module("odd", std::make_shared<Odd>());
    std::string type_name() const override { return "Net"; }
    Tensor forward(const Tensor& x) override { return (*odd)((*conv)(x)); }
  };
  auto net = std::make_shared<Net>();
  testing::HashInit(*net);
  auto gm = *Export(net, {{1, 1, 6, 6}});
  EXPECT_EQ(CountOpcode(*gm, fx::Opcode::kCallModule), 1);
  XNNPACKQuantizer q;
  q.set_global(get_symmetric_quantization_config());
  auto report = PreparePt2e(*gm, q);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_EQ(report->left_float.size(), 1u);
  EXPECT_EQ(report->left_float[0].first, "odd");
  EXPECT_NE(report->left_float[0].second.find("no registered op"), std::string::npos);
}

struct FlowCase {
  std::string model;
  std::string quantizer;
  int64_t hw;
};
class Pt2eFlow : public ::testing::TestWithParam<FlowCase> {};

TEST_P(Pt2eFlow, LowersToInt8AgreeingWithTheReferenceAndSaves) {
  const FlowCase& c = GetParam();
  Model m = Seeded(c.model, c.hw);
  auto gm = *Export(m.model, {m.shape});
  std::shared_ptr<PatternQuantizer> quantizer = *MakeQuantizer(c.quantizer);
  auto report = PreparePt2e(*gm, *quantizer);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_GT(report->observers, 0);
  for (fx::Node* n : gm->graph())
    EXPECT_FALSE(n->op() == fx::Opcode::kCallFunction && n->target().op == OpId::kBatchNorm);
  const Tensor calib = testing::HashUniform("calib", m.shape, -1, 1);
  const Tensor x = testing::HashUniform("test", m.shape, -1, 1);
  const Tensor fp32 = *RunModule(*m.model, x);
  ASSERT_TRUE(RunModule(*gm, calib).ok());
  const absl::Status converted = ConvertPt2e(*gm);
  ASSERT_TRUE(converted.ok()) << converted;
  auto ref = RunModule(*gm, x);
  ASSERT_TRUE(ref.ok()) << ref.status();
  const absl::Status lowered = LowerPt2e(*gm);
  ASSERT_TRUE(lowered.ok()) << lowered << "\n" << gm->graph().ToString();
  int int8_layers = 0;
  for (const auto& [path, mod] : gm->named_modules()) int8_layers += dynamic_cast<QuantizedWeighted*>(mod) != nullptr;
  EXPECT_GT(int8_layers, 0);
  auto y = RunModule(*gm, x);
  ASSERT_TRUE(y.ok()) << y.status();
  const double step = testing::OutputStep(gm->graph());
  // Layer by layer the int8 kernels and the Q/DQ reference agree exactly or by one step (the int32 bias
  // and the integer requantization round where the reference computes in float); through a deep network
  // those single steps compound, so the bound on the output is looser than one step everywhere.
  const double within = testing::WithinStep(*y, *ref, step), sqnr_ref = SqnrDb(fp32, *ref), sqnr = SqnrDb(fp32, *y);
  std::printf("%s/%s: int8 within one step of the reference on %.2f%%; SQNR vs fp32: reference %.1f dB, int8 %.1f dB\n",
              c.model.c_str(), c.quantizer.c_str(), 100 * within, sqnr_ref, sqnr);
  EXPECT_GE(within, c.model == "resnet18" && c.quantizer == "x86_inductor" ? 0.8 : 0.95);
  EXPECT_GT(sqnr, sqnr_ref - 3.0);
  EXPECT_GT(sqnr, 25.0) << c.model << " " << c.quantizer;

  const std::string path = ::testing::TempDir() + "/pt2e_" + c.model + "_" + c.quantizer + ".qfx";
  const absl::Status saved = io::SaveModel(path, *gm, m.shape, "pt2e test");
  ASSERT_TRUE(saved.ok()) << saved;
  auto loaded = io::LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const Tensor again = *RunModule(*loaded->module, x);
  for (int64_t i = 0; i < again.numel(); ++i) ASSERT_EQ(again.data<float>()[i], y->data<float>()[i]) << i;
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(
    Zoo, Pt2eFlow,
    ::testing::Values(FlowCase{"mnist_cnn", "xnnpack", 0}, FlowCase{"mnist_cnn", "x86_inductor", 0},
                      FlowCase{"resnet18", "xnnpack", 32}, FlowCase{"resnet18", "x86_inductor", 32},
                      FlowCase{"mobilenet_v2", "xnnpack", 32}, FlowCase{"mobilenet_v2", "x86_inductor", 32}),
    [](const auto& info) { return info.param.model + "_" + info.param.quantizer; });

// "int8 only for the convolutions in layer3, per-tensor": a quantizer written against the public API.
class Layer3ConvQuantizer : public Quantizer {
 public:
  absl::Status Annotate(fx::GraphModule& gm) override {
    QuantizationSpec act;
    act.observer.kind = ObserverKind::kMinMax;
    QuantizationSpec weight;
    weight.observer.kind = ObserverKind::kMinMax;
    weight.observer.dtype = QDType::kQInt8;
    weight.observer.qscheme = QScheme::kPerTensorSymmetric;
    for (fx::Node* n : gm.graph()) {
      if (n->op() != fx::Opcode::kCallFunction || n->target().op != OpId::kConv2d) continue;
      if (n->meta.scope.path.rfind("layer3.", 0) != 0) continue;
      QuantizationAnnotation& a = AnnotationOf(n);
      a.input_qspec_map.emplace_back(std::get<fx::Node*>(n->args()[0]), act);
      a.input_qspec_map.emplace_back(std::get<fx::Node*>(n->args()[1]), weight);
      a.output_qspec = act;
      a.annotated = true;
    }
    return absl::OkStatus();
  }
};

TEST(Pt2eQuantizer, UserWrittenQuantizerGivesExactlyItsPlacement) {
  Model m = Seeded("resnet18", 32);
  auto gm = *Export(m.model, {m.shape});
  Layer3ConvQuantizer q;
  auto report = PreparePt2e(*gm, q);
  ASSERT_TRUE(report.ok()) << report.status();
  // layer3 has 5 convs (2 blocks of 2, one downsample): each an input, a weight and an output observer,
  // but layer3.0.conv1 and the downsample read one value with equal specs, so they share its observer.
  EXPECT_EQ(report->observers, 14) << FormatReport(*report);
  EXPECT_EQ(report->groups[1].second.size(), 2u) << FormatReport(*report);
  for (fx::Node* n : gm->graph()) {
    if (n->op() != fx::Opcode::kCallModule) continue;
    const fx::Node* in = std::get<fx::Node*>(n->args()[0]);
    EXPECT_TRUE(in->meta.scope.path.rfind("layer", 0) == 0 || in->op() == fx::Opcode::kCallFunction) << n->name();
  }
  ASSERT_TRUE(RunModule(*gm, testing::HashUniform("calib", m.shape, -1, 1)).ok());
  ASSERT_TRUE(ConvertPt2e(*gm).ok());
  const absl::Status lowered = LowerPt2e(*gm);
  ASSERT_TRUE(lowered.ok()) << lowered;
  std::vector<std::string> int8;
  for (const auto& [path, mod] : gm->named_modules()) {
    if (auto* w = dynamic_cast<QuantizedWeighted*>(mod)) {
      int8.push_back(path);
      EXPECT_EQ(w->layer().weight_scale.numel(), w->layer().out_channels);
      const float* s = w->layer().weight_scale.data<float>();
      for (int64_t i = 1; i < w->layer().out_channels; ++i) EXPECT_EQ(s[i], s[0]) << path << " is per tensor";
    }
  }
  EXPECT_EQ(int8, (std::vector<std::string>{"layer3.0.conv1", "layer3.0.conv2", "layer3.0.downsample.0",
                                            "layer3.1.conv1", "layer3.1.conv2"}));
  EXPECT_TRUE(RunModule(*gm, testing::HashUniform("x", m.shape, -1, 1)).ok());
}

TEST(Pt2eQuantizer, ModuleNameNoneKeepsThoseNodesFloatAndSaysWhy) {
  Model m = Seeded("mnist_cnn", 0);
  auto gm = *Export(m.model, {m.shape});
  XNNPACKQuantizer q;
  q.set_global(get_symmetric_quantization_config()).set_module_name("fc2", std::nullopt);
  auto report = PreparePt2e(*gm, q);
  ASSERT_TRUE(report.ok()) << report.status();
  bool said = false;
  for (const auto& [node, why] : report->left_float) {
    if (why.find("module_name 'fc2' gives no config") != std::string::npos) said = true;
  }
  EXPECT_TRUE(said) << FormatReport(*report);
  EXPECT_NE(FormatAnnotated(gm->graph()).find("float: XNNPACKQuantizer: module_name 'fc2' gives no config"),
            std::string::npos)
      << FormatAnnotated(gm->graph());
  ASSERT_TRUE(RunModule(*gm, testing::HashUniform("calib", m.shape, -1, 1)).ok());
  ASSERT_TRUE(ConvertPt2e(*gm).ok());
  const absl::Status lowered = LowerPt2e(*gm);
  ASSERT_TRUE(lowered.ok()) << lowered;
  EXPECT_EQ(gm->submodule("fc2")->type_name(), "Linear");
  EXPECT_NE(dynamic_cast<QuantizedWeighted*>(gm->submodule("fc1")), nullptr);
}

// Module types select everything inside a module of that type; operator types select ops; a quantizer
// composed after a user's leaves the nodes that one annotated alone.
TEST(Pt2eQuantizer, ModuleTypeOperatorTypeAndComposition) {
  Model m = Seeded("resnet18", 32);
  auto int8_paths = [&](Quantizer& q) {
    auto gm = *Export(m.model, {m.shape});
    auto report = PreparePt2e(*gm, q);
    EXPECT_TRUE(report.ok()) << report.status();
    EXPECT_TRUE(RunModule(*gm, testing::HashUniform("calib", m.shape, -1, 1)).ok());
    EXPECT_TRUE(ConvertPt2e(*gm).ok());
    const absl::Status lowered = LowerPt2e(*gm);
    EXPECT_TRUE(lowered.ok()) << lowered;
    std::map<std::string, bool> out;  // int8 layer path -> per-tensor weights
    for (const auto& [path, mod] : gm->named_modules()) {
      auto* w = dynamic_cast<QuantizedWeighted*>(mod);
      if (w == nullptr) continue;
      const float* s = w->layer().weight_scale.data<float>();
      bool per_tensor = true;
      for (int64_t i = 1; i < w->layer().out_channels; ++i) per_tensor &= s[i] == s[0];
      out[path] = per_tensor;
    }
    return out;
  };
  X86InductorQuantizer blocks_float;
  blocks_float.set_global(get_default_x86_inductor_quantization_config()).set_module_type("BasicBlock", std::nullopt);
  auto a = int8_paths(blocks_float);
  EXPECT_EQ(a.size(), 2u);  // the stem conv and fc: every conv inside a BasicBlock stays float
  EXPECT_TRUE(a.count("conv1") && a.count("fc"));

  X86InductorQuantizer no_linear;
  no_linear.set_global(get_default_x86_inductor_quantization_config()).set_operator_type(OpId::kLinear, std::nullopt);
  auto b = int8_paths(no_linear);
  EXPECT_EQ(b.size(), 20u);
  EXPECT_FALSE(b.count("fc"));

  auto x86 = std::make_shared<X86InductorQuantizer>();
  x86->set_global(get_default_x86_inductor_quantization_config());
  ComposableQuantizer both({std::make_shared<Layer3ConvQuantizer>(), x86});
  auto c = int8_paths(both);
  EXPECT_EQ(c.size(), 21u);
  for (const auto& [path, per_tensor] : c) {
    EXPECT_EQ(per_tensor, path.rfind("layer3.", 0) == 0) << path;  // layer3 from the first quantizer
  }
}

// cat: XNNPACK shares every input and the output with the first input edge; qfx joins the convs' output
// observers into that group (no requantize kernel), so the cat lowers to q_cat.
TEST(Pt2eQuantizer, CatOfConvOutputsSharesOneObserverAndLowers) {
  struct Net : nn::Module {
    std::shared_ptr<nn::Conv2d> a = register_module("a", std::make_shared<nn::Conv2d>(3, 4, 3, nn::Conv2dArgs{1, 1}));
    std::shared_ptr<nn::Conv2d> b = register_module("b", std::make_shared<nn::Conv2d>(3, 5, 1));
    std::shared_ptr<nn::Conv2d> c = register_module("c", std::make_shared<nn::Conv2d>(9, 2, 3));
    std::string type_name() const override { return "Net"; }
    Tensor forward(const Tensor& x) override { return (*c)(F::cat({(*a)(x), (*b)(x)}, 1)); }
  };
  auto net = std::make_shared<Net>();
  testing::HashInit(*net);
  const Shape shape = {2, 3, 8, 8};
  auto gm = *Export(net, {shape});
  XNNPACKQuantizer q;
  q.set_global(get_symmetric_quantization_config());
  auto report = PreparePt2e(*gm, q);
  ASSERT_TRUE(report.ok()) << report.status();
  bool joined = false;
  for (const auto& [path, points] : report->groups) joined |= points.size() >= 4;  // a, b, 2 cat edges, cat
  EXPECT_TRUE(joined) << FormatReport(*report);
  ASSERT_TRUE(RunModule(*gm, testing::HashUniform("calib", shape, -1, 1)).ok());
  ASSERT_TRUE(ConvertPt2e(*gm).ok());
  const absl::Status lowered = LowerPt2e(*gm);
  ASSERT_TRUE(lowered.ok()) << lowered;
  bool q_cat = false;
  for (fx::Node* n : gm->graph()) q_cat |= n->op() == fx::Opcode::kCallFunction && n->target().op == OpId::kQCat;
  EXPECT_TRUE(q_cat) << gm->graph().ToString();
  EXPECT_GT(SqnrDb(*RunModule(*net, testing::HashUniform("x", shape, -1, 1)),
                   *RunModule(*gm, testing::HashUniform("x", shape, -1, 1))),
            25.0);
}

// A derived bias spec must be the kernels' rule (input scale x weight scale); another is an error.
TEST(Pt2eQuantizer, DerivedBiasSpecsAreCheckedAgainstTheKernelsRule) {
  for (const double factor : {1.0, 2.0}) {
    Model m = Seeded("mnist_cnn", 0);
    auto gm = *Export(m.model, {m.shape});
    QuantizationConfig c = get_symmetric_quantization_config();
    XNNPACKQuantizer q;
    q.set_global(c);
    ASSERT_TRUE(AnnotatePt2e(*gm, q).ok());
    for (fx::Node* n : gm->graph()) {
      if (n->op() != fx::Opcode::kCallFunction || n->target().op != OpId::kLinear) continue;
      const auto* x = std::get_if<fx::Node*>(&n->args()[0]);
      const auto* w = std::get_if<fx::Node*>(&n->args()[1]);
      const auto* b = std::get_if<fx::Node*>(&n->args()[2]);
      DerivedQuantizationSpec d;
      d.derived_from = {{*x, n}, {*w, n}};
      d.derive_qparams_fn = [factor](const std::vector<QParams>& from) {
        QParams out;
        for (float ws : from[1].scale) out.scale.push_back(static_cast<float>(from[0].scale[0] * ws * factor));
        out.zero_point.assign(out.scale.size(), 0);
        return out;
      };
      AnnotationOf(n).input_qspec_map.emplace_back(*b, d);
    }
    // A quantizer that has annotated already: PreparePt2e with a no-op quantizer inserts the observers.
    struct Done : Quantizer {
      absl::Status Annotate(fx::GraphModule&) override { return absl::OkStatus(); }
    } done;
    ASSERT_TRUE(PreparePt2e(*gm, done).ok());
    ASSERT_TRUE(RunModule(*gm, testing::HashUniform("calib", m.shape, -1, 1)).ok());
    const absl::Status converted = ConvertPt2e(*gm);
    if (factor == 1.0) {
      EXPECT_TRUE(converted.ok()) << converted;
    } else {
      ASSERT_FALSE(converted.ok());
      EXPECT_NE(converted.message().find("%linear's bias is annotated derived(qint32)"), std::string::npos)
          << converted;
      EXPECT_NE(converted.message().find("the int8 kernels use input scale x weight scale"), std::string::npos);
    }
  }
}

// The stem conv's output quint8, the relu reading it wants qint8: two dtypes on one edge.
class ConflictingQuantizer : public Quantizer {
 public:
  absl::Status Annotate(fx::GraphModule& gm) override {
    const QuantizationConfig x86 = get_default_x86_inductor_quantization_config();
    const QuantizationConfig xnn = get_symmetric_quantization_config();
    for (fx::Node* n : gm.graph()) {
      if (n->op() != fx::Opcode::kCallFunction || n->target().op != OpId::kConv2d) continue;
      QuantizationAnnotation& a = AnnotationOf(n);
      a.input_qspec_map.emplace_back(std::get<fx::Node*>(n->args()[0]), *x86.input_activation);
      a.input_qspec_map.emplace_back(std::get<fx::Node*>(n->args()[1]), *x86.weight);
      a.output_qspec = *x86.output_activation;
      a.annotated = true;
      fx::Node* relu = n->users()[0];
      AnnotationOf(relu).input_qspec_map.emplace_back(n, *xnn.input_activation);
      return absl::OkStatus();
    }
    return absl::OkStatus();
  }
};

TEST(Pt2eQuantizer, ConflictingAnnotationsOnOneEdgeNameTheNodesAndBothSpecs) {
  Model m = Seeded("resnet18", 32);
  auto gm = *Export(m.model, {m.shape});
  ConflictingQuantizer q;
  auto report = PreparePt2e(*gm, q);
  ASSERT_FALSE(report.ok());
  const std::string msg(report.status().message());
  EXPECT_NE(msg.find("conflicting annotations"), std::string::npos) << msg;
  EXPECT_NE(msg.find("quint8"), std::string::npos) << msg;
  EXPECT_NE(msg.find("qint8"), std::string::npos) << msg;
  EXPECT_NE(msg.find("<- %conv2d"), std::string::npos) << msg;
}

TEST(Pt2eQuantizer, AnnotationsTheKernelsCannotHonourAreErrors) {
  Model m = Seeded("mnist_cnn", 0);
  struct Bad : Quantizer {
    QuantizationSpec act;
    absl::Status Annotate(fx::GraphModule& gm) override {
      for (fx::Node* n : gm.graph()) {
        if (n->op() == fx::Opcode::kCallFunction && n->target().op == OpId::kLinear) {
          AnnotationOf(n).output_qspec = act;
          return absl::OkStatus();
        }
      }
      return absl::OkStatus();
    }
  };
  Bad per_channel;
  per_channel.act.observer.kind = ObserverKind::kPerChannelMinMax;
  per_channel.act.observer.qscheme = QScheme::kPerChannelAffine;
  Bad four_bit;
  four_bit.act.observer.quant_min = 0;
  four_bit.act.observer.quant_max = 15;
  Bad dynamic;
  dynamic.act.is_dynamic = true;
  for (Bad* q : {&per_channel, &four_bit, &dynamic}) {
    auto gm = *Export(m.model, {m.shape});
    auto report = PreparePt2e(*gm, *q);
    ASSERT_FALSE(report.ok());
    const std::string msg(report.status().message());
    EXPECT_NE(msg.find("%linear's output"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cannot honour"), std::string::npos) << msg;
  }
}

// The FX flow and the PT2E flow with the same specs on the same placement give the same int8 model.
TEST(Pt2eFlow, EquivalentConfigIsBitIdenticalToTheFxFlow) {
  Model m = Seeded("mnist_cnn", 0);
  const Tensor calib = testing::HashUniform("calib", m.shape, -1, 1);
  const Tensor x = testing::HashUniform("test", m.shape, -1, 1);
  const QConfig fx_q = *PresetQConfig("x86");

  auto fx_gm = *fx::SymbolicTrace(m.model);
  PrepareOptions opt;
  opt.config = *LoadQuantConfig("x86");
  auto fx_report = Prepare(*fx_gm, opt);
  ASSERT_TRUE(fx_report.ok()) << fx_report.status();
  ASSERT_TRUE(RunModule(*fx_gm, calib).ok());
  ASSERT_TRUE(Convert(*fx_gm, *fx_report).ok());
  const Tensor want = *RunModule(*fx_gm, x);

  // The FX x86 preset shares flatten's qparams and fuses relu only, as XNNPACKQuantizer's patterns do.
  auto gm = *Export(m.model, {m.shape});
  XNNPACKQuantizer q;
  QuantizationConfig c;
  QuantizationSpec act, weight;
  act.observer = fx_q.activation;
  weight.observer = fx_q.weight;
  c.input_activation = c.output_activation = act;
  c.weight = weight;
  q.set_global(c);
  auto report = PreparePt2e(*gm, q);
  ASSERT_TRUE(report.ok()) << report.status();
  ASSERT_TRUE(RunModule(*gm, calib).ok());
  ASSERT_TRUE(ConvertPt2e(*gm).ok());
  const absl::Status lowered = LowerPt2e(*gm);
  ASSERT_TRUE(lowered.ok()) << lowered;
  const Tensor got = *RunModule(*gm, x);
  ASSERT_EQ(want.numel(), got.numel());
  for (int64_t i = 0; i < want.numel(); ++i) ASSERT_EQ(want.data<float>()[i], got.data<float>()[i]) << i;
}

// QAT: conv-bn stays live as ConvBn2d (simulated folding), fake-quant where PTQ puts observers; after
// training, the int8 model agrees with the fake-quant model it came from.
TEST(Pt2eQat, TrainsFakeQuantizedAndConvertsToAgreeingInt8) {
  Model m = Seeded("mnist_cnn", 0);
  m.shape[0] = 64;
  const Tensor x = testing::HashUniform("qat", m.shape, 0, 1);
  const Tensor labels = F::argmax(*RunModule(*m.model, x));
  auto gm = *Export(m.model, {m.shape});
  XNNPACKQuantizer q;
  q.set_global(get_symmetric_quantization_config(/*is_per_channel=*/true, /*is_qat=*/true));
  auto report = PrepareQatPt2e(*gm, q);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(gm->submodule("conv1")->type_name(), "ConvBn2d");
  EXPECT_EQ(gm->submodule("conv2")->type_name(), "ConvBn2d");
  EXPECT_NE(dynamic_cast<QatLinear*>(gm->submodule("fc1")), nullptr);
  int fake_quant = 0;
  for (fx::Node* n : gm->graph()) {
    EXPECT_FALSE(n->op() == fx::Opcode::kCallFunction && n->target().op == OpId::kBatchNorm) << n->name();
    if (n->op() == fx::Opcode::kCallModule)
      fake_quant += dynamic_cast<FakeQuantize*>(gm->submodule(n->target().path)) != nullptr;
  }
  EXPECT_EQ(fake_quant, 8) << FormatReport(*report);  // input, conv1-relu, 2 pools, conv2-relu, flatten, fc1-relu, fc2
  train::TrainOptions o;
  o.epochs = 1;
  o.batch = 16;
  o.optimizer.lr = 1e-4;
  auto history = train::Train(*gm, x, labels, o);
  ASSERT_TRUE(history.ok()) << history.status();
  EnableObservers(*gm, false);
  gm->eval();
  const Tensor fq = *RunModule(*gm, x);
  ASSERT_TRUE(ConvertPt2e(*gm).ok());
  const absl::Status lowered = LowerPt2e(*gm);
  ASSERT_TRUE(lowered.ok()) << lowered;
  const Tensor y = *RunModule(*gm, x);
  const double step = testing::OutputStep(gm->graph());
  const double within = testing::WithinStep(y, fq, step);
  std::printf("mnist_cnn QAT (PT2E, XNNPACK): int8 within one step of the fake-quant model on %.2f%%\n", 100 * within);
  EXPECT_GE(within, 0.95);
}

}  // namespace
}  // namespace quant
}  // namespace qfx
