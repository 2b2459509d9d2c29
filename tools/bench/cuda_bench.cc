// qfx benchmark: the CUDA backend's tensor-core kernel as an int8 GEMM (tools/gpu_check.sh).
//
//   cuda_bench M N K [iters]
//
// C[M, N] = requantize(A[M, K] (u8) x B[N, K]^T (s8)) through the implicit-GEMM convolution kernel (a 1x1
// convolution over M pixels of K channels into N channels: qfx's int8 epilogue included), timed with CUDA
// events over `iters` launches after three warm-ups; prints one JSON line with the TOPS (2 M N K per
// launch). Before timing, 4096 random outputs are checked against the per-output oracle of
// qfx/kernels/device_ops.h (exit code 2 on a mismatch).
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "qfx/kernels/cuda.h"

namespace {

namespace cu = qfx::kernels::cuda;
namespace dev = qfx::kernels::device;

bool Check(int code, const char* what) {
  if (code == 0) return true;
  std::fprintf(stderr, "cuda_bench: %s: %s (%d): %s\n", what, cu::ErrorName(code), code, cu::ErrorText(code));
  return false;
}

struct Launch {
  dev::ConvParams p;
  const int8_t* w32;
  int32_t icp32;
  const uint8_t* x;
  uint8_t* y;
};

void LaunchOnce(void* arg, void* stream) {
  const Launch& l = *static_cast<const Launch*>(arg);
  cu::ConvMma(l.p, l.w32, l.icp32, l.x, l.y, stream);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: cuda_bench M N K [iters]\n");
    return 1;
  }
  const int32_t m = std::atoi(argv[1]), n = std::atoi(argv[2]), k = std::atoi(argv[3]);
  const int iters = argc > 4 ? std::atoi(argv[4]) : 20;
  if (m <= 0 || n <= 0 || k <= 0 || k % 32 != 0 || n % 16 != 0 || iters <= 0) {
    std::fprintf(stderr, "cuda_bench: M, N, K and iters must be positive, K a multiple of 32, N of 16\n");
    return 1;
  }
  std::mt19937 rng(1);
  std::vector<uint8_t> a(static_cast<size_t>(m) * k);
  std::vector<int8_t> b(static_cast<size_t>(n) * k);
  for (auto& v : a) v = static_cast<uint8_t>(rng());
  for (auto& v : b) v = static_cast<int8_t>(rng());
  std::vector<int32_t> bias(n);
  std::vector<float> mult(n);
  for (int32_t o = 0; o < n; ++o) {
    bias[o] = static_cast<int32_t>(rng() % 20001) - 10000;
    mult[o] = 1.0f / (4096.0f + static_cast<float>(o));
  }
  dev::ConvParams p;
  p.x = dev::MakeAct(1, 1, m, k);
  p.y = dev::MakeAct(1, 1, m, n);
  p.icg = k;
  p.icgp = k;
  p.x_zero_point = 0;
  p.y_zero_point = 128;
  void *stream, *da, *db, *dbias, *dmult, *dy;
  if (!Check(cu::StreamCreate(&stream), "stream") || !Check(cu::Malloc(&da, a.size()), "malloc") ||
      !Check(cu::Malloc(&db, b.size()), "malloc") || !Check(cu::Malloc(&dbias, 4 * n), "malloc") ||
      !Check(cu::Malloc(&dmult, 4 * n), "malloc") || !Check(cu::Malloc(&dy, static_cast<size_t>(m) * n), "malloc") ||
      !Check(cu::CopyToDeviceAsync(da, a.data(), a.size(), stream), "copy") ||
      !Check(cu::CopyToDeviceAsync(db, b.data(), b.size(), stream), "copy") ||
      !Check(cu::CopyToDeviceAsync(dbias, bias.data(), 4 * n, stream), "copy") ||
      !Check(cu::CopyToDeviceAsync(dmult, mult.data(), 4 * n, stream), "copy")) {
    return 1;
  }
  p.bias = static_cast<const int32_t*>(dbias);
  p.multiplier = static_cast<const float*>(dmult);
  Launch l{p, static_cast<const int8_t*>(db), k, static_cast<const uint8_t*>(da), static_cast<uint8_t*>(dy)};
  for (int i = 0; i < 3; ++i) LaunchOnce(&l, stream);
  if (!Check(cu::StreamSynchronize(stream), "warm-up")) return 1;
  std::vector<uint8_t> y(static_cast<size_t>(m) * n);
  if (!Check(cu::CopyToHostAsync(y.data(), dy, y.size(), stream), "copy back") ||
      !Check(cu::StreamSynchronize(stream), "copy back")) {
    return 1;
  }
  int wrong = 0;
  for (int t = 0; t < 4096; ++t) {
    const int64_t row = rng() % m;
    const int32_t col = static_cast<int32_t>(rng() % n);
    uint32_t acc = 0;
    for (int32_t c = 0; c < k; c += 4) {
      acc = static_cast<uint32_t>(
          dev::Dp4a(dev::LoadU32(&a[row * k + c]), dev::LoadU32(&b[int64_t{col} * k + c]), static_cast<int32_t>(acc)));
    }
    const uint8_t want = qfx::kernels::Requantize(static_cast<int32_t>(acc + static_cast<uint32_t>(bias[col])),
                                                  mult[col], p.y_zero_point, p.lo, p.hi);
    if (y[row * n + col] != want && ++wrong <= 5) {
      std::fprintf(stderr, "cuda_bench: C[%lld, %d] = %d, the oracle says %d\n", static_cast<long long>(row), col,
                   y[row * n + col], want);
    }
  }
  float ms = 0;
  if (!Check(cu::TimeLaunches(LaunchOnce, &l, iters, stream, &ms), "timing")) return 1;
  const double seconds = ms / 1e3 / iters;
  const double tops = 2.0 * m * n * static_cast<double>(k) / seconds / 1e12;
  std::printf("{\"m\":%d,\"n\":%d,\"k\":%d,\"ms\":%.4f,\"tops\":%.2f,\"wrong\":%d}\n", m, n, k, seconds * 1e3, tops,
              wrong);
  return wrong == 0 ? 0 : 2;
}
