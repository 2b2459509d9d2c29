// qfx tests: every differentiable op's backward against central finite differences, the conv backward
// kernel against its scalar oracle, fake quantization's straight-through mask, and whole graphs
// (mnist_cnn, a QAT-prepared mnist_cnn, mobilenet_v3_small's ops) differentiated through GraphForward.
#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "gtest/gtest.h"
#include "qfx/fx/tracer.h"
#include "qfx/kernels/f32.h"
#include "qfx/models/zoo.h"
#include "qfx/quant/passes.h"
#include "qfx/train/graph_tape.h"
#include "qfx/train/ops.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace train {
namespace {

using Fn = std::function<Var(Tape&, const std::vector<Var>&)>;

Tensor Random(Shape shape, uint64_t seed, float lo = -1.f, float hi = 1.f, float avoid = 0.f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  Tensor t = Tensor::Empty(std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) {
    float v = u(rng);
    while (std::fabs(v) < avoid) v = u(rng);  // keep away from a kink at 0
    t.data<float>()[i] = v;
  }
  return t;
}

// loss = mean(fn(inputs) * r) for a fixed random r.
double Loss(const Fn& fn, const std::vector<Tensor>& inputs, Tape& tape, Var* loss_var) {
  std::vector<Var> vars;
  for (const Tensor& t : inputs) vars.push_back(tape.Param(t));
  const Var y = fn(tape, vars);
  const Tensor r = Random(y.value.shape(), 99);
  *loss_var = ag::mean(tape, ag::mul(tape, y, Tape::Constant(r)), {}, false);
  return loss_var->value.data<float>()[0];
}

// Checks d loss / d input against (loss(x + h) - loss(x - h)) / 2h on up to 48 elements of each input.
void GradCheck(const Fn& fn, const std::vector<Tensor>& inputs, double h = 1e-2, double tol = 2e-2) {
  Tape tape;
  Var loss;
  Loss(fn, inputs, tape, &loss);
  tape.Backward(loss);
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    const Tensor g = tape.ParamGrad(x);
    ASSERT_TRUE(g.defined()) << "input " << k;
    ASSERT_EQ(g.shape(), x.shape()) << "input " << k;
    const int64_t n = x.numel(), stride = std::max<int64_t>(1, n / 48);
    double scale = 1e-6;
    for (int64_t i = 0; i < n; ++i) scale = std::max(scale, static_cast<double>(std::fabs(g.data<float>()[i])));
    for (int64_t i = 0; i < n; i += stride) {
      float& v = x.data<float>()[i];
      const float saved = v;
      Tape t1, t2;
      Var l1, l2;
      v = saved + static_cast<float>(h);
      const double up = Loss(fn, inputs, t1, &l1);
      v = saved - static_cast<float>(h);
      const double down = Loss(fn, inputs, t2, &l2);
      v = saved;
      const double numeric = (up - down) / (2 * h);
      EXPECT_NEAR(g.data<float>()[i], numeric, tol * scale + 1e-5) << "input " << k << " element " << i;
    }
  }
}

TEST(ConvBackwardKernel, MatchesOracleOverShapes) {
  // k, stride, pad and dil are the height axis's; kw, stride_w, pad_w, dil_w the width's (0: the same).
  struct Case {
    int64_t n, cin, h, w, cout, k, stride, pad, dil, groups;
    int64_t kw = 0, stride_w = 0, pad_w = 0, dil_w = 0;
  };
  for (const Case& c :
       {Case{2, 3, 7, 6, 4, 3, 1, 1, 1, 1}, Case{1, 4, 9, 9, 6, 3, 2, 0, 1, 2}, Case{2, 6, 8, 7, 6, 3, 1, 2, 2, 6},
        Case{1, 5, 5, 5, 7, 1, 1, 0, 1, 1}, Case{1, 8, 11, 10, 8, 5, 3, 2, 1, 4},
        // 1x7 and 7x1 (inception), 3x2 at stride 2x1 with dilation 1x2, depthwise 1x5 at stride 1x2.
        Case{1, 4, 9, 11, 5, 1, 1, 0, 1, 1, 7, 0, 3}, Case{2, 3, 11, 8, 4, 7, 1, 3, 1, 1, 1, 0, 0},
        Case{1, 4, 10, 12, 6, 3, 2, 1, 1, 2, 2, 1, 0, 2}, Case{1, 4, 6, 15, 4, 1, 1, 0, 1, 4, 5, 2, 2}}) {
    kernels::Conv2dGeometry g =
        kernels::Conv2dGeometry::Square(c.n, c.cin, c.h, c.w, c.cout, c.k, c.stride, c.pad, c.dil, c.groups);
    if (c.kw) g.kernel_w = c.kw;
    if (c.stride_w) g.stride_w = c.stride_w;
    if (c.pad_w) g.pad_w = c.pad_w;
    if (c.dil_w) g.dilation_w = c.dil_w;
    const Tensor x = Random({c.n, c.cin, c.h, c.w}, 1),
                 w = Random({c.cout, c.cin / c.groups, g.kernel_h, g.kernel_w}, 2);
    const Tensor dy = Random({c.n, c.cout, g.out_h(), g.out_w()}, 3);
    Tensor dx = Tensor::Empty(x.shape()), dw = Tensor::Empty(w.shape()), db = Tensor::Empty({c.cout});
    Tensor rx = Tensor::Empty(x.shape()), rw = Tensor::Empty(w.shape()), rb = Tensor::Empty({c.cout});
    kernels::Conv2dBackwardF32(g, x.data<float>(), w.data<float>(), dy.data<float>(), dx.data<float>(),
                               dw.data<float>(), db.data<float>());
    kernels::ref::Conv2dBackwardF32(g, x.data<float>(), w.data<float>(), dy.data<float>(), rx.data<float>(),
                                    rw.data<float>(), rb.data<float>());
    for (auto [a, b] : {std::pair{dx, rx}, std::pair{dw, rw}, std::pair{db, rb}}) {
      for (int64_t i = 0; i < a.numel(); ++i) {
        EXPECT_NEAR(a.data<float>()[i], b.data<float>()[i], 1e-4 * (1 + std::fabs(b.data<float>()[i])));
      }
    }
  }
}

TEST(OpGradients, ConvAndLinear) {
  F::Conv2dOptions o;
  o.padding = {1, 1};
  o.stride = {2, 1};
  GradCheck([&](Tape& t, const std::vector<Var>& v) { return ag::conv2d(t, v[0], v[1], v[2], o); },
            {Random({2, 3, 6, 5}, 1), Random({4, 3, 3, 3}, 2), Random({4}, 3)});
  F::Conv2dOptions dw;
  dw.padding = {1, 1};
  dw.groups = 4;
  GradCheck([&](Tape& t, const std::vector<Var>& v) { return ag::conv2d(t, v[0], v[1], Var{}, dw); },
            {Random({1, 4, 5, 5}, 4), Random({8, 1, 3, 3}, 5)});
  F::Conv2dOptions wide;  // a 1x3 kernel at stride 1x2, padding 2x1, dilation 2x1
  wide.stride = {1, 2};
  wide.padding = {2, 1};
  wide.dilation = {2, 1};
  SCOPED_TRACE("max_pool2d 2x3, dilation 2x1");
  GradCheck([&](Tape& t, const std::vector<Var>& v) { return ag::conv2d(t, v[0], v[1], v[2], wide); },
            {Random({2, 3, 5, 7}, 22), Random({4, 3, 1, 3}, 23), Random({4}, 24)});
  GradCheck([](Tape& t, const std::vector<Var>& v) { return ag::linear(t, v[0], v[1], v[2]); },
            {Random({3, 2, 5}, 6), Random({4, 5}, 7), Random({4}, 8)});
}

TEST(OpGradients, BatchNormTrainAndEval) {
  GradCheck(
      [](Tape& t, const std::vector<Var>& v) {
        return ag::batch_norm(t, v[0], Tensor(), Tensor(), v[1], v[2], true, 0.1, 1e-5);
      },
      {Random({3, 4, 3, 2}, 9), Random({4}, 10, 0.5f, 1.5f), Random({4}, 11)}, 1e-2, 3e-2);
  const Tensor rm = Random({4}, 12), rv = Random({4}, 13, 0.5f, 2.f);
  GradCheck(
      [&](Tape& t, const std::vector<Var>& v) { return ag::batch_norm(t, v[0], rm, rv, v[1], v[2], false, 0.1, 1e-5); },
      {Random({2, 4, 3}, 14), Random({4}, 15), Random({4}, 16)});
}

TEST(OpGradients, Activations) {
  using Unary = Var (*)(Tape&, const Var&);
  for (Unary f : {static_cast<Unary>(ag::relu), static_cast<Unary>(ag::relu6), static_cast<Unary>(ag::hardswish),
                  static_cast<Unary>(ag::hardsigmoid), static_cast<Unary>(ag::sigmoid), static_cast<Unary>(ag::tanh),
                  static_cast<Unary>(ag::silu)}) {
    // Values in [-7, 7] but at least 0.05 away from every kink (0, +-3, 6).
    Tensor x = Random({3, 17}, 17, -7.f, 7.f);
    for (int64_t i = 0; i < x.numel(); ++i) {
      float& v = x.data<float>()[i];
      for (float kink : {0.f, 3.f, -3.f, 6.f}) {
        if (std::fabs(v - kink) < 0.05f) v = kink + 0.1f;
      }
    }
    GradCheck([f](Tape& t, const std::vector<Var>& v) { return f(t, v[0]); }, {x}, 1e-3);
  }
  GradCheck([](Tape& t, const std::vector<Var>& v) { return ag::hardtanh(t, v[0], -0.5f, 0.7f); },
            {Random({40}, 18, -1.f, 1.f, 0.f)}, 1e-3);
  GradCheck([](Tape& t, const std::vector<Var>& v) { return ag::softmax(t, v[0], 1); }, {Random({2, 5, 3}, 19, -2, 2)});
}

TEST(OpGradients, Pools) {
  F::Pool2dOptions mp;
  mp.kernel_size = {3, 3};
  mp.stride = {2, 2};
  mp.padding = {1, 1};
  mp.ceil_mode = true;
  GradCheck([&](Tape& t, const std::vector<Var>& v) { return ag::max_pool2d(t, v[0], mp); }, {Random({2, 2, 7, 6}, 20)},
            1e-3);
  F::Pool2dOptions ap = mp;
  for (bool include_pad : {true, false}) {
    ap.count_include_pad = include_pad;
    GradCheck([&](Tape& t, const std::vector<Var>& v) { return ag::avg_pool2d(t, v[0], ap); },
              {Random({1, 3, 7, 6}, 21)});
  }
  // Non-square windows: 2x3 at stride 1x2 with padding 1x0 (and dilation 2x1 for max pooling).
  F::Pool2dOptions wide;
  wide.kernel_size = {2, 3};
  wide.stride = {1, 2};
  wide.padding = {1, 0};
  for (bool include_pad : {true, false}) {
    SCOPED_TRACE(include_pad ? "avg_pool2d 2x3, count_include_pad" : "avg_pool2d 2x3");
    wide.count_include_pad = include_pad;
    GradCheck([&](Tape& t, const std::vector<Var>& v) { return ag::avg_pool2d(t, v[0], wide); },
              {Random({1, 2, 5, 9}, 25)});
  }
  wide.dilation = {2, 1};
  SCOPED_TRACE("max_pool2d 2x3, dilation 2x1");
  Tensor distinct = Tensor::Empty({2, 2, 6, 9});  // a permutation of values 0.009 apart: no near-ties within h
  for (int64_t i = 0; i < distinct.numel(); ++i)
    distinct.data<float>()[i] = static_cast<float>((i * 97) % distinct.numel()) / distinct.numel() * 2 - 1;
  GradCheck([&](Tape& t, const std::vector<Var>& v) { return ag::max_pool2d(t, v[0], wide); }, {distinct}, 1e-3);
  GradCheck(
      [](Tape& t, const std::vector<Var>& v) {
        return ag::adaptive_avg_pool2d(t, v[0], {3, 2});
      },
      {Random({2, 2, 7, 5}, 22)});
}

TEST(OpGradients, TransformerOps) {
  GradCheck([](Tape& t, const std::vector<Var>& v) { return ag::layer_norm(t, v[0], {5}, v[1], v[2], 1e-5); },
            {Random({3, 2, 5}, 40, -2, 2), Random({5}, 41, 0.5f, 1.5f), Random({5}, 42)}, 1e-2, 3e-2);
  GradCheck(
      [](Tape& t, const std::vector<Var>& v) {
        return ag::layer_norm(t, v[0], {2, 3}, Var{}, Var{}, 1e-3);
      },
      {Random({2, 2, 3}, 43, -2, 2)}, 1e-2, 3e-2);
  GradCheck([](Tape& t, const std::vector<Var>& v) { return ag::matmul(t, v[0], v[1]); },
            {Random({2, 1, 3, 4}, 44), Random({3, 4, 2}, 45)});
  GradCheck([](Tape& t, const std::vector<Var>& v) { return ag::bmm(t, v[0], v[1]); },
            {Random({2, 3, 4}, 46), Random({2, 4, 3}, 47)});
  GradCheck([](Tape& t, const std::vector<Var>& v) { return ag::transpose(t, v[0], -1, 0); }, {Random({2, 3, 4}, 48)});
  GradCheck(
      [](Tape& t, const std::vector<Var>& v) {
        return ag::permute(t, v[0], {1, 2, 0});
      },
      {Random({2, 3, 4}, 49)});
  GradCheck([](Tape& t, const std::vector<Var>& v) { return ag::narrow(t, v[0], 1, 1, 2); }, {Random({2, 4, 3}, 52)});
  GradCheck([](Tape& t, const std::vector<Var>& v) { return ag::narrow(t, v[0], -1, -2, 2); }, {Random({3, 2, 5}, 53)});
}

TEST(OpGradients, Interpolate) {
  for (bool align : {false, true}) {
    F::InterpolateOptions o;
    o.size = {7, 4};
    o.mode = F::InterpolateOptions::Mode::kBilinear;
    o.align_corners = align;
    GradCheck([&](Tape& t, const std::vector<Var>& v) { return ag::interpolate(t, v[0], o); },
              {Random({1, 2, 5, 3}, 50)});
  }
  F::InterpolateOptions nearest;
  nearest.scale_factor = {1.5, 2.0};
  GradCheck([&](Tape& t, const std::vector<Var>& v) { return ag::interpolate(t, v[0], nearest); },
            {Random({2, 1, 4, 3}, 51)});
}

TEST(OpGradients, BroadcastCatReshapeMean) {
  GradCheck([](Tape& t, const std::vector<Var>& v) { return ag::add(t, v[0], v[1]); },
            {Random({2, 3, 4, 4}, 23), Random({1, 3, 1, 1}, 24)});
  GradCheck([](Tape& t, const std::vector<Var>& v) { return ag::mul(t, v[0], v[1]); },
            {Random({2, 3, 4, 4}, 25), Random({2, 3, 1, 1}, 26)});
  GradCheck([](Tape& t, const std::vector<Var>& v) { return ag::div(t, v[0], v[1]); },
            {Random({3, 4}, 27), Random({4}, 28, 0.5f, 2.f)});
  GradCheck(
      [](Tape& t, const std::vector<Var>& v) {
        return ag::cat(t, {v[0], v[1]}, 1);
      },
      {Random({2, 3, 2}, 29), Random({2, 1, 2}, 30)});
  GradCheck([](Tape& t, const std::vector<Var>& v) { return ag::reshape(t, v[0], {4, -1}); }, {Random({2, 2, 3}, 31)});
  GradCheck(
      [](Tape& t, const std::vector<Var>& v) {
        return ag::mean(t, v[0], {2, 3}, true);
      },
      {Random({2, 3, 4, 2}, 32)});
  GradCheck([](Tape& t, const std::vector<Var>& v) { return ag::mean(t, v[0], {-1}, false); }, {Random({2, 3, 4}, 33)});
}

TEST(OpGradients, CrossEntropy) {
  Tensor labels = Tensor::Empty({4}, DType::kI64);
  for (int64_t i = 0; i < 4; ++i) labels.data<int64_t>()[i] = (i * 3) % 5;
  GradCheck([&](Tape& t, const std::vector<Var>& v) { return ag::cross_entropy(t, v[0], labels); },
            {Random({4, 5}, 34, -3, 3)}, 1e-3);
  Tape t;
  Tensor bad = Tensor::Empty({4}, DType::kI64);
  bad.data<int64_t>()[2] = 7;
  EXPECT_THROW(ag::cross_entropy(t, t.Param(Random({4, 5}, 35)), bad), Error);
}

TEST(OpGradients, DropoutUsesItsMask) {
  const Tensor x = Random({4, 50}, 44, 0.5f, 1.5f);  // no zeros: y / x recovers the mask
  std::mt19937_64 rng(7);
  Tape t;
  const Var y = ag::dropout(t, t.Param(x), 0.3, /*training=*/true, rng);
  t.Backward(ag::mean(t, y, {}, false));
  const Tensor g = t.ParamGrad(x);
  int dropped = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const float m = y.value.data<float>()[i] / x.data<float>()[i];  // 0 or 1 / 0.7
    dropped += m == 0.f;
    EXPECT_NEAR(g.data<float>()[i], m / x.numel(), 1e-6) << i;
  }
  EXPECT_GT(dropped, 20);
  EXPECT_LT(dropped, 100);
  Tape t2;  // eval: identity, no mask
  const Var e = ag::dropout(t2, t2.Param(x), 0.3, /*training=*/false, rng);
  EXPECT_EQ(e.value.raw_data(), x.raw_data());
}

// torchvision's stochastic_depth: the gradient is the forward's noise, one value per row ("row": 0 or
// 1 / (1 - p) for all of a sample) or for the whole batch ("batch"); eval and p = 0 are the identity.
TEST(OpGradients, StochasticDepthUsesItsNoisePerRowOrBatch) {
  const Tensor x = Random({64, 3, 2, 2}, 45, 0.5f, 1.5f);  // no zeros: y / x recovers the noise
  const int64_t row = x.numel() / x.size(0);
  for (F::StochasticDepthMode mode : {F::StochasticDepthMode::kRow, F::StochasticDepthMode::kBatch}) {
    std::mt19937_64 rng(8);
    Tape t;
    const Var y = ag::stochastic_depth(t, t.Param(x), 0.4, mode, /*training=*/true, rng);
    t.Backward(ag::mean(t, y, {}, false));
    const Tensor g = t.ParamGrad(x);
    int dropped_rows = 0;
    const float first = y.value.data<float>()[0] / x.data<float>()[0];
    for (int64_t i = 0; i < x.numel(); ++i) {
      const float m = y.value.data<float>()[i] / x.data<float>()[i];
      const float row_noise = y.value.data<float>()[i / row * row] / x.data<float>()[i / row * row];
      ASSERT_TRUE(m == 0.f || std::fabs(m - 1 / 0.6f) < 1e-6) << i << ": " << m;
      EXPECT_NEAR(m, mode == F::StochasticDepthMode::kRow ? row_noise : first, 1e-6) << i;
      EXPECT_NEAR(g.data<float>()[i], m / x.numel(), 1e-6) << i;
      dropped_rows += i % row == 0 && m == 0.f;
    }
    if (mode == F::StochasticDepthMode::kRow) {
      EXPECT_GT(dropped_rows, 10);  // 64 rows at p 0.4: about 26 dropped
      EXPECT_LT(dropped_rows, 45);
    }
  }
  std::mt19937_64 rng(9);
  Tape t2;  // eval: the identity
  const Var e = ag::stochastic_depth(t2, t2.Param(x), 0.4, F::StochasticDepthMode::kRow, /*training=*/false, rng);
  EXPECT_EQ(e.value.raw_data(), x.raw_data());
  EXPECT_EQ(F::stochastic_depth(x, 0.4, F::StochasticDepthMode::kRow, false).raw_data(), x.raw_data());
  EXPECT_THROW(F::stochastic_depth(x, 1.5, F::StochasticDepthMode::kRow, true), Error);
  EXPECT_THROW(F::stochastic_depth(x, 0.5, static_cast<F::StochasticDepthMode>(2), true), Error);
}

// A traced stochastic_depth follows the graph module's mode, whatever mode it was traced in: train() drops rows
// (in a run and on the tape), eval() is the identity.
TEST(OpGradients, TracedStochasticDepthFollowsTheModuleMode) {
  auto sd = std::make_shared<nn::StochasticDepth>(0.5, F::StochasticDepthMode::kRow);
  for (bool traced_in_training : {false, true}) {
    sd->train(traced_in_training);
    auto gm = *fx::SymbolicTrace(sd);
    const Tensor x = Random({32, 4}, 46, 0.5f, 1.5f);
    gm->eval();
    const Tensor e = *nn::RunModule(*gm, x);
    EXPECT_EQ(std::memcmp(e.raw_data(), x.raw_data(), x.nbytes()), 0) << traced_in_training;
    gm->train();
    const Tensor y = *nn::RunModule(*gm, x);
    int zeros = 0;
    for (int64_t i = 0; i < y.numel(); ++i) zeros += y.data<float>()[i] == 0.f;
    EXPECT_GT(zeros, 0) << traced_in_training;
    GraphForward fwd(*gm);
    Tape t;
    auto v = fwd.Run(t, x);
    ASSERT_TRUE(v.ok()) << v.status();
    zeros = 0;
    for (int64_t i = 0; i < v->value.numel(); ++i) zeros += v->value.data<float>()[i] == 0.f;
    EXPECT_GT(zeros, 0) << traced_in_training;
  }
}

TEST(OpGradients, FakeQuantizeStraightThrough) {
  quant::QParams qp;
  qp.scale = {0.1f};
  qp.zero_point = {5};
  qp.quant_min = 0;
  qp.quant_max = 20;
  const Tensor x = Tensor::FromVector({6}, {-0.6f, -0.54f, 0.0f, 1.0f, 1.54f, 1.56f});
  Tape t;
  const Var y = ag::fake_quantize(t, t.Param(x), qp);
  t.Backward(ag::mean(t, y, {}, false));
  // q = round(x / 0.1) + 5: -1, 0 (inside), 5, 15, 20 (inside), 21 (outside).
  const std::vector<float> want = {0, 1, 1, 1, 1, 0};
  for (int64_t i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(t.ParamGrad(x).data<float>()[i], want[i] / 6.f) << i;
  EXPECT_FLOAT_EQ(y.value.data<float>()[1], -0.5f);
  // Per channel along axis 0: the second channel's range clips everything.
  quant::QParams pc = qp;
  pc.scale = {0.1f, 0.001f};
  pc.zero_point = {5, 0};
  pc.qscheme = quant::QScheme::kPerChannelAffine;
  const Tensor w = Tensor::FromVector({2, 2}, {0.3f, 0.4f, 0.3f, 0.4f});
  Tape t2;
  t2.Backward(ag::mean(t2, ag::fake_quantize(t2, t2.Param(w), pc), {}, false));
  EXPECT_FLOAT_EQ(t2.ParamGrad(w).data<float>()[0], 0.25f);
  EXPECT_FLOAT_EQ(t2.ParamGrad(w).data<float>()[3], 0.f);
}

// Whole graphs: gradients of every parameter of a traced model against finite differences.
void ModelGradCheck(fx::GraphModule& gm, const Tensor& x, const Tensor& labels, int64_t max_params) {
  GraphForward forward(gm);
  Tape tape;
  auto out = forward.Run(tape, x);
  ASSERT_TRUE(out.ok()) << out.status();
  // The taped forward computes what the ordinary forward computes.
  const Var loss = ag::cross_entropy(tape, *out, labels);
  tape.Backward(loss);
  auto loss_of = [&]() {
    Tape t;
    auto o = forward.Run(t, x);
    return static_cast<double>(ag::cross_entropy(t, *o, labels).value.data<float>()[0]);
  };
  int64_t checked = 0, compared = 0;
  for (const auto& [name, p] : gm.named_parameters()) {
    const Tensor g = tape.ParamGrad(p);
    ASSERT_TRUE(g.defined()) << name;
    double scale = 1e-6;
    for (int64_t i = 0; i < g.numel(); ++i) scale = std::max(scale, static_cast<double>(std::fabs(g.data<float>()[i])));
    for (int64_t i = 0; i < p.numel() && checked < max_params; i += std::max<int64_t>(1, p.numel() / 3), ++checked) {
      float& v = p.data<float>()[i];
      const float saved = v;
      const float h = 1e-2f * std::max(1.f, std::fabs(saved));
      const double center = loss_of();
      v = saved + h;
      const double up = loss_of();
      v = saved - h;
      const double down = loss_of();
      v = saved;
      // A ReLU or max-pool kink inside [-h, h] makes the one-sided slopes disagree: skip that element.
      const double right = (up - center) / h, left = (center - down) / h;
      if (std::fabs(right - left) > 0.1 * std::max(std::fabs(right), std::fabs(left)) + 1e-3) continue;
      ++compared;
      EXPECT_NEAR(g.data<float>()[i], (up - down) / (2 * h), 8e-2 * scale + 1e-4) << name << "[" << i << "]";
    }
  }
  EXPECT_GE(compared, checked * 2 / 3) << "too many elements sat on a kink";
}

Tensor Labels(int64_t n, int64_t classes) {
  Tensor y = Tensor::Empty({n}, DType::kI64);
  for (int64_t i = 0; i < n; ++i) y.data<int64_t>()[i] = (i * 7 + 3) % classes;
  return y;
}

TEST(GraphGradients, MnistCnnEvalModeMatchesFiniteDifferences) {
  nn::ManualSeed(1);
  auto model = *models::Create("mnist_cnn");
  auto gm = *fx::SymbolicTrace(model);
  gm->eval();  // eval-mode batch norm: the loss is a smooth function of each parameter alone
  ModelGradCheck(*gm, Random({2, 1, 28, 28}, 40, 0.f, 1.f), Labels(2, 10), 40);
}

TEST(GraphGradients, TapedForwardEqualsForward) {
  for (const char* name : {"mnist_cnn", "mlp", "mobilenet_v3_small", "resnet18", "regnet_x_400mf", "efficientnet_b0"}) {
    nn::ManualSeed(2);
    auto model = *models::Create(name);
    testing::HashInit(*model);
    auto gm = *fx::SymbolicTrace(model);
    gm->eval();
    const Shape shape = std::string(name).rfind("m", 0) == 0 && std::string(name) != "mobilenet_v3_small"
                            ? Shape{2, 1, 28, 28}
                            : Shape{1, 3, 64, 64};
    const Tensor x = Random(shape, 41);
    const Tensor want = *RunModule(*gm, x);
    GraphForward forward(*gm);
    Tape tape;
    auto got = forward.Run(tape, x);
    ASSERT_TRUE(got.ok()) << name << ": " << got.status();
    ASSERT_EQ(got->value.shape(), want.shape());
    for (int64_t i = 0; i < want.numel(); ++i) ASSERT_EQ(got->value.data<float>()[i], want.data<float>()[i]) << name;
    // And every parameter receives a gradient.
    tape.Backward(ag::cross_entropy(tape, ag::reshape(tape, *got, {got->value.size(0), -1}),
                                    Labels(got->value.size(0), got->value.numel() / got->value.size(0))));
    for (const auto& [pname, p] : gm->named_parameters())
      EXPECT_TRUE(tape.ParamGrad(p).defined()) << name << " " << pname;
  }
}

TEST(GraphGradients, QatMnistCnnTrainModeForwardMatchesModule) {
  nn::ManualSeed(3);
  auto model = *models::Create("mnist_cnn");
  auto gm = *fx::SymbolicTrace(model);
  gm->train();
  quant::PrepareOptions opt;
  opt.config = *quant::LoadQuantConfig("x86_qat");
  ASSERT_TRUE(quant::PrepareQat(*gm, opt).ok());
  const Tensor x = Random({4, 1, 28, 28}, 42, 0.f, 1.f);
  // Two identical modules: one runs the ordinary forward, the other the taped one.
  auto model2 = *models::Create("mnist_cnn");
  ASSERT_TRUE(model2->load_state_dict(model->state_dict()).ok());
  auto gm2 = *fx::SymbolicTrace(model2);
  gm2->train();
  ASSERT_TRUE(quant::PrepareQat(*gm2, opt).ok());
  const Tensor want = *RunModule(*gm, x);
  GraphForward forward(*gm2);
  Tape tape;
  auto got = forward.Run(tape, x);
  ASSERT_TRUE(got.ok()) << got.status();
  for (int64_t i = 0; i < want.numel(); ++i) ASSERT_EQ(got->value.data<float>()[i], want.data<float>()[i]) << i;
  const auto sd1 = gm->state_dict(), sd2 = gm2->state_dict();
  ASSERT_EQ(sd1.size(), sd2.size());
  for (size_t k = 0; k < sd1.size(); ++k) {
    ASSERT_EQ(sd1[k].first, sd2[k].first);
    ASSERT_EQ(0, std::memcmp(sd1[k].second.raw_data(), sd2[k].second.raw_data(), sd1[k].second.nbytes()))
        << sd1[k].first;
  }
  tape.Backward(ag::cross_entropy(tape, *got, Labels(4, 10)));
  for (const auto& [name, p] : gm2->named_parameters()) EXPECT_TRUE(tape.ParamGrad(p).defined()) << name;
}

TEST(GraphGradients, FakeQuantOffTrainsTheFloatModel) {
  nn::ManualSeed(6);
  auto model = *models::Create("mnist_cnn");
  auto gm = *fx::SymbolicTrace(model);
  gm->eval();  // eval-mode batch norm, so both forwards below see the same statistics
  const Tensor x = Random({2, 1, 28, 28}, 45, 0.f, 1.f);
  const Tensor want = *RunModule(*gm, x);
  gm->train();
  quant::PrepareOptions opt;
  opt.config = *quant::LoadQuantConfig("x86_qat");
  ASSERT_TRUE(quant::PrepareQat(*gm, opt).ok());
  quant::EnableFakeQuant(*gm, false);
  quant::FreezeBnStats(*gm, true);
  GraphForward forward(*gm);
  Tape tape;
  auto got = forward.Run(tape, x);
  ASSERT_TRUE(got.ok()) << got.status();
  // ConvBn folding is simulated (w * s, then / s), so allow float rounding; no quantization grid.
  for (int64_t i = 0; i < want.numel(); ++i) EXPECT_NEAR(got->value.data<float>()[i], want.data<float>()[i], 1e-4) << i;
}

TEST(GraphGradients, UntrainableNodesAreListed) {
  nn::ManualSeed(4);
  auto gm = *fx::SymbolicTrace(*models::Create("mnist_cnn"));
  gm->eval();
  quant::PrepareOptions opt;
  opt.config = *quant::LoadQuantConfig("x86");
  auto report = quant::Prepare(*gm, opt);
  ASSERT_TRUE(report.ok());
  ASSERT_TRUE(RunModule(*gm, Random({2, 1, 28, 28}, 43, 0, 1)).ok());
  ASSERT_TRUE(quant::Convert(*gm, *report).ok());
  GraphForward forward(*gm);
  const absl::Status s = forward.CheckDifferentiable();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("has no backward"), std::string::npos) << s;
  EXPECT_NE(s.message().find("%conv1"), std::string::npos) << s;
}

}  // namespace
}  // namespace train
}  // namespace qfx
