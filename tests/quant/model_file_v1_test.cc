// qfx tests: a version-1 .qfx file, written by the code of commit 884470f (before .qfx files named the ops
// of q_unary nodes), still loads and runs bit-identically. tests/data/quant/unary_v1.qfx is a small
// converted model whose int8 graph has q_unary nodes for hardswish, sigmoid and tanh (version 1 stored
// them as OpId ordinals); unary_v1_io.safetensors holds an input and the output the model gave when the
// file was written.
//
// QFX_WRITE_V1_FIXTURE=DIR writes both files into DIR (done once, by hand, with the version-1 writer).
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "qfx/fx/tracer.h"
#include "qfx/io/model_file.h"
#include "qfx/io/safetensors.h"
#include "qfx/nn/functional.h"
#include "qfx/nn/modules.h"
#include "qfx/quant/passes.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace quant {
namespace {

using io::LoadModel;
using io::SaveModel;

// Three convolutions with a table-driven unary op after each.
class Unaries : public nn::Module {
 public:
  Unaries() {
    a = register_module("a", std::make_shared<nn::Conv2d>(3, 8, 3, nn::Conv2dArgs{1, 1}));
    b = register_module("b", std::make_shared<nn::Conv2d>(8, 8, 3, nn::Conv2dArgs{1, 1}));
    c = register_module("c", std::make_shared<nn::Conv2d>(8, 4, 1));
  }
  std::string type_name() const override { return "Unaries"; }
  Tensor forward(const Tensor& x) override { return F::tanh((*c)(F::sigmoid((*b)(F::hardswish((*a)(x)))))); }
  std::shared_ptr<nn::Module> a, b, c;
};

int CountUnary(const fx::Graph& g) {
  int n = 0;
  for (const fx::Node* node : g) n += node->op() == fx::Opcode::kCallFunction && node->target().op == OpId::kQUnary;
  return n;
}

TEST(ModelFileV1, WrittenBeforeOpNamesLoadsAndRunsBitIdentically) {
  if (const char* dir = std::getenv("QFX_WRITE_V1_FIXTURE")) {
    auto model = std::make_shared<Unaries>();
    testing::HashInit(*model);
    model->eval();
    auto gm = *fx::SymbolicTrace(model);
    PrepareOptions opt;
    opt.config = *LoadQuantConfig("x86");
    auto report = Prepare(*gm, opt);
    ASSERT_TRUE(report.ok()) << report.status();
    ASSERT_TRUE(RunModule(*gm, testing::HashUniform("calib", {2, 3, 12, 12}, -2, 2)).ok());
    ASSERT_TRUE(Convert(*gm, *report).ok());
    ASSERT_EQ(CountUnary(gm->graph()), 3) << gm->graph().ToString();
    const Tensor x = testing::HashUniform("x", {2, 3, 12, 12}, -2, 2);
    const Tensor y = (*RunModule(*gm, x)).Clone();
    const std::string d(dir);
    ASSERT_TRUE(SaveModel(d + "/unary_v1.qfx", *gm, {1, 3, 12, 12}, "tests/quant/model_file_v1_test.cc").ok());
    ASSERT_TRUE(io::WriteSafetensors(d + "/unary_v1_io.safetensors", {{"x", x}, {"y", y}}).ok());
    GTEST_SKIP() << "wrote the fixture into " << d;
  }
  auto loaded = LoadModel("tests/data/quant/unary_v1.qfx");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(CountUnary(loaded->module->graph()), 3);
  const io::Safetensors io = testing::ReadFixture("quant/unary_v1_io.safetensors");
  const Tensor want = testing::Get(io, "y");
  auto y = RunModule(*loaded->module, testing::Get(io, "x"));
  ASSERT_TRUE(y.ok()) << y.status();
  ASSERT_EQ(y->shape(), want.shape());
  EXPECT_EQ(0, std::memcmp(y->raw_data(), want.raw_data(), want.nbytes()));
}

std::string Tmp(const std::string& name) {
  const char* d = std::getenv("TEST_TMPDIR");
  return std::string(d ? d : "/tmp") + "/" + name;
}

// The q_unary op arguments of a .qfx file's graph, as stored.
std::vector<nlohmann::json> StoredUnaryOps(const io::Safetensors& st) {
  std::vector<nlohmann::json> ops;
  const nlohmann::json graph = nlohmann::json::parse(st.metadata.at("graph"));
  for (const auto& node : graph["nodes"]) {
    if (node["target"] == "q_unary") ops.push_back(node["args"][1]);
  }
  return ops;
}

// Rewrites the stored op of the first q_unary node and loads the file again.
absl::Status WithFirstUnaryOp(io::Safetensors st, const nlohmann::json& op, const std::string& version) {
  nlohmann::json graph = nlohmann::json::parse(st.metadata.at("graph"));
  for (auto& node : graph["nodes"]) {
    if (node["target"] != "q_unary") continue;
    node["args"][1] = op;
    break;
  }
  st.metadata["graph"] = graph.dump();
  st.metadata["version"] = version;
  EXPECT_TRUE(io::WriteSafetensors(Tmp("edited.qfx"), st.tensors, st.metadata).ok());
  return LoadModel(Tmp("edited.qfx")).status();
}

TEST(ModelFileV1, SavedAgainItNamesItsOpsAndUnknownOpsAreErrors) {
  auto loaded = LoadModel("tests/data/quant/unary_v1.qfx");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(SaveModel(Tmp("v2.qfx"), *loaded->module, loaded->input_shape, loaded->source).ok());
  const io::Safetensors v2 = *io::ReadSafetensors(Tmp("v2.qfx"));
  EXPECT_EQ(v2.metadata.at("version"), "2");
  EXPECT_EQ(StoredUnaryOps(v2), (std::vector<nlohmann::json>{"hardswish", "sigmoid", "tanh"}));
  const io::Safetensors io = testing::ReadFixture("quant/unary_v1_io.safetensors");
  auto again = LoadModel(Tmp("v2.qfx"));
  ASSERT_TRUE(again.ok()) << again.status();
  auto y = RunModule(*again->module, testing::Get(io, "x"));
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_EQ(0, std::memcmp(y->raw_data(), testing::Get(io, "y").raw_data(), y->nbytes()));
  EXPECT_NE(WithFirstUnaryOp(v2, "gelu_typo", "2").message().find("node %q_unary (q_unary): unknown op 'gelu_typo'"),
            std::string::npos)
      << WithFirstUnaryOp(v2, "gelu_typo", "2");
  EXPECT_NE(WithFirstUnaryOp(v2, 9, "2").message().find("op 9 must be an op name"), std::string::npos);
  const io::Safetensors v1 = *io::ReadSafetensors("tests/data/quant/unary_v1.qfx");
  EXPECT_NE(WithFirstUnaryOp(v1, 99, "1").message().find("op 99 must be an op number of version 1"), std::string::npos)
      << WithFirstUnaryOp(v1, 99, "1");
}

}  // namespace
}  // namespace quant
}  // namespace qfx
