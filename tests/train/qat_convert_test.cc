// qfx tests: a QAT-trained model converts to the same int8 kernels as PTQ, and the int8 model agrees with
// the fake-quant model it came from within one output quantization step on at least 99% of values; the
// training loop is deterministic for a seed, learns, and freezes observers / batch norm on schedule.
#include <cmath>

#include "gtest/gtest.h"
#include "qfx/fx/tracer.h"
#include "qfx/io/npy.h"
#include "qfx/io/safetensors.h"
#include "qfx/models/zoo.h"
#include "qfx/quant/observer.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/qat_modules.h"
#include "qfx/train/trainer.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace train {
namespace {

struct Mnist {
  Tensor x, y;
};

Mnist Test400() {
  return {*io::ReadNpy("tests/data/mnist/test400_x.npy"), *io::ReadNpy("tests/data/mnist/test400_y.npy")};
}

std::shared_ptr<fx::GraphModule> TrainedQat(const std::string& preset, quant::PrepareReport* report) {
  auto model = *models::Create("mnist_cnn");
  EXPECT_TRUE(io::LoadWeights(*model, "tests/data/mnist/mnist_cnn_trained.safetensors").ok());
  model->train();
  auto gm = *fx::SymbolicTrace(model);
  quant::PrepareOptions opt;
  opt.config = *quant::LoadQuantConfig(preset);
  *report = *quant::PrepareQat(*gm, opt);
  return gm;
}

double Top1(const Tensor& logits, const Tensor& labels) {
  const Tensor pred = F::argmax(logits);
  int64_t ok = 0;
  for (int64_t i = 0; i < labels.numel(); ++i) ok += pred.data<int64_t>()[i] == labels.data<int64_t>()[i];
  return static_cast<double>(ok) / labels.numel();
}

TEST(QatConvert, Int8AgreesWithFakeQuantWithinOneStep) {
  // The 2-bit rule file: convert must quantize with the grid the model trained on (see convert.cc).
  for (const char* preset : {"x86_qat", "qnnpack_qat", "tools/qconfigs/x86_qat_w2.toml"}) {
    const Mnist data = Test400();
    quant::PrepareReport report;
    auto gm = TrainedQat(preset, &report);
    TrainOptions o;
    o.epochs = 2;
    o.batch = 50;
    o.optimizer.lr = 1e-4;
    o.freeze_bn_after = 1;
    auto history = Train(*gm, data.x, data.y, o);
    ASSERT_TRUE(history.ok()) << history.status();
    ASSERT_EQ(history->size(), 2u);
    quant::EnableObservers(*gm, false);
    gm->eval();
    const Tensor fq = *RunModule(*gm, data.x);
    // The output's fake-quant scale is the int8 model's output step.
    const fx::Node* out = std::get<fx::Node*>(gm->graph().output_node()->args()[0]);
    auto* out_fq = dynamic_cast<quant::FakeQuantize*>(gm->submodule(out->target().path));
    ASSERT_NE(out_fq, nullptr);
    const float step = out_fq->qparams().scale[0];
    ASSERT_TRUE(quant::Convert(*gm, report).ok());
    const Tensor q = *RunModule(*gm, data.x);
    ASSERT_EQ(q.shape(), fq.shape());
    int64_t within = 0;
    for (int64_t i = 0; i < q.numel(); ++i)
      within += std::fabs(q.data<float>()[i] - fq.data<float>()[i]) <= step * 1.001f;
    const double share = static_cast<double>(within) / q.numel();
    EXPECT_GE(share, 0.99) << preset;
    if (std::string(preset).find("w2") == std::string::npos) {
      EXPECT_GE(Top1(q, data.y), 0.95) << preset;
    }
    std::printf(
        "%s: int8 within one step (%.4g) of fake-quant on %.2f%% of %lld values; top-1 fake-quant %.4f int8 %.4f\n",
        preset, step, 100 * share, static_cast<long long>(q.numel()), Top1(fq, data.y), Top1(q, data.y));
  }
}

TEST(Train, SeededRunsAreIdenticalAndLearn) {
  const Mnist data = Test400();
  std::vector<Tensor> finals;
  for (int run = 0; run < 2; ++run) {
    nn::ManualSeed(5);
    auto model = *models::Create("mnist_cnn");
    model->train();
    auto gm = *fx::SymbolicTrace(model);
    TrainOptions o;
    o.epochs = 3;
    o.batch = 40;
    o.seed = 11;
    auto history = Train(*gm, data.x, data.y, o);
    ASSERT_TRUE(history.ok()) << history.status();
    EXPECT_LT((*history)[2].loss, (*history)[0].loss * 0.5);
    EXPECT_FALSE(gm->is_training());
    finals.push_back(gm->tensor_at("fc2.weight").Clone());
  }
  ASSERT_EQ(0, std::memcmp(finals[0].raw_data(), finals[1].raw_data(), finals[0].nbytes()));
}

TEST(Train, FreezesObserversAndBatchNormOnSchedule) {
  const Mnist data = Test400();
  quant::PrepareReport report;
  auto gm = TrainedQat("x86_qat", &report);
  TrainOptions o;
  o.epochs = 2;
  o.batch = 100;
  o.optimizer.lr = 1e-5;
  o.freeze_observers_after = 1;
  o.freeze_bn_after = 1;
  std::vector<float> scales;
  auto* fq = dynamic_cast<quant::FakeQuantize*>(gm->submodule("activation_post_process_0"));
  ASSERT_NE(fq, nullptr);
  const Tensor running_mean = gm->tensor_at("conv1.bn.running_mean");
  std::vector<float> means;
  TrainCallbacks cb;
  cb.on_step = [&](const StepStats& s) {
    if (s.epoch == 1) {
      scales.push_back(fq->qparams().scale[0]);
      means.push_back(running_mean.data<float>()[0]);
    }
  };
  ASSERT_TRUE(Train(*gm, data.x, data.y, o, cb).ok());
  ASSERT_EQ(scales.size(), 4u);
  for (float s : scales) EXPECT_EQ(s, scales[0]);
  for (float m : means) EXPECT_EQ(m, means[0]);
  EXPECT_FALSE(fq->observer_enabled());
}

TEST(Train, BadInputsFailBeforeTraining) {
  const Mnist data = Test400();
  auto gm = *fx::SymbolicTrace(*models::Create("mnist_cnn"));
  TrainOptions o;
  auto s = Train(*gm, data.x, data.x, o).status();
  EXPECT_NE(s.message().find("must be one per input"), std::string::npos) << s;
  o.batch = 0;
  EXPECT_NE(Train(*gm, data.x, data.y, o).status().message().find("batch size 0"), std::string::npos);
  o.batch = 8;
  o.optimizer.kind = "lion";
  EXPECT_NE(Train(*gm, data.x, data.y, o).status().message().find("'lion' is unknown"), std::string::npos);
}

}  // namespace
}  // namespace train
}  // namespace qfx
