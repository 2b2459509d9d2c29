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
  std::vector<int32_t> packed(PackedU8S8Size(m, k));
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

}  // namespace
}  // namespace kernels
}  // namespace qfx

int main(int argc, char** argv) {
  if (const char* e = std::getenv("QFX_DISABLE_VNNI"); e && e[0] == '1') hwy::DisableTargets(HWY_AVX3_DL);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
