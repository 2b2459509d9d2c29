// qfx kernels: the CUDA backend (qfx/kernels/cuda.h), compiled by nvcc with -fmad=false and without
// --use_fast_math (src/kernels/cuda/BUILD.bazel). Each kernel is a grid-stride loop calling one per-output
// function of qfx/kernels/device_ops.h, the code the host emulator of a device plan runs and the CPU tests
// check against the CPU backend; what is only here is the index mapping and the launch.
#include <cuda_runtime.h>

#include <cstring>

#include "qfx/kernels/cuda.h"

namespace qfx {
namespace kernels {
namespace cuda {
namespace {

using device::Act;
using device::Pos;
using device::PosOf;

constexpr int kThreads = 256;

// Enough blocks to cover n (each thread then takes every stride-th element), capped: the loops stride.
unsigned Blocks(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : b > 65535 * 16 ? 65535 * 16 : b);
}
cudaStream_t S(void* stream) { return static_cast<cudaStream_t>(stream); }
int Launched() { return static_cast<int>(cudaGetLastError()); }

#define QFX_GRID_STRIDE(i, n)                                                            \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += gridDim.x * static_cast<int64_t>(blockDim.x))

__global__ void ConvKernel(device::ConvParams p, const uint8_t* x, uint8_t* y) {
  QFX_GRID_STRIDE(i, p.y.Values()) {
    const Pos o = PosOf(p.y, i);
    y[p.y.Offset(o.b, o.y, o.x, o.ch)] = device::ConvOutput(p, x, o);
  }
}

// One warp per kMmaWarpM x kMmaWarpN tile of the implicit GEMM (qfx/kernels/device_ops.h), a block of
// kMmaBlockWarpsM x kMmaBlockWarpsN warps; fragments load straight from global memory (L1 / L2 serve the
// reuse), mma.sync m16n8k32 u8 x s8 accumulates, and the epilogue requantizes in registers.
__device__ __forceinline__ void MmaU8S8(int32_t (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__global__ void ConvMmaKernel(device::ConvParams p, const int8_t* w32, int32_t icp32, const uint8_t* x, uint8_t* y) {
  constexpr int kM = device::kMmaWarpM / 16, kN = device::kMmaWarpN / 8;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t m0 =
      (static_cast<int64_t>(blockIdx.x) * device::kMmaBlockWarpsM + warp % device::kMmaBlockWarpsM) * device::kMmaWarpM;
  const int32_t n0 = (blockIdx.y * device::kMmaBlockWarpsN + warp / device::kMmaBlockWarpsM) * device::kMmaWarpN;
  if (m0 >= device::GemmRows(p) || n0 >= p.y.c) return;  // whole warps only: mma.sync needs all 32 lanes
  int32_t acc[kM][kN][4] = {};
  device::GemmRow rows[kM][2];  // this lane's A rows: g and g + 8 of each 16-row subtile
#pragma unroll
  for (int mi = 0; mi < kM; ++mi) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      int row, k;
      device::MmaA(lane, half, &row, &k);
      rows[mi][half] = device::GemmRowAt(p, m0 + 16 * mi + row);
    }
  }
  for (int32_t tap = 0; tap < p.kh * p.kw; ++tap) {
    const int32_t ky = tap / p.kw, kx = tap % p.kw;
    for (int32_t c0 = 0; c0 < icp32; c0 += 32) {
      uint32_t a[kM][4], b[kN][2];
#pragma unroll
      for (int mi = 0; mi < kM; ++mi) {
#pragma unroll
        for (int reg = 0; reg < 4; ++reg) {
          int row, k;
          device::MmaA(lane, reg, &row, &k);
          a[mi][reg] = device::GemmAWord(p, x, rows[mi][reg & 1], ky, kx, c0 + k);
        }
      }
#pragma unroll
      for (int ni = 0; ni < kN; ++ni) {
#pragma unroll
        for (int reg = 0; reg < 2; ++reg) {
          int col, k;
          device::MmaB(lane, reg, &col, &k);
          b[ni][reg] = device::GemmBWord(p, w32, icp32, n0 + 8 * ni + col, tap, c0 + k);
        }
      }
      __syncwarp();  // the loads above branch per lane; mma.sync.aligned needs the whole warp converged
#pragma unroll
      for (int mi = 0; mi < kM; ++mi) {
#pragma unroll
        for (int ni = 0; ni < kN; ++ni) MmaU8S8(acc[mi][ni], a[mi], b[ni]);
      }
    }
  }
#pragma unroll
  for (int mi = 0; mi < kM; ++mi) {
#pragma unroll
    for (int ni = 0; ni < kN; ++ni) {
#pragma unroll
      for (int reg = 0; reg < 4; ++reg) {
        int row, col;
        device::MmaC(lane, reg, &row, &col);
        device::GemmStore(p, y, m0 + 16 * mi + row, n0 + 8 * ni + col, acc[mi][ni][reg]);
      }
    }
  }
}

__global__ void MaxPoolKernel(device::PoolParams p, const uint8_t* x, uint8_t* y) {
  QFX_GRID_STRIDE(i, p.y.Values()) {
    const Pos o = PosOf(p.y, i);
    y[p.y.Offset(o.b, o.y, o.x, o.ch)] = device::MaxPoolOutput(p, x, o);
  }
}

__global__ void AvgPoolKernel(device::PoolParams p, const uint8_t* x, uint8_t* y) {
  QFX_GRID_STRIDE(i, p.y.Values()) {
    const Pos o = PosOf(p.y, i);
    y[p.y.Offset(o.b, o.y, o.x, o.ch)] = device::AvgPoolOutput(p, x, o);
  }
}

__global__ void BinaryKernel(device::BinaryParams p, const uint8_t* a, const uint8_t* b, uint8_t* y) {
  QFX_GRID_STRIDE(i, p.y.Values()) {
    const Pos o = PosOf(p.y, i);
    y[p.y.Offset(o.b, o.y, o.x, o.ch)] = device::BinaryOutput(p, a, b, o);
  }
}

__global__ void RequantCopyKernel(device::RequantCopyParams p, const uint8_t* x, uint8_t* y) {
  QFX_GRID_STRIDE(i, p.x.Values()) {
    const Pos o = PosOf(p.x, i);
    y[p.y.Offset(o.b, o.y, o.x, p.channel_offset + o.ch)] = device::RequantCopyOutput(p, x, o);
  }
}

__global__ void TableKernel(const uint8_t* table, int64_t n, const uint8_t* x, uint8_t* y) {
  QFX_GRID_STRIDE(i, n) { y[i] = table[x[i]]; }
}

__global__ void QuantizeKernel(device::QuantizeParams p, const float* x, uint8_t* y) {
  QFX_GRID_STRIDE(i, p.y.Values()) {
    const Pos o = PosOf(p.y, i);
    y[p.y.Offset(o.b, o.y, o.x, o.ch)] = device::QuantizeOutput(p, x, o);
  }
}

__global__ void DequantizeKernel(device::DequantizeParams p, const uint8_t* x, void* y) {
  QFX_GRID_STRIDE(i, p.x.Values()) {
    const Pos o = PosOf(p.x, i);
    const uint8_t q = x[p.x.Offset(o.b, o.y, o.x, o.ch)];
    const int64_t at = device::NchwOffset(p.x, o);
    if (p.to_float) {
      static_cast<float*>(y)[at] = device::Deq(q, p.scale, p.zero_point);
    } else {
      static_cast<uint8_t*>(y)[at] = q;
    }
  }
}

__global__ void FlattenKernel(device::FlattenParams p, const uint8_t* x, uint8_t* y) {
  QFX_GRID_STRIDE(i, p.y.Values()) {
    const Pos o = PosOf(p.y, i);
    y[p.y.Offset(o.b, 0, 0, o.ch)] = device::FlattenOutput(p, x, o);
  }
}

}  // namespace

bool Built() { return true; }
const char* ErrorText(int code) {
  return code == kNotBuilt ? "qfx was built without CUDA" : cudaGetErrorString(static_cast<cudaError_t>(code));
}
const char* ErrorName(int code) {
  return code == kNotBuilt ? "kNotBuilt" : cudaGetErrorName(static_cast<cudaError_t>(code));
}
int DeviceCount(int* count) { return static_cast<int>(cudaGetDeviceCount(count)); }
int DeviceInfo(char* name, size_t name_size, int* major, int* minor) {
  cudaDeviceProp prop;
  const cudaError_t e = cudaGetDeviceProperties(&prop, 0);
  if (e != cudaSuccess) return static_cast<int>(e);
  std::strncpy(name, prop.name, name_size - 1);
  name[name_size - 1] = '\0';
  *major = prop.major;
  *minor = prop.minor;
  return 0;
}
int SetDevice(int device) { return static_cast<int>(cudaSetDevice(device)); }

int Malloc(void** p, size_t bytes) { return static_cast<int>(cudaMalloc(p, bytes)); }
int Free(void* p) { return static_cast<int>(cudaFree(p)); }
int MallocHost(void** p, size_t bytes) { return static_cast<int>(cudaMallocHost(p, bytes)); }
int FreeHost(void* p) { return static_cast<int>(cudaFreeHost(p)); }
int Memset(void* p, int value, size_t bytes) { return static_cast<int>(cudaMemset(p, value, bytes)); }
int MemsetAsync(void* p, int value, size_t bytes, void* stream) {
  return static_cast<int>(cudaMemsetAsync(p, value, bytes, S(stream)));
}

int StreamCreate(void** stream) {
  cudaStream_t s;
  const cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  *stream = s;
  return static_cast<int>(e);
}
int StreamDestroy(void* stream) { return static_cast<int>(cudaStreamDestroy(S(stream))); }
int StreamSynchronize(void* stream) { return static_cast<int>(cudaStreamSynchronize(S(stream))); }
int CopyToDeviceAsync(void* dst, const void* src, size_t bytes, void* stream) {
  return static_cast<int>(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, S(stream)));
}
int CopyToHostAsync(void* dst, const void* src, size_t bytes, void* stream) {
  return static_cast<int>(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, S(stream)));
}

int BeginCapture(void* stream) {
  return static_cast<int>(cudaStreamBeginCapture(S(stream), cudaStreamCaptureModeThreadLocal));
}
int EndCapture(void* stream, void** graph_exec) {
  cudaGraph_t graph;
  cudaError_t e = cudaStreamEndCapture(S(stream), &graph);
  if (e != cudaSuccess) return static_cast<int>(e);
  cudaGraphExec_t exec;
  e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  *graph_exec = exec;
  return static_cast<int>(e);
}
int GraphLaunch(void* graph_exec, void* stream) {
  return static_cast<int>(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph_exec), S(stream)));
}
int GraphDestroy(void* graph_exec) {
  return static_cast<int>(cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph_exec)));
}

int Conv(const device::ConvParams& p, const uint8_t* x, uint8_t* y, void* stream) {
  ConvKernel<<<Blocks(p.y.Values()), kThreads, 0, S(stream)>>>(p, x, y);
  return Launched();
}
int ConvMma(const device::ConvParams& p, const int8_t* w32, int32_t icp32, const uint8_t* x, uint8_t* y, void* stream) {
  const int64_t rows = device::GemmRows(p);
  const int64_t block_m = int64_t{device::kMmaWarpM} * device::kMmaBlockWarpsM;
  const int32_t block_n = device::kMmaWarpN * device::kMmaBlockWarpsN;
  const dim3 grid(static_cast<unsigned>((rows + block_m - 1) / block_m),
                  static_cast<unsigned>((p.y.c + block_n - 1) / block_n));
  if (grid.x == 0 || grid.x > 2147483647u || grid.y > 65535u) return static_cast<int>(cudaErrorInvalidConfiguration);
  ConvMmaKernel<<<grid, 32 * device::kMmaBlockWarpsM * device::kMmaBlockWarpsN, 0, S(stream)>>>(p, w32, icp32, x, y);
  return Launched();
}
int MaxPool(const device::PoolParams& p, const uint8_t* x, uint8_t* y, void* stream) {
  MaxPoolKernel<<<Blocks(p.y.Values()), kThreads, 0, S(stream)>>>(p, x, y);
  return Launched();
}
int AvgPool(const device::PoolParams& p, const uint8_t* x, uint8_t* y, void* stream) {
  AvgPoolKernel<<<Blocks(p.y.Values()), kThreads, 0, S(stream)>>>(p, x, y);
  return Launched();
}
int Binary(const device::BinaryParams& p, const uint8_t* a, const uint8_t* b, uint8_t* y, void* stream) {
  BinaryKernel<<<Blocks(p.y.Values()), kThreads, 0, S(stream)>>>(p, a, b, y);
  return Launched();
}
int RequantCopy(const device::RequantCopyParams& p, const uint8_t* x, uint8_t* y, void* stream) {
  RequantCopyKernel<<<Blocks(p.x.Values()), kThreads, 0, S(stream)>>>(p, x, y);
  return Launched();
}
int Table(const uint8_t* table, int64_t bytes, const uint8_t* x, uint8_t* y, void* stream) {
  TableKernel<<<Blocks(bytes), kThreads, 0, S(stream)>>>(table, bytes, x, y);
  return Launched();
}
int Quantize(const device::QuantizeParams& p, const float* x, uint8_t* y, void* stream) {
  QuantizeKernel<<<Blocks(p.y.Values()), kThreads, 0, S(stream)>>>(p, x, y);
  return Launched();
}
int Dequantize(const device::DequantizeParams& p, const uint8_t* x, void* y, void* stream) {
  DequantizeKernel<<<Blocks(p.x.Values()), kThreads, 0, S(stream)>>>(p, x, y);
  return Launched();
}
int Flatten(const device::FlattenParams& p, const uint8_t* x, uint8_t* y, void* stream) {
  FlattenKernel<<<Blocks(p.y.Values()), kThreads, 0, S(stream)>>>(p, x, y);
  return Launched();
}
int TimeLaunches(void (*fn)(void* arg, void* stream), void* arg, int launches, void* stream, float* ms) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  cudaEventRecord(start, S(stream));
  for (int i = 0; i < launches; ++i) fn(arg, stream);
  cudaEventRecord(stop, S(stream));
  const cudaError_t e = cudaEventSynchronize(stop);
  cudaEventElapsedTime(ms, start, stop);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return static_cast<int>(e);
}

}  // namespace cuda
}  // namespace kernels
}  // namespace qfx
