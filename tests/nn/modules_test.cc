// qfx tests: every nn module and functional op against PyTorch 1.13 (fixtures from gen_golden.py),
// within 1e-4 relative; batch norm in train mode also checks the updated running statistics.
#include <cstring>
#include <functional>
#include <map>

#include "gtest/gtest.h"
#include "qfx/nn/modules.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace {

using testing::Get;
using testing::MaxRelError;
using ModuleFactory = std::function<std::shared_ptr<nn::Module>()>;

template <typename M, typename... Args>
ModuleFactory Make(Args... args) {
  return [=] { return std::make_shared<M>(args...); };
}

ModuleFactory MakeUpsample(std::vector<int64_t> size, std::vector<double> scale, F::InterpolateOptions::Mode mode,
                           bool align_corners) {
  F::InterpolateOptions o;
  o.size = std::move(size);
  o.scale_factor = std::move(scale);
  o.mode = mode;
  o.align_corners = align_corners;
  return [o] { return std::make_shared<nn::Upsample>(o); };
}

const std::map<std::string, ModuleFactory>& ModuleCases() {
  using namespace nn;  // NOLINT
  static const auto* cases = new std::map<std::string, ModuleFactory>{
      {"conv2d_basic", Make<Conv2d>(3, 8, 3, Conv2dArgs{1, 1})},
      {"conv2d_stride_dilation", Make<Conv2d>(4, 6, 3, Conv2dArgs{2, 2, 2, 1, false})},
      {"conv2d_groups", Make<Conv2d>(8, 12, 3, Conv2dArgs{1, 1, 1, 4})},
      {"conv2d_depthwise", Make<Conv2d>(8, 8, 3, Conv2dArgs{2, 1, 1, 8})},
      {"conv2d_depthwise_mult", Make<Conv2d>(4, 8, 5, Conv2dArgs{1, 2, 1, 4})},
      {"conv2d_1x1", Make<Conv2d>(16, 24, 1)},
      {"conv2d_large", Make<Conv2d>(32, 40, 3, Conv2dArgs{1, 1})},
      {"linear", Make<Linear>(20, 7)},
      {"linear_nobias_3d", Make<Linear>(5, 4, false)},
      {"batchnorm2d_eval", Make<BatchNorm2d>(6)},
      {"batchnorm2d_train", Make<BatchNorm2d>(6)},
      {"batchnorm1d_eval", Make<BatchNorm1d>(5)},
      {"relu", Make<ReLU>()},
      {"relu6", Make<ReLU6>()},
      {"hardtanh", Make<Hardtanh>(-2.f, 1.5f)},
      {"hardswish", Make<Hardswish>()},
      {"hardsigmoid", Make<Hardsigmoid>()},
      {"sigmoid", Make<Sigmoid>()},
      {"tanh", Make<Tanh>()},
      {"silu", Make<SiLU>()},
      {"softmax", Make<Softmax>(1)},
      {"maxpool2d", Make<MaxPool2d>(3, 2, 1)},
      {"maxpool2d_ceil", Make<MaxPool2d>(2, 2, 0, 1, true)},
      {"avgpool2d", Make<AvgPool2d>(3, 2, 1)},
      {"avgpool2d_ceil_nopad", Make<AvgPool2d>(3, 2, 1, true, false)},
      {"adaptive_avg_pool2d", Make<AdaptiveAvgPool2d>(3, 2)},
      {"adaptive_avg_pool2d_1", Make<AdaptiveAvgPool2d>(1)},
      {"flatten", Make<Flatten>()},
      {"dropout_eval", Make<Dropout>(0.5)},
      {"identity", Make<Identity>()},
      {"conv2d_1x7", Make<Conv2d>(6, 8, Size2(1, 7), Conv2dArgs{1, Size2(0, 3)})},
      {"conv2d_7x1_stride", Make<Conv2d>(4, 6, Size2(7, 1), Conv2dArgs{Size2(2, 1), Size2(3, 0)})},
      {"conv2d_3x2_dilation_groups",
       Make<Conv2d>(4, 8, Size2(3, 2), Conv2dArgs{Size2(1, 2), Size2(2, 1), Size2(2, 1), 2})},
      {"conv2d_depthwise_1x5", Make<Conv2d>(6, 6, Size2(1, 5), Conv2dArgs{Size2(1, 2), Size2(0, 2), 1, 6})},
      {"maxpool2d_3x2", Make<MaxPool2d>(Size2(3, 2), Size2(2, 1), Size2(1, 0), Size2(1, 2))},
      {"avgpool2d_2x3", Make<AvgPool2d>(Size2(2, 3), Size2(1, 2), Size2(1, 1), false, false)},
      {"upsample_nearest_2x", MakeUpsample({}, {2.0}, F::InterpolateOptions::Mode::kNearest, false)},
      {"upsample_nearest_size", MakeUpsample({7, 5}, {}, F::InterpolateOptions::Mode::kNearest, false)},
      {"upsample_bilinear_1_5", MakeUpsample({}, {1.5}, F::InterpolateOptions::Mode::kBilinear, false)},
      {"upsample_bilinear_align", MakeUpsample({9, 7}, {}, F::InterpolateOptions::Mode::kBilinear, true)},
      {"conv_transpose2d_basic", Make<ConvTranspose2d>(4, 6, 3, ConvTranspose2dArgs{2, 1, 1})},
      {"conv_transpose2d_groups",
       Make<ConvTranspose2d>(4, 8, Size2(2, 3),
                             ConvTranspose2dArgs{Size2(2, 1), Size2(0, 1), 0, 2, false, Size2(1, 2)})},
  };
  return *cases;
}

class ModuleGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(ModuleGolden, MatchesPyTorch) {
  const io::Safetensors fx = testing::ReadFixture("modules/" + GetParam() + ".safetensors");
  auto module = ModuleCases().at(GetParam())();
  nn::NamedTensors state;
  for (const auto& [k, t] : fx.tensors) {
    if (k.rfind("module.", 0) == 0) state.emplace_back(k.substr(7), t);
  }
  ASSERT_TRUE(module->load_state_dict(state, /*strict=*/true).ok());
  const bool train = GetParam() == "batchnorm2d_train";
  module->train(train);
  auto y = RunModule(*module, Get(fx, "input"));
  ASSERT_TRUE(y.ok()) << y.status();
  EXPECT_LT(MaxRelError(*y, Get(fx, "output")), 1e-4);
  if (train) {
    EXPECT_LT(MaxRelError(module->tensor("running_mean"), Get(fx, "running_mean_after")), 1e-5);
    EXPECT_LT(MaxRelError(module->tensor("running_var"), Get(fx, "running_var_after")), 1e-5);
    EXPECT_EQ(module->tensor("num_batches_tracked").data<int64_t>()[0], 4);
  }
}

std::vector<std::string> ModuleCaseNames() {
  std::vector<std::string> names;
  for (const auto& [name, f] : ModuleCases()) names.push_back(name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Modules, ModuleGolden, ::testing::ValuesIn(ModuleCaseNames()));

struct FunctionalCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> fn;
};

class FunctionalGolden : public ::testing::TestWithParam<FunctionalCase> {};

TEST_P(FunctionalGolden, MatchesPyTorch) {
  const io::Safetensors fx = testing::ReadFixture(std::string("modules/") + GetParam().name + ".safetensors");
  Tensor x2;
  for (const auto& [k, t] : fx.tensors) {
    if (k == "input2") x2 = t;
  }
  Tensor y;
  ASSERT_TRUE(CatchErrors([&] { y = GetParam().fn(Get(fx, "input"), x2); }).ok());
  EXPECT_LT(MaxRelError(y, Get(fx, "output")), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(
    Functional, FunctionalGolden,
    ::testing::Values(FunctionalCase{"f_add_broadcast", [](const Tensor& a, const Tensor& b) { return F::add(a, b); }},
                      FunctionalCase{"f_mul_broadcast", [](const Tensor& a, const Tensor& b) { return F::mul(a, b); }},
                      FunctionalCase{"f_cat_dim1",
                                     [](const Tensor& a, const Tensor& b) {
                                       return F::cat({a, b}, 1);
                                     }},
                      FunctionalCase{"f_mean_23_keepdim",
                                     [](const Tensor& a, const Tensor&) {
                                       return F::mean(a, {2, 3}, true);
                                     }},
                      FunctionalCase{"f_mean_1", [](const Tensor& a, const Tensor&) { return F::mean(a, {1}); }},
                      FunctionalCase{"f_softmax_last",
                                     [](const Tensor& a, const Tensor&) { return F::softmax(a, -1); }},
                      FunctionalCase{"f_flatten_1", [](const Tensor& a, const Tensor&) { return F::flatten(a, 1); }}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Functional, ShapeErrorsNameTheOpAndTheRule) {
  const Tensor x = Tensor::Zeros({1, 4, 8, 8});
  const Tensor w = Tensor::Zeros({8, 3, 3, 3});
  const absl::Status s = CatchErrors([&] { F::conv2d(x, w, Tensor(), {}); });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("conv2d: input f32[1, 4, 8, 8] has 4 channels but weight"), std::string::npos) << s;
  const absl::Status b = CatchErrors([&] { F::add(Tensor::Zeros({2, 3}), Tensor::Zeros({4})); });
  EXPECT_NE(b.message().find("cannot broadcast"), std::string::npos) << b;
  const absl::Status l = CatchErrors([&] { F::linear(Tensor::Zeros({2, 5}), Tensor::Zeros({3, 4}), Tensor()); });
  EXPECT_NE(l.message().find("in_features 4"), std::string::npos) << l;
}

TEST(Modules, DropoutIsIdentityInEvalAndScalesInTrain) {
  nn::Dropout d(0.5);
  const Tensor x = Tensor::Full({1000}, 1.f);
  d.eval();
  EXPECT_TRUE(d(x).SharesStorage(x));
  d.train();
  const Tensor y = d(x);
  int zeros = 0;
  for (int64_t i = 0; i < y.numel(); ++i) {
    const float v = y.data<float>()[i];
    EXPECT_TRUE(v == 0.f || v == 2.f);
    zeros += v == 0.f;
  }
  EXPECT_GT(zeros, 400);
  EXPECT_LT(zeros, 600);
}

}  // namespace
}  // namespace qfx

namespace qfx {
namespace {

// Share-qparams ops on quantized tensors equal quantize(op(dequantize(q))) for every one of the 256 values.
// Sequential runs Conv2d -> BatchNorm2d (eval) -> ReLU / ReLU6 / Hardtanh as one fused kernel pass in eval
// mode; the result must be the modules' own, bit for bit, with and without an activation, for GEMM and
// depthwise convolutions, and a hook on any of them turns the fusion off (the hook still runs).
TEST(Modules, SequentialConvBnActivationFusionIsExact) {
  using namespace nn;  // NOLINT
  struct Case {
    int64_t in, out, kernel;
    Conv2dArgs args;
    std::function<std::shared_ptr<Module>()> activation;  // null: none
  };
  const Case cases[] = {
      {8, 12, 3, Conv2dArgs{1, 1, 1, 1, false}, [] { return std::make_shared<ReLU6>(); }},
      {8, 8, 3, Conv2dArgs{2, 1, 1, 8, false}, [] { return std::make_shared<ReLU>(); }},
      {6, 10, 1, Conv2dArgs{1, 0, 1, 1, true}, nullptr},
      {4, 8, 5, Conv2dArgs{1, 2, 1, 4, false}, [] { return std::make_shared<Hardtanh>(-0.3f, 0.4f); }},
  };
  int n = 0;
  for (const Case& c : cases) {
    for (bool hooked : {false, true}) {
      auto conv = std::make_shared<Conv2d>(c.in, c.out, c.kernel, c.args);
      auto bn = std::make_shared<BatchNorm2d>(c.out);
      bn->running_mean.CopyFrom(testing::HashUniform("mean" + std::to_string(n), {c.out}, -0.5, 0.5));
      bn->running_var.CopyFrom(testing::HashUniform("var" + std::to_string(n), {c.out}, 0.5, 2));
      bn->weight.CopyFrom(testing::HashUniform("gamma" + std::to_string(n), {c.out}, -2, 2));
      bn->bias.CopyFrom(testing::HashUniform("beta" + std::to_string(n), {c.out}, -1, 1));
      auto seq = std::make_shared<Sequential>();
      seq->push_back(conv);
      seq->push_back(bn);
      std::shared_ptr<Module> act = c.activation ? c.activation() : nullptr;
      if (act) seq->push_back(act);
      seq->eval();
      int hook_calls = 0;
      if (hooked) bn->RegisterForwardHook([&](Module&, const ForwardArgs&, Tensor&) { ++hook_calls; });
      const Tensor x = testing::HashUniform("x" + std::to_string(n++), {2, c.in, 13, 21}, -2, 2);
      const Tensor got = (*seq)(x);
      Tensor want = (*bn)((*conv)(x));
      if (act) want = (*act)(want);
      ASSERT_EQ(got.shape(), want.shape());
      EXPECT_EQ(0, std::memcmp(got.data<float>(), want.data<float>(), want.nbytes()))
          << "kernel " << c.kernel << " groups " << c.args.groups << " hooked " << hooked;
      EXPECT_EQ(hook_calls, hooked ? 2 : 0);
    }
  }
}

TEST(QuantizedOps, ClampsAndPoolsMatchTheFloatDefinition) {
  std::vector<float> grid(256);
  Tensor q = Tensor::Quantized({1, 1, 16, 16}, DType::kU8, QuantInfo{0.05f, 100});
  for (int i = 0; i < 256; ++i) q.data<uint8_t>()[i] = static_cast<uint8_t>(i);
  const Tensor f = F::dequantize(q);
  auto same = [&](const Tensor& got, const Tensor& want_float) {
    const Tensor want = F::quantize(want_float, 0.05, 100);
    ASSERT_EQ(got.numel(), want.numel());
    for (int64_t i = 0; i < got.numel(); ++i) ASSERT_EQ(got.data<uint8_t>()[i], want.data<uint8_t>()[i]) << i;
    EXPECT_EQ(got.quant().zero_point, 100);
  };
  same(F::relu(q), F::relu(f));
  same(F::relu6(q), F::relu6(f));
  same(F::hardtanh(q, -1.3f, 2.1f), F::hardtanh(f, -1.3f, 2.1f));
  F::Pool2dOptions pool;
  pool.kernel_size = {3, 3};
  pool.stride = {2, 2};
  pool.padding = {1, 1};
  same(F::max_pool2d(q, pool), F::max_pool2d(f, pool));
  same(F::adaptive_avg_pool2d(q, {1, 1}), F::adaptive_avg_pool2d(f, {1, 1}));
  // Rows wide enough for the 16-byte stride-2 gather (35 output columns: two vectors and a ragged end).
  Tensor wide = Tensor::Quantized({1, 2, 9, 70}, DType::kU8, QuantInfo{0.05f, 100});
  for (int64_t i = 0; i < wide.numel(); ++i) wide.data<uint8_t>()[i] = static_cast<uint8_t>((i * 2654435761u) >> 24);
  const Tensor pooled = F::max_pool2d(wide, pool),
               pooled_f = F::quantize(F::max_pool2d(F::dequantize(wide), pool), 0.05, 100);
  ASSERT_EQ(pooled.numel(), 2 * 5 * 35);
  for (int64_t i = 0; i < pooled.numel(); ++i) ASSERT_EQ(pooled.data<uint8_t>()[i], pooled_f.data<uint8_t>()[i]) << i;
  EXPECT_TRUE(F::flatten(q, 1).is_quantized());
  const Tensor added = F::q_add(q, q, 0.1, 128, /*relu=*/true);
  same(F::q_add(q, q, 0.05, 100, false), F::add(f, f));
  EXPECT_EQ(added.quant().zero_point, 128);
}

}  // namespace
}  // namespace qfx
