// qfx tests: the subgraph matcher (module types, literals, wildcards, escaping intermediates,
// overlapping matches) and ReplacePattern.
#include <cstring>

#include "gtest/gtest.h"
#include "qfx/fx/matcher.h"
#include "qfx/fx/tracer.h"
#include "qfx/models/zoo.h"
#include "qfx/nn/modules.h"

namespace qfx {
namespace fx {
namespace {

// Pattern module: conv -> bn -> relu, traced like any module.
class ConvBnRelu : public nn::Module {
 public:
  ConvBnRelu() {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(1, 1, 1));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(1));
    relu = register_module("relu", std::make_shared<nn::ReLU>());
  }
  std::string type_name() const override { return "ConvBnRelu"; }
  Tensor forward(const Tensor& x) override { return (*relu)((*bn)((*conv)(x))); }
  std::shared_ptr<nn::Module> conv, bn, relu;
};

TEST(Matcher, FindsTracedPatternByModuleTypeNotName) {
  auto pattern = SymbolicTrace(std::make_shared<ConvBnRelu>());
  ASSERT_TRUE(pattern.ok());
  auto gm = SymbolicTrace(*models::Create("resnet18"));
  ASSERT_TRUE(gm.ok());
  auto matches = FindMatches((*pattern)->graph(), pattern->get(), (*gm)->graph(), gm->get());
  ASSERT_TRUE(matches.ok()) << matches.status();
  // The stem and the first conv of each of the 8 basic blocks.
  ASSERT_EQ(matches->size(), 9u);
  EXPECT_EQ((*matches)[0].anchor->name(), "relu");
  EXPECT_EQ((*matches)[0].placeholder_nodes[0]->name(), "x");
  EXPECT_EQ((*matches)[1].anchor->name(), "layer1_0_relu");
  EXPECT_EQ((*matches)[1].nodes_map.size(), 4u);
  // Without owners, call_module targets compare as paths: the pattern's "conv" is not in resnet18.
  auto by_path = FindMatches((*pattern)->graph(), nullptr, (*gm)->graph(), nullptr);
  ASSERT_TRUE(by_path.ok());
  EXPECT_TRUE(by_path->empty());
}

// Builds x -> relu -> sigmoid(relu) -> output, with relu optionally also used by tanh.
struct Chain {
  Graph g;
  Node *x, *relu, *sig;
  explicit Chain(bool leak) {
    x = g.Placeholder("x");
    relu = g.CallFunction(OpId::kRelu, {x});
    sig = g.CallFunction(OpId::kSigmoid, {relu});
    Node* out = sig;
    if (leak) out = g.CallFunction(OpId::kAdd, {sig, g.CallFunction(OpId::kTanh, {relu})});
    g.Output(out);
  }
};

void ReluSigmoidPattern(Graph& p) {
  Node* a = p.Placeholder("a");
  p.Output(p.CallFunction(OpId::kSigmoid, {p.CallFunction(OpId::kRelu, {a})}));
}

TEST(Matcher, AnIntermediateUsedOutsideBlocksTheMatch) {
  Graph pattern;
  ReluSigmoidPattern(pattern);
  Chain clean(false), leaky(true);
  auto m1 = FindMatches(pattern, nullptr, clean.g, nullptr);
  ASSERT_TRUE(m1.ok());
  ASSERT_EQ(m1->size(), 1u);
  EXPECT_EQ((*m1)[0].anchor, clean.sig);
  EXPECT_EQ((*m1)[0].placeholder_nodes, std::vector<Node*>{clean.x});
  auto m2 = FindMatches(pattern, nullptr, leaky.g, nullptr);
  ASSERT_TRUE(m2.ok());
  EXPECT_TRUE(m2->empty()) << "relu's value escapes to tanh";
}

TEST(Matcher, LiteralsMustBeEqualUnlessIgnored) {
  Graph g;
  Node* x = g.Placeholder("x");
  g.Output(g.CallFunction(OpId::kSoftmax, {x, int64_t{1}}));
  Graph p;
  p.Output(p.CallFunction(OpId::kSoftmax, {p.Placeholder("a"), int64_t{-1}}));
  EXPECT_TRUE(FindMatches(p, nullptr, g, nullptr)->empty());
  MatchOptions loose;
  loose.ignore_literals = true;
  EXPECT_EQ(FindMatches(p, nullptr, g, nullptr, loose)->size(), 1u);
  // Opcode and op must agree too.
  Graph q;
  q.Output(q.CallFunction(OpId::kLinear, {q.Placeholder("a"), q.Placeholder("w"), std::monostate()}));
  EXPECT_TRUE(FindMatches(q, nullptr, g, nullptr)->empty());
}

TEST(Matcher, OverlappingMatchesKeepTheFirstUnlessAsked) {
  Graph g;
  Node* x = g.Placeholder("x");
  Node* r1 = g.CallFunction(OpId::kRelu, {x});
  Node* r2 = g.CallFunction(OpId::kRelu, {r1});
  Node* r3 = g.CallFunction(OpId::kRelu, {r2});
  g.Output(r3);
  Graph p;
  p.Output(p.CallFunction(OpId::kRelu, {p.CallFunction(OpId::kRelu, {p.Placeholder("a")})}));
  auto kept = FindMatches(p, nullptr, g, nullptr);
  ASSERT_EQ(kept->size(), 1u);
  EXPECT_EQ((*kept)[0].anchor, r2);
  MatchOptions all;
  all.remove_overlapping = false;
  auto both = FindMatches(p, nullptr, g, nullptr, all);
  ASSERT_EQ(both->size(), 2u);
  EXPECT_EQ((*both)[1].anchor, r3);
  EXPECT_EQ((*both)[1].placeholder_nodes[0], r1);
}

TEST(Matcher, PlaceholdersMatchOnlyPlaceholdersWhenAsked) {
  Chain c(false);
  Graph p;
  ReluSigmoidPattern(p);
  MatchOptions strict;
  strict.match_placeholder = true;
  EXPECT_EQ(FindMatches(p, nullptr, c.g, nullptr, strict)->size(), 1u);  // x is a placeholder
  Graph deeper;
  Node* x = deeper.Placeholder("x");
  Node* t = deeper.CallFunction(OpId::kTanh, {x});
  deeper.Output(deeper.CallFunction(OpId::kSigmoid, {deeper.CallFunction(OpId::kRelu, {t})}));
  EXPECT_TRUE(FindMatches(p, nullptr, deeper, nullptr, strict)->empty());
  EXPECT_EQ(FindMatches(p, nullptr, deeper, nullptr)->size(), 1u);
}

class DoubleRelu : public nn::Module {
 public:
  DoubleRelu() { fc = register_module("fc", std::make_shared<nn::Linear>(6, 6)); }
  std::string type_name() const override { return "DoubleRelu"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = F::relu(F::relu((*fc)(x)));
    return F::add(F::relu(F::relu(y)), x);
  }
  std::shared_ptr<nn::Module> fc;
};

TEST(ReplacePattern, RewritesEveryMatchAndKeepsResults) {
  auto m = std::make_shared<DoubleRelu>();
  auto gm = SymbolicTrace(m);
  ASSERT_TRUE(gm.ok());
  Tensor x = Tensor::Empty({2, 6});
  for (int i = 0; i < 12; ++i) x.data<float>()[i] = static_cast<float>(i % 5) - 2.f;
  const Tensor before = *RunModule(**gm, x);
  Graph pattern;
  pattern.Output(pattern.CallFunction(OpId::kRelu, {pattern.CallFunction(OpId::kRelu, {pattern.Placeholder("a")})}));
  Graph replacement;
  replacement.Output(replacement.CallFunction(OpId::kRelu, {replacement.Placeholder("a")}));
  auto replaced = ReplacePattern(**gm, pattern, nullptr, replacement);
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  EXPECT_EQ(replaced->size(), 2u);
  EXPECT_EQ((*gm)->graph().ToString(),
            "%x : [num_users=2] = placeholder[target=x]\n"
            "%fc : [num_users=1] = call_module[target=fc](args = (%x,), kwargs = {})\n"
            "%relu_4 : [num_users=1] = call_function[target=relu](args = (%fc,), kwargs = {})\n"
            "%relu : [num_users=1] = call_function[target=relu](args = (%relu_4,), kwargs = {})\n"
            "%add : [num_users=1] = call_function[target=add](args = (%relu, %x), kwargs = {})\n"
            "return add\n");
  const Tensor after = *RunModule(**gm, x);
  EXPECT_EQ(std::memcmp(before.raw_data(), after.raw_data(), before.nbytes()), 0);
}

TEST(ReplacePattern, RejectsBadPatterns) {
  auto gm = SymbolicTrace(std::make_shared<DoubleRelu>());
  Graph empty;
  EXPECT_FALSE(ReplacePattern(**gm, empty, nullptr, empty).ok());
  Graph bare;
  bare.Output(bare.Placeholder("a"));
  EXPECT_NE(FindMatches(bare, nullptr, (*gm)->graph(), nullptr).status().message().find("bare placeholder"),
            std::string::npos);
}

}  // namespace
}  // namespace fx
}  // namespace qfx
