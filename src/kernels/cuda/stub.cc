// qfx kernels: the CUDA backend's interface (qfx/kernels/cuda.h) in a qfx built without the CUDA toolkit:
// every call answers kNotBuilt, so callers report "qfx was built without CUDA" instead of failing to link.
#include "qfx/kernels/cuda.h"

namespace qfx {
namespace kernels {
namespace cuda {

bool Built() { return false; }
const char* ErrorText(int code) { return code == kNotBuilt ? "qfx was built without CUDA" : "CUDA error"; }
const char* ErrorName(int code) { return code == kNotBuilt ? "kNotBuilt" : "cudaError"; }
int DeviceCount(int* count) {
  *count = 0;
  return kNotBuilt;
}
int DeviceInfo(char*, size_t, int*, int*) { return kNotBuilt; }
int SetDevice(int) { return kNotBuilt; }
int Malloc(void** p, size_t) {
  *p = nullptr;
  return kNotBuilt;
}
int Free(void*) { return kNotBuilt; }
int MallocHost(void** p, size_t) {
  *p = nullptr;
  return kNotBuilt;
}
int FreeHost(void*) { return kNotBuilt; }
int Memset(void*, int, size_t) { return kNotBuilt; }
int MemsetAsync(void*, int, size_t, void*) { return kNotBuilt; }
int StreamCreate(void** stream) {
  *stream = nullptr;
  return kNotBuilt;
}
int StreamDestroy(void*) { return kNotBuilt; }
int StreamSynchronize(void*) { return kNotBuilt; }
int CopyToDeviceAsync(void*, const void*, size_t, void*) { return kNotBuilt; }
int CopyToHostAsync(void*, const void*, size_t, void*) { return kNotBuilt; }
int BeginCapture(void*) { return kNotBuilt; }
int EndCapture(void*, void** graph_exec) {
  *graph_exec = nullptr;
  return kNotBuilt;
}
int GraphLaunch(void*, void*) { return kNotBuilt; }
int GraphDestroy(void*) { return kNotBuilt; }
int Conv(const device::ConvParams&, const uint8_t*, uint8_t*, void*) { return kNotBuilt; }
int ConvMma(const device::ConvParams&, const int8_t*, int32_t, const uint8_t*, uint8_t*, void*) { return kNotBuilt; }
int MaxPool(const device::PoolParams&, const uint8_t*, uint8_t*, void*) { return kNotBuilt; }
int AvgPool(const device::PoolParams&, const uint8_t*, uint8_t*, void*) { return kNotBuilt; }
int Binary(const device::BinaryParams&, const uint8_t*, const uint8_t*, uint8_t*, void*) { return kNotBuilt; }
int RequantCopy(const device::RequantCopyParams&, const uint8_t*, uint8_t*, void*) { return kNotBuilt; }
int Table(const uint8_t*, int64_t, const uint8_t*, uint8_t*, void*) { return kNotBuilt; }
int Quantize(const device::QuantizeParams&, const float*, uint8_t*, void*) { return kNotBuilt; }
int Dequantize(const device::DequantizeParams&, const uint8_t*, void*, void*) { return kNotBuilt; }
int Flatten(const device::FlattenParams&, const uint8_t*, uint8_t*, void*) { return kNotBuilt; }
int TimeLaunches(void (*)(void*, void*), void*, int, void*, float*) { return kNotBuilt; }

}  // namespace cuda
}  // namespace kernels
}  // namespace qfx
