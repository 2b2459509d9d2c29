// qfx nn: broadcasting shape arithmetic (see include/qfx/nn/geometry.h).
#include "qfx/nn/geometry.h"

#include "qfx/core/status.h"

namespace qfx {
namespace nn {

Shape BroadcastShape(const char* op, const Shape& a, const Shape& b) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1) {
      ThrowInvalid(op, ": shapes ", ShapeToString(a), " and ", ShapeToString(b), " cannot broadcast (dim ", i, ": ", da,
                   " vs ", db, ")");
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::vector<int64_t> BroadcastStrides(const Shape& s, const Shape& out) {
  std::vector<int64_t> st(out.size(), 0);
  int64_t stride = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    const size_t j = s.size() - 1 - i, o = out.size() - 1 - i;
    st[o] = s[j] == 1 ? 0 : stride;
    stride *= s[j];
  }
  return st;
}

Tensor SumToShape(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  Tensor out = Tensor::Zeros(shape);
  const float* pg = g.data<float>();
  float* po = out.data<float>();
  const auto st = BroadcastStrides(shape, g.shape());
  ForEachBroadcast(g.shape(), st, st, [&](int64_t i, int64_t j, int64_t) { po[j] += pg[i]; });
  return out;
}

}  // namespace nn
}  // namespace qfx
