// qfx train: backward of the broadcasting arithmetic (add, mul, div), cat, reshape and mean.
#include <algorithm>
#include <vector>

#include "qfx/train/ops.h"

namespace qfx {
namespace train {
namespace ag {
namespace {

// Strides of `shape` seen from a broadcast result of rank `rank` (0 along broadcast dimensions).
std::vector<int64_t> BroadcastStrides(const Shape& shape, size_t rank) {
  std::vector<int64_t> strides(rank, 0);
  int64_t s = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const size_t d = shape.size() - 1 - i, out_d = rank - 1 - i;
    strides[out_d] = shape[d] == 1 ? 0 : s;
    s *= shape[d];
  }
  return strides;
}

Shape BroadcastShape(const char* op, const Shape& a, const Shape& b) {
  Shape out(std::max(a.size(), b.size()), 1);
  for (size_t i = 0; i < out.size(); ++i) {
    const int64_t da = i < a.size() ? a[a.size() - 1 - i] : 1, db = i < b.size() ? b[b.size() - 1 - i] : 1;
    if (da != db && da != 1 && db != 1) {
      ThrowInvalid(op, ": shapes ", ShapeToString(a), " and ", ShapeToString(b), " do not broadcast");
    }
    out[out.size() - 1 - i] = std::max(da, db);
  }
  return out;
}

// Calls fn(out_index, a_index, b_index) for every element of the broadcast of shapes a and b.
template <typename Fn>
void ForEachBroadcast(const Shape& out, const Shape& a, const Shape& b, Fn fn) {
  const std::vector<int64_t> sa = BroadcastStrides(a, out.size()), sb = BroadcastStrides(b, out.size());
  std::vector<int64_t> idx(out.size(), 0);
  int64_t ia = 0, ib = 0;
  for (int64_t i = 0, n = NumElements(out); i < n; ++i) {
    fn(i, ia, ib);
    for (int64_t d = static_cast<int64_t>(out.size()) - 1; d >= 0; --d) {
      ia += sa[d];
      ib += sb[d];
      if (++idx[d] < out[d]) break;
      ia -= sa[d] * out[d];
      ib -= sb[d] * out[d];
      idx[d] = 0;
    }
  }
}

}  // namespace

Tensor SumToShape(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  Tensor out = Tensor::Zeros(shape);
  const float* pg = g.data<float>();
  float* po = out.data<float>();
  ForEachBroadcast(g.shape(), shape, shape, [&](int64_t i, int64_t j, int64_t) { po[j] += pg[i]; });
  return out;
}

Var add(Tape& t, const Var& a, const Var& b) {
  const Shape sa = a.value.shape(), sb = b.value.shape();
  return t.Record(F::add(a.value, b.value), {a, b}, [sa, sb](const Tensor& dy) {
    return std::vector<Tensor>{SumToShape(dy, sa), SumToShape(dy, sb)};
  });
}

Var mul(Tape& t, const Var& a, const Var& b) {
  const Tensor av = a.value, bv = b.value;
  const bool want_a = a.requires_grad(), want_b = b.requires_grad();
  return t.Record(F::mul(av, bv), {a, b}, [=](const Tensor& dy) {
    return std::vector<Tensor>{want_a ? SumToShape(F::mul(dy, bv), av.shape()) : Tensor(),
                               want_b ? SumToShape(F::mul(dy, av), bv.shape()) : Tensor()};
  });
}

Var div(Tape& t, const Var& a, const Var& b) {
  const Tensor av = a.value, bv = b.value;
  const Shape out_shape = BroadcastShape("div", av.shape(), bv.shape());
  Tensor y = Tensor::Uninitialized(out_shape);
  {
    const float *pa = av.data<float>(), *pb = bv.data<float>();
    float* py = y.data<float>();
    ForEachBroadcast(out_shape, av.shape(), bv.shape(), [&](int64_t i, int64_t ia, int64_t ib) { py[i] = pa[ia] / pb[ib]; });
  }
  const bool want_a = a.requires_grad(), want_b = b.requires_grad();
  return t.Record(y, {a, b}, [=](const Tensor& dy) {
    Tensor ga = want_a ? Tensor::Uninitialized(out_shape) : Tensor();
    Tensor gb = want_b ? Tensor::Uninitialized(out_shape) : Tensor();
    const float *pa = av.data<float>(), *pb = bv.data<float>(), *pg = dy.data<float>();
    ForEachBroadcast(out_shape, av.shape(), bv.shape(), [&](int64_t i, int64_t ia, int64_t ib) {
      if (want_a) ga.data<float>()[i] = pg[i] / pb[ib];
      if (want_b) gb.data<float>()[i] = -pg[i] * pa[ia] / (pb[ib] * pb[ib]);
    });
    return std::vector<Tensor>{want_a ? SumToShape(ga, av.shape()) : Tensor(),
                               want_b ? SumToShape(gb, bv.shape()) : Tensor()};
  });
}

Var cat(Tape& t, const std::vector<Var>& xs, int64_t dim) {
  std::vector<Tensor> values;
  std::vector<Shape> shapes;
  for (const Var& x : xs) {
    values.push_back(x.value);
    shapes.push_back(x.value.shape());
  }
  Tensor y = F::cat(values, dim);
  const int64_t d = NormalizeDim(dim, y.dim(), "cat dim");
  return t.Record(y, xs, [shapes, d](const Tensor& dy) {
    int64_t inner = 1;
    for (int64_t k = d + 1; k < dy.dim(); ++k) inner *= dy.size(k);
    const int64_t outer = dy.numel() / (dy.size(d) * inner), row = dy.size(d) * inner;
    std::vector<Tensor> grads;
    int64_t offset = 0;
    for (const Shape& s : shapes) {
      Tensor g = Tensor::Uninitialized(s);
      const int64_t len = s[d] * inner;
      for (int64_t o = 0; o < outer; ++o) {
        std::copy_n(dy.data<float>() + o * row + offset, len, g.data<float>() + o * len);
      }
      offset += len;
      grads.push_back(g);
    }
    return grads;
  });
}

Var reshape(Tape& t, const Var& x, Shape shape) {
  const Shape xs = x.value.shape();
  return t.Record(x.value.Reshape(std::move(shape)), {x},
                  [xs](const Tensor& dy) { return std::vector<Tensor>{dy.Reshape(xs)}; });
}

Var mean(Tape& t, const Var& x, const std::vector<int64_t>& dims, bool keepdim) {
  const Shape xs = x.value.shape();
  Shape kept = xs;
  if (dims.empty()) std::fill(kept.begin(), kept.end(), 1);  // as F::mean: no dims reduces all
  for (int64_t d : dims) kept[NormalizeDim(d, static_cast<int64_t>(xs.size()), "mean dim")] = 1;
  const int64_t count = NumElements(xs) / std::max<int64_t>(1, NumElements(kept));
  return t.Record(F::mean(x.value, dims, keepdim), {x}, [xs, kept, count](const Tensor& dy) {
    return std::vector<Tensor>{F::mul(dy.Reshape(kept), Tensor::Full(xs, 1.f / static_cast<float>(count)))};
  });
}

}  // namespace ag
}  // namespace train
}  // namespace qfx
