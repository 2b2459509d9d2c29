// qfx tests: the int8 convolution and linear fast paths against the scalar oracle, bit for bit, over
// sweeps of shapes, strides, paddings, dilations, groups (incl. depthwise), zero points, clamps and threads,
// on every compiled target, through the public kernel API: each layer packed for the path the rules choose
// and then for every other path that fits it and runs here, with aligned and misaligned buffers.
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
#include "qfx/kernels/qconv.h"
#include "src/kernels/qu8_dispatch.h"         // AmxEnabled, RequantizeRow
#include "src/kernels/x86/u8_shuffle_sse2.h"  // Interleave4
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

// One layer: k, stride, pad and dilation are the height axis's; the *_w fields the width axis's, 0 meaning
// the same as the height's (a square layer).
struct Case {
  int64_t batch, cin, h, w, cout, k, stride, pad, dilation, groups;
  int64_t k_w = 0, stride_w = 0, pad_w = 0, dilation_w = 0;
  int64_t kw() const { return k_w ? k_w : k; }
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
  if (off != nullptr && off[0] == '1') {
    EXPECT_FALSE(AmxEnabled());
  }
  std::printf("AMX %s\n", AmxEnabled() ? "in use on AVX3_DL" : "not in use");
}

TEST(Int8Kernels, ConvMatchesOracleBitForBitOnEveryTarget) {
  ForEachTarget([] { ConvSweep(); });
}

constexpr QConvPath kConvPaths[] = {QConvPath::kDepthwiseVnni, QConvPath::kDepthwiseMaddwd, QConvPath::kDepthwise,
                                    QConvPath::kImplicitAmx,   QConvPath::kImplicitVnni,    QConvPath::kImplicitMaddubs,
                                    QConvPath::kWindowedAmx,   QConvPath::kWindowedVnni,    QConvPath::kGemmAmx,
                                    QConvPath::kGemmVnni,      QConvPath::kGemmMaddubs,     QConvPath::kGemmPortable};
constexpr QLinearPath kLinearPaths[] = {QLinearPath::kAmx, QLinearPath::kVnni, QLinearPath::kMaddubs,
                                        QLinearPath::kPortable};

QConv2dShape ShapeOf(const Case& c) {
  QConv2dShape s = QConv2dShape::Square(c.cin, c.cout, c.k, c.stride, c.pad, c.dilation, c.groups);
  s.kernel_w = c.kw();
  if (c.stride_w) s.stride_w = c.stride_w;
  if (c.pad_w) s.pad_w = c.pad_w;
  if (c.dilation_w) s.dilation_w = c.dilation_w;
  return s;
}

// y from x through a packed layer, with both buffers `offset` bytes past a 64-byte boundary.
std::vector<uint8_t> RunAt(const PackedQConv2d& p, const Case& c, const std::vector<uint8_t>& x, size_t y_size,
                           size_t offset) {
  std::vector<uint8_t> xbuf(x.size() + 64 + offset), ybuf(y_size + 64 + offset);
  uint8_t* xp = xbuf.data() + (64 - reinterpret_cast<uintptr_t>(xbuf.data()) % 64) % 64 + offset;
  uint8_t* yp = ybuf.data() + (64 - reinterpret_cast<uintptr_t>(ybuf.data()) % 64) % 64 + offset;
  std::copy(x.begin(), x.end(), xp);
  Run(p, c.batch, c.h, c.w, xp, yp);
  return std::vector<uint8_t>(yp, yp + y_size);
}

void ConvSweep() {
  const Case cases[] = {
      {1, 3, 9, 9, 8, 3, 1, 1, 1, 1},
      {2, 4, 11, 10, 6, 3, 2, 2, 2, 1},
      {1, 8, 7, 7, 12, 3, 1, 1, 1, 4},
      {2, 8, 10, 10, 8, 3, 2, 1, 1, 8},
      {1, 4, 9, 9, 8, 5, 1, 2, 1, 4},
      {1, 16, 5, 5, 24, 1, 1, 0, 1, 1},
      {1, 6, 8, 9, 6, 3, 1, 0, 1, 6},
      {1, 5, 13, 6, 7, 7, 2, 3, 1, 1},
      {1, 32, 6, 6, 40, 3, 1, 1, 1, 1},
      // Depthwise rows wide enough for the SIMD loops (16+ int32 lanes), with a channel multiplier and dilation.
      {1, 4, 9, 40, 4, 3, 1, 1, 1, 4},
      {1, 3, 7, 35, 6, 5, 1, 4, 2, 3},
      {2, 2, 6, 41, 2, 3, 2, 1, 1, 2},
      // Depthwise at stride 3 (scalar over the padded plane) and with a 17x17 kernel (past the VNNI kernel's 16 rows).
      {1, 4, 11, 13, 4, 3, 3, 1, 1, 4},
      {1, 2, 18, 40, 2, 17, 1, 8, 1, 2},
      // Wide K and N for the AMX tiles (k past 64, n past 32, ragged both).
      {1, 24, 11, 9, 37, 3, 1, 1, 1, 1},
      // Stride 2 over rows wide enough for im2col's 16-byte even-byte gather (and its ragged end).
      {1, 3, 9, 75, 8, 7, 2, 3, 1, 1},
      // Strides 4 (the widest the windowed im2col's permute reaches) and 5 (past it: the plain im2col).
      {1, 5, 12, 40, 9, 3, 4, 1, 1, 1},
      {1, 5, 12, 40, 9, 3, 5, 1, 1, 1},
      // The implicit-GEMM AMX convolution (C_in a multiple of 64, stride 1): rows wider than 32 columns,
      // output channels past a 32 block, 5x5 taps, no padding, and a batch of two.
      {1, 64, 5, 37, 33, 3, 1, 1, 1, 1},
      {2, 128, 6, 7, 16, 5, 1, 2, 1, 1},
      {1, 64, 6, 6, 8, 3, 1, 0, 1, 1},
      // Narrow rows: a 16-lane half of the epilogue spans up to 16 output rows (masked stores per row).
      {1, 64, 9, 2, 33, 3, 1, 1, 1, 1},
      {1, 64, 20, 3, 40, 3, 1, 0, 1, 1},
      // The vpmaddubsw implicit GEMM at strides 2 and 3 (phase sub-planes): a 3x3 over odd sizes, a 1x1
      // downsample, and a 5x5 with output channels past a 4 block.
      {1, 64, 13, 15, 20, 3, 2, 1, 1, 1},
      {2, 64, 9, 10, 8, 1, 2, 0, 1, 1},
      {1, 128, 11, 12, 37, 5, 3, 2, 1, 1},
      // Weights past the vpmaddubsw kernel's L2 budget: its channel blocks go in groups of 5, 5 and 1.
      {1, 512, 5, 6, 44, 3, 1, 1, 1, 1},
      // Channel counts that are no multiple of any vector width: depthwise 17 and 19 channels, a grouped
      // layer of 3 x 7 channels, a 1x1 layer of 33 -> 47, and 65 input channels (one past the implicit GEMM).
      {1, 17, 9, 23, 17, 3, 1, 1, 1, 17},
      {1, 19, 10, 21, 19, 5, 2, 2, 1, 19},
      {1, 21, 7, 11, 35, 3, 1, 1, 1, 7},
      {1, 33, 7, 18, 47, 1, 1, 0, 1, 1},
      {1, 65, 6, 9, 19, 3, 1, 1, 1, 1},
      // Non-square layers (inception's 1x7 / 7x1, asymmetric strides, padding and dilation): dense at 3 and 64
      // channels (the implicit GEMMs), grouped, and depthwise (the rows of the SIMD loops).
      {1, 3, 9, 12, 8, 1, 1, 0, 1, 1, 7, 0, 3},
      {1, 5, 12, 9, 6, 7, 1, 3, 1, 1, 1, 0, 0},
      {2, 4, 11, 14, 6, 3, 2, 1, 1, 1, 1, 1, 0},
      {1, 6, 10, 13, 6, 3, 1, 0, 1, 2, 3, 2, 3, 2},
      {1, 64, 7, 19, 24, 1, 1, 0, 1, 1, 7, 0, 3},
      {1, 64, 19, 7, 24, 7, 1, 3, 1, 1, 1},
      {1, 64, 9, 12, 16, 3, 2, 1, 1, 1, 5, 1, 2},
      {1, 8, 9, 40, 8, 1, 1, 0, 1, 8, 5, 0, 2},
      {1, 8, 20, 40, 8, 5, 1, 2, 1, 8, 1, 2, 0},
      {1, 4, 11, 38, 8, 3, 2, 1, 2, 4, 5, 1, 4, 1},
  };
  int checked = 0, tap_major = 0, strided = 0, windowed = 0, forced = 0;
  const Int8Isa isa = Int8Isa::Current();
  for (int threads : {1, 2}) {
    SetNumThreads(threads);
    for (const Case& c : cases) {
      for (int32_t x_zp : {0, 3, 128, 255}) {
        for (int x_hi : {127, 255}) {  // reduce_range activations take vpmaddubsw; full-range ones may not
          QConvArgs a;
          a.g = ShapeOf(c).Geometry(c.batch, c.h, c.w);
          const int64_t per_row = c.cin / c.groups * c.k * c.kw();
          const auto x = Random<uint8_t>(c.batch * c.cin * c.h * c.w, 0, x_hi, 1);
          const auto w = Random<int8_t>(c.cout * per_row, x_zp == 255 ? -64 : -128, x_zp == 255 ? 63 : 127, 2);
          const auto bias = Random<int32_t>(c.cout, -5000, 5000, 3);
          std::vector<float> mult(c.cout);
          for (int64_t o = 0; o < c.cout; ++o) mult[o] = 0.0007f + 0.0001f * static_cast<float>(o);
          mult[0] = 3.0e6f;  // products far past the int32 range: every path must clamp as the scalar rule
          a.x_zero_point = x_zp;
          a.weight = w.data();
          a.bias = bias.data();
          a.multiplier = mult.data();
          a.y_zero_point = 17;
          a.lo = x_zp == 3 ? 17 : 0;  // a fused-ReLU clamp on one sweep
          QRequant rq;
          rq.x_zero_point = x_zp;
          rq.bias = bias.data();
          rq.multiplier = mult.data();
          rq.y_zero_point = a.y_zero_point;
          rq.lo = a.lo;
          rq.hi = a.hi;
          const size_t out = static_cast<size_t>(c.batch * c.cout * a.g.out_h() * a.g.out_w());
          std::vector<uint8_t> want(out);
          ref::QConv2d(a, x.data(), want.data());
          // The path the rules choose (what QuantizedConv2d packs), aligned and misaligned.
          const PackedQConv2d chosen = PackQConv2d(ShapeOf(c), w.data(), rq);
          EXPECT_EQ(chosen.path(), SelectQConvPath(ShapeOf(c), isa));
          for (size_t offset : {0, 1, 3}) {
            ASSERT_EQ(RunAt(chosen, c, x, out, offset), want)
                << PathName(chosen.path()) << " offset " << offset << ": cin " << c.cin << " k " << c.k << " groups "
                << c.groups << " zp " << x_zp;
          }
          // Every other path that computes this layer and runs here: each must match the oracle bit for bit.
          for (QConvPath path : kConvPaths) {
            if (!PathFits(path, ShapeOf(c)) || !PathRuns(path, isa)) continue;
            EXPECT_EQ(RunAt(PackQConv2d(ShapeOf(c), w.data(), rq, path), c, x, out, 1), want)
                << PathName(path) << ": cin " << c.cin << " k " << c.k << " h " << c.h << " w " << c.w;
            ++forced;
          }
          tap_major += PathFits(QConvPath::kImplicitVnni, ShapeOf(c));
          strided += PathFits(QConvPath::kImplicitMaddubs, ShapeOf(c)) && c.stride > 1;
          windowed += PathFits(QConvPath::kWindowedVnni, ShapeOf(c));
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, static_cast<int>(2 * std::size(cases) * 4 * 2));  // threads x cases x zero points x ranges
  EXPECT_EQ(tap_major, 8 * 2 * 4 * 2);  // the six implicit-GEMM cases and the 1x7 / 7x1 ones at 64 channels
  EXPECT_GE(strided, 3 * 2 * 4 * 2);    // the three strided ones, and more
  EXPECT_GT(windowed, 0);
  EXPECT_GE(forced, checked);
  std::printf("  %d layers, %d forced-path runs\n", checked, forced);
  SetNumThreads(2);
}

// y from x through a packed linear layer, both buffers `offset` bytes past an odd address when offset > 0.
template <typename T, typename RunFn>
std::vector<T> RunLinearAt(const std::vector<uint8_t>& x, size_t y_size, size_t offset, RunFn run) {
  std::vector<uint8_t> xbuf(x.size() + offset);
  std::vector<T> ybuf(y_size + 1);
  std::copy(x.begin(), x.end(), xbuf.begin() + offset);
  run(xbuf.data() + offset, ybuf.data() + (offset > 0 ? 1 : 0));
  return std::vector<T>(ybuf.begin() + (offset > 0 ? 1 : 0), ybuf.begin() + (offset > 0 ? 1 : 0) + y_size);
}

TEST(Int8Kernels, LinearMatchesOracleBitForBitOnEveryTarget) {
  ForEachTarget([] {
    const Int8Isa isa = Int8Isa::Current();
    for (int64_t rows : {1, 3, 17}) {
      for (int64_t in : {1, 7, 64, 300}) {
        const int64_t out = 13;
        const auto x = Random<uint8_t>(rows * in, 0, 255, 4);
        const auto w = Random<int8_t>(out * in, -128, 127, 5);
        const auto bias = Random<int32_t>(out, -100000, 100000, 6);
        std::vector<float> mult(out, 0.0003f);
        QLinearArgs a;
        a.rows = rows;
        a.in = in;
        a.out = out;
        a.x_zero_point = 99;
        a.weight = w.data();
        a.bias = bias.data();
        a.multiplier = mult.data();
        a.y_zero_point = 128;
        QRequant rq;
        rq.x_zero_point = 99;
        rq.bias = bias.data();
        rq.multiplier = mult.data();
        rq.y_zero_point = 128;
        std::vector<uint8_t> want(rows * out);
        ref::QLinear(a, x.data(), want.data());
        const PackedQLinear chosen = PackQLinear(in, out, w.data(), rq);
        EXPECT_EQ(chosen.path(), SelectQLinearPath(isa));
        for (size_t offset : {0, 1}) {
          ASSERT_EQ(RunLinearAt<uint8_t>(x, want.size(), offset,
                                         [&](const uint8_t* px, uint8_t* py) { kernels::Run(chosen, rows, px, py); }),
                    want)
              << rows << "x" << in << " offset " << offset;
        }
        for (QLinearPath path : kLinearPaths) {
          if (!PathRuns(path, isa)) continue;
          const PackedQLinear p = PackQLinear(in, out, w.data(), rq, path);
          ASSERT_EQ(RunLinearAt<uint8_t>(x, want.size(), 1,
                                         [&](const uint8_t* px, uint8_t* py) { kernels::Run(p, rows, px, py); }),
                    want)
              << PathName(path) << " " << rows << "x" << in;
        }
      }
    }
  });
}

TEST(Int8Kernels, DynamicLinearMatchesOracleOnEveryTarget) {
  ForEachTarget([&] {
    const Int8Isa isa = Int8Isa::Current();
    for (int64_t rows : {1, 3, 64}) {
      for (int64_t in : {1, 17, 784}) {
        const int64_t out = 37;
        for (int32_t x_max : {127, 255}) {  // reduce_range activations, then full-range ones
          const auto x = Random<uint8_t>(rows * in, 0, x_max, 20 + rows);
          const auto w = Random<int8_t>(out * in, -128, 127, 21);
          std::vector<float> w_scale(out), bias(out);
          for (int64_t o = 0; o < out; ++o) {
            w_scale[o] = 0.001f * (o + 1);
            bias[o] = 0.01f * (o - 18);
          }
          QLinearDynamicArgs a;
          a.rows = rows;
          a.in = in;
          a.out = out;
          a.x_scale = 0.0173f;
          a.x_zero_point = 61;
          a.weight = w.data();
          a.w_scale = w_scale.data();
          a.bias = bias.data();
          std::vector<float> want(rows * out);
          ref::QLinearDynamic(a, x.data(), want.data());
          const PackedQLinear chosen = PackQLinearDynamic(in, out, w.data(), w_scale.data(), bias.data());
          const auto run = [&](const PackedQLinear& p, size_t offset) {
            return RunLinearAt<float>(x, want.size(), offset, [&](const uint8_t* px, float* py) {
              RunDynamic(p, rows, a.x_scale, a.x_zero_point, px, py);
            });
          };
          const std::vector<float> y = run(chosen, 0), y_misaligned = run(chosen, 1);
          ASSERT_EQ(0, std::memcmp(y.data(), want.data(), y.size() * sizeof(float))) << rows << "x" << in;
          ASSERT_EQ(0, std::memcmp(y_misaligned.data(), want.data(), y.size() * sizeof(float))) << rows << "x" << in;
          for (QLinearPath path : kLinearPaths) {
            if (!PathRuns(path, isa)) continue;
            const std::vector<float> yp =
                run(PackQLinearDynamic(in, out, w.data(), w_scale.data(), bias.data(), path), 1);
            ASSERT_EQ(0, std::memcmp(yp.data(), want.data(), yp.size() * sizeof(float))) << PathName(path);
          }
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
        RequantizeRow(acc.data(), static_cast<int64_t>(acc.size()), 3, mult, zp, zp == 77 ? 77 : 0, zp == 0 ? 200 : 255,
                      y.data());
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
        q.n = n;
        q.a_scale = 0.05f;
        q.a_zero_point = 120;
        q.b_scale = 0.031f;
        q.b_zero_point = 7;
        q.y_scale = ys;
        q.y_zero_point = 128;
        q.relu = relu;
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

// quint8 x quint8 matmul (attention's q k^T, p v): odd sizes, zero points at both ends, saturating and
// tiny multipliers, one and three threads.
TEST(Int8Kernels, MatmulMatchesOracleBitForBit) {
  struct Shape3 {
    int64_t batch, m, k, n;
  };
  for (const Shape3& s : {Shape3{1, 1, 1, 1}, Shape3{2, 5, 16, 5}, Shape3{3, 17, 33, 9}, Shape3{1, 64, 300, 40}}) {
    const auto a = Random<uint8_t>(s.batch * s.m * s.k, 0, 255, 21),
               b = Random<uint8_t>(s.batch * s.k * s.n, 0, 255, 22);
    for (int threads : {1, 3}) {
      SetNumThreads(threads);
      for (float multiplier : {1e-4f, 0.0123f, 3.f}) {
        for (int32_t za : {0, 131, 255}) {
          QMatmulArgs q;
          q.batch = s.batch;
          q.m = s.m;
          q.k = s.k;
          q.n = s.n;
          q.a_zero_point = za;
          q.b_zero_point = 255 - za;
          q.y_zero_point = 77;
          q.multiplier = multiplier;
          std::vector<uint8_t> y(s.batch * s.m * s.n), want(y.size());
          ref::QMatmul(q, a.data(), b.data(), want.data());
          QMatmul(q, a.data(), b.data(), y.data());
          ASSERT_EQ(y, want) << s.batch << "x" << s.m << "x" << s.k << "x" << s.n << " zp " << za << " m "
                             << multiplier;
        }
      }
    }
  }
  SetNumThreads(2);
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

// The byte interleave of the implicit convolution's x4 planes and the AMX panels, at every row length
// around its 16-column step (the tail step overlaps; rows under 16 go through a copy), bytes around it kept.
TEST(Int8Kernels, Interleave4MatchesScalarAtEveryLength) {
  std::mt19937 gen(7);
  for (int64_t n = 0; n <= 70; ++n) {
    std::vector<uint8_t> rows(4 * n + 4);
    for (uint8_t& b : rows) b = static_cast<uint8_t>(gen());
    const uint8_t* const r[4] = {rows.data(), rows.data() + n + 1, rows.data() + 2 * n + 2, rows.data() + 3 * n + 3};
    std::vector<uint8_t> got(4 * n + 8, 0xA5), want(4 * n + 8, 0xA5);
    Interleave4(r, n, got.data() + 4);
    for (int64_t c = 0; c < n; ++c) {
      for (int j = 0; j < 4; ++j) want[4 + 4 * c + j] = r[j][c];
    }
    ASSERT_EQ(got, want) << "n " << n;
  }
}

}  // namespace
}  // namespace kernels
}  // namespace qfx
