// qfx tests: the Highway fp32 GEMM and convolution against the scalar oracle, on every SIMD target
// compiled in and supported by this CPU, over sweeps of sizes, strides, transposes and conv geometries.
// fp32 sums in a different order, so the check is a tight relative bound rather than bit equality.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "hwy/targets.h"
#include "qfx/core/parallel.h"
#include "qfx/kernels/f32.h"
#include "tests/testing/targets.h"

namespace qfx {
namespace kernels {
namespace {

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

double RelError(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::fabs(double(a[i]) - b[i]));
    ref = std::max(ref, std::fabs(double(b[i])));
  }
  return ref > 0 ? err / ref : err;
}

template <typename Body>
void ForEachTarget(Body body) {
  testing::ForEachTarget(GemmF32TargetName, body);
}

TEST(GemmF32, MatchesOracleOnEveryTarget) {
  ASSERT_GE(hwy::SupportedAndGeneratedTargets().size(), 2u) << "expected SIMD targets beside scalar";
  ForEachTarget([] {
    for (int threads : {1, 2}) {
      SetNumThreads(threads);
      for (int64_t m : {1, 5, 6, 13}) {
        for (int64_t n : {1, 7, 16, 33, 400}) {
          for (int64_t k : {1, 9, 300}) {
            for (bool transposed : {false, true}) {
              const auto a = Random(m * (k + 3), 1), b = Random(k * n, 2);
              std::vector<float> c(m * (n + 1), -7.f), want(m * (n + 1), -7.f);
              GemmArgs g;
              g.m = m;
              g.n = n;
              g.k = k;
              g.a = a.data();
              g.lda = k + 3;
              g.b = b.data();
              g.b_row_stride = transposed ? 1 : n;
              g.b_col_stride = transposed ? k : 1;
              g.ldc = n + 1;
              g.c = want.data();
              ref::GemmF32(g);
              g.c = c.data();
              GemmF32(g);
              ASSERT_LT(RelError(c, want), 1e-5) << m << "x" << n << "x" << k << " t" << transposed;
              for (int64_t i = 0; i < m; ++i) ASSERT_EQ(c[i * (n + 1) + n], -7.f) << "wrote past the row";
            }
          }
        }
      }
    }
  });
  SetNumThreads(2);
}

struct ConvCase {
  int64_t batch, cin, h, w, cout, k, stride, pad, dilation, groups;
};

TEST(Conv2dF32, MatchesOracleOnEveryTarget) {
  const ConvCase cases[] = {
      {1, 3, 9, 9, 8, 3, 1, 1, 1, 1},
      {2, 4, 11, 10, 6, 3, 2, 2, 2, 1},
      {1, 8, 7, 7, 12, 3, 1, 1, 1, 4},
      {2, 8, 10, 10, 8, 3, 2, 1, 1, 8},
      {1, 4, 9, 9, 8, 5, 1, 2, 1, 4},
      {1, 16, 5, 5, 24, 1, 1, 0, 1, 1},
      {1, 6, 8, 9, 6, 3, 1, 0, 1, 6},
      {1, 5, 13, 6, 7, 7, 2, 3, 1, 1},
      {1, 3, 4, 4, 2, 1, 2, 0, 1, 1},
      {1, 12, 6, 6, 12, 3, 3, 1, 2, 12},
      // Several depth blocks of the packed im2col matrix (K = 32 * 9 > 256), many panels, both thread splits.
      {1, 32, 30, 29, 13, 3, 1, 1, 1, 1},
      {2, 40, 9, 9, 70, 3, 1, 1, 1, 2},
      {1, 300, 7, 7, 20, 1, 1, 0, 1, 1},
      {1, 8, 40, 40, 5, 3, 2, 0, 1, 1},
      {1, 24, 25, 25, 10, 1, 1, 0, 1, 1},
      {2, 12, 20, 21, 6, 1, 1, 0, 1, 3},
      // Depthwise rows wide enough for the vector loop: stride 1 and 2, channel multiplier 2, dilation, 5x5.
      {1, 4, 9, 70, 8, 3, 1, 1, 1, 4},
      {2, 3, 11, 75, 3, 3, 2, 1, 1, 3},
      {1, 2, 8, 60, 2, 5, 1, 2, 2, 2},
      {1, 3, 7, 131, 3, 3, 2, 0, 1, 3},
      {1, 4, 13, 40, 4, 5, 2, 2, 1, 4},
  };
  ForEachTarget([&] {
    for (int threads : {1, 2}) {
      SetNumThreads(threads);
      for (const ConvCase& c : cases) {
        for (bool with_bias : {true, false}) {
          const Conv2dGeometry g =
              Conv2dGeometry::Square(c.batch, c.cin, c.h, c.w, c.cout, c.k, c.stride, c.pad, c.dilation, c.groups);
          const auto x = Random(c.batch * c.cin * c.h * c.w, 3);
          const auto w = Random(c.cout * (c.cin / c.groups) * c.k * c.k, 4);
          const auto b = Random(c.cout, 5);
          const float* bias = with_bias ? b.data() : nullptr;
          const size_t out = static_cast<size_t>(c.batch * c.cout * g.out_h() * g.out_w());
          std::vector<float> y(out, NAN), want(out);
          ref::Conv2dF32(g, x.data(), w.data(), bias, want.data());
          Conv2dF32(g, x.data(), w.data(), bias, y.data());
          EXPECT_LT(RelError(y, want), 1e-5) << "cin " << c.cin << " k " << c.k << " groups " << c.groups << " bias "
                                             << with_bias << " threads " << threads;
          // The fused epilogue equals the unfused ops bit for bit (and so the oracle within the bound).
          const auto scale = Random(c.cout, 9), shift = Random(c.cout, 10);
          for (const auto act : {ConvEpilogue::Activation::kNone, ConvEpilogue::Activation::kRelu,
                                 ConvEpilogue::Activation::kHardtanh}) {
            ConvEpilogue post;
            post.scale = scale.data();
            post.shift = shift.data();
            post.activation = act;
            post.lo = -0.5f;
            post.hi = 0.7f;
            std::vector<float> fused(out, NAN), unfused = y, oracle = want;
            Conv2dF32(g, x.data(), w.data(), bias, post, fused.data());
            ref::ApplyConvEpilogue(g, post, unfused.data());
            ref::ApplyConvEpilogue(g, post, oracle.data());
            ASSERT_EQ(0, std::memcmp(fused.data(), unfused.data(), out * sizeof(float)))
                << "fused epilogue differs: cin " << c.cin << " k " << c.k << " groups " << c.groups;
            EXPECT_LT(RelError(fused, oracle), 1e-5);
          }
        }
      }
    }
  });
  SetNumThreads(2);
}

// Kernels other than square ones: the packed im2col follows each axis's own kernel, stride, padding and dilation.
TEST(Conv2dF32, NonSquareGeometryMatchesOracle) {
  const Conv2dGeometry geometries[] = {
      {1, 6, 17, 13, 10, 1, 7, 1, 1, 0, 3, 1, 1, 1},  // 1x7
      {1, 6, 17, 13, 10, 7, 1, 1, 1, 3, 0, 1, 1, 1},  // 7x1
      {2, 4, 12, 15, 8, 3, 2, 2, 1, 1, 0, 1, 2, 2},   // 3x2, stride 2x1, dilation 1x2, groups 2
      {1, 4, 9, 50, 4, 1, 5, 1, 2, 0, 2, 1, 1, 4},    // depthwise 1x5, stride 1x2
  };
  ForEachTarget([&] {
    for (const Conv2dGeometry& g : geometries) {
      const auto x = Random(g.batch * g.in_channels * g.in_h * g.in_w, 6);
      const auto w = Random(g.out_channels * (g.in_channels / g.groups) * g.kernel_h * g.kernel_w, 7);
      const auto b = Random(g.out_channels, 8);
      const size_t out = static_cast<size_t>(g.batch * g.out_channels * g.out_h() * g.out_w());
      std::vector<float> y(out, NAN), want(out);
      ref::Conv2dF32(g, x.data(), w.data(), b.data(), want.data());
      Conv2dF32(g, x.data(), w.data(), b.data(), y.data());
      EXPECT_LT(RelError(y, want), 1e-5) << g.kernel_h << "x" << g.kernel_w;
    }
  });
}

}  // namespace
}  // namespace kernels
}  // namespace qfx
