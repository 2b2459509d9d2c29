// qfx tests: QConfigMapping precedence (PyTorch's rules), the presets, and TOML rule files: every error
// names file, line and key; every example in tools/qconfigs/ loads; preset files equal the presets.

#include "qfx/quant/qconfig_mapping.h"
#include "gtest/gtest.h"
#include "qfx/fx/tracer.h"
#include "qfx/models/zoo.h"

namespace qfx {
namespace quant {
namespace {

// A QConfig tagged by its activation's bin count, so tests can tell which rule applied.
QConfig Tag(int64_t tag) {
  QConfig q;
  q.activation.kind = ObserverKind::kHistogram;
  q.activation.bins = tag;
  return q;
}

int64_t TagOf(const MaybeQConfig& q) { return q ? q->activation.bins : -1; }

std::map<std::string, int64_t> Tags(fx::GraphModule& gm, const QConfigMapping& m,
                                    std::vector<std::string>* unused = nullptr) {
  std::map<std::string, int64_t> out;
  for (const auto& [node, q] : m.Assign(gm, unused)) out[node->name()] = TagOf(q);
  return out;
}

std::shared_ptr<fx::GraphModule> Resnet18() { return *fx::SymbolicTrace(*models::Create("resnet18")); }

TEST(QConfigMapping, PrecedenceGlobalTypeRegexNameOrder) {
  auto gm = Resnet18();
  QConfigMapping m;
  m.SetGlobal(Tag(1));
  m.SetObjectType("Conv2d", Tag(2));
  ASSERT_TRUE(m.SetModuleNameRegex("layer1\\.0\\..*", Tag(3)).ok());
  ASSERT_TRUE(m.SetModuleNameRegex("layer1\\..*", Tag(4)).ok());    // later regex: layer1.0 takes the first
  m.SetModuleName("layer2", Tag(5));                                // covers submodules
  m.SetModuleName("layer2.0.conv2", Tag(6));                        // a deeper name wins
  m.SetModuleNameObjectTypeOrder("layer3.0", "Conv2d", 1, Tag(7));  // the second Conv2d called in layer3.0
  m.SetModuleNameObjectTypeOrder("layer1.0", "add", 0, std::nullopt);
  auto t = Tags(*gm, m);
  EXPECT_EQ(t["maxpool"], 1);
  EXPECT_EQ(t["conv1"], 2);
  EXPECT_EQ(t["layer1_0_conv1"], 3);
  EXPECT_EQ(t["layer1_1_conv1"], 4);
  EXPECT_EQ(t["layer2_0_conv1"], 5);
  EXPECT_EQ(t["layer2_0_conv2"], 6);
  EXPECT_EQ(t["layer3_0_conv1"], 2);
  EXPECT_EQ(t["layer3_0_conv2"], 7);
  EXPECT_EQ(t["layer3_0_downsample_0"], 2);  // its own parent (layer3.0.downsample) counts separately
  EXPECT_EQ(t["fc"], 1);
  EXPECT_EQ(t["x"], -1);
  EXPECT_EQ(t["output"], -1);
  // Functions take the rules of the module they are called from: add in layer1.0 is none by order.
  EXPECT_EQ(t["add"], -1);
  EXPECT_EQ(t["add_1"], 4);  // layer1.1's add: layer1 regex
  EXPECT_EQ(t["add_2"], 5);  // layer2.0: module_name layer2
  EXPECT_EQ(t["flatten"], 1);
}

TEST(QConfigMapping, FunctionObjectTypeIsOverriddenByItsModule) {
  auto gm = Resnet18();
  QConfigMapping m;
  m.SetGlobal(Tag(1));
  m.SetObjectType("add", Tag(2));
  m.SetObjectType("BasicBlock", Tag(3));
  auto t = Tags(*gm, m);
  EXPECT_EQ(t["add"], 3);  // called inside a BasicBlock: the block's type rule wins over add's
  m.SetModuleName("layer1.0", std::nullopt);
  t = Tags(*gm, m);
  EXPECT_EQ(t["add"], -1);
  EXPECT_EQ(t["layer1_0_conv1"], -1);  // none covers submodules
}

TEST(QConfigMapping, UnusedUserRulesAreReported) {
  auto gm = Resnet18();
  QConfigMapping m = *PresetMapping("x86");  // preset rules (Sigmoid, ...) are never reported
  m.SetModuleName("fc2", std::nullopt);
  ASSERT_TRUE(m.SetModuleNameRegex("head\\..*", std::nullopt).ok());
  m.SetModuleName("fc", std::nullopt);
  std::vector<std::string> unused;
  Tags(*gm, m, &unused);
  EXPECT_EQ(unused, (std::vector<std::string>{"module_name 'fc2' matched no node",
                                              "module_name_regex 'head\\..*' matched no node"}));
  EXPECT_FALSE(QConfigMapping().SetModuleNameRegex("layer(", std::nullopt).ok());
}

TEST(Presets, MatchPyTorchDefaults) {
  const QConfig x86 = *PresetQConfig("x86");
  EXPECT_EQ(x86.activation.ToString(), "histogram(quint8, per_tensor_affine, reduce_range)");
  EXPECT_EQ(x86.weight.ToString(), "per_channel_minmax(qint8, per_channel_symmetric)");
  EXPECT_EQ(PresetQConfig("qnnpack")->weight.ToString(), "minmax(qint8, per_tensor_symmetric)");
  EXPECT_EQ(PresetQConfig("onednn")->activation.ToString(), "histogram(quint8, per_tensor_affine)");
  EXPECT_EQ(PresetQConfig("x86_qat")->activation.ToString(),
            "fake_quant:moving_average_minmax(quint8, per_tensor_affine, reduce_range, range 0..255)");
  EXPECT_EQ(PresetQConfig("qnnpack_qat")->weight.ToString(),
            "fake_quant:moving_average_minmax(qint8, per_tensor_symmetric, range -128..127)");
  EXPECT_EQ(*QuantRange(PresetQConfig("x86_qat")->activation), std::make_pair(int64_t{0}, int64_t{127}));
  EXPECT_EQ(PresetQConfig("tpu").status().code(), absl::StatusCode::kNotFound);
  auto gm = *fx::SymbolicTrace(*models::Create("mobilenet_v3_small"));
  const auto assigned = PresetMapping("qnnpack")->Assign(*gm);
  for (const auto& [n, q] : assigned) {
    if (n->op() == fx::Opcode::kCallModule && gm->submodule(n->target().path)->type_name() == "Hardsigmoid") {
      EXPECT_EQ(q->activation.ToString(),
                "fixed_qparams(quint8, per_tensor_affine, range 0..255, scale 0.00390625, zero_point 0)");
    }
  }
}

void ExpectSameMapping(const QConfigMapping& a, const QConfigMapping& b, const std::string& what) {
  EXPECT_EQ(a.global(), b.global()) << what;
  ASSERT_EQ(a.rules().size(), b.rules().size()) << what;
  for (size_t i = 0; i < a.rules().size(); ++i) {
    EXPECT_EQ(a.rules()[i].Describe(), b.rules()[i].Describe()) << what;
    EXPECT_EQ(a.rules()[i].qconfig, b.rules()[i].qconfig) << what << " " << a.rules()[i].Describe();
  }
}

TEST(RuleFiles, EveryExampleLoadsAndPresetFilesEqualThePresets) {
  for (const std::string& preset : PresetNames()) {
    auto file = LoadQuantConfig("tools/qconfigs/" + preset + ".toml");
    ASSERT_TRUE(file.ok()) << file.status();
    auto direct = LoadQuantConfig(preset);
    ASSERT_TRUE(direct.ok());
    EXPECT_EQ(file->backend, direct->backend);
    ExpectSameMapping(file->mapping, direct->mapping, preset);
  }
  auto mixed = LoadQuantConfig("tools/qconfigs/mixed.toml");
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  auto gm = Resnet18();
  std::vector<std::string> unused;
  const auto assigned = mixed->mapping.Assign(*gm, &unused);
  EXPECT_TRUE(unused.empty()) << unused[0];
  std::map<std::string, MaybeQConfig> by_name;
  for (const auto& [n, q] : assigned) by_name[n->name()] = q;
  EXPECT_FALSE(by_name["fc"].has_value());
  EXPECT_FALSE(by_name["layer4_1_conv2"].has_value());
  EXPECT_FALSE(by_name["add"].has_value());
  EXPECT_TRUE(by_name["add_1"].has_value());
  EXPECT_EQ(*by_name["conv1"], *PresetQConfig("x86"));
}

TEST(RuleFiles, ErrorsNameFileLineAndKey) {
  const std::string head = "version = 1\n";
  struct Case {
    std::string text;
    const char* expect;
  };
  const Case cases[] = {
      {"version = 2\n", "r.toml:1: version 2 is not supported (use version = 1)"},
      {"backend = \"x86\"\n", "r.toml:1: missing key 'version' in the top level"},
      {head + "colour = 1\n", "r.toml:2: unknown key 'colour' in the top level"},
      {head + "backend = \"tpu\"\n", "r.toml:2: unknown backend 'tpu'"},
      {head + "[global]\nqconfig = \"x68\"\n", "r.toml:3: unknown qconfig 'x68' in [global]"},
      {head + "[global]\nqconfig = 3\n", "r.toml:3: 'qconfig' in [global] must be a string"},
      {head + "[qconfig.a]\nactivation = { observer = \"minmax\" }\n", "r.toml:2: [qconfig.a] needs 'weight'"},
      {head + "[qconfig.a]\nactivation = { observer = \"minmax\", dtyp = \"qint8\" }\nweight = { observer = \"minmax\" "
              "}\n",
       "r.toml:3: unknown key 'dtyp' in [qconfig.a].activation"},
      {head + "[qconfig.a]\nactivation = { observer = \"maxmin\" }\nweight = { observer = \"minmax\" }\n",
       "r.toml:3: unknown observer 'maxmin' in [qconfig.a].activation"},
      {head + "[qconfig.a]\nactivation = { observer = \"minmax\", dtype = \"int7\" }\nweight = { observer = \"minmax\" "
              "}\n",
       "r.toml:3: unknown dtype 'int7'"},
      {head + "[qconfig.a]\nactivation = { observer = \"minmax\", qscheme = \"per_channel_affine\" }\nweight = { "
              "observer = \"minmax\" }\n",
       "r.toml:3: [qconfig.a].activation: minmax observer needs a per_tensor qscheme"},
      {head +
           "[qconfig.a]\nactivation = { observer = \"minmax\", quant_min = 0 }\nweight = { observer = \"minmax\" }\n",
       "r.toml:3: [qconfig.a].activation: quant_min and quant_max must be given together"},
      {head + "[qconfig.x86]\nactivation = { observer = \"minmax\" }\nweight = { observer = \"minmax\" }\n",
       "r.toml:2: [qconfig.x86]: 'x86' is reserved"},
      {head + "[[module_name_regex]]\nregex = 'layer('\nqconfig = \"none\"\n",
       "r.toml:3: module_name_regex 'layer(' is not a valid regex"},
      {head + "[[module_name]]\nqconfig = \"none\"\n", "missing key 'name' in [[module_name]]"},
      {head + "[[object_type]]\ntype = \"Linear\"\nqconfig = \"none\"\nwhy = 1\n",
       "r.toml:5: unknown key 'why' in [[object_type]]"},
      {head + "[[module_name_object_type_order]]\nmodule = \"a\"\ntype = \"add\"\nindex = -1\nqconfig = \"none\"\n",
       "r.toml:5: index must be >= 0"},
      {head + "object_type = 3\n", "r.toml:2: 'object_type' must be written as [[object_type]] tables"},
      {head + "[global\n", "r.toml:2: "},
  };
  for (const Case& c : cases) {
    auto r = ParseRuleFile(c.text, "r.toml");
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status() << "\n--- for ---\n" << c.text;
  }
  EXPECT_EQ(LoadQuantConfig("nonexistent.toml").status().code(), absl::StatusCode::kNotFound);
}

// Issue 17: values that took all memory, overflowed the stack, backtracked for minutes or gave a model
// `run` could not load are errors naming the line and the limit.
TEST(RuleFiles, HostileValuesAreErrorsNamingTheLimit) {
  const std::string head = "version = 1\n[qconfig.a]\nweight = { observer = \"minmax\" }\nactivation = ";
  struct Case {
    std::string activation;
    const char* expect;
  };
  const Case cases[] = {
      {"{ observer = \"histogram\", bins = 1000000000 }", "bins 1000000000 is above the limit of 65536"},
      {"{ observer = \"histogram\", bins = 4294967296 }", "bins 4294967296 is above the limit of 65536"},
      {"{ observer = \"histogram\", upsample_rate = 1000000 }",
       "bins * upsample_rate = 2048 * 1000000 is above the limit of 4194304"},
      {"{ observer = \"minmax\", eps = inf }", "eps inf must be finite and within [1e-12, 1e+12]"},
      {"{ observer = \"minmax\", eps = nan }", "eps nan must be finite"},
      {"{ observer = \"fixed_qparams\", scale = inf, zero_point = 0 }", "fixed_qparams scale inf must be finite"},
      {"{ observer = \"fixed_qparams\", scale = 1e-45, zero_point = 0 }", "fixed_qparams scale 1.4013e-45 must be"},
      {"{ observer = \"fixed_qparams\", scale = 0.00390625, zero_point = 300 }",
       "fixed_qparams zero_point 300 must lie in the quantized range 0..255"},
      {"{ observer = \"fixed_qparams\", scale = 0.0078125, zero_point = -1, dtype = \"qint8\", quant_min = -128, "
       "quant_max = 127 }",
       ""},  // in range for qint8: accepted
  };
  for (const Case& c : cases) {
    const std::string text = head + c.activation + "\n";
    auto r = ParseRuleFile(text, "r.toml");
    if (*c.expect == '\0') {
      EXPECT_TRUE(r.ok()) << r.status();
      continue;
    }
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_NE(r.status().message().find("r.toml:4: [qconfig.a].activation: "), std::string::npos) << r.status();
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status();
  }
  // toml++ 3.3 has undefined behaviour on some non-ASCII text: only comments may hold it.
  EXPECT_TRUE(
      ParseRuleFile("version = 1 # r\xC3\xA8gles \xE2\x80\x94 \"x\" '\n[global] # \xC3\xA9\nqconfig = \"x86\"\n",
                    "r.toml")
          .ok());
  for (const std::string text : {"version = 1\n[global]\nqconfig = \"x\xC3\xA9\"\n",
                                 "version = 1\n\n[glob\xC2\xA1"
                                 "al]\nqconfig = \"x86\"\n",
                                 "version = 1\nx = '''a\n\xC2\xA1'''\n"}) {
    auto r = ParseRuleFile(text, "r.toml");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("non-ASCII byte 0xc"), std::string::npos) << r.status();
    EXPECT_NE(r.status().message().find("outside a comment"), std::string::npos) << r.status();
  }
  auto regex_rule = [](const std::string& re) {
    return "version = 1\n[[module_name_regex]]\nregex = '" + re + "'\nqconfig = \"none\"\n";
  };
  const std::string nested = std::string(100000, '(') + std::string(100000, ')');
  const std::string literal(100000, 'a');
  for (const std::string& re : {nested, literal}) {
    auto r = ParseRuleFile(regex_rule(re), "r.toml");
    ASSERT_FALSE(r.ok());
    const std::string expect = "is " + std::to_string(re.size()) + " characters long; the limit is 4096";
    EXPECT_NE(r.status().message().find(expect), std::string::npos) << r.status().message().substr(0, 200);
  }
  // Deep nesting within the length limit: RE2 parses and compiles without recursion (std::regex overflowed
  // the stack here), so it loads or is refused with a message, and matches.
  const std::string deep = std::string(2000, '(') + "layer" + std::string(2000, ')');
  auto r = ParseRuleFile(regex_rule(deep), "r.toml");
  if (r.ok()) {
    std::vector<std::string> unused;
    Tags(*Resnet18(), r->mapping, &unused);
    EXPECT_TRUE(unused.empty());  // it matched layer1...
  } else {
    EXPECT_NE(r.status().message().find("r.toml:3: module_name_regex '((((("), std::string::npos) << r.status();
  }
}

// `(.*.*)*X` backtracked for minutes in std::regex over resnet18's module names; RE2 matches in linear time.
TEST(QConfigMapping, PathologicalRegexesMatchInLinearTime) {
  auto gm = Resnet18();
  QConfigMapping m;
  m.SetGlobal(Tag(1));
  ASSERT_TRUE(m.SetModuleNameRegex("(.*.*)*X", Tag(2)).ok());
  ASSERT_TRUE(m.SetModuleNameRegex("(a|aa)*(layer)+.*", Tag(3)).ok());
  std::vector<std::string> unused;
  int tagged3 = 0;
  for (const auto& [node, tag] : Tags(*gm, m, &unused)) tagged3 += tag == 3;
  EXPECT_GT(tagged3, 0);
  EXPECT_EQ(unused.size(), 1u);  // (.*.*)*X matches no name
}

}  // namespace
}  // namespace quant
}  // namespace qfx
