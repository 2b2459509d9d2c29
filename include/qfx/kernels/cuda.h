// qfx kernels: the CUDA backend's plain-function interface (no CUDA headers needed to call it). Every
// function returns a CUDA runtime error code (0: success) that ErrorText() explains; a qfx built without
// the CUDA toolkit (no nvcc at build time) has the same functions, returning kNotBuilt.
//
// Streams, device buffers and graphs are opaque pointers. The kernel launchers run one of the per-output
// functions of qfx/kernels/device_ops.h per CUDA thread (grid-stride loops) on `stream`; they do not
// synchronise, so a forward can be captured into a CUDA graph and replayed.
#pragma once

#include <cstddef>
#include <cstdint>

#include "qfx/kernels/device_ops.h"

namespace qfx {
namespace kernels {
namespace cuda {

inline constexpr int kNotBuilt = -1;
// cudaErrorInsufficientDriver: what the runtime answers on a machine without an NVIDIA driver.
inline constexpr int kInsufficientDriver = 35;

bool Built();  // compiled with nvcc
const char* ErrorText(int code);
const char* ErrorName(int code);
int DeviceCount(int* count);
// The name and compute capability of device 0.
int DeviceInfo(char* name, size_t name_size, int* major, int* minor);
int SetDevice(int device);

int Malloc(void** p, size_t bytes);
int Free(void* p);
int MallocHost(void** p, size_t bytes);  // pinned, so copies can be captured into a graph
int FreeHost(void* p);
int Memset(void* p, int value, size_t bytes);
int MemsetAsync(void* p, int value, size_t bytes, void* stream);

int StreamCreate(void** stream);
int StreamDestroy(void* stream);
int StreamSynchronize(void* stream);
int CopyToDeviceAsync(void* dst, const void* src, size_t bytes, void* stream);
int CopyToHostAsync(void* dst, const void* src, size_t bytes, void* stream);

// Captures everything enqueued on `stream` between the two calls into an executable graph.
int BeginCapture(void* stream);
int EndCapture(void* stream, void** graph_exec);
int GraphLaunch(void* graph_exec, void* stream);
int GraphDestroy(void* graph_exec);

// Kernels (the error of the launch itself: a bad configuration; faults show at the next synchronisation).
int Conv(const device::ConvParams& p, const uint8_t* x, uint8_t* y, void* stream);
// groups == 1 on the tensor cores: w32 is the weight as [y.c][kh][kw][icp32] (device_ops.h).
int ConvMma(const device::ConvParams& p, const int8_t* w32, int32_t icp32, const uint8_t* x, uint8_t* y, void* stream);
int MaxPool(const device::PoolParams& p, const uint8_t* x, uint8_t* y, void* stream);
int AvgPool(const device::PoolParams& p, const uint8_t* x, uint8_t* y, void* stream);
int Binary(const device::BinaryParams& p, const uint8_t* a, const uint8_t* b, uint8_t* y, void* stream);
int RequantCopy(const device::RequantCopyParams& p, const uint8_t* x, uint8_t* y, void* stream);
// y[i] = table[x[i]] for every byte of an activation (the padding too); table is 256 device bytes.
int Table(const uint8_t* table, int64_t bytes, const uint8_t* x, uint8_t* y, void* stream);
int Quantize(const device::QuantizeParams& p, const float* x, uint8_t* y, void* stream);
// NCHW out: float (to_float) or the quint8 bytes.
int Dequantize(const device::DequantizeParams& p, const uint8_t* x, void* y, void* stream);
int Flatten(const device::FlattenParams& p, const uint8_t* x, uint8_t* y, void* stream);

// Milliseconds between two events recorded around `launches` calls of fn on stream (benchmarks).
int TimeLaunches(void (*fn)(void* arg, void* stream), void* arg, int launches, void* stream, float* ms);

}  // namespace cuda
}  // namespace kernels
}  // namespace qfx
