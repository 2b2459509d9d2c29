// qfx train: backward of the broadcasting arithmetic (add, mul, div), cat, reshape and mean.
#include <algorithm>
#include <vector>

#include "qfx/nn/geometry.h"
#include "qfx/train/ops.h"

namespace qfx {
namespace train {
namespace ag {
Tensor SumToShape(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  Tensor out = Tensor::Zeros(shape);
  const float* pg = g.data<float>();
  float* po = out.data<float>();
  const auto st = nn::BroadcastStrides(shape, g.shape());
  nn::ForEachBroadcast(g.shape(), st, st, [&](int64_t i, int64_t j, int64_t) { po[j] += pg[i]; });
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
  const Shape out_shape = nn::BroadcastShape("div", av.shape(), bv.shape());
  const auto sa = nn::BroadcastStrides(av.shape(), out_shape), sb = nn::BroadcastStrides(bv.shape(), out_shape);
  Tensor y = Tensor::Uninitialized(out_shape);
  {
    const float *pa = av.data<float>(), *pb = bv.data<float>();
    float* py = y.data<float>();
    nn::ForEachBroadcast(out_shape, sa, sb, [&](int64_t i, int64_t ia, int64_t ib) { py[i] = pa[ia] / pb[ib]; });
  }
  const bool want_a = a.requires_grad(), want_b = b.requires_grad();
  return t.Record(y, {a, b}, [=](const Tensor& dy) {
    Tensor ga = want_a ? Tensor::Uninitialized(out_shape) : Tensor();
    Tensor gb = want_b ? Tensor::Uninitialized(out_shape) : Tensor();
    const float *pa = av.data<float>(), *pb = bv.data<float>(), *pg = dy.data<float>();
    nn::ForEachBroadcast(out_shape, sa, sb, [&](int64_t i, int64_t ia, int64_t ib) {
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
