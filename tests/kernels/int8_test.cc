// qfx tests: the int8 convolution and linear fast paths against the scalar oracle, bit for bit, over
// sweeps of shapes, strides, paddings, dilations, groups (incl. depthwise), zero points, clamps and threads.
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "qfx/core/parallel.h"
#include "qfx/kernels/int8.h"
#include "src/kernels/gemm_u8s8.h"
#include "tests/testing/targets.h"

namespace qfx {
namespace kernels {
namespace {

template <typename T>
std::vector<T> Random(size_t n, int lo, int hi, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(d(gen));
  return v;
}

struct Case {
  int64_t batch, cin, h, w, cout, k, stride, pad, dilation, groups;
};

void ConvSweep();

template <typename Body>
void ForEachTarget(Body body) {
  testing::ForEachTarget(Int8TargetName, body);
}

// Which GEMM paths this run covers: AMX where the CPU and kernel allow it, unless QFX_DISABLE_AMX=1 (the
// kernels_int8_noamx_test target), so AMX machines test both.
TEST(Int8Kernels, AmxFollowsTheMachineAndTheSwitch) {
  const char* off = std::getenv("QFX_DISABLE_AMX");
  if (off != nullptr && off[0] == '1') EXPECT_FALSE(AmxEnabled());
  std::printf("AMX %s\n", AmxEnabled() ? "in use on AVX3_DL" : "not in use");
}

TEST(Int8Kernels, ConvMatchesOracleBitForBitOnEveryTarget) {
  ForEachTarget([] { ConvSweep(); });
}

void ConvSweep() {
  const Case cases[] = {
      {1, 3, 9, 9, 8, 3, 1, 1, 1, 1},   {2, 4, 11, 10, 6, 3, 2, 2, 2, 1}, {1, 8, 7, 7, 12, 3, 1, 1, 1, 4},
      {2, 8, 10, 10, 8, 3, 2, 1, 1, 8}, {1, 4, 9, 9, 8, 5, 1, 2, 1, 4},   {1, 16, 5, 5, 24, 1, 1, 0, 1, 1},
      {1, 6, 8, 9, 6, 3, 1, 0, 1, 6},   {1, 5, 13, 6, 7, 7, 2, 3, 1, 1},  {1, 32, 6, 6, 40, 3, 1, 1, 1, 1},
      // Depthwise rows wide enough for the SIMD loops (16+ int32 lanes), with a channel multiplier and dilation.
      {1, 4, 9, 40, 4, 3, 1, 1, 1, 4},  {1, 3, 7, 35, 6, 5, 1, 4, 2, 3},  {2, 2, 6, 41, 2, 3, 2, 1, 1, 2},
      // Depthwise at stride 3 (scalar over the padded plane) and with a 17x17 kernel (past the VNNI kernel's 16 rows).
      {1, 4, 11, 13, 4, 3, 3, 1, 1, 4}, {1, 2, 18, 40, 2, 17, 1, 8, 1, 2},
      // Wide K and N for the AMX tiles (k past 64, n past 32, ragged both).
      {1, 24, 11, 9, 37, 3, 1, 1, 1, 1},
      // Stride 2 over rows wide enough for im2col's 16-byte even-byte gather (and its ragged end).
      {1, 3, 9, 75, 8, 7, 2, 3, 1, 1},
      // Strides 4 (the widest the windowed im2col's permute reaches) and 5 (past it: the plain im2col).
      {1, 5, 12, 40, 9, 3, 4, 1, 1, 1}, {1, 5, 12, 40, 9, 3, 5, 1, 1, 1},
      // The implicit-GEMM AMX convolution (C_in a multiple of 64, stride 1): rows wider than 32 columns,
      // output channels past a 32 block, 5x5 taps, no padding, and a batch of two.
      {1, 64, 5, 37, 33, 3, 1, 1, 1, 1}, {2, 128, 6, 7, 16, 5, 1, 2, 1, 1}, {1, 64, 6, 6, 8, 3, 1, 0, 1, 1},
      // Narrow rows: a 16-lane half of the epilogue spans up to 16 output rows (masked stores per row).
      {1, 64, 9, 2, 33, 3, 1, 1, 1, 1}, {1, 64, 20, 3, 40, 3, 1, 0, 1, 1},
  };
  int checked = 0, tap_major = 0, windowed = 0;
  for (int threads : {1, 2}) {
    SetNumThreads(threads);
    for (const Case& c : cases) {
      for (int32_t x_zp : {0, 3, 128, 255}) {
       for (int x_hi : {127, 255}) {  // reduce_range activations take vpmaddubsw; full-range ones may not
        QConvArgs a;
        a.g.batch = c.batch, a.g.in_channels = c.cin, a.g.in_h = c.h, a.g.in_w = c.w, a.g.out_channels = c.cout;
        a.g.kernel_h = a.g.kernel_w = c.k;
        a.g.stride_h = a.g.stride_w = c.stride;
        a.g.pad_h = a.g.pad_w = c.pad;
        a.g.dilation_h = a.g.dilation_w = c.dilation;
        a.g.groups = c.groups;
        const int64_t per_row = c.cin / c.groups * c.k * c.k;
        const auto x = Random<uint8_t>(c.batch * c.cin * c.h * c.w, 0, x_hi, 1);
        const auto w = Random<int8_t>(c.cout * per_row, x_zp == 255 ? -64 : -128, x_zp == 255 ? 63 : 127, 2);
        const auto bias = Random<int32_t>(c.cout, -5000, 5000, 3);
        std::vector<float> mult(c.cout);
        for (int64_t o = 0; o < c.cout; ++o) mult[o] = 0.0007f + 0.0001f * static_cast<float>(o);
        std::vector<int32_t> sums(c.cout);
        ComputeWeightSums(w.data(), c.cout, per_row, sums.data());
        a.x_zero_point = x_zp;
        a.weight = w.data();
        a.bias = bias.data();
        a.weight_sum = sums.data();
        a.multiplier = mult.data();
        a.y_zero_point = 17;
        a.lo = x_zp == 3 ? 17 : 0;  // a fused-ReLU clamp on one sweep
        const size_t out = static_cast<size_t>(c.batch * c.cout * a.g.out_h() * a.g.out_w());
        std::vector<uint8_t> y(out), want(out);
        ref::QConv2d(a, x.data(), want.data());
        QConv2d(a, x.data(), y.data());
        ASSERT_EQ(y, want) << "cin " << c.cin << " k " << c.k << " groups " << c.groups << " zp " << x_zp;
        // The same with the weights prepacked once (what QuantizedConv2d does).
        int32_t max_pair = -1;
        const auto packed = PrepackWeights(w.data(), c.groups, c.cout / c.groups, per_row, &max_pair);
        a.packed_weight = packed.data();
        a.weight_max_pair = max_pair;
        std::fill(y.begin(), y.end(), 0);
        QConv2d(a, x.data(), y.data());
        ASSERT_EQ(y, want) << "prepacked: cin " << c.cin << " k " << c.k << " groups " << c.groups;
        // And with each AMX weight copy where it applies: tap-major (the implicit GEMM) and windowed (the
        // windowed im2col); the kernel must still match the oracle bit for bit.
        const auto with_copy = [&](const auto& copy, auto* field, const char* what, int* count) {
          if (copy.empty()) return;
          *field = copy.data();
          std::fill(y.begin(), y.end(), 0);
          QConv2d(a, x.data(), y.data());
          *field = nullptr;
          ++*count;
          EXPECT_EQ(y, want) << what << ": cin " << c.cin << " k " << c.k << " h " << c.h << " w " << c.w;
        };
        with_copy(PrepackTapMajor(w.data(), c.cout, c.cin, c.groups, c.k, c.k), &a.tap_weight, "tap-major", &tap_major);
        with_copy(PrepackWindowed(w.data(), c.cout, c.cin, c.groups, c.k, c.k), &a.window_weight, "windowed", &windowed);
        ++checked;
       }
      }
    }
  }
  EXPECT_EQ(checked, static_cast<int>(2 * std::size(cases) * 4 * 2));  // threads x cases x zero points x ranges
  EXPECT_EQ(tap_major, 5 * 2 * 4 * 2);  // the five implicit-GEMM cases
  EXPECT_GT(windowed, 0);
  SetNumThreads(2);
}

TEST(Int8Kernels, LinearMatchesOracleBitForBitOnEveryTarget) {
  ForEachTarget([] {
  for (int64_t rows : {1, 3, 17}) {
    for (int64_t in : {1, 7, 64, 300}) {
      const int64_t out = 13;
      const auto x = Random<uint8_t>(rows * in, 0, 255, 4);
      const auto w = Random<int8_t>(out * in, -128, 127, 5);
      const auto bias = Random<int32_t>(out, -100000, 100000, 6);
      std::vector<float> mult(out, 0.0003f);
      std::vector<int32_t> sums(out);
      ComputeWeightSums(w.data(), out, in, sums.data());
      QLinearArgs a;
      a.rows = rows, a.in = in, a.out = out, a.x_zero_point = 99, a.weight = w.data(), a.bias = bias.data();
      a.weight_sum = sums.data(), a.multiplier = mult.data(), a.y_zero_point = 128;
      std::vector<uint8_t> y(rows * out), want(rows * out);
      ref::QLinear(a, x.data(), want.data());
      QLinear(a, x.data(), y.data());
      ASSERT_EQ(y, want) << rows << "x" << in;
    }
  }
  });
}

TEST(Int8Kernels, DynamicLinearMatchesOracleOnEveryTarget) {
  ForEachTarget([&] {
    for (int64_t rows : {1, 3, 64}) {
      for (int64_t in : {1, 17, 784}) {
        const int64_t out = 37;
        for (int32_t x_max : {127, 255}) {  // reduce_range activations, then full-range ones
          const auto x = Random<uint8_t>(rows * in, 0, x_max, 20 + rows);
          const auto w = Random<int8_t>(out * in, -128, 127, 21);
          std::vector<float> w_scale(out), bias(out);
          for (int64_t o = 0; o < out; ++o) w_scale[o] = 0.001f * (o + 1), bias[o] = 0.01f * (o - 18);
          std::vector<int32_t> sums(out);
          ComputeWeightSums(w.data(), out, in, sums.data());
          int32_t max_pair = 0;
          const auto packed = PrepackWeights(w.data(), 1, out, in, &max_pair);
          QLinearDynamicArgs a;
          a.rows = rows, a.in = in, a.out = out, a.x_scale = 0.0173f, a.x_zero_point = 61, a.weight = w.data();
          a.w_scale = w_scale.data(), a.bias = bias.data(), a.weight_sum = sums.data();
          std::vector<float> y(rows * out), want(rows * out), y_packed(rows * out);
          ref::QLinearDynamic(a, x.data(), want.data());
          QLinearDynamic(a, x.data(), y.data());
          a.packed_weight = packed.data(), a.weight_max_pair = max_pair;
          QLinearDynamic(a, x.data(), y_packed.data());
          ASSERT_EQ(0, std::memcmp(y.data(), want.data(), y.size() * sizeof(float))) << rows << "x" << in;
          ASSERT_EQ(0, std::memcmp(y_packed.data(), want.data(), y.size() * sizeof(float))) << rows << "x" << in;
        }
      }
    }
  });
}

TEST(Int8Kernels, QuantizeAndMinMaxMatchOracleOnEveryTarget) {
  std::vector<float> x;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-3.f, 5.f);
  for (int i = 0; i < 1003; ++i) x.push_back(u(rng));
  for (float v : {0.f, -0.f, 1e30f, -1e30f, 2.5f, 3.5f, -2.5f}) x.push_back(v);  // extremes and ties
  ForEachTarget([&] {
    for (int64_t n : {int64_t{0}, int64_t{5}, static_cast<int64_t>(x.size())}) {
      for (int32_t qmax : {127, 255}) {
        std::vector<uint8_t> y(n), want(n);
        QuantizeU8(x.data(), n, 0.5f, 17, qmax, y.data());
        ref::QuantizeU8(x.data(), n, 0.5f, 17, qmax, want.data());
        ASSERT_EQ(y, want) << n;
      }
      float lo, hi, rlo, rhi;
      ASSERT_TRUE(MinMax(x.data(), n, &lo, &hi));
      ASSERT_TRUE(ref::MinMax(x.data(), n, &rlo, &rhi));
      ASSERT_EQ(lo, rlo);
      ASSERT_EQ(hi, rhi);
    }
    for (float bad : {std::nanf(""), INFINITY, -INFINITY}) {
      for (size_t at : {size_t{0}, size_t{17}, x.size() - 1}) {
        std::vector<float> y = x;
        y[at] = bad;
        float lo, hi;
        EXPECT_FALSE(MinMax(y.data(), static_cast<int64_t>(y.size()), &lo, &hi)) << bad << " at " << at;
        EXPECT_FALSE(ref::MinMax(y.data(), static_cast<int64_t>(y.size()), &lo, &hi));
      }
    }
  });
}

TEST(Int8Kernels, VectorRequantizationEqualsTheScalarRuleOnEveryTarget) {
  std::vector<int32_t> acc = Random<int32_t>(1000, -3000, 3000, 9);
  acc.push_back(INT32_MAX - 5), acc.push_back(INT32_MIN + 5), acc.push_back(16777217), acc.push_back(-16777219);
  for (int i = -20; i <= 20; ++i) acc.push_back(i);  // ties at multiplier 0.5
  ForEachTarget([&] {
    for (float mult : {0.5f, 0.013f, 3.7f, 1e-9f, 1e6f}) {
      for (int32_t zp : {0, 77, 255}) {
        std::vector<uint8_t> y(acc.size());
        RequantizeRow(acc.data(), static_cast<int64_t>(acc.size()), 3, mult, zp, zp == 77 ? 77 : 0, zp == 0 ? 200 : 255, y.data());
        for (size_t i = 0; i < acc.size(); ++i) {
          ASSERT_EQ(y[i], Requantize(acc[i] + 3, mult, zp, zp == 77 ? 77 : 0, zp == 0 ? 200 : 255))
              << "acc " << acc[i] << " mult " << mult << " zp " << zp;
        }
      }
    }
  });
}

TEST(Int8Kernels, AddAndMulMatchOracleOnEveryTarget) {
  const int64_t n = 1000;
  const auto a = Random<uint8_t>(n, 0, 255, 11), b = Random<uint8_t>(n, 0, 255, 12);
  ForEachTarget([&] {
    for (bool relu : {false, true}) {
      for (float ys : {0.02f, 0.31f, 1e-5f}) {
        QBinaryArgs q;
        q.n = n, q.a_scale = 0.05f, q.a_zero_point = 120, q.b_scale = 0.031f, q.b_zero_point = 7;
        q.y_scale = ys, q.y_zero_point = 128, q.relu = relu;
        std::vector<uint8_t> y(n), want(n);
        ref::QAdd(q, a.data(), b.data(), want.data());
        QAdd(q, a.data(), b.data(), y.data());
        ASSERT_EQ(y, want) << "add relu " << relu << " scale " << ys;
        ref::QMul(q, a.data(), b.data(), want.data());
        QMul(q, a.data(), b.data(), y.data());
        ASSERT_EQ(y, want) << "mul scale " << ys;
      }
    }
  });
}

TEST(Int8Rules, RoundingIsHalfToEven) {
  EXPECT_EQ(Requantize(5, 0.5f, 0, 0, 255), 2);    // 2.5 -> 2
  EXPECT_EQ(Requantize(7, 0.5f, 0, 0, 255), 4);    // 3.5 -> 4
  EXPECT_EQ(Requantize(-3, 0.5f, 10, 0, 255), 8);  // -1.5 -> -2
  EXPECT_EQ(Requantize(1000, 1.f, 0, 0, 255), 255);
  EXPECT_EQ(QuantizeValue(0.25f, 4.f, 3, 0, 255), 4);   // 1.0 + 3
  EXPECT_EQ(QuantizeValue(0.625f, 4.f, 0, 0, 255), 2);  // 2.5 -> 2
  EXPECT_EQ(QuantizeBias(1.f, 0.5f, 0.8f), 2);          // 2.5 -> 2
}

}  // namespace
}  // namespace kernels
}  // namespace qfx
