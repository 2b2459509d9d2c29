// qfx tests: Graph mutations keep use-def links right; Lint catches each kind of corruption.
#include "gtest/gtest.h"
#include "qfx/fx/graph_module.h"
#include "qfx/nn/modules.h"

namespace qfx {
namespace fx {

// Reaches into nodes to corrupt them on purpose.
struct GraphTestPeer {
  static void SetName(Node* n, const std::string& name) { n->name_ = name; }
  static void BreakLink(Node* n) { n->prev_ = n; }
  static void DropUser(Node* input, Node* user) {
    input->users_.erase(std::remove(input->users_.begin(), input->users_.end(), user), input->users_.end());
  }
  static void AddUser(Node* input, Node* user) { input->users_.push_back(user); }
  static void SetOpcode(Node* n, int op) { n->op_ = static_cast<Opcode>(op); }
  static void SetTarget(Node* n, Target t) { n->target_ = std::move(t); }
};

namespace {

std::vector<std::string> Names(const std::vector<Node*>& nodes) {
  std::vector<std::string> out;
  for (Node* n : nodes) out.push_back(n->name());
  return out;
}

// x -> relu -> add(relu, x) -> output
struct Small {
  Graph g;
  Node *x, *relu, *add, *out;
  Small() {
    x = g.Placeholder("x");
    relu = g.CallFunction(OpId::kRelu, {x});
    add = g.CallFunction(OpId::kAdd, {relu, x});
    out = g.Output(add);
  }
};

TEST(Graph, CreationNamesUsersAndFormat) {
  Small s;
  EXPECT_EQ(Names(s.x->users()), (std::vector<std::string>{"relu", "add"}));
  EXPECT_EQ(Names(s.add->inputs()), (std::vector<std::string>{"relu", "x"}));
  Node* add2 = s.g.CallFunction(OpId::kAdd, {s.add, 1.5});
  EXPECT_EQ(add2->name(), "add_1");
  EXPECT_EQ(s.g.CallModule("layer1.0.conv1", {s.x})->name(), "layer1_0_conv1");
  EXPECT_EQ(Graph::FormatNode(*s.add),
            "%add : [num_users=2] = call_function[target=add](args = (%relu, %x), kwargs = {})");
  EXPECT_EQ(Graph::FormatNode(*add2),
            "%add_1 : [num_users=0] = call_function[target=add](args = (%add, 1.5), kwargs = {})");
  EXPECT_EQ(Graph::FormatNode(*s.out), "return add");
}

TEST(Graph, SettersKeepUsersRight) {
  Small s;
  s.add->set_arg(0, s.x);  // add(x, x): relu loses its only user; x is listed once per user
  EXPECT_TRUE(s.relu->users().empty());
  EXPECT_EQ(Names(s.x->users()), (std::vector<std::string>{"relu", "add"}));
  s.add->set_args({s.relu, s.relu});
  EXPECT_EQ(Names(s.relu->users()), (std::vector<std::string>{"add"}));
  EXPECT_EQ(Names(s.x->users()), (std::vector<std::string>{"relu"}));
  s.add->set_kwargs({{"alpha", s.x}});
  EXPECT_EQ(Names(s.x->users()), (std::vector<std::string>{"relu", "add"}));
  EXPECT_TRUE(s.g.Lint().ok());
}

TEST(Graph, ReplaceAllUsesWithAndEraseNode) {
  Small s;
  Node* sig;
  {
    auto point = s.g.InsertingAfter(s.relu);
    sig = s.g.CallFunction(OpId::kSigmoid, {s.relu});
  }
  EXPECT_EQ(Names(s.g.nodes()), (std::vector<std::string>{"x", "relu", "sigmoid", "add", "output"}));
  const absl::Status busy = s.g.EraseNode(s.relu);
  EXPECT_EQ(busy.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(busy.message(),
            "EraseNode: node %relu still has 2 user(s): %add, %sigmoid; replace its uses first (ReplaceAllUsesWith)");
  const auto changed = s.relu->ReplaceAllUsesWith(s.x);
  EXPECT_EQ(changed.size(), 2u);
  EXPECT_TRUE(s.relu->users().empty());
  EXPECT_EQ(Names(sig->inputs()), (std::vector<std::string>{"x"}));
  ASSERT_TRUE(s.g.EraseNode(s.relu).ok());
  EXPECT_TRUE(s.relu->erased());
  EXPECT_FALSE(s.g.EraseNode(s.relu).ok());
  EXPECT_TRUE(s.g.Lint().ok()) << s.g.Lint();
  // sigmoid is now dead.
  EXPECT_TRUE(s.g.EliminateDeadCode());
  EXPECT_EQ(Names(s.g.nodes()), (std::vector<std::string>{"x", "add", "output"}));
  EXPECT_FALSE(s.g.EliminateDeadCode());
}

TEST(Graph, ErasingWhileIteratingIsSafe) {
  Graph g;
  Node* x = g.Placeholder("x");
  Node* a = g.CallFunction(OpId::kRelu, {x});
  Node* b = g.CallFunction(OpId::kSigmoid, {x});
  Node* c = g.CallFunction(OpId::kTanh, {x});
  g.Output(x);
  std::vector<std::string> visited;
  for (Node* n : g) {
    visited.push_back(n->name());
    if (n->users().empty() && n->op() != Opcode::kOutput) {
      ASSERT_TRUE(g.EraseNode(n).ok());
    }
  }
  EXPECT_EQ(visited, (std::vector<std::string>{"x", "relu", "sigmoid", "tanh", "output"}));
  EXPECT_EQ(Names(g.nodes()), (std::vector<std::string>{"x", "output"}));
  EXPECT_TRUE(a->erased() && b->erased() && c->erased());
  // A freed name can be reused.
  EXPECT_EQ(g.CallFunction(OpId::kRelu, {x})->name(), "relu");
}

TEST(Graph, InsertPointsNestAndRestore) {
  Small s;
  {
    auto p1 = s.g.InsertingBefore(s.add);
    s.g.CallFunction(OpId::kTanh, {s.x});
    {
      auto p2 = s.g.InsertingBefore(s.relu);
      s.g.CallFunction(OpId::kSigmoid, {s.x});
    }
    s.g.CallFunction(OpId::kSilu, {s.x});
  }
  s.g.MoveBefore(s.g.nodes().back(), s.g.nodes().back());
  EXPECT_EQ(Names(s.g.nodes()), (std::vector<std::string>{"x", "sigmoid", "relu", "tanh", "silu", "add", "output"}));
}

absl::Status LintOf(Small& s, nn::Module* owner = nullptr) { return s.g.Lint(owner); }

TEST(Graph, LintCatchesEachCorruption) {
  {
    Small s;
    EXPECT_TRUE(LintOf(s).ok());
  }
  {
    Small s;
    s.g.MoveBefore(s.add, s.relu);
    EXPECT_EQ(LintOf(s).message(),
              "Lint: node %add (call_function[target=add]): uses %relu before it is defined (topological order)");
  }
  {
    Small s;
    GraphTestPeer::SetName(s.add, "relu");
    EXPECT_EQ(LintOf(s).message(), "Lint: node %relu (call_function[target=add]): name is not unique");
  }
  {
    Small s, other;
    s.add->set_arg(1, other.x);
    EXPECT_NE(LintOf(s).message().find("uses %x from another graph"), std::string::npos) << LintOf(s);
  }
  {
    Small s;
    GraphTestPeer::DropUser(s.relu, s.add);
    EXPECT_NE(LintOf(s).message().find("is missing from the users of its input %relu"), std::string::npos);
  }
  {
    Small s;
    GraphTestPeer::AddUser(s.x, s.out);
    EXPECT_NE(LintOf(s).message().find("lists %output as a user but it does not use it"), std::string::npos);
  }
  {
    Small s;
    GraphTestPeer::BreakLink(s.relu);
    EXPECT_NE(LintOf(s).message().find("prev/next links are inconsistent"), std::string::npos);
  }
  {
    Small s;
    GraphTestPeer::SetOpcode(s.relu, 9);
    EXPECT_NE(LintOf(s).message().find("illegal opcode"), std::string::npos);
  }
  {
    Small s;
    GraphTestPeer::SetTarget(s.relu, Target{OpId::kMethodReshape, ""});
    EXPECT_NE(LintOf(s).message().find("op 'reshape' is a method; use call_method"), std::string::npos);
  }
  {
    Small s;
    s.relu->set_args({s.x, s.x});
    EXPECT_NE(LintOf(s).message().find("op 'relu' takes 1..1 args, has 2"), std::string::npos);
  }
  {
    Small s;
    s.g.CallFunction(OpId::kRelu, {s.x});  // appended after the output
    EXPECT_NE(LintOf(s).message().find("comes after the output node"), std::string::npos);
  }
  {
    Graph g;
    g.Placeholder("x");
    EXPECT_EQ(g.Lint().message(), "Lint: the graph has no output node (it must be last)");
  }
  {
    Small s;
    auto point = s.g.InsertingBefore(s.add);
    s.g.Placeholder("y");
    EXPECT_NE(LintOf(s).message().find("placeholders must come first"), std::string::npos);
  }
}

TEST(Graph, LintChecksTargetsAgainstTheOwner) {
  nn::Sequential owner({std::make_shared<nn::ReLU>()});
  Small s;
  {
    auto point = s.g.InsertingBefore(s.out);
    s.g.CallModule("0", {s.x});
    EXPECT_TRUE(LintOf(s, &owner).ok());
    s.g.CallModule("1", {s.x});
  }
  EXPECT_NE(LintOf(s, &owner).message().find("module '1' does not exist in the owning module"), std::string::npos);
  Small t;
  {
    auto point = t.g.InsertingBefore(t.out);
    t.g.GetAttr("0.weight");
  }
  EXPECT_NE(LintOf(t, &owner).message().find("attribute '0.weight' does not exist"), std::string::npos);
}

}  // namespace
}  // namespace fx
}  // namespace qfx
