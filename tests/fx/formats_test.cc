// qfx tests: graph formats. JSON round trips of every zoo model are identical; the reader rejects
// malformed documents naming the node and field; table, code and DOT output for a known graph.
#include "qfx/fx/formats.h"
#include "gtest/gtest.h"
#include "qfx/fx/tracer.h"
#include "qfx/models/zoo.h"

namespace qfx {
namespace fx {
namespace {

std::shared_ptr<GraphModule> Traced(const std::string& name, bool shapes) {
  auto gm = SymbolicTrace(*models::Create(name));
  EXPECT_TRUE(gm.ok()) << gm.status();
  if (shapes) {
    Shape s = models::GetModelInfo(name)->input_shape;
    if (s[2] > 64) s[2] = s[3] = 64;
    EXPECT_TRUE(PropagateShapes(**gm, {s}).ok());
  }
  return *gm;
}

class JsonRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(JsonRoundTrip, LoadsBackToAnIdenticalGraph) {
  auto gm = Traced(GetParam(), /*shapes=*/true);
  const std::string text = GraphToJson(gm->graph());
  auto loaded = GraphFromJson(text, GetParam() + ".json");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->ToString(), gm->graph().ToString());
  EXPECT_EQ(GraphToJson(**loaded), text);
  // The loaded graph runs on the model's modules and gives the same result.
  GraphModule reloaded(gm->shared_root(), std::move(*loaded));
  ASSERT_TRUE(reloaded.Lint().ok());
  const int64_t side = std::max<int64_t>(32, models::GetModelInfo(GetParam())->min_size);
  Tensor x = Tensor::Full({1, models::GetModelInfo(GetParam())->input_shape[1], side, side}, 0.25f);
  if (GetParam() == "mlp" || GetParam() == "mnist_cnn") x = Tensor::Full({1, 1, 28, 28}, 0.25f);
  auto a = RunModule(*gm, x), b = RunModule(reloaded, x);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(std::memcmp(a->raw_data(), b->raw_data(), a->nbytes()), 0);
}

INSTANTIATE_TEST_SUITE_P(Zoo, JsonRoundTrip,
                         ::testing::Values("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small",
                                           "regnet_x_400mf", "efficientnet_b0", "inception_v3", "mlp", "mnist_cnn"));

TEST(Json, EveryArgumentKindRoundTrips) {
  Graph g;
  Node* x = g.Placeholder("x");
  Node* y = g.Placeholder("y");
  Node* c = g.CallFunction(OpId::kCat, {std::vector<Node*>{x, y}, int64_t{1}});
  Node* h = g.CallFunction(OpId::kHardtanh, {c, -2.0, 1.0});
  Node* bn = g.CallFunction(
      OpId::kBatchNorm, {h, std::monostate(), std::monostate(), std::monostate(), std::monostate(), true, 0.1, 1e-5});
  Node* r = g.CallMethod(OpId::kMethodReshape, {bn, std::vector<int64_t>{-1}});
  Node* u = g.CallFunction(OpId::kQUnary, {r, OpId::kHardswish, 0.1, int64_t{3}});
  g.Output(u);
  EXPECT_NE(GraphToJson(g).find(R"("args":[{"node":"reshape"},"hardswish",0.1,3])"), std::string::npos)
      << GraphToJson(g);
  auto loaded = GraphFromJson(GraphToJson(g));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->ToString(), g.ToString());
}

TEST(Json, MalformedDocumentsNameTheProblem) {
  const std::string head = R"({"format": "qfx.graph", "version": 1, "nodes": [)";
  const std::string x = R"({"name": "x", "op": "placeholder", "target": "x"})";
  struct Case {
    std::string text;
    const char* expect;
  };
  const Case cases[] = {
      {"{", "g.json: not valid JSON"},
      {R"({"version": 1, "nodes": []})", "not a qfx graph"},
      {R"({"format": "qfx.graph", "version": 7, "nodes": []})",
       "graph version 7 is not supported (this qfx reads version 1)"},
      {head + x + R"(, {"name": "r", "op": "call_function", "target": "relux", "args": [{"node": "x"}]}]})",
       "g.json: node 1 (%r): unknown function 'relux'"},
      {head + x + R"(, {"name": "r", "op": "call_fn", "target": "relu"}]})", "node 1 (%r): op 'call_fn' must be"},
      {head + x + R"(, {"name": "r", "op": "call_function", "target": "relu", "args": [{"node": "z"}]}]})",
       "node 1 (%r) arg 0: refers to %z, which is not defined before this node"},
      {head + x + R"(, {"name": "r", "op": "call_function", "target": "relu", "colour": 1}]})",
       "node 1: unknown key 'colour'"},
      {head + x +
           R"(, {"name": "u", "op": "call_function", "target": "q_unary", "args": [{"node": "x"}, "hardswishh", 0.1, 0]}]})",
       "node 1 (%u) arg 1: unknown op 'hardswishh'"},
      {head + x + R"(, {"name": "x", "op": "call_function", "target": "relu", "args": [{"node": "x"}]}]})",
       "node 1 (%x): name is used by an earlier node"},
      {head + x + R"(, {"name": "a b", "op": "output", "target": "output", "args": [{"node": "x"}]}]})",
       "node 1 (%a b): name must be a valid identifier"},
      {head + x + R"(, {"name": "r", "op": "call_function", "target": "relu", "args": [[1, {"node": "x"}]]}]})",
       "a list must hold only integers or only node references"},
      {head + x + "]}", "Lint: the graph has no output node"},
      {head + x + R"(, {"name": "r", "op": "call_function", "target": "relu", "args": [{"node": "x"}, 3]}, )" +
           R"({"name": "output", "op": "output", "target": "output", "args": [{"node": "r"}]}]})",
       "op 'relu' takes 1..1 args, has 2"},
  };
  for (const Case& c : cases) {
    auto g = GraphFromJson(c.text, "g.json");
    ASSERT_FALSE(g.ok()) << c.text;
    EXPECT_NE(g.status().message().find(c.expect), std::string::npos) << g.status();
  }
}

TEST(Formats, TableCodeAndDot) {
  auto gm = Traced("mnist_cnn", /*shapes=*/true);
  const std::string table = FormatTable(gm->graph());
  EXPECT_EQ(table.substr(0, table.find('\n', table.find('\n') + 1) + 1),
            "opcode         name     target   args              kwargs  shape               users\n"
            "-------------  -------  -------  ----------------  ------  ------------------  -------\n");
  EXPECT_NE(table.find("call_function  flatten  flatten  (%pool_1, 1, -1)  {}      f32[1, 1568]        fc1\n"),
            std::string::npos)
      << table;
  const std::string code = FormatCode(gm->graph());
  EXPECT_EQ(code.substr(0, code.find('\n') + 1), "def forward(self, x):\n");
  EXPECT_NE(
      code.find(
          "    relu_1 = self.relu(bn2)\n    pool_1 = self.pool(relu_1)\n    flatten = F.flatten(pool_1, 1, -1)\n"),
      std::string::npos)
      << code;
  EXPECT_NE(code.find("    return fc2\n"), std::string::npos);
  auto r18 = Traced("resnet18", /*shapes=*/true);
  const std::string dot = FormatDot(r18->graph(), "resnet18");
  EXPECT_EQ(dot.rfind("digraph \"resnet18\" {", 0), 0u);
  EXPECT_NE(dot.find("subgraph \"cluster_layer1\""), std::string::npos);
  EXPECT_NE(dot.find("\"layer1_0_conv1\" [label=\"layer1_0_conv1\\ncall_module[layer1.0.conv1]\\nf32[1, 64, 16, 16]\""),
            std::string::npos);
  EXPECT_NE(dot.find("\"layer1_0_bn2\" -> \"add\";"), std::string::npos);
}

}  // namespace
}  // namespace fx
}  // namespace qfx
