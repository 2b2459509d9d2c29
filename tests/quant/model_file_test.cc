// qfx tests: .qfx files. Saved and reloaded models give bit-identical outputs without the model's C++
// class; loading rejects malformed files with errors naming the file and the problem.
#include <cstring>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "qfx/fx/tracer.h"
#include "qfx/io/model_file.h"
#include "qfx/io/safetensors.h"
#include "qfx/models/zoo.h"
#include "qfx/quant/passes.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace quant {
namespace {

using io::LoadModel;
using io::SaveModel;

std::string Tmp(const std::string& name) {
  const char* d = std::getenv("TEST_TMPDIR");
  return std::string(d ? d : "/tmp") + "/" + name;
}

std::shared_ptr<fx::GraphModule> Converted(const std::string& name, const std::string& qconfig, const Shape& shape) {
  auto model = *models::Create(name);
  testing::HashInit(*model);
  auto gm = *fx::SymbolicTrace(model);
  PrepareOptions opt;
  opt.config = *LoadQuantConfig(qconfig);
  auto report = Prepare(*gm, opt);
  EXPECT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(RunModule(*gm, testing::HashUniform("calib", shape, -1, 1)).ok());
  EXPECT_TRUE(Convert(*gm, *report).ok());
  return gm;
}

class ModelFileRoundTrip : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(ModelFileRoundTrip, ReloadedModelIsBitIdentical) {
  const auto& [name, qconfig] = GetParam();
  Shape shape = models::GetModelInfo(name)->input_shape;
  shape[0] = 2;
  if (shape[2] > 64) shape[2] = shape[3] = 64;
  auto gm = Converted(name, qconfig, shape);
  const std::string path = Tmp(name + ".qfx");
  ASSERT_TRUE(SaveModel(path, *gm, {1, shape[1], shape[2], shape[3]}, "test").ok());
  auto loaded = LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->input_shape, (Shape{1, shape[1], shape[2], shape[3]}));
  EXPECT_EQ(loaded->module->graph().ToString(), gm->graph().ToString());
  const Tensor x = testing::HashUniform("x", shape, -1, 1);
  auto a = RunModule(*gm, x), b = RunModule(*loaded->module, x);
  ASSERT_TRUE(a.ok() && b.ok()) << b.status();
  ASSERT_EQ(a->nbytes(), b->nbytes());
  EXPECT_EQ(std::memcmp(a->raw_data(), b->raw_data(), a->nbytes()), 0);
}

INSTANTIATE_TEST_SUITE_P(Zoo, ModelFileRoundTrip,
                         ::testing::Values(std::make_pair(std::string("mnist_cnn"), std::string("x86")),
                                           std::make_pair(std::string("resnet18"),
                                                          std::string("tools/qconfigs/mixed.toml")),
                                           std::make_pair(std::string("mobilenet_v3_small"), std::string("qnnpack")),
                                           std::make_pair(std::string("mobilenet_v2"), std::string("x86"))),
                         [](const auto& info) { return info.param.first; });

TEST(ModelFile, MalformedFilesNameTheProblem) {
  auto gm = Converted("mnist_cnn", "x86", {2, 1, 28, 28});
  const std::string good = Tmp("good.qfx");
  ASSERT_TRUE(SaveModel(good, *gm, {1, 1, 28, 28}, "").ok());
  auto st = *io::ReadSafetensors(good);
  auto rewrite = [&](const std::string& name, io::Safetensors s) {
    EXPECT_TRUE(io::WriteSafetensors(Tmp(name), s.tensors, s.metadata).ok());
    return LoadModel(Tmp(name)).status();
  };
  auto s1 = st;
  s1.metadata["version"] = "9";
  EXPECT_NE(rewrite("v.qfx", s1).message().find("model file version 9 is not supported"), std::string::npos);
  auto s2 = st;
  s2.metadata.erase("format");
  EXPECT_NE(rewrite("f.qfx", s2).message().find("not a qfx model file"), std::string::npos);
  auto s3 = st;
  s3.tensors.erase(s3.tensors.begin());
  EXPECT_NE(rewrite("t.qfx", s3).message().find("1 missing key(s): conv1.weight"), std::string::npos)
      << rewrite("t.qfx", s3);
  auto s4 = st;
  s4.tensors[0].second = Tensor::Zeros(s4.tensors[0].second.shape());  // f32 instead of i8
  EXPECT_NE(rewrite("d.qfx", s4).message().find("conv1.weight: checkpoint f32"), std::string::npos);
  auto s5 = st;
  s5.metadata["modules"] = R"({"conv1": {"type": "FancyConv", "config": {}}})";
  EXPECT_NE(rewrite("m.qfx", s5).message().find("module 'conv1': unknown module type 'FancyConv'"), std::string::npos);
  auto s6 = st;
  s6.metadata["graph"] = "{";
  EXPECT_NE(rewrite("g.qfx", s6).message().find("(graph): not valid JSON"), std::string::npos);
  // A quantized convolution whose groups do not divide its channels (the kernels would read past the weights).
  auto s7 = st;
  nlohmann::json modules = nlohmann::json::parse(s7.metadata["modules"]);
  for (auto& [name, m] : modules.items()) {
    if (m["type"] == "QuantizedConvReLU2d" || m["type"] == "QuantizedConv2d") {
      m["config"]["groups"] = 3;
      break;
    }
  }
  s7.metadata["modules"] = modules.dump();
  EXPECT_NE(rewrite("groups.qfx", s7).message().find("groups 3 must divide in_channels"), std::string::npos)
      << rewrite("groups.qfx", s7);
  EXPECT_EQ(LoadModel(Tmp("absent.qfx")).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace quant
}  // namespace qfx
