// qfx nn: broadcasting shape arithmetic and resize source positions (see include/qfx/nn/geometry.h).
#include "qfx/nn/geometry.h"

#include <algorithm>
#include <cmath>

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

// PyTorch's source positions for resizing along one axis of size `in` to `out` (its CPU upsample kernels):
// `scale_factor` is the one the caller gave (0: none; then the ratio is in / out).
int64_t NearestSource(int64_t o, int64_t in, int64_t out, double scale_factor) {
  if (out == in) return o;
  if (out == 2 * in) return o >> 1;
  const float scale = scale_factor > 0 ? static_cast<float>(1.0 / scale_factor) : static_cast<float>(in) / out;
  return std::min(static_cast<int64_t>(std::floor(static_cast<float>(o) * scale)), in - 1);
}

LinearTap LinearSource(int64_t o, int64_t in, int64_t out, bool align_corners, double scale_factor) {
  if (out == in) return {o, o, 1.f, 0.f};
  float scale;
  if (align_corners) {
    scale = out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1) : 0.f;
  } else {
    scale = scale_factor > 0 ? static_cast<float>(1.0 / scale_factor) : static_cast<float>(in) / out;
  }
  // The source position in double (PyTorch's CPU accumulation type for float), the weights in float.
  double real = static_cast<double>(scale) * static_cast<double>(o);
  if (!align_corners) real = std::max(static_cast<double>(scale) * (static_cast<double>(o) + 0.5) - 0.5, 0.0);
  const int64_t i0 = static_cast<int64_t>(real);
  const int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
  const float l1 = static_cast<float>(real - static_cast<double>(i0));
  return {i0, i1, 1.f - l1, l1};
}

}  // namespace nn
}  // namespace qfx
