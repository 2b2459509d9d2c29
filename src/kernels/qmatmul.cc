// qfx kernels: QMatmul, quint8 x quint8 matrix products (attention's q k^T and p v). Per batch, b is
// transposed once into int16 with its zero point taken out, so that each output is a contiguous int16 dot
// product accumulated in int32 (the compiler vectorises it); rows run in parallel. Integer arithmetic and the
// shared Requantize make it bit-identical to ref::QMatmul on every target (tests/kernels/int8_test.cc).
#include <cstdint>
#include <vector>

#include "qfx/core/parallel.h"
#include "qfx/kernels/int8.h"

namespace qfx {
namespace kernels {

void QMatmul(const QMatmulArgs& q, const uint8_t* a, const uint8_t* b, uint8_t* y) {
  std::vector<int16_t> bt(static_cast<size_t>(q.n * q.k));
  for (int64_t batch = 0; batch < q.batch; ++batch) {
    const uint8_t* pb = b + batch * q.k * q.n;
    for (int64_t t = 0; t < q.k; ++t) {
      for (int64_t j = 0; j < q.n; ++j) bt[j * q.k + t] = static_cast<int16_t>(pb[t * q.n + j] - q.b_zero_point);
    }
    const uint8_t* pa = a + batch * q.m * q.k;
    uint8_t* py = y + batch * q.m * q.n;
    ParallelFor(q.m, 1, [&](int64_t begin, int64_t end) {
      std::vector<int16_t> row(static_cast<size_t>(q.k));
      for (int64_t i = begin; i < end; ++i) {
        for (int64_t t = 0; t < q.k; ++t) row[t] = static_cast<int16_t>(pa[i * q.k + t] - q.a_zero_point);
        for (int64_t j = 0; j < q.n; ++j) {
          const int16_t* col = bt.data() + j * q.k;
          int32_t acc = 0;
          for (int64_t t = 0; t < q.k; ++t) acc += static_cast<int32_t>(row[t]) * col[t];
          py[i * q.n + j] = Requantize(acc, q.multiplier, q.y_zero_point, 0, 255);
        }
      }
    });
  }
}

}  // namespace kernels
}  // namespace qfx
