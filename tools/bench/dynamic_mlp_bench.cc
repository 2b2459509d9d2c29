// qfx benchmarks: dynamic quantization against qfx fp32 on the mlp zoo model (784-256-128-10) at batch 1
// and 64, 2 threads (Google Benchmark). BM_MlpRatio times both models alternately in the same run and
// reports int8_vs_fp32 (dynamic int8 time / fp32 time; below 1: int8 is faster).
//   bazel run -c opt //tools/bench:dynamic_mlp_bench
#include <chrono>

#include "benchmark/benchmark.h"
#include "qfx/core/parallel.h"
#include "qfx/fx/tracer.h"
#include "qfx/models/zoo.h"
#include "qfx/quant/passes.h"

namespace qfx {
namespace {

std::shared_ptr<fx::GraphModule> Mlp(bool dynamic) {
  auto model = *models::Create("mlp", 1);
  model->eval();
  auto gm = *fx::SymbolicTrace(model);
  if (dynamic) {
    auto report = quant::QuantizeDynamic(*gm, *quant::LoadQuantConfig("dynamic"));
    if (!report.ok() || report->quantized.size() != 3) std::abort();
  }
  return gm;
}

// Args: batch, dynamic (0 fp32, 1 int8).
void BM_Mlp(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const bool dynamic = state.range(1) != 0;
  SetNumThreads(2);
  auto gm = Mlp(dynamic);
  const Tensor x = Tensor::Full({batch, 1, 28, 28}, 0.25f);
  for (int i = 0; i < 20; ++i) benchmark::DoNotOptimize((*gm)(x));
  for (auto _ : state) benchmark::DoNotOptimize((*gm)(x));
}

void BM_MlpRatio(benchmark::State& state) {
  // Times fp32 and int8 back to back in each iteration window and reports the ratio.
  const int64_t batch = state.range(0);
  SetNumThreads(2);
  auto fp32 = Mlp(false), dyn = Mlp(true);
  const Tensor x = Tensor::Full({batch, 1, 28, 28}, 0.25f);
  for (int i = 0; i < 20; ++i) (*fp32)(x), (*dyn)(x);
  double t_fp32 = 0, t_dyn = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 50; ++i) benchmark::DoNotOptimize((*fp32)(x));
    auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < 50; ++i) benchmark::DoNotOptimize((*dyn)(x));
    auto t2 = std::chrono::steady_clock::now();
    t_fp32 += std::chrono::duration<double>(t1 - t0).count();
    t_dyn += std::chrono::duration<double>(t2 - t1).count();
  }
  const double n = static_cast<double>(state.iterations()) * 50;
  state.counters["fp32_us"] = t_fp32 / n * 1e6;
  state.counters["dynamic_int8_us"] = t_dyn / n * 1e6;
  state.counters["int8_vs_fp32"] = t_dyn / t_fp32;
}

BENCHMARK(BM_Mlp)->ArgsProduct({{1, 64}, {0, 1}})->ArgNames({"batch", "int8"});
BENCHMARK(BM_MlpRatio)->Arg(1)->Arg(64)->ArgName("batch");

}  // namespace
}  // namespace qfx

BENCHMARK_MAIN();
