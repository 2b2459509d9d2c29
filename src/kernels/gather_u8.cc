// qfx kernels: GatherStridedU8 (qfx/kernels/int8.h), the strided byte gather that uint8 max pooling uses;
// stride 2 takes 16 bytes a step (EvenBytes, SSE2).
#include "qfx/kernels/int8.h"
#include "src/kernels/x86/u8_shuffle_sse2.h"

namespace qfx {
namespace kernels {

void GatherStridedU8(const uint8_t* x, int64_t stride, int64_t n, uint8_t* out) {
  int64_t i = stride == 2 ? EvenBytes(x, 0, n, out) : 0;
  for (; i < n; ++i) out[i] = x[i * stride];
}

}  // namespace kernels
}  // namespace qfx
