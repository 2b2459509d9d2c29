// qfx benchmarks: fp32 GEMM and convolution kernels (Google Benchmark). Reports G FMA/s; the CPU's
// measured fp32 FMA peak here is about 42-44 G FMA/s per core (see README "Performance").
//   bazel run -c opt //tools/bench:f32_kernels_bench
#include <random>
#include <vector>

#include <cstdlib>

#include "benchmark/benchmark.h"
#include "hwy/targets.h"
#include "qfx/core/parallel.h"
#include "qfx/kernels/f32.h"

namespace qfx {
namespace kernels {
namespace {

std::vector<float> Random(size_t n) {
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

// Args: M, N, K, threads.
void BM_GemmF32(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  SetNumThreads(static_cast<int>(state.range(3)));
  const auto a = Random(m * k), b = Random(k * n);
  std::vector<float> c(m * n);
  GemmArgs g;
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = a.data();
  g.lda = k;
  g.b = b.data();
  g.b_row_stride = n;
  g.c = c.data();
  g.ldc = n;
  for (auto _ : state) {
    GemmF32(g);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFMA/s"] = benchmark::Counter(
      static_cast<double>(m * n * k), benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.SetLabel(GemmF32TargetName());
}
BENCHMARK(BM_GemmF32)
    ->Args({512, 512, 512, 1})
    ->Args({512, 512, 512, 2})
    ->Args({64, 3136, 576, 1})  // resnet18 layer1 3x3 conv as GEMM
    ->Args({64, 3136, 576, 2})
    ->Args({512, 49, 4608, 2})  // resnet18 layer4 3x3 conv
    ->Args({1, 1000, 512, 1})   // resnet18 fc at batch 1
    ->Unit(benchmark::kMicrosecond);

// Args: C_in, H (= W), C_out, kernel, stride, groups, threads.
void BM_Conv2dF32(benchmark::State& state) {
  Conv2dGeometry g;
  g.in_channels = state.range(0);
  g.in_h = g.in_w = state.range(1);
  g.out_channels = state.range(2);
  g.kernel_h = g.kernel_w = state.range(3);
  g.stride_h = g.stride_w = state.range(4);
  g.pad_h = g.pad_w = state.range(3) / 2;
  g.groups = state.range(5);
  SetNumThreads(static_cast<int>(state.range(6)));
  const auto x = Random(g.in_channels * g.in_h * g.in_w);
  const auto w = Random(g.out_channels * g.in_channels / g.groups * g.kernel_h * g.kernel_w);
  std::vector<float> y(g.out_channels * g.out_h() * g.out_w());
  for (auto _ : state) {
    Conv2dF32(g, x.data(), w.data(), nullptr, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  const double macs = static_cast<double>(g.out_channels) * g.out_h() * g.out_w() * (g.in_channels / g.groups) *
                      g.kernel_h * g.kernel_w;
  state.counters["GFMA/s"] =
      benchmark::Counter(macs, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_Conv2dF32)
    ->Args({3, 224, 64, 7, 2, 1, 2})      // resnet18 conv1
    ->Args({64, 56, 64, 3, 1, 1, 2})      // layer1
    ->Args({128, 28, 128, 3, 1, 1, 2})    // layer2
    ->Args({256, 14, 256, 3, 1, 1, 2})    // layer3
    ->Args({512, 7, 512, 3, 1, 1, 2})     // layer4
    ->Args({144, 56, 144, 3, 1, 144, 2})  // mobilenet_v2 depthwise
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace kernels
}  // namespace qfx

int main(int argc, char** argv) {
  // QFX_DISABLE_AVX3=1 measures the AVX2 kernels on a machine that has AVX-512.
  if (const char* e = std::getenv("QFX_DISABLE_AVX3"); e && e[0] == '1') hwy::DisableTargets(HWY_AVX3);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
