// qfx tests: which kernel path every zoo layer takes on every compiled target (and AVX3_DL with AMX), as
// the path rules (src/kernels/path.cc) decide at pack time. The rules are pure functions of the layer's
// shape and the ISA, so every target is checked here whatever this machine's CPU is. The whole table is
// pinned in tests/data/kernels/zoo_paths.txt (QFX_WRITE_ZOO_PATHS=FILE writes it after a deliberate
// change of the rules); a few layers are also spelled out below.
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "qfx/kernels/qconv.h"
#include "qfx/models/zoo.h"
#include "qfx/nn/modules.h"

namespace qfx {
namespace kernels {
namespace {

struct NamedIsa {
  std::string name;
  Int8Isa isa;
};

// Every compiled target, best first, with AVX3_DL twice: with and without AMX.
std::vector<NamedIsa> CompiledIsas() {
  std::vector<NamedIsa> out;
  for (int64_t bits = HWY_TARGETS; bits != 0; bits &= bits - 1) {
    const int64_t target = bits & -bits;
    if (target == HWY_AVX3_DL) out.push_back({"AVX3_DL+AMX", {target, true}});
    out.push_back({hwy::TargetName(target), {target, false}});
  }
  return out;
}

QConv2dShape ShapeOf(const nn::Conv2d& c) {
  QConv2dShape s;
  s.in_channels = c.in_channels, s.out_channels = c.out_channels, s.groups = c.options.groups;
  s.kernel_h = c.kernel_size.h, s.kernel_w = c.kernel_size.w;
  s.stride_h = c.options.stride[0], s.stride_w = c.options.stride[1];
  s.pad_h = c.options.padding[0], s.pad_w = c.options.padding[1];
  s.dilation_h = c.options.dilation[0], s.dilation_w = c.options.dilation[1];
  return s;
}

// Each model's convolutions by path on each ISA, plus its linear layers' path: one line per (model, ISA).
std::string PathTable() {
  std::ostringstream out;
  for (const models::ModelInfo& info : models::ListModels()) {
    auto model = *models::Create(info.name);
    for (const NamedIsa& isa : CompiledIsas()) {
      std::map<std::string, int> counts;
      for (const auto& [path, m] : model->named_modules()) {
        if (auto* c = dynamic_cast<const nn::Conv2d*>(m)) ++counts[PathName(SelectQConvPath(ShapeOf(*c), isa.isa))];
        if (dynamic_cast<const nn::Linear*>(m) != nullptr) ++counts[PathName(SelectQLinearPath(isa.isa))];
      }
      // Highway's portable fallback is SCALAR under GCC and EMU128 under clang (the ASan build): one name.
      out << info.name << " " << (std::string(isa.name) == "EMU128" ? "SCALAR" : isa.name) << ":";
      for (const auto& [name, n] : counts) out << " " << name << " x" << n;
      out << "\n";
    }
  }
  return out.str();
}

TEST(KernelPaths, EveryZooLayerOnEveryTargetTakesThePinnedPath) {
  const std::string table = PathTable();
  if (const char* write_to = std::getenv("QFX_WRITE_ZOO_PATHS")) {
    std::ofstream(write_to) << table;
    GTEST_SKIP() << "wrote " << write_to;
  }
  std::ifstream in("tests/data/kernels/zoo_paths.txt");
  ASSERT_TRUE(in.good()) << "tests/data/kernels/zoo_paths.txt is missing";
  std::stringstream want;
  want << in.rdbuf();
  EXPECT_EQ(table, want.str()) << "the path rules changed; the new table:\n" << table;
}

// A few resnet18 / mobilenet_v2 layers with the path each must take, independent of the table.
TEST(KernelPaths, NamedLayersTakeTheirPaths) {
  const Int8Isa amx{HWY_AVX3_DL, true}, vnni{HWY_AVX3_DL, false}, avx2{HWY_AVX2, false}, sse4{HWY_SSE4, false};
  auto resnet = *models::Create("resnet18");
  auto mobilenet = *models::Create("mobilenet_v2");
  const auto shape = [](nn::Module& model, const std::string& name) {
    for (const auto& [path, m] : model.named_modules()) {
      if (path == name) return ShapeOf(*dynamic_cast<const nn::Conv2d*>(m));
    }
    ADD_FAILURE() << "no layer " << name;
    return QConv2dShape{};
  };
  const QConv2dShape conv1 = shape(*resnet, "conv1"), layer1 = shape(*resnet, "layer1.0.conv1");
  const QConv2dShape down = shape(*resnet, "layer2.0.downsample.0"), dw = shape(*mobilenet, "features.1.conv.0.0");
  EXPECT_EQ(SelectQConvPath(conv1, amx), QConvPath::kWindowedAmx);  // 7x7 stride 2, 3 channels
  EXPECT_EQ(SelectQConvPath(conv1, vnni), QConvPath::kWindowedVnni);
  EXPECT_EQ(SelectQConvPath(conv1, avx2), QConvPath::kImplicitMaddubs);
  EXPECT_EQ(SelectQConvPath(conv1, sse4), QConvPath::kGemmPortable);
  EXPECT_EQ(SelectQConvPath(layer1, amx), QConvPath::kImplicitAmx);  // 3x3 stride 1, 64 channels
  EXPECT_EQ(SelectQConvPath(layer1, vnni), QConvPath::kImplicitVnni);
  EXPECT_EQ(SelectQConvPath(layer1, avx2), QConvPath::kImplicitMaddubs);
  EXPECT_EQ(SelectQConvPath(down, amx), QConvPath::kGemmAmx);  // 1x1 stride 2
  EXPECT_EQ(SelectQConvPath(down, vnni), QConvPath::kGemmVnni);
  EXPECT_EQ(SelectQConvPath(dw, vnni), QConvPath::kDepthwiseVnni);  // depthwise 3x3, 32 channels
  EXPECT_EQ(SelectQConvPath(dw, amx), QConvPath::kDepthwiseVnni);
  EXPECT_EQ(SelectQConvPath(dw, avx2), QConvPath::kDepthwiseMaddwd);
  EXPECT_EQ(SelectQLinearPath(amx), QLinearPath::kAmx);
  EXPECT_EQ(SelectQLinearPath(sse4), QLinearPath::kPortable);
}

// Every path a rule can choose runs on the ISA it was chosen for, and fits the layer it was chosen for.
TEST(KernelPaths, ChosenPathsFitAndRun) {
  for (const models::ModelInfo& info : models::ListModels()) {
    auto model = *models::Create(info.name);
    for (const NamedIsa& isa : CompiledIsas()) {
      for (const auto& [path, m] : model->named_modules()) {
        auto* c = dynamic_cast<const nn::Conv2d*>(m);
        if (c == nullptr) continue;
        const QConvPath p = SelectQConvPath(ShapeOf(*c), isa.isa);
        EXPECT_TRUE(PathFits(p, ShapeOf(*c))) << info.name << " " << path << " " << isa.name;
        EXPECT_TRUE(PathRuns(p, isa.isa)) << info.name << " " << path << " " << isa.name;
      }
      EXPECT_TRUE(PathRuns(SelectQLinearPath(isa.isa), isa.isa)) << isa.name;
    }
  }
}

}  // namespace
}  // namespace kernels
}  // namespace qfx
