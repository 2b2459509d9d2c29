// qfx nn: the registered backward of the transformer ops layer_norm, matmul / bmm, multi_head_attention,
// transpose, permute, select and expand (see op_gradients.h).
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "qfx/nn/functional.h"
#include "qfx/nn/geometry.h"
#include "qfx/nn/ops.h"
#include "src/nn/functional_internal.h"
#include "src/nn/op_gradients.h"

namespace qfx {
namespace nn {
namespace {

using A = std::vector<OpArg>;

const Tensor& In(const A& v, size_t i, const char* op) { return ArgAs<Tensor>(v, i, op, "a tensor"); }
// A tensor argument that may be None (no input) or, from training's tape, an undefined tensor (an input
// that gets no gradient).
const Tensor* OptionalIn(const A& v, size_t i) { return i < v.size() ? std::get_if<Tensor>(&v[i]) : nullptr; }
const float* DataOrNull(const Tensor* t) { return t != nullptr && t->defined() ? t->data<float>() : nullptr; }

}  // namespace

// layer_norm: with xhat = (x - mean) * rstd and g = dy * weight per row,
// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)); dweight = sum over rows of dy * xhat; dbias = sum of dy.
std::vector<Tensor> VjpLayerNorm(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>& want) {
  const Tensor& x = In(v, 0, "layer_norm");
  const Tensor *weight = OptionalIn(v, 2), *bias = OptionalIn(v, 3);
  const int64_t len = NumElements(ArgAs<std::vector<int64_t>>(v, 1, "layer_norm", "a list of integers"));
  const int64_t rows = x.numel() / std::max<int64_t>(len, 1);
  const double eps = ArgAs<double>(v, 4, "layer_norm", "a number");
  Tensor dx = Tensor::Uninitialized(x.shape());
  std::vector<double> dw(static_cast<size_t>(len), 0.0), db(static_cast<size_t>(len), 0.0);
  std::vector<double> xhat(static_cast<size_t>(len)), g(static_cast<size_t>(len));
  const float *px = x.data<float>(), *pg = dy.data<float>(), *pw = DataOrNull(weight);
  for (int64_t r = 0; r < rows; ++r) {
    const float *row = px + r * len, *grow = pg + r * len;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < len; ++i) mean += row[i];
    mean /= static_cast<double>(len);
    for (int64_t i = 0; i < len; ++i) var += (row[i] - mean) * (row[i] - mean);
    const double rstd = 1.0 / std::sqrt(var / static_cast<double>(len) + eps);
    double mg = 0, mgx = 0;
    for (int64_t i = 0; i < len; ++i) {
      xhat[i] = (row[i] - mean) * rstd;
      g[i] = grow[i] * (pw ? pw[i] : 1.0);
      mg += g[i];
      mgx += g[i] * xhat[i];
      dw[i] += grow[i] * xhat[i];
      db[i] += grow[i];
    }
    mg /= static_cast<double>(len);
    mgx /= static_cast<double>(len);
    for (int64_t i = 0; i < len; ++i)
      dx.data<float>()[r * len + i] = static_cast<float>(rstd * (g[i] - mg - xhat[i] * mgx));
  }
  std::vector<Tensor> out = {dx};
  for (const auto& [t, sums] : {std::pair<const Tensor*, const std::vector<double>*>{weight, &dw}, {bias, &db}}) {
    if (t == nullptr) continue;
    Tensor d;
    if (want.at(out.size()) && t->defined()) {
      d = Tensor::Uninitialized(t->shape());
      for (int64_t i = 0; i < len; ++i) d.data<float>()[i] = static_cast<float>((*sums)[i]);
    }
    out.push_back(d);
  }
  return out;
}

// matmul, bmm: da = dy x b^T, db = a^T x dy, each summed over the batch dimensions it was broadcast in.
std::vector<Tensor> VjpMatmul(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>& want) {
  const Tensor &a = In(v, 0, "matmul"), &b = In(v, 1, "matmul");
  Tensor da, db;
  if (want.at(0)) da = SumToShape(F::matmul(dy, b.Transpose(-1, -2)), a.shape());
  if (want.at(1)) db = SumToShape(F::matmul(a.Transpose(-1, -2), dy), b.shape());
  return {da, db};
}

// narrow: dy in its place in a zero gradient of the input's shape.
std::vector<Tensor> VjpNarrow(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>&) {
  const Tensor& x = In(v, 0, "narrow");
  const int64_t d = NormalizeDim(ArgAs<int64_t>(v, 1, "narrow", "an integer"), x.dim(), "narrow dim");
  int64_t start = ArgAs<int64_t>(v, 2, "narrow", "an integer");
  if (start < 0) start += x.size(d);
  Tensor dx = Tensor::Zeros(x.shape());
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= x.size(i);
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.size(i);
  const int64_t row = dy.size(d) * inner;
  for (int64_t o = 0; o < outer; ++o) {
    std::copy(dy.data<float>() + o * row, dy.data<float>() + (o + 1) * row,
              dx.data<float>() + (o * x.size(d) + start) * inner);
  }
  return {dx};
}

std::vector<Tensor> VjpTranspose(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>&) {
  return {
      dy.Transpose(ArgAs<int64_t>(v, 1, "transpose", "an integer"), ArgAs<int64_t>(v, 2, "transpose", "an integer"))};
}

// permute: dy permuted back (the inverse order).
std::vector<Tensor> VjpPermute(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>&) {
  const std::vector<int64_t>& dims = ArgAs<std::vector<int64_t>>(v, 1, "permute", "a list of integers");
  std::vector<int64_t> inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    inverse[NormalizeDim(dims[i], dy.dim(), "permute dim")] = static_cast<int64_t>(i);
  }
  return {dy.Permute(inverse)};
}

// embedding: each output row's gradient added to the weight row it was read from (none to padding_idx's).
std::vector<Tensor> VjpEmbedding(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>& want) {
  const Tensor &idx = In(v, 0, "embedding"), &weight = In(v, 1, "embedding");
  if (!want.at(1)) return {Tensor(), Tensor()};
  const auto* pad = v.size() > 2 ? std::get_if<int64_t>(&v[2]) : nullptr;
  const int64_t dim = weight.size(1);
  Tensor dw = Tensor::Zeros(weight.shape());
  const float* pg = dy.data<float>();
  float* pd = dw.data<float>();
  for (int64_t i = 0, n = idx.numel(); i < n; ++i) {
    const int64_t r = idx.dtype() == DType::kI64 ? idx.data<int64_t>()[i] : idx.data<int32_t>()[i];
    if (pad != nullptr && r == *pad) continue;
    for (int64_t j = 0; j < dim; ++j) pd[r * dim + j] += pg[i * dim + j];
  }
  return {Tensor(), dw};
}

// conv_transpose2d: through the forward's (x, w, y) triples, dx += dy * w, dw += dy * x; db sums dy.
std::vector<Tensor> VjpConvTranspose2d(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>& want) {
  const Tensor &x = In(v, 0, "conv_transpose2d"), &w = In(v, 1, "conv_transpose2d");
  const Tensor* bias = OptionalIn(v, 2);
  F::ConvTranspose2dOptions o;
  o.stride = ArgAs<std::vector<int64_t>>(v, 3, "conv_transpose2d", "a list of integers");
  o.padding = ArgAs<std::vector<int64_t>>(v, 4, "conv_transpose2d", "a list of integers");
  o.output_padding = ArgAs<std::vector<int64_t>>(v, 5, "conv_transpose2d", "a list of integers");
  o.groups = ArgAs<int64_t>(v, 6, "conv_transpose2d", "an integer");
  o.dilation = ArgAs<std::vector<int64_t>>(v, 7, "conv_transpose2d", "a list of integers");
  const ConvTranspose2dGeometry g = F::ConvTranspose2dGeometryOf(x, w, Tensor(), o);
  Tensor dx = want.at(0) ? Tensor::Zeros(x.shape()) : Tensor(), dw = want.at(1) ? Tensor::Zeros(w.shape()) : Tensor();
  const float *px = x.data<float>(), *pw = w.data<float>(), *pg = dy.data<float>();
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t co = 0; co < g.out_channels; ++co) {
      const float* plane = pg + (n * g.out_channels + co) * g.out_h * g.out_w;
      ForEachTap(g, n, co, [&](int64_t xi, int64_t wi, int64_t yi) {
        if (dx.defined()) dx.data<float>()[xi] += plane[yi] * pw[wi];
        if (dw.defined()) dw.data<float>()[wi] += plane[yi] * px[xi];
      });
    }
  }
  std::vector<Tensor> out = {dx, dw};
  if (bias != nullptr) {
    Tensor db;
    if (want.at(2) && bias->defined()) {
      db = Tensor::Uninitialized({g.out_channels});
      for (int64_t co = 0; co < g.out_channels; ++co) {
        double s = 0;
        for (int64_t n = 0; n < g.batch; ++n) {
          const float* plane = pg + (n * g.out_channels + co) * g.out_h * g.out_w;
          for (int64_t i = 0; i < g.out_h * g.out_w; ++i) s += plane[i];
        }
        db.data<float>()[co] = static_cast<float>(s);
      }
    }
    out.push_back(db);
  }
  return out;
}

// channel_shuffle: the inverse shuffle (C / groups groups).
std::vector<Tensor> VjpChannelShuffle(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>&) {
  return {F::channel_shuffle(dy, dy.size(1) / ArgAs<int64_t>(v, 1, "channel_shuffle", "an integer"))};
}

// multi_head_attention: the forward's parts again, then back through each step with the backward of the
// ops it is made of: out projection, p v, softmax, q k^T (q's gradient divided by sqrt(D) as q was), the
// heads back into one [B, L, 3E] gradient of qkv, and the in projection.
std::vector<Tensor> VjpMultiheadAttention(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>& want) {
  const Tensor &x = In(v, 0, "multi_head_attention"), &in_w = In(v, 1, "multi_head_attention"),
               &out_w = In(v, 3, "multi_head_attention");
  const Tensor *in_b = OptionalIn(v, 2), *out_b = OptionalIn(v, 4);
  const bool batch_first = ArgAs<bool>(v, 6, "multi_head_attention", "a bool");
  // `want` and the result have one entry per argument that holds a tensor (a None bias has none).
  const std::vector<bool> present = {true, true, in_b != nullptr, true, out_b != nullptr};
  std::vector<bool> wanted(5, false);
  for (size_t i = 0, pos = 0; i < present.size(); ++i) {
    if (present[i]) wanted[i] = want.at(pos++);
  }
  wanted[2] = wanted[2] && in_b->defined();
  wanted[4] = wanted[4] && out_b->defined();
  const F::SelfAttentionParts s =
      F::SelfAttention(x, in_w, in_b ? *in_b : Tensor(), out_w, out_b ? *out_b : Tensor(),
                       ArgAs<int64_t>(v, 5, "multi_head_attention", "an integer"), batch_first);
  const int64_t b = s.batch, l = s.length, e = s.embed, h = s.heads, d = e / h;
  const std::vector<Tensor> out = VjpLinear({s.o, out_w, out_b ? OpArg(*out_b) : OpArg()}, s.y,
                                            batch_first ? dy : dy.Transpose(0, 1), {true, wanted[3], wanted[4]});
  const Tensor dheads = out[0].Reshape({b, l, h, d}).Permute({0, 2, 1, 3}).Reshape({b * h, l, d});
  const std::vector<Tensor> pv = VjpMatmul({s.p, s.v}, s.heads_out, dheads, {true, true});
  const Tensor ds = VjpSoftmax({s.p, int64_t{-1}}, s.p, pv[0], {true})[0];
  const std::vector<Tensor> qk = VjpMatmul({s.q, s.k.Transpose(1, 2)}, s.p, ds, {true, true});
  const float root = static_cast<float>(std::sqrt(static_cast<double>(d)));
  float* pdq = qk[0].data<float>();
  for (int64_t i = 0, n = qk[0].numel(); i < n; ++i) pdq[i] /= root;
  // [3, B, H, L, D] back to qkv's [B, L, 3, H, D].
  const Tensor dqkv = F::cat({qk[0].Reshape({1, b, h, l, d}), qk[1].Transpose(1, 2).Reshape({1, b, h, l, d}),
                              pv[1].Reshape({1, b, h, l, d})},
                             0)
                          .Permute({1, 3, 0, 2, 4})
                          .Reshape({b, l, 3 * e});
  std::vector<Tensor> in =
      VjpLinear({s.x, in_w, in_b ? OpArg(*in_b) : OpArg()}, s.qkv, dqkv, {wanted[0], wanted[1], wanted[2]});
  in.resize(3);
  if (in[0].defined() && !batch_first) in[0] = in[0].Transpose(0, 1);
  const std::vector<Tensor> grads = {in[0], in[1], in[2], out[1], out.size() > 2 ? out[2] : Tensor()};
  std::vector<Tensor> result;
  for (size_t i = 0; i < present.size(); ++i) {
    if (present[i]) result.push_back(grads[i]);
  }
  return result;
}

// select: dy in its place (entry `index` of `dim`) in a zero gradient of the input's shape.
std::vector<Tensor> VjpSelect(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>&) {
  const Tensor& x = In(v, 0, "select");
  const int64_t d = NormalizeDim(ArgAs<int64_t>(v, 1, "select", "an integer"), x.dim(), "select dim");
  Shape kept = x.shape();
  kept[static_cast<size_t>(d)] = 1;
  return VjpNarrow({x, d, ArgAs<int64_t>(v, 2, "select", "an integer"), int64_t{1}}, Tensor(), dy.Reshape(kept),
                   {true});
}

// expand and expand_as: dy summed over the broadcast dimensions, back to the input's shape (expand_as's other
// tensor, read for its shape only, gets none).
std::vector<Tensor> VjpExpand(const A& v, const Tensor&, const Tensor& dy, const std::vector<bool>&) {
  Tensor dx = SumToShape(dy, In(v, 0, "expand").shape());
  if (v.size() > 1 && std::holds_alternative<Tensor>(v[1])) return {dx, Tensor()};
  return {dx};
}

}  // namespace nn
}  // namespace qfx
