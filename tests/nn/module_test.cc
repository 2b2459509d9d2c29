// qfx tests: Module registration, traversal, state_dict order and load_state_dict's exact errors.
#include "gtest/gtest.h"
#include "qfx/models/zoo.h"
#include "qfx/nn/modules.h"

namespace qfx {
namespace {

class Net : public nn::Module {
 public:
  Net() {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(1, 2, 3));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(2));
    head = register_module("head", std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Module>>{
                                       std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(2 * 4 * 4, 3)}));
    scale = register_parameter("scale", Tensor::Full({1}, 2.f));
    register_buffer("step", Tensor::Zeros({}, DType::kI64));
    register_buffer("scratch", Tensor::Zeros({4}), /*persistent=*/false);
  }
  std::string type_name() const override { return "Net"; }
  Tensor forward(const Tensor& x) override { return F::mul((*head)((*bn)((*conv)(x))), scale.data<float>()[0]); }
  std::shared_ptr<nn::Module> conv, bn, head;
  Tensor scale;
};

std::vector<std::string> Keys(const nn::NamedTensors& d) {
  std::vector<std::string> k;
  for (const auto& e : d) k.push_back(e.first);
  return k;
}

TEST(Module, StateDictOrderIsPyTorchs) {
  Net net;
  EXPECT_EQ(
      Keys(net.state_dict()),
      (std::vector<std::string>{"scale", "step", "conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean",
                                "bn.running_var", "bn.num_batches_tracked", "head.1.weight", "head.1.bias"}));
  EXPECT_EQ(Keys(net.named_parameters()), (std::vector<std::string>{"scale", "conv.weight", "conv.bias", "bn.weight",
                                                                    "bn.bias", "head.1.weight", "head.1.bias"}));
  std::vector<std::string> names;
  for (const auto& [name, m] : net.named_modules()) names.push_back(name + ":" + m->type_name());
  EXPECT_EQ(names, (std::vector<std::string>{":Net", "conv:Conv2d", "bn:BatchNorm2d", "head:Sequential",
                                             "head.0:Flatten", "head.1:Linear"}));
  EXPECT_EQ(net.submodule("head.1")->type_name(), "Linear");
  EXPECT_EQ(net.submodule("head.2"), nullptr);
}

TEST(Module, SharedModuleIsListedOnce) {
  auto model = models::Create("resnet18");
  ASSERT_TRUE(model.ok());
  int relus = 0;
  for (const auto& [name, m] : (*model)->named_modules()) relus += name == "layer1.0.relu";
  EXPECT_EQ(relus, 1);
}

TEST(Module, LoadStateDictRoundTripsAndCopiesInPlace) {
  Net a, b;
  const Tensor before = b.conv->tensor("weight");
  ASSERT_TRUE(b.load_state_dict(a.state_dict()).ok());
  EXPECT_TRUE(b.conv->tensor("weight").SharesStorage(before));
  const Tensor x = Tensor::Full({1, 1, 6, 6}, 0.5f);
  EXPECT_EQ(a(x).data<float>()[2], b(x).data<float>()[2]);
}

TEST(Module, LoadStateDictErrorListsEveryProblemExactly) {
  Net net;
  nn::NamedTensors d = net.state_dict();
  d.erase(d.begin() + 2);                               // conv.weight missing
  d.erase(d.begin() + 6);                               // bn.running_var missing (index shifted)
  d.emplace_back("head.2.weight", Tensor::Zeros({1}));  // unexpected
  d[0].second = Tensor::Zeros({2});                     // scale: shape mismatch
  const absl::Status s = net.load_state_dict(d, /*strict=*/true);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "load_state_dict into Net: 2 missing key(s): conv.weight, bn.running_var; 1 unexpected key(s): "
            "head.2.weight; 1 shape/dtype mismatch(es): scale: checkpoint f32[2] vs model f32[1]");
  // Nothing was loaded.
  EXPECT_EQ(net.scale.data<float>()[0], 2.f);
  // strict=false skips missing and unexpected keys but never a mismatch.
  const absl::Status loose = net.load_state_dict(d, /*strict=*/false);
  EXPECT_EQ(loose.message(),
            "load_state_dict into Net: 1 shape/dtype mismatch(es): scale: checkpoint f32[2] vs model f32[1] "
            "(strict=false skips only missing and unexpected keys)");
  d[0].second = Tensor::Full({1}, 5.f);
  ASSERT_TRUE(net.load_state_dict(d, /*strict=*/false).ok());
  EXPECT_EQ(net.scale.data<float>()[0], 5.f);
}

TEST(Module, DtypeMismatchIsReported) {
  Net net;
  nn::NamedTensors d = net.state_dict();
  d[1].second = Tensor::Zeros({}, DType::kI32);
  const absl::Status s = net.load_state_dict(d);
  EXPECT_NE(s.message().find("step: checkpoint i32[] vs model i64[]"), std::string::npos) << s;
}

TEST(Module, TrainEvalPropagatesAndRegistrationRejectsDuplicates) {
  Net net;
  net.eval();
  EXPECT_FALSE(net.bn->is_training());
  net.train();
  EXPECT_TRUE(net.submodule("head.1")->is_training());
  class Dup : public nn::Module {
   public:
    Dup() {
      register_parameter("w", Tensor::Zeros({1}));
      register_parameter("w", Tensor::Zeros({1}));
    }
    std::string type_name() const override { return "Dup"; }
  };
  try {
    Dup d;
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attribute 'w' is already registered"), std::string::npos);
  }
}

TEST(Module, ModuleListHasNoForwardAndRunModuleReportsIt) {
  nn::ModuleList list;
  list.push_back(std::make_shared<nn::ReLU>());
  EXPECT_EQ(list.state_dict().size(), 0u);
  auto y = RunModule(list, Tensor::Zeros({1}));
  EXPECT_EQ(y.status().code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace qfx
