// qfx tests: .qfx files. Saved and reloaded models give bit-identical outputs without the model's C++
// class; loading rejects malformed files with errors naming the file and the problem.
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
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
  const Shape shape = testing::ZooTestShape(name, 2);
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

// Crafted files (issue 17): each is a clear error naming the file, the module or field, and the rule, before
// anything is allocated for it or reaches a kernel.
TEST(ModelFile, CraftedFilesAreClearErrors) {
  auto gm = Converted("mnist_cnn", "x86", {2, 1, 28, 28});
  const std::string good = Tmp("crafted.qfx");
  ASSERT_TRUE(SaveModel(good, *gm, {1, 1, 28, 28}, "").ok());
  const io::Safetensors st = *io::ReadSafetensors(good);
  auto load = [&](const std::string& name, const io::Safetensors& s) {
    EXPECT_TRUE(io::WriteSafetensors(Tmp(name), s.tensors, s.metadata).ok());
    return std::string(LoadModel(Tmp(name)).status().message());
  };
  auto with_conv = [&](const char* key, const nlohmann::json& value) {
    io::Safetensors s = st;
    nlohmann::json modules = nlohmann::json::parse(s.metadata["modules"]);
    modules["conv1"]["config"][key] = value;
    s.metadata["modules"] = modules.dump();
    return load(absl::StrCat(key, ".qfx"), s);
  };
  const std::pair<const char*, nlohmann::json> configs[] = {{"stride", 0},
                                                            {"dilation", 0},
                                                            {"padding", -1},
                                                            {"padding", 1000},
                                                            {"in_channels", int64_t{1} << 62},
                                                            {"kernel", int64_t{1} << 31},
                                                            {"groups", int64_t{1} << 53},
                                                            {"output_zero_point", 300},
                                                            {"input_scale", -1.0},
                                                            {"output_scale", 1e-45}};
  const char* expect[] = {"stride 0 must be at least 1",
                          "dilation 0 must be at least 1",
                          "padding -1 must lie in 0..dilation x (kernel - 1) = 2",
                          "padding 1000 must lie in 0..",
                          "a weight of shape [16, 4611686018427387904, 3, 3] exceeds",
                          "exceeds 1099511627776 bytes",
                          "groups 9007199254740992 must divide in_channels",
                          "output_zero_point 300 must lie in 0..255",
                          "input_scale -1 must be finite and within [1e-12, 1e+12]",
                          "output_scale 1.4013e-45 must be finite and within [1e-12, 1e+12]"};
  for (size_t i = 0; i < std::size(configs); ++i) {
    const std::string message = with_conv(configs[i].first, configs[i].second);
    EXPECT_NE(message.find(absl::StrCat(Tmp(absl::StrCat(configs[i].first, ".qfx")), ": module 'conv1': ")),
              std::string::npos)
        << message;
    EXPECT_NE(message.find(expect[i]), std::string::npos) << message;
  }
  // JSON of the wrong types, which once aborted on an uncaught nlohmann::json::type_error.
  io::Safetensors s = st;
  nlohmann::json graph = nlohmann::json::parse(s.metadata["graph"]);
  graph["nodes"][1]["target"] = 5;
  s.metadata["graph"] = graph.dump();
  EXPECT_NE(load("target.qfx", s).find("(graph): node 1: 'target' must be a string"), std::string::npos)
      << load("target.qfx", s);
  graph["format"] = 5;
  s.metadata["graph"] = graph.dump();
  EXPECT_NE(load("format.qfx", s).find("not a qfx graph"), std::string::npos);
  // A NaN bias (in a file without a checksum, as files before it were), and tensor data changed behind
  // the checksum. Edited tensors are copies: the others share the storage of the file read.
  s = st;
  s.metadata.erase("checksum");
  for (auto& [name, t] : s.tensors) {
    if (name == "conv1.bias") (t = t.Clone()).data<float>()[3] = std::nanf("");
  }
  EXPECT_NE(load("nan.qfx", s).find("module 'conv1': bias[3] is nan; biases must be finite"), std::string::npos)
      << load("nan.qfx", s);
  s = st;
  for (auto& [name, t] : s.tensors) {
    if (name == "conv1.weight") (t = t.Clone()).data<int8_t>()[0] ^= 1;
  }
  EXPECT_NE(load("flip.qfx", s).find("tensor data do not match the file's checksum fnv1a64:"), std::string::npos)
      << load("flip.qfx", s);
}

}  // namespace
}  // namespace quant
}  // namespace qfx
