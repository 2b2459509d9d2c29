// qfx benchmarks: the int8 GEMM and quantized convolution (Google Benchmark). Reports G MAC/s; the
// measured u8 x s8 (vpmaddubsw) peak here is about 75 G MAC/s per core (../shared/ENVIRONMENT.md).
//   bazel run -c opt //tools/bench:int8_kernels_bench      (QFX_DISABLE_VNNI=1: the AVX2/AVX-512 vpmaddubsw path)
#include <cstdlib>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "hwy/targets.h"
#include "qfx/core/parallel.h"
#include "qfx/kernels/int8.h"
#include "src/kernels/gemm_u8s8.h"

namespace qfx {
namespace kernels {
namespace {

template <typename T>
std::vector<T> Random(size_t n, int lo, int hi) {
  std::mt19937 gen(1);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(d(gen));
  return v;
}

// Args: M, N, K, threads. Activations in 0..127 (reduce_range), so every SIMD path is exact.
void BM_GemmU8S8(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  SetNumThreads(static_cast<int>(state.range(3)));
  const auto a = Random<int8_t>(m * k, -128, 127);
  const auto b = Random<uint8_t>(k * n, 0, 127);
  std::vector<int32_t> c(m * n);
  AlignedVector<int32_t> packed(PackedU8S8Size(m, k));
  PackU8S8Weights(a.data(), m, k, k, packed.data());
  U8S8GemmArgs g;
  g.m = m, g.n = n, g.k = k, g.a = a.data(), g.lda = k, g.b = b.data(), g.ldb = n, g.c = c.data(), g.ldc = n;
  g.b_max = 127, g.packed_a = packed.data(), g.a_max_pair = MaxPairAbsSum(a.data(), m, k, k);
  for (auto _ : state) {
    GemmU8S8(g);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(m * n * k), benchmark::Counter::kIsIterationInvariantRate,
                                               benchmark::Counter::kIs1000);
  state.SetLabel(GemmU8S8TargetName());
}
BENCHMARK(BM_GemmU8S8)
    ->Args({512, 512, 512, 1})
    ->Args({512, 512, 512, 2})
    ->Args({64, 3136, 576, 2})   // resnet18 layer1 3x3 conv as GEMM
    ->Args({512, 49, 4608, 2})   // resnet18 layer4 3x3 conv
    ->Unit(benchmark::kMicrosecond);

// Args: C_in, C_out, H (= W), kernel, stride, groups, threads: one quantized convolution at batch 1 with
// everything prepared as the converted model prepares it (packed weights, weight sums, tap-major or windowed copy),
// requantized to uint8. The shapes are resnet18's and mobilenet_v2's layers.
void BM_QConv2d(benchmark::State& state) {
  Conv2dGeometry g;
  g.in_channels = state.range(0), g.out_channels = state.range(1), g.in_h = g.in_w = state.range(2);
  g.kernel_h = g.kernel_w = state.range(3), g.stride_h = g.stride_w = state.range(4), g.groups = state.range(5);
  g.pad_h = g.pad_w = g.kernel_h / 2;
  SetNumThreads(static_cast<int>(state.range(6)));
  const int64_t per_row = g.in_channels / g.groups * g.kernel_h * g.kernel_w;
  const auto w = Random<int8_t>(g.out_channels * per_row, -128, 127);
  const auto x = Random<uint8_t>(g.in_channels * g.in_h * g.in_w, 0, 255);
  std::vector<uint8_t> y(g.out_channels * g.out_h() * g.out_w());
  std::vector<int32_t> sums(g.out_channels), bias(g.out_channels, 100);
  std::vector<float> multiplier(g.out_channels, 1.f / 4096);
  ComputeWeightSums(w.data(), g.out_channels, per_row, sums.data());
  int32_t max_pair = -1;
  const auto packed = PrepackWeights(w.data(), g.groups, g.out_channels / g.groups, per_row, &max_pair);
  const auto taps = g.stride_h == 1 ? PrepackTapMajor(w.data(), g.out_channels, g.in_channels, g.groups, g.kernel_h, g.kernel_w)
                                     : AlignedVector<int8_t>();
  const auto windows = taps.empty() ? PrepackWindowed(w.data(), g.out_channels, g.in_channels, g.groups, g.kernel_h, g.kernel_w)
                                    : AlignedVector<int8_t>();
  QConvArgs a;
  a.g = g, a.x_zero_point = 3, a.weight = w.data(), a.bias = bias.data(), a.weight_sum = sums.data();
  a.packed_weight = packed.data(), a.weight_max_pair = max_pair, a.tap_weight = taps.empty() ? nullptr : taps.data();
  a.window_weight = windows.empty() ? nullptr : windows.data();
  a.multiplier = multiplier.data(), a.y_zero_point = 5;
  for (auto _ : state) {
    QConv2d(a, x.data(), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(g.out_channels * g.out_h() * g.out_w() * per_row),
                                               benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.SetLabel(GemmU8S8TargetName());
}
BENCHMARK(BM_QConv2d)
    ->ArgNames({"cin", "cout", "hw", "k", "s", "g", "t"})
    ->Args({3, 64, 224, 7, 2, 1, 2})       // resnet18 conv1
    ->Args({64, 64, 56, 3, 1, 1, 2})       // layer1 (x4)
    ->Args({64, 128, 56, 3, 2, 1, 2})      // layer2.0.conv1
    ->Args({64, 128, 56, 1, 2, 1, 2})      // layer2.0.downsample
    ->Args({128, 128, 28, 3, 1, 1, 2})     // layer2 (x3)
    ->Args({128, 128, 28, 3, 1, 1, 1})     // layer2, one thread
    ->Args({128, 256, 28, 3, 2, 1, 2})     // layer3.0.conv1
    ->Args({256, 256, 14, 3, 1, 1, 2})     // layer3 (x3)
    ->Args({256, 512, 14, 3, 2, 1, 2})     // layer4.0.conv1
    ->Args({512, 512, 7, 3, 1, 1, 2})      // layer4 (x3)
    ->Args({32, 32, 112, 3, 1, 32, 2})     // mobilenet_v2 depthwise 112x112
    ->Args({144, 144, 56, 3, 2, 144, 2})   // depthwise stride 2
    ->Args({576, 576, 14, 3, 1, 576, 2})   // depthwise 14x14
    ->Args({960, 960, 7, 3, 1, 960, 2})    // depthwise 7x7
    ->Args({96, 576, 14, 1, 1, 1, 2})      // 1x1 expansion
    ->Args({576, 96, 14, 1, 1, 1, 2})      // 1x1 projection
    ->Args({24, 144, 56, 1, 1, 1, 2})      // 1x1 expansion 56x56
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace kernels
}  // namespace qfx

int main(int argc, char** argv) {
  if (const char* e = std::getenv("QFX_DISABLE_VNNI"); e && e[0] == '1') hwy::DisableTargets(HWY_AVX3_DL);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
