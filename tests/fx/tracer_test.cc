// qfx tests: the symbolic tracer. Every zoo model traces, lints, runs bit-identically to the eager
// model, and has torch.fx's (opcode, target) sequence and node names (fixtures from gen_golden.py);
// leaves, concrete_args, get_attr and every TraceError path.
#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "qfx/fx/formats.h"
#include "qfx/fx/tracer.h"
#include "qfx/models/zoo.h"
#include "qfx/nn/modules.h"
#include "qfx/nn/ops.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace fx {
namespace {

Tensor Input(Shape shape) {
  Tensor x = Tensor::Empty(std::move(shape));
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>((i * 37) % 101) / 50.f - 1.f;
  return x;
}

std::string TorchTarget(const Node& n) {
  if (n.op() == Opcode::kCallFunction || n.op() == Opcode::kCallMethod)
    return nn::GetOpSchema(n.target().op).torch_name;
  return n.target().path;
}

class TraceZoo : public ::testing::TestWithParam<std::string> {};

TEST_P(TraceZoo, MatchesTorchFxAndRunsBitIdentically) {
  auto model = models::Create(GetParam(), 3);
  ASSERT_TRUE(model.ok());
  const auto t0 = std::chrono::steady_clock::now();
  auto gm = SymbolicTrace(*model);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(gm.ok()) << gm.status();
  std::printf("traced %s: %zu nodes in %.2f ms\n", GetParam().c_str(), (*gm)->graph().size(), ms);
  ASSERT_TRUE((*gm)->Lint().ok());

  std::ifstream f("tests/data/fx/" + GetParam() + ".json");
  ASSERT_TRUE(f.good());
  const auto want = nlohmann::json::parse(f);
  const std::vector<Node*> nodes = (*gm)->graph().nodes();
  ASSERT_EQ(nodes.size(), want.size()) << (*gm)->graph().ToString();
  for (size_t i = 0; i < nodes.size(); ++i) {
    EXPECT_EQ(OpcodeName(nodes[i]->op()), want[i][0].get<std::string>()) << "node " << i;
    EXPECT_EQ(TorchTarget(*nodes[i]), want[i][1].get<std::string>()) << "node " << i;
    EXPECT_EQ(nodes[i]->name(), want[i][2].get<std::string>()) << "node " << i;
  }

  const Tensor x = Input(testing::ZooTestShape(GetParam(), 2));
  auto eager = RunModule(**model, x);
  auto traced = RunModule(**gm, x);
  ASSERT_TRUE(eager.ok() && traced.ok()) << traced.status();
  ASSERT_EQ(eager->shape(), traced->shape());
  EXPECT_EQ(std::memcmp(eager->raw_data(), traced->raw_data(), eager->nbytes()), 0) << "not bit-identical";
}

INSTANTIATE_TEST_SUITE_P(Zoo, TraceZoo,
                         ::testing::Values("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small",
                                           "regnet_x_400mf", "efficientnet_b0", "inception_v3", "mlp", "mnist_cnn"));

TEST(Tracer, GraphModuleSharesParametersWithTheRoot) {
  auto model = models::Create("mnist_cnn");
  auto gm = SymbolicTrace(*model);
  ASSERT_TRUE(gm.ok());
  EXPECT_EQ((*gm)->state_dict().size(), (*model)->state_dict().size());
  EXPECT_TRUE((*gm)->tensor_at("conv1.weight").SharesStorage((*model)->tensor_at("conv1.weight")));
  EXPECT_EQ((*gm)->forward_arg_names(), std::vector<std::string>{"x"});
}

// A user module that reads its own parameter in forward, calls a module twice, and uses methods.
class Custom : public nn::Module {
 public:
  Custom() {
    fc = register_module("fc", std::make_shared<nn::Linear>(4, 4));
    scale = register_parameter("scale", Tensor::Full({4}, 0.5f));
  }
  std::string type_name() const override { return "Custom"; }
  Tensor forward(const Tensor& x) override {
    Tensor y = (*fc)((*fc)(x.Flatten(1)));
    return F::mul(y, scale).Reshape({-1, 2, 2}).View({-1, 4});
  }
  std::shared_ptr<nn::Module> fc;
  Tensor scale;
};

TEST(Tracer, RecordsGetAttrRepeatedModulesAndMethods) {
  auto m = std::make_shared<Custom>();
  auto gm = SymbolicTrace(m);
  ASSERT_TRUE(gm.ok()) << gm.status();
  EXPECT_EQ((*gm)->graph().ToString(),
            "%x : [num_users=1] = placeholder[target=x]\n"
            "%flatten : [num_users=1] = call_method[target=flatten](args = (%x, 1, -1), kwargs = {})\n"
            "%fc : [num_users=1] = call_module[target=fc](args = (%flatten,), kwargs = {})\n"
            "%fc_1 : [num_users=1] = call_module[target=fc](args = (%fc,), kwargs = {})\n"
            "%scale : [num_users=1] = get_attr[target=scale]\n"
            "%mul : [num_users=1] = call_function[target=mul](args = (%fc_1, %scale), kwargs = {})\n"
            "%reshape : [num_users=1] = call_method[target=reshape](args = (%mul, [-1, 2, 2]), kwargs = {})\n"
            "%view : [num_users=1] = call_method[target=view](args = (%reshape, [-1, 4]), kwargs = {})\n"
            "return view\n");
  const Tensor x = Input({3, 2, 2});
  auto a = RunModule(*m, x), b = RunModule(**gm, x);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(std::memcmp(a->raw_data(), b->raw_data(), a->nbytes()), 0);
}

TEST(Tracer, LeafModulesByPathOrType) {
  auto model = models::Create("resnet18");
  TracerOptions opt;
  opt.leaf_modules = {"layer1.0", "BasicBlock"};
  auto gm = SymbolicTrace(*model, opt);
  ASSERT_TRUE(gm.ok()) << gm.status();
  int blocks = 0;
  for (Node* n : (*gm)->graph())
    blocks += n->op() == Opcode::kCallModule && (*gm)->submodule(n->target().path)->type_name() == "BasicBlock";
  EXPECT_EQ(blocks, 8);
  opt.leaf_modules.clear();
  opt.is_leaf = [](const nn::Module& m, const std::string& path) { return path == "layer4" || m.is_leaf(); };
  gm = SymbolicTrace(*model, opt);
  ASSERT_TRUE(gm.ok());
  EXPECT_NE((*gm)->graph().ToString().find("call_module[target=layer4]"), std::string::npos);
}

// Branches on data inside a submodule: the classic FX failure.
class DataDependent : public nn::Module {
 public:
  std::string type_name() const override { return "DataDependent"; }
  Tensor forward(const Tensor& x) override {
    if (x.shape()[1] > 2) return F::relu(x);
    return x;
  }
};

class Outer : public nn::Module {
 public:
  Outer() { inner = register_module("inner", std::make_shared<DataDependent>()); }
  std::string type_name() const override { return "Outer"; }
  Tensor forward(const Tensor& x) override { return (*inner)(F::add(x, 1.f)); }
  std::shared_ptr<nn::Module> inner;
};

TEST(Tracer, DataDependentControlFlowIsAClearTraceError) {
  auto gm = SymbolicTrace(std::make_shared<Outer>());
  ASSERT_FALSE(gm.ok());
  EXPECT_EQ(gm.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(gm.status().message(),
            "TraceError in module 'inner' (DataDependent): forward needs the shape of a traced value, which is not "
            "known while tracing. Fix: trace with example inputs (TracerOptions::example_inputs) to specialise the "
            "graph on their shapes, or make 'inner' a leaf module (TracerOptions::leaf_modules = {\"inner\"}) so "
            "it is called as a whole.");
  // At the root, where no leaf can wrap it, the fix is a submodule; never concrete_args (x is a tensor).
  EXPECT_NE(SymbolicTrace(std::make_shared<DataDependent>())
                .status()
                .message()
                .find("or move the code that needs it into a submodule and make that a leaf "
                      "(TracerOptions::leaf_modules)."),
            std::string::npos);
  TracerOptions opt;
  opt.leaf_modules = {"inner"};
  auto ok = SymbolicTrace(std::make_shared<Outer>(), opt);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_NE((*ok)->graph().ToString().find("call_module[target=inner]"), std::string::npos);
}

// forward with a flag argument: needs concrete_args.
class Flagged : public nn::Module {
 public:
  std::string type_name() const override { return "Flagged"; }
  std::vector<std::string> forward_arg_names() const override { return {"x", "normalize"}; }
  Tensor forward_args(const nn::ForwardArgs& args) override {
    Tensor x = args.tensor("x");
    return args.flag("normalize") ? F::softmax(x, 1) : F::relu(x);
  }
};

TEST(Tracer, ConcreteArgsSpecialiseNonTensorArguments) {
  auto m = std::make_shared<Flagged>();
  auto failed = SymbolicTrace(m);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("TraceError in the root module (Flagged): forward needs the value of "
                                           "argument 'normalize'"),
            std::string::npos)
      << failed.status();
  EXPECT_NE(failed.status().message().find("concrete argument (TracerOptions::concrete_args)"), std::string::npos);
  TracerOptions opt;
  opt.concrete_args = {{"normalize", true}};
  auto gm = SymbolicTrace(m, opt);
  ASSERT_TRUE(gm.ok()) << gm.status();
  EXPECT_EQ((*gm)->forward_arg_names(), std::vector<std::string>{"x"});
  EXPECT_NE((*gm)->graph().ToString().find("call_function[target=softmax]"), std::string::npos);
  opt.concrete_args = {{"nomalize", true}};
  EXPECT_NE(SymbolicTrace(m, opt).status().message().find("'nomalize' is not an argument of Flagged.forward"),
            std::string::npos);
}

class MakesConstant : public nn::Module {
 public:
  std::string type_name() const override { return "MakesConstant"; }
  Tensor forward(const Tensor& x) override { return F::add(x, Tensor::Full({1}, 2.f)); }
};

class ReadsData : public nn::Module {
 public:
  std::string type_name() const override { return "ReadsData"; }
  Tensor forward(const Tensor& x) override { return F::mul(x, x.data<float>()[0]); }
};

TEST(Tracer, UntraceableValuesNameTheFix) {
  auto c = SymbolicTrace(std::make_shared<MakesConstant>());
  EXPECT_NE(c.status().message().find("is a tensor that forward created and that is not a parameter or buffer. "
                                      "Fix: register it with register_buffer"),
            std::string::npos)
      << c.status();
  auto d = SymbolicTrace(std::make_shared<ReadsData>());
  EXPECT_NE(d.status().message().find("forward needs the data of a traced value"), std::string::npos) << d.status();
}

// torchvision's channel_shuffle: reads the whole shape, so torch.fx-style tracing cannot run it.
class TorchvisionShuffle : public nn::Module {
 public:
  TorchvisionShuffle() { bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(4)); }
  std::string type_name() const override { return "TorchvisionShuffle"; }
  Tensor forward(const Tensor& input) override {
    const Tensor x = (*bn)(input);
    const Shape s = x.shape();
    const int64_t groups = 2;
    return x.View({s[0], groups, s[1] / groups, s[2], s[3]}).Transpose(1, 2).View({s[0], -1, s[2], s[3]});
  }
  std::shared_ptr<nn::Module> bn;
};

// Reads one size only: other batch sizes still run.
class ReadsChannels : public nn::Module {
 public:
  std::string type_name() const override { return "ReadsChannels"; }
  Tensor forward(const Tensor& x) override { return F::mul(x.Reshape({-1, x.size(1)}), 2.f); }
};

Tensor Ramp(Shape shape) {
  Tensor t = Tensor::Zeros(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(i % 17) * 0.25f - 1.f;
  return t;
}

TEST(Tracer, SpecialisesOnExampleInputsWhenForwardReadsShapes) {
  auto model = std::make_shared<TorchvisionShuffle>();
  model->train();  // the example run must leave batch-norm statistics as they were
  const Tensor mean_before = model->tensor_at("bn.running_mean").Clone();
  EXPECT_NE(SymbolicTrace(model).status().message().find("trace with example inputs"), std::string::npos);
  TracerOptions opt;
  opt.example_inputs = {Ramp({2, 4, 3, 5})};
  auto gm = SymbolicTrace(model, opt);
  ASSERT_TRUE(gm.ok()) << gm.status();
  EXPECT_EQ(std::vector<float>(model->tensor_at("bn.running_mean").data<float>(),
                               model->tensor_at("bn.running_mean").data<float>() + 4),
            std::vector<float>(mean_before.data<float>(), mean_before.data<float>() + 4));
  std::string ops;
  for (Node* n : (*gm)->graph()) {
    absl::StrAppend(&ops, n->target_string(), " ");
    if (n->name() == "bn") {
      ASSERT_TRUE(n->meta.specialized.has_value());
      EXPECT_EQ(*n->meta.specialized, (std::vector<int64_t>{2, 4, 3, 5}));
    } else {
      EXPECT_FALSE(n->meta.specialized.has_value()) << n->name();
    }
  }
  EXPECT_EQ(ops, "x bn view transpose view output ");
  EXPECT_NE(FormatTable((*gm)->graph()).find("specialised [2, 4, 3, 5]"), std::string::npos);
  // Bit-identical to the model, which is the same code run eagerly.
  model->eval();
  const Tensor x = Ramp({2, 4, 3, 5});
  const Tensor want = (*model)(x), got = (**gm)(x);
  EXPECT_EQ(std::vector<float>(got.data<float>(), got.data<float>() + got.numel()),
            std::vector<float>(want.data<float>(), want.data<float>() + want.numel()));
  // Another shape is an error naming the node and the traced sizes; the graph file keeps them.
  auto other = Interpreter(**gm).Run(Ramp({1, 4, 3, 5}));
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("%bn is f32[1, 4, 3, 5], but the graph was traced specialised to sizes "
                                          "[2, 4, 3, 5] of it"),
            std::string::npos)
      << other.status();
  auto loaded = GraphFromJson(GraphToJson((*gm)->graph()), "test");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  for (Node* n : **loaded) EXPECT_EQ(n->meta.specialized.has_value(), n->name() == "bn") << n->name();
}

TEST(Tracer, SpecialisationHoldsOnlyTheSizesRead) {
  TracerOptions opt;
  opt.example_inputs = {Ramp({2, 6})};
  auto gm = SymbolicTrace(std::make_shared<ReadsChannels>(), opt);
  ASSERT_TRUE(gm.ok()) << gm.status();
  const Node* x = *(*gm)->graph().begin();
  ASSERT_TRUE(x->meta.specialized.has_value());
  EXPECT_EQ(*x->meta.specialized, (std::vector<int64_t>{-1, 6}));
  EXPECT_TRUE(Interpreter(**gm).Run(Ramp({5, 6})).ok());  // another batch size
  auto bad = Interpreter(**gm).Run(Ramp({5, 7}));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("specialised to sizes [?, 6]"), std::string::npos) << bad.status();
  EXPECT_FALSE(Interpreter(**gm).Run(Ramp({5, 6, 1})).ok());  // the rank always counts
}

TEST(Tracer, SpecialisedTraceErrorsNameTheInputsAndNode) {
  TracerOptions opt;
  opt.example_inputs = {Ramp({2, 6}), Ramp({2, 6})};
  EXPECT_NE(SymbolicTrace(std::make_shared<ReadsChannels>(), opt)
                .status()
                .message()
                .find("example_inputs: 2 values for 1 inputs of ReadsChannels.forward"),
            std::string::npos);
  // Data stays unreadable: specialising fixes shapes, not values.
  opt.example_inputs = {Ramp({2, 6})};
  EXPECT_NE(SymbolicTrace(std::make_shared<ReadsData>(), opt).status().message().find("the data of a traced value"),
            std::string::npos);
  // An example input the model cannot take fails at the node that rejects it.
  opt.example_inputs = {Ramp({2, 3, 5, 5})};
  auto mnist = SymbolicTrace(*models::Create("mnist_cnn"), opt);
  ASSERT_FALSE(mnist.ok());
  EXPECT_NE(mnist.status().message().find("%conv1 failed on the example inputs"), std::string::npos) << mnist.status();
}

TEST(Tracer, ShapePropagationFillsMeta) {
  auto gm = SymbolicTrace(*models::Create("mnist_cnn"));
  ASSERT_TRUE(gm.ok());
  ASSERT_TRUE(PropagateShapes(**gm, {{5, 1, 28, 28}}).ok());
  for (Node* n : (*gm)->graph()) {
    ASSERT_TRUE(n->meta.tensor.has_value()) << n->name();
    if (n->name() == "flatten") {
      EXPECT_EQ(n->meta.tensor->shape, (Shape{5, 1568}));
    }
    if (n->name() == "fc2") {
      EXPECT_EQ(n->meta.tensor->shape, (Shape{5, 10}));
    }
  }
  EXPECT_FALSE(PropagateShapes(**gm, {{5, 3, 28, 28}}).ok());
}

// Overrides one step: counts module calls and replaces ReLU modules by the identity.
class CountingInterpreter : public Interpreter {
 public:
  using Interpreter::Interpreter;
  int module_calls = 0;

 protected:
  Tensor CallModule(const Node& n, const std::vector<OpArg>& args) override {
    ++module_calls;
    if (module_.submodule(n.target().path)->type_name() == "ReLU") return std::get<Tensor>(args[0]);
    return Interpreter::CallModule(n, args);
  }
};

TEST(Interpreter, StepsCanBeOverridden) {
  auto model = *models::Create("mlp");
  auto gm = SymbolicTrace(model);
  ASSERT_TRUE(gm.ok());
  const Tensor x = Input({2, 1, 28, 28});
  CountingInterpreter counting(**gm);
  auto y = counting.Run(x);
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(counting.module_calls, 5);  // fc1 relu fc2 relu fc3
  // Without ReLU the model is affine: f(x) - f(0) is linear in x, unlike the real model.
  auto real = Interpreter(**gm).Run(x);
  ASSERT_TRUE(real.ok());
  EXPECT_NE(std::memcmp(y->raw_data(), real->raw_data(), y->nbytes()), 0);
}

TEST(Interpreter, ErrorsNameTheNode) {
  auto gm = SymbolicTrace(*models::Create("mnist_cnn"));
  ASSERT_TRUE(gm.ok());
  auto y = RunModule(**gm, Tensor::Zeros({1, 3, 28, 28}));
  ASSERT_FALSE(y.ok());
  EXPECT_EQ(
      y.status().message().rfind("while executing %conv1 : call_module[target=conv1]: conv2d: input f32[1, 3, 28, "
                                 "28] has 3 channels",
                                 0),
      0u)
      << y.status();
}

}  // namespace
}  // namespace fx
}  // namespace qfx
