// qfx kernels: the linear layers' exact int32 products, acc[out, rows] = W x X^T, by path. Batch-1 style
// calls (rows < 4) take one dot product per (output, row), the target's (LinearFewRowsU8S8), since the GEMM's
// column tiles would be mostly empty; larger ones transpose x once and run the path's GEMM (AMX, the
// register tiles, or the portable loop) against the packed weights.
#include <vector>

#include "src/kernels/packed.h"
#include "src/kernels/scratch.h"

namespace qfx {
namespace kernels {
void LinearAcc(const PackedQLinearState& s, QLinearPath path, const uint8_t* x, int64_t rows, int32_t* acc) {
  if (rows < 4) return LinearFewRowsU8S8(x, rows, s.in, s.weight.data(), s.out, s.max_pair, acc);
  thread_local std::vector<uint8_t> xt_buffer;  // reused across calls: no allocation once large enough
  uint8_t* const xt = GrowScratch(xt_buffer, static_cast<size_t>(s.in * rows));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < s.in; ++k) xt[k * rows + r] = x[r * s.in + k];
  }
  U8S8GemmArgs gemm = U8S8GemmArgs::Of(s.out, rows, s.in, s.weight.data(), s.in, xt, rows, acc, rows);
  gemm.b_max = MaxOfU8(x, rows * s.in);
  gemm.packed_a = s.gemm.data();
  gemm.a_max_pair = s.max_pair;
  GemmU8S8On(path, gemm);
}

void GemmU8S8On(QLinearPath isa, const U8S8GemmArgs& g) {
  switch (isa) {
    case QLinearPath::kAmx:
      return GemmU8S8Amx(g);
    case QLinearPath::kPortable:
      return GemmU8S8Portable(g);
    default:
      return GemmU8S8Tile(g);  // vpdpbusd on AVX3_DL, vpmaddubsw on AVX2 / AVX3
  }
}

}  // namespace kernels
}  // namespace qfx
