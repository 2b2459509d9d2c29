// qfx tests: gradients and optimiser steps against PyTorch 1.13 (tests/data/train/grads.safetensors from
// tools/gen_golden.py): every op's backward, mnist_cnn's parameter gradients in train mode, the same model
// after prepare_qat_fx (fake-quant straight-through estimator, ConvBn folding simulation), and 3 Adam and
// 3 SGD steps. "Within 1e-4 relative" means |got - want| <= 1e-4 * max|want| over the tensor.
#include <cmath>
#include <functional>
#include <map>

#include "gtest/gtest.h"
#include "qfx/fx/tracer.h"
#include "qfx/models/zoo.h"
#include "qfx/quant/passes.h"
#include "qfx/train/graph_tape.h"
#include "qfx/train/ops.h"
#include "qfx/train/optim.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace train {
namespace {

using Fn = std::function<Var(Tape&, const std::vector<Var>&)>;

const io::Safetensors& Fixture() {
  static const io::Safetensors* st = new io::Safetensors(testing::ReadFixture("train/grads.safetensors"));
  return *st;
}

// Largest |got - want| relative to max|want|.
double RelError(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.shape(), want.shape());
  if (got.shape() != want.shape()) return 1e9;
  double scale = 1e-12, err = 0;
  for (int64_t i = 0; i < want.numel(); ++i)
    scale = std::max(scale, static_cast<double>(std::fabs(want.data<float>()[i])));
  for (int64_t i = 0; i < want.numel(); ++i) {
    err = std::max(err, static_cast<double>(std::fabs(got.data<float>()[i] - want.data<float>()[i])));
  }
  return err / scale;
}

double MaxAbs(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, static_cast<double>(std::fabs(t.data<float>()[i])));
  return m;
}

const std::map<std::string, std::pair<int, Fn>>& Cases() {
  static const auto* cases = [] {
    auto* m = new std::map<std::string, std::pair<int, Fn>>;
    F::Conv2dOptions c1;
    c1.stride = {2, 1};
    c1.padding = {1, 1};
    (*m)["conv2d"] = {3, [c1](Tape& t, const std::vector<Var>& v) { return ag::conv2d(t, v[0], v[1], v[2], c1); }};
    F::Conv2dOptions c2;
    c2.padding = {2, 2};
    c2.dilation = {2, 2};
    c2.groups = 2;
    (*m)["conv2d_groups_dilation"] = {
        2, [c2](Tape& t, const std::vector<Var>& v) { return ag::conv2d(t, v[0], v[1], Var{}, c2); }};
    F::Conv2dOptions c3;
    c3.stride = {2, 2};
    c3.padding = {1, 1};
    c3.groups = 4;
    (*m)["conv2d_depthwise"] = {
        3, [c3](Tape& t, const std::vector<Var>& v) { return ag::conv2d(t, v[0], v[1], v[2], c3); }};
    (*m)["linear"] = {3, [](Tape& t, const std::vector<Var>& v) { return ag::linear(t, v[0], v[1], v[2]); }};
    (*m)["batch_norm_train"] = {3, [](Tape& t, const std::vector<Var>& v) {
                                  return ag::batch_norm(t, v[0], Tensor(), Tensor(), v[1], v[2], true, 0.1, 1e-5);
                                }};
    (*m)["relu"] = {1, [](Tape& t, const std::vector<Var>& v) { return ag::relu(t, v[0]); }};
    (*m)["relu6"] = {1, [](Tape& t, const std::vector<Var>& v) { return ag::relu6(t, v[0]); }};
    (*m)["hardtanh"] = {1, [](Tape& t, const std::vector<Var>& v) { return ag::hardtanh(t, v[0], -0.5f, 0.7f); }};
    (*m)["hardswish"] = {1, [](Tape& t, const std::vector<Var>& v) { return ag::hardswish(t, v[0]); }};
    (*m)["hardsigmoid"] = {1, [](Tape& t, const std::vector<Var>& v) { return ag::hardsigmoid(t, v[0]); }};
    (*m)["sigmoid"] = {1, [](Tape& t, const std::vector<Var>& v) { return ag::sigmoid(t, v[0]); }};
    (*m)["tanh"] = {1, [](Tape& t, const std::vector<Var>& v) { return ag::tanh(t, v[0]); }};
    (*m)["silu"] = {1, [](Tape& t, const std::vector<Var>& v) { return ag::silu(t, v[0]); }};
    (*m)["softmax"] = {1, [](Tape& t, const std::vector<Var>& v) { return ag::softmax(t, v[0], 1); }};
    F::Pool2dOptions mp;
    mp.kernel_size = {3, 3};
    mp.stride = {2, 2};
    mp.padding = {1, 1};
    mp.ceil_mode = true;
    (*m)["max_pool2d"] = {1, [mp](Tape& t, const std::vector<Var>& v) { return ag::max_pool2d(t, v[0], mp); }};
    F::Pool2dOptions ap = mp;
    ap.count_include_pad = false;
    (*m)["avg_pool2d"] = {1, [ap](Tape& t, const std::vector<Var>& v) { return ag::avg_pool2d(t, v[0], ap); }};
    (*m)["adaptive_avg_pool2d"] = {1, [](Tape& t, const std::vector<Var>& v) {
                                     return ag::adaptive_avg_pool2d(t, v[0], {3, 2});
                                   }};
    (*m)["add_broadcast"] = {2, [](Tape& t, const std::vector<Var>& v) { return ag::add(t, v[0], v[1]); }};
    (*m)["mul_broadcast"] = {2, [](Tape& t, const std::vector<Var>& v) { return ag::mul(t, v[0], v[1]); }};
    (*m)["cat"] = {2, [](Tape& t, const std::vector<Var>& v) { return ag::cat(t, {v[0], v[1]}, 1); }};
    (*m)["mean_23"] = {1, [](Tape& t, const std::vector<Var>& v) { return ag::mean(t, v[0], {2, 3}, true); }};
    (*m)["cross_entropy"] = {1, [](Tape& t, const std::vector<Var>& v) {
                               Tensor l = Tensor::Empty({4}, DType::kI64);
                               const int64_t want[] = {3, 0, 4, 1};
                               for (int i = 0; i < 4; ++i) l.data<int64_t>()[i] = want[i];
                               return ag::reshape(t, ag::cross_entropy(t, v[0], l), {1});
                             }};
    return m;
  }();
  return *cases;
}

class OpVsPyTorch : public ::testing::TestWithParam<std::string> {};

TEST_P(OpVsPyTorch, SameOutputAndGradients) {
  const std::string name = GetParam();
  const auto& [arity, fn] = Cases().at(name);
  const io::Safetensors& st = Fixture();
  std::vector<Tensor> inputs;
  for (int i = 0; i < arity; ++i) inputs.push_back(testing::Get(st, name + "/in" + std::to_string(i)).Clone());
  Tape tape;
  std::vector<Var> vars;
  for (const Tensor& x : inputs) vars.push_back(tape.Param(x));
  const Var y = fn(tape, vars);
  EXPECT_LE(RelError(y.value, testing::Get(st, name + "/out")), 1e-5) << name;
  tape.Backward(ag::mean(tape, ag::mul(tape, y, Tape::Constant(testing::Get(st, name + "/r"))), {}, false));
  for (int i = 0; i < arity; ++i) {
    const Tensor g = tape.ParamGrad(inputs[i]);
    ASSERT_TRUE(g.defined()) << name << " input " << i;
    EXPECT_LE(RelError(g, testing::Get(st, name + "/grad" + std::to_string(i))), 1e-4) << name << " input " << i;
  }
}

std::vector<std::string> CaseNames() {
  std::vector<std::string> names;
  for (const auto& [name, c] : Cases()) names.push_back(name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(All, OpVsPyTorch, ::testing::ValuesIn(CaseNames()));

std::shared_ptr<fx::GraphModule> HashMnistCnn(bool qat) {
  auto model = *models::Create("mnist_cnn");
  testing::HashInit(*model);
  model->train();
  auto gm = *fx::SymbolicTrace(model);
  if (qat) {
    quant::PrepareOptions opt;
    opt.config = *quant::LoadQuantConfig("x86_qat");
    EXPECT_TRUE(quant::PrepareQat(*gm, opt).ok());
  }
  return gm;
}

void CheckModelGradients(const std::string& prefix, bool qat, double tol) {
  const io::Safetensors& st = Fixture();
  auto gm = HashMnistCnn(qat);
  GraphForward forward(*gm);
  Tape tape;
  auto out = forward.Run(tape, testing::Get(st, "batch/x"));
  ASSERT_TRUE(out.ok()) << out.status();
  const Var loss = ag::cross_entropy(tape, *out, testing::Get(st, "batch/y"));
  EXPECT_NEAR(loss.value.data<float>()[0], testing::Get(st, prefix + "/loss").data<float>()[0], 1e-5);
  tape.Backward(loss);
  int checked = 0;
  for (const auto& [name, p] : gm->named_parameters()) {
    const Tensor g = tape.ParamGrad(p);
    ASSERT_TRUE(g.defined()) << name;
    const Tensor want = testing::Get(st, prefix + "/grad/" + name);
    ++checked;
    if (MaxAbs(want) < 1e-6) {
      // A conv bias right before train-mode batch norm: the mean subtraction cancels it, so its true
      // gradient is 0 and both sides hold rounding noise. Check ours is noise too.
      EXPECT_LT(MaxAbs(g), 1e-6) << prefix << " " << name;
      continue;
    }
    EXPECT_LE(RelError(g, want), tol) << prefix << " " << name;
  }
  EXPECT_EQ(checked, qat ? 12 : 12);
}

TEST(ModelVsPyTorch, MnistCnnTrainModeGradients) { CheckModelGradients("mnist_cnn", false, 1e-4); }

TEST(ModelVsPyTorch, QatMnistCnnGradients) { CheckModelGradients("qat_mnist_cnn", true, 1e-4); }

TEST(OptimizerVsPyTorch, ThreeStepsOfAdamAndSgd) {
  const io::Safetensors& st = Fixture();
  for (const std::string kind : {"adam", "sgd"}) {
    auto gm = HashMnistCnn(false);
    OptimizerOptions o;
    o.kind = kind;
    o.lr = kind == "adam" ? 1e-3 : 0.05;
    o.momentum = 0.9;
    o.weight_decay = kind == "adam" ? 0 : 1e-4;
    auto opt = MakeOptimizer(gm->named_parameters(), o);
    ASSERT_TRUE(opt.ok());
    GraphForward forward(*gm);
    for (int step = 0; step < 3; ++step) {
      Tape tape;
      auto out = forward.Run(tape, testing::Get(st, "batch/x"));
      ASSERT_TRUE(out.ok());
      tape.Backward(ag::cross_entropy(tape, *out, testing::Get(st, "batch/y")));
      (*opt)->Step(tape);
    }
    for (const auto& [name, p] : gm->named_parameters()) {
      // Adam normalises the conv biases' rounding-noise gradients (see above) into full-size steps in
      // noise-chosen directions, in PyTorch as here; those two parameters cannot agree.
      if (kind == "adam" && (name == "conv1.bias" || name == "conv2.bias")) continue;
      const Tensor got = name == "fc1.weight" ? p.Narrow0(0, 8) : p;  // the fixture keeps 8 rows of fc1
      EXPECT_LE(RelError(got, testing::Get(st, kind + "/param/" + name)), 1e-4) << kind << " " << name;
    }
  }
}

TEST(OptimizerOptions, BadOptionsAreNamed) {
  OptimizerOptions o;
  o.kind = "rmsprop";
  EXPECT_NE(MakeOptimizer({}, o).status().message().find("'rmsprop' is unknown"), std::string::npos);
  o.kind = "adam";
  o.lr = -1;
  EXPECT_FALSE(MakeOptimizer({}, o).ok());
  ScheduleOptions s;
  s.kind = "linear";
  EXPECT_FALSE(ValidateSchedule(s).ok());
  s.kind = "step";
  s.step_size = 2;
  s.gamma = 0.5;
  EXPECT_DOUBLE_EQ(LearningRate(s, 1.0, 3), 0.5);
  s.kind = "cosine";
  s.total_epochs = 4;
  EXPECT_DOUBLE_EQ(LearningRate(s, 1.0, 0), 1.0);
  EXPECT_NEAR(LearningRate(s, 1.0, 2), 0.5, 1e-12);
}

}  // namespace
}  // namespace train
}  // namespace qfx
