// qfx kernels: the weight layouts the int8 paths read (see src/kernels/qu8_dispatch.h), built once per layer
// by PackQConv2d / PackQLinear: the GEMM's tile and AMX copies (PackU8S8Weights, per group: PackGroups),
// the implicit convolutions' tap-major copy, the windowed im2col's copy, and vpmaddubsw's exactness bound.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "src/kernels/qu8_dispatch.h"

namespace qfx {
namespace kernels {

namespace {

int64_t TileSize(int64_t m, int64_t k) {
  return (m + kU8S8TileRows - 1) / kU8S8TileRows * ((k + 3) / 4) * kU8S8TileRows;
}

}  // namespace

int64_t AmxPaddedRows(int64_t m) { return (m + 31) / 32 * 32; }
int64_t AmxPaddedK(int64_t k) { return (k + 63) / 64 * 64; }
int64_t AmxWeightsOffset(int64_t m, int64_t k) { return (TileSize(m, k) + 15) / 16 * 16; }  // 64-byte aligned

int64_t PackedU8S8Size(int64_t m, int64_t k) { return AmxWeightsOffset(m, k) + AmxPaddedRows(m) * AmxPaddedK(k) / 4; }

void PackU8S8Weights(const int8_t* a, int64_t m, int64_t k, int64_t lda, int32_t* packed) {
  const int64_t k4s = (k + 3) / 4;
  std::memset(packed, 0, static_cast<size_t>(PackedU8S8Size(m, k)) * sizeof(int32_t));
  for (int64_t i = 0; i < m; ++i) {
    int32_t* block = packed + (i / kU8S8TileRows) * k4s * kU8S8TileRows;
    const int64_t r = i % kU8S8TileRows;
    for (int64_t p = 0; p < k; ++p)
      reinterpret_cast<int8_t*>(block + (p / 4) * kU8S8TileRows + r)[p % 4] = a[i * lda + p];
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
      const int32_t pair =
          std::abs(static_cast<int32_t>(row[p])) + (p + 1 < k ? std::abs(static_cast<int32_t>(row[p + 1])) : 0);
      worst = pair > worst ? pair : worst;
    }
  }
  return worst;
}

void ComputeWeightSums(const int8_t* weight, int64_t rows, int64_t per_row, int32_t* sums) {
  for (int64_t r = 0; r < rows; ++r) {
    int32_t s = 0;
    for (int64_t i = 0; i < per_row; ++i) s += weight[r * per_row + i];
    sums[r] = s;
  }
}

AlignedVector<int8_t> PackTapMajor(const int8_t* weight, int64_t out_channels, int64_t in_channels, int64_t kernel_h,
                                   int64_t kernel_w) {
  const int64_t taps = kernel_h * kernel_w, cin4 = ImplicitInChannels(in_channels), kdim = taps * cin4;
  AlignedVector<int8_t> out(static_cast<size_t>((out_channels + 31) / 32 * 32 * kdim), 0);
  for (int64_t co = 0; co < out_channels; ++co) {
    for (int64_t ci = 0; ci < in_channels; ++ci) {
      for (int64_t t = 0; t < taps; ++t) out[co * kdim + t * cin4 + ci] = weight[(co * in_channels + ci) * taps + t];
    }
  }
  return out;
}

AlignedVector<int8_t> PackTapMajor4(const int8_t* weight, int64_t out_channels, int64_t in_channels, int64_t kernel_h,
                                    int64_t kernel_w) {
  const int64_t taps = kernel_h * kernel_w, cin4 = ImplicitInChannels(in_channels), steps = taps * cin4 / 4;
  AlignedVector<int8_t> out(static_cast<size_t>((out_channels + 3) / 4 * steps * 16), 0);
  for (int64_t co = 0; co < out_channels; ++co) {
    for (int64_t ci = 0; ci < in_channels; ++ci) {
      for (int64_t t = 0; t < taps; ++t) {
        const int64_t step = (t * cin4 + ci) / 4;
        out[((co / 4 * steps + step) * 4 + co % 4) * 4 + ci % 4] = weight[(co * in_channels + ci) * taps + t];
      }
    }
  }
  return out;
}

AlignedVector<int32_t> PackWindowed(const int8_t* weight, int64_t out_channels, int64_t in_channels, int64_t kernel_h,
                                    int64_t kernel_w) {
  const int64_t gx = (kernel_w + 3) / 4, kdim = WindowedK(in_channels, kernel_h, kernel_w);
  std::vector<int8_t> rows(static_cast<size_t>(out_channels * kdim), 0);  // the windowed matrix, row-major
  for (int64_t co = 0; co < out_channels; ++co) {
    for (int64_t ci = 0; ci < in_channels; ++ci) {
      for (int64_t ky = 0; ky < kernel_h; ++ky) {
        for (int64_t kx = 0; kx < kernel_w; ++kx) {
          rows[co * kdim + (ci * kernel_h + ky) * gx * 4 + kx] =
              weight[((co * in_channels + ci) * kernel_h + ky) * kernel_w + kx];
        }
      }
    }
  }
  AlignedVector<int32_t> packed(static_cast<size_t>(PackedU8S8Size(out_channels, kdim)));
  PackU8S8Weights(rows.data(), out_channels, kdim, kdim, packed.data());
  return packed;
}

AlignedVector<int32_t> PackGroups(const int8_t* weight, int64_t groups, int64_t rows_per_group, int64_t per_row,
                                  int32_t* max_pair) {
  const int64_t per_group = PackedU8S8Size(rows_per_group, per_row);
  AlignedVector<int32_t> packed(static_cast<size_t>(groups * per_group));
  for (int64_t gi = 0; gi < groups; ++gi) {
    PackU8S8Weights(weight + gi * rows_per_group * per_row, rows_per_group, per_row, per_row,
                    packed.data() + gi * per_group);
  }
  *max_pair = MaxPairAbsSum(weight, groups * rows_per_group, per_row, per_row);
  return packed;
}

}  // namespace kernels
}  // namespace qfx
