// qfx benchmarks: the int8 GEMM and quantized convolution (Google Benchmark). Reports G MAC/s, and for
// the GEMM also `of_peak`: the fraction of the one-core peak of the instruction its path uses (AMX
// tdpbsud, AVX-512 VNNI vpdpbusd or vpmaddubsw), measured in the same run by register-only loops (the
// BM_Peak* rows). ../shared/ENVIRONMENT.md's u8 x s8 (vpmaddubsw) peak is about 75 G MAC/s per core.
//   bazel run -c opt //tools/bench:int8_kernels_bench      (QFX_DISABLE_VNNI=1: the AVX2/AVX-512 vpmaddubsw path;
//   QFX_DISABLE_AMX=1: no AMX)
#include <immintrin.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "hwy/targets.h"
#include "qfx/core/parallel.h"
#include "qfx/kernels/qconv.h"
#include "src/kernels/packed.h"  // GemmU8S8On
#include "src/kernels/qu8_dispatch.h"

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

// Register-only multiply-accumulate loops: MACs per second of one core with independent accumulators
// (the instruction's throughput, not its latency), timed over `iters` rounds.
__attribute__((target("avx2"))) double PeakMaddubs(int64_t iters) {
  constexpr int kChains = 6;  // 256-bit, as the GEMM's vpmaddubsw tile: b per chain, a shared
  __m256i acc[kChains], b[kChains];
  __m256i a = _mm256_set1_epi8(5);
  const __m256i ones = _mm256_set1_epi16(1);
  for (int i = 0; i < kChains; ++i) {
    acc[i] = _mm256_setzero_si256();
    b[i] = _mm256_set1_epi8(static_cast<char>(i + 1));
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t it = 0; it < iters; ++it) {
    __asm__ volatile("" : "+x"(a));  // a changes every round, so the products are not hoisted
#pragma GCC unroll 6
    for (int i = 0; i < kChains; ++i)
      acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(_mm256_maddubs_epi16(b[i], a), ones));
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int32_t sink[8];
  for (int i = 1; i < kChains; ++i) acc[0] = _mm256_add_epi32(acc[0], acc[i]);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(sink), acc[0]);
  benchmark::DoNotOptimize(sink);
  return static_cast<double>(iters) * kChains * 32 / s;
}

__attribute__((target("avx512f,avx512vnni"))) double PeakVnni(int64_t iters) {
  constexpr int kChains = 16;  // latency 5, two a cycle: 10+ independent accumulators keep both ports busy
  __m512i acc[kChains];
  const __m512i a = _mm512_set1_epi8(5), b = _mm512_set1_epi8(3);
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_epi32(i);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], b, a);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  alignas(64) int32_t sink[16];
  for (int i = 1; i < kChains; ++i) acc[0] = _mm512_add_epi32(acc[0], acc[i]);
  _mm512_store_si512(sink, acc[0]);
  benchmark::DoNotOptimize(sink);
  return static_cast<double>(iters) * kChains * 64 / s;
}

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

__attribute__((target("amx-tile,amx-int8"))) double PeakAmx(int64_t iters) {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
  alignas(64) static int8_t data[16 * 64];
  for (int i = 0; i < 16 * 64; ++i) data[i] = static_cast<int8_t>(i % 7);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, data, 64);
  _tile_loadd(5, data, 64);
  _tile_loadd(6, data, 64);
  _tile_loadd(7, data, 64);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t it = 0; it < iters; ++it) {
    _tile_dpbsud(0, 4, 6);
    _tile_dpbsud(1, 4, 7);
    _tile_dpbsud(2, 5, 6);
    _tile_dpbsud(3, 5, 7);
  }
  alignas(64) static int32_t out[16 * 16];
  _tile_stored(0, out, 64);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  _tile_release();
  benchmark::DoNotOptimize(out);
  return static_cast<double>(iters) * 4 * 16 * 16 * 64 / s;
}

bool UsesVnni() { return Int8Isa::Current().target == HWY_AVX3_DL; }
bool UsesAmx() { return Int8Isa::Current().amx; }

// The GEMM of the current ISA's linear path (as a layer packed now would run it).
void Gemm(const U8S8GemmArgs& g) { GemmU8S8On(SelectQLinearPath(Int8Isa::Current()), g); }

// The one-core peak of the instruction the GEMM dispatches to now, measured once.
double GemmPeak() {
  static const double peak = UsesAmx() ? PeakAmx(2000000) : UsesVnni() ? PeakVnni(20000000) : PeakMaddubs(20000000);
  return peak;
}

void BM_PeakMaddubs(benchmark::State& state) {
  double rate = 0;
  for (auto _ : state) rate = PeakMaddubs(1000000);
  state.counters["GMAC/s"] = rate / 1e9;
}
void BM_PeakVnni(benchmark::State& state) {
  if (!UsesVnni() && !UsesAmx()) return state.SkipWithError("no AVX-512 VNNI target here");
  double rate = 0;
  for (auto _ : state) rate = PeakVnni(1000000);
  state.counters["GMAC/s"] = rate / 1e9;
}
void BM_PeakAmx(benchmark::State& state) {
  if (!UsesAmx()) return state.SkipWithError("AMX not in use (CPU, kernel or QFX_DISABLE_AMX)");
  double rate = 0;
  for (auto _ : state) rate = PeakAmx(100000);
  state.counters["GMAC/s"] = rate / 1e9;
}
BENCHMARK(BM_PeakMaddubs)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PeakVnni)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PeakAmx)->Unit(benchmark::kMicrosecond);

// Args: M, N, K, threads. Activations in 0..127 (reduce_range), so every SIMD path is exact.
void BM_GemmU8S8(benchmark::State& state) {
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  SetNumThreads(static_cast<int>(state.range(3)));
  const auto a = Random<int8_t>(m * k, -128, 127);
  const auto b = Random<uint8_t>(k * n, 0, 127);
  std::vector<int32_t> c(m * n);
  AlignedVector<int32_t> packed(PackedU8S8Size(m, k));
  PackU8S8Weights(a.data(), m, k, k, packed.data());
  U8S8GemmArgs g = U8S8GemmArgs::Of(m, n, k, a.data(), k, b.data(), n, c.data(), n);
  g.b_max = 127;
  g.packed_a = packed.data();
  g.a_max_pair = MaxPairAbsSum(a.data(), m, k, k);
  const double peak = GemmPeak() * static_cast<double>(state.range(3));  // one core's peak times the threads
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    Gemm(g);
    benchmark::DoNotOptimize(c.data());
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double rate = static_cast<double>(m * n * k) * static_cast<double>(state.iterations()) / seconds;
  state.counters["GMAC/s"] = rate / 1e9;
  state.counters["of_peak"] = rate / peak;
  state.SetLabel(PathName(SelectQLinearPath(Int8Isa::Current())));
}
BENCHMARK(BM_GemmU8S8)
    ->Args({512, 512, 512, 1})
    ->Args({512, 512, 512, 2})
    ->Args({64, 3136, 576, 2})  // resnet18 layer1 3x3 conv as GEMM
    ->Args({512, 49, 4608, 2})  // resnet18 layer4 3x3 conv
    ->Unit(benchmark::kMicrosecond);

// Args: C_in, C_out, H (= W), kernel, stride, groups, threads: one quantized convolution at batch 1, packed
// as the converted model packs it (PackQConv2d: the path the rules choose here), requantized to uint8. The
// shapes are resnet18's and mobilenet_v2's layers; the label names the path.
void BM_QConv2d(benchmark::State& state) {
  const int64_t kernel = state.range(3);
  const QConv2dShape shape =
      QConv2dShape::Square(state.range(0), state.range(1), kernel, state.range(4), kernel / 2, 1, state.range(5));
  const int64_t hw = state.range(2);
  const Conv2dGeometry g = shape.Geometry(1, hw, hw);
  SetNumThreads(static_cast<int>(state.range(6)));
  const int64_t per_row = g.in_channels / g.groups * g.kernel_h * g.kernel_w;
  const auto w = Random<int8_t>(g.out_channels * per_row, -128, 127);
  const auto x = Random<uint8_t>(g.in_channels * g.in_h * g.in_w, 0, 255);
  std::vector<uint8_t> y(g.out_channels * g.out_h() * g.out_w());
  std::vector<int32_t> bias(g.out_channels, 100);
  std::vector<float> multiplier(g.out_channels, 1.f / 4096);
  QRequant rq;
  rq.x_zero_point = 3;
  rq.bias = bias.data();
  rq.multiplier = multiplier.data();
  rq.y_zero_point = 5;
  const PackedQConv2d conv = PackQConv2d(shape, w.data(), rq);
  for (auto _ : state) {
    Run(conv, 1, hw, hw, x.data(), y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GMAC/s"] =
      benchmark::Counter(static_cast<double>(g.out_channels * g.out_h() * g.out_w() * per_row),
                         benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.SetLabel(PathName(conv.path()));
}
BENCHMARK(BM_QConv2d)
    ->ArgNames({"cin", "cout", "hw", "k", "s", "g", "t"})
    ->Args({3, 64, 224, 7, 2, 1, 2})      // resnet18 conv1
    ->Args({64, 64, 56, 3, 1, 1, 2})      // layer1 (x4)
    ->Args({64, 128, 56, 3, 2, 1, 2})     // layer2.0.conv1
    ->Args({64, 128, 56, 1, 2, 1, 2})     // layer2.0.downsample
    ->Args({128, 128, 28, 3, 1, 1, 2})    // layer2 (x3)
    ->Args({128, 128, 28, 3, 1, 1, 1})    // layer2, one thread
    ->Args({128, 256, 28, 3, 2, 1, 2})    // layer3.0.conv1
    ->Args({256, 256, 14, 3, 1, 1, 2})    // layer3 (x3)
    ->Args({256, 512, 14, 3, 2, 1, 2})    // layer4.0.conv1
    ->Args({512, 512, 7, 3, 1, 1, 2})     // layer4 (x3)
    ->Args({32, 32, 112, 3, 1, 32, 2})    // mobilenet_v2 depthwise 112x112
    ->Args({144, 144, 56, 3, 2, 144, 2})  // depthwise stride 2
    ->Args({576, 576, 14, 3, 1, 576, 2})  // depthwise 14x14
    ->Args({960, 960, 7, 3, 1, 960, 2})   // depthwise 7x7
    ->Args({96, 576, 14, 1, 1, 1, 2})     // 1x1 expansion
    ->Args({576, 96, 14, 1, 1, 1, 2})     // 1x1 projection
    ->Args({24, 144, 56, 1, 1, 1, 2})     // 1x1 expansion 56x56
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
