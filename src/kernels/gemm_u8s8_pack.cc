// qfx kernels: weight packing and the exactness bound for the uint8 x int8 GEMM (see gemm_u8s8.h).
#include <cstdlib>
#include <cstring>

#include "src/kernels/gemm_u8s8.h"

namespace qfx {
namespace kernels {

namespace {

int64_t TileSize(int64_t m, int64_t k) { return (m + kU8S8TileRows - 1) / kU8S8TileRows * ((k + 3) / 4) * kU8S8TileRows; }

}  // namespace

int64_t AmxPaddedRows(int64_t m) { return (m + 31) / 32 * 32; }
int64_t AmxPaddedK(int64_t k) { return (k + 63) / 64 * 64; }
int64_t AmxWeightsOffset(int64_t m, int64_t k) { return (TileSize(m, k) + 15) / 16 * 16; }  // 64-byte aligned

int64_t PackedU8S8Size(int64_t m, int64_t k) {
  return AmxWeightsOffset(m, k) + AmxPaddedRows(m) * AmxPaddedK(k) / 4;
}

void PackU8S8Weights(const int8_t* a, int64_t m, int64_t k, int64_t lda, int32_t* packed) {
  const int64_t k4s = (k + 3) / 4;
  std::memset(packed, 0, static_cast<size_t>(PackedU8S8Size(m, k)) * sizeof(int32_t));
  for (int64_t i = 0; i < m; ++i) {
    int32_t* block = packed + (i / kU8S8TileRows) * k4s * kU8S8TileRows;
    const int64_t r = i % kU8S8TileRows;
    for (int64_t p = 0; p < k; ++p) reinterpret_cast<int8_t*>(block + (p / 4) * kU8S8TileRows + r)[p % 4] = a[i * lda + p];
  }
  // The AMX copy: rows padded to 32 and k to 64 with zeros (memset above), row stride AmxPaddedK(k) bytes.
  int8_t* amx = reinterpret_cast<int8_t*>(packed + AmxWeightsOffset(m, k));
  for (int64_t i = 0; i < m; ++i) std::memcpy(amx + i * AmxPaddedK(k), a + i * lda, static_cast<size_t>(k));
}

int32_t MaxPairAbsSum(const int8_t* a, int64_t m, int64_t k, int64_t lda) {
  int32_t worst = 0;
  for (int64_t i = 0; i < m; ++i) {
    const int8_t* row = a + i * lda;
    for (int64_t p = 0; p < k; p += 2) {
      const int32_t pair = std::abs(static_cast<int32_t>(row[p])) + (p + 1 < k ? std::abs(static_cast<int32_t>(row[p + 1])) : 0);
      worst = pair > worst ? pair : worst;
    }
  }
  return worst;
}

}  // namespace kernels
}  // namespace qfx
