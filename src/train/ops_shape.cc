// qfx train: div's backward; apply() records any op with a registered backward (src/nn/ops.cc,
// src/nn/op_gradients.cc): add, mul, cat, reshape, mean, softmax, conv2d, linear, the pools.
#include <algorithm>
#include <utility>
#include <vector>

#include "qfx/nn/geometry.h"
#include "qfx/nn/ops.h"
#include "qfx/train/ops.h"

namespace qfx {
namespace train {
namespace ag {
using nn::SumToShape;

Var add(Tape& t, const Var& a, const Var& b) { return apply(t, OpId::kAdd, {a, b}); }

Var mul(Tape& t, const Var& a, const Var& b) { return apply(t, OpId::kMul, {a, b}); }

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

Var apply(Tape& t, OpId op, const std::vector<Value>& args) {
  const nn::OpSchema& schema = nn::GetOpSchema(op);
  if (schema.vjp == nullptr) ThrowInvalid(schema.name, " has no registered backward");
  std::vector<OpArg> values;
  std::vector<Var> inputs;
  for (const Value& a : args) {
    if (const auto* v = std::get_if<Var>(&a)) {
      values.push_back(v->value);
      inputs.push_back(*v);
    } else if (const auto* list = std::get_if<std::vector<Var>>(&a)) {
      std::vector<Tensor> tensors;
      for (const Var& x : *list) tensors.push_back(x.value);
      values.push_back(tensors);
      inputs.insert(inputs.end(), list->begin(), list->end());
    } else {
      values.push_back(ConstantAs<OpArg>(a));
    }
  }
  const Tensor y = nn::RunOp(op, values);
  std::vector<bool> want;
  for (const Var& v : inputs) want.push_back(v.requires_grad());
  const nn::OpSchema::VjpFn vjp = schema.vjp;
  return t.Record(y, inputs, [values, y, want, vjp](const Tensor& dy) { return vjp(values, y, dy, want); });
}

Var conv2d(Tape& t, const Var& x, const Var& w, const Var& b, const F::Conv2dOptions& opt) {
  return apply(t, OpId::kConv2d, {x, w, b, opt.stride, opt.padding, opt.dilation, opt.groups});
}

Var linear(Tape& t, const Var& x, const Var& w, const Var& b) { return apply(t, OpId::kLinear, {x, w, b}); }

Var softmax(Tape& t, const Var& x, int64_t dim) { return apply(t, OpId::kSoftmax, {x, dim}); }

Var max_pool2d(Tape& t, const Var& x, const F::Pool2dOptions& o) {
  return apply(t, OpId::kMaxPool2d, {x, o.kernel_size, o.stride, o.padding, o.dilation, o.ceil_mode});
}

Var avg_pool2d(Tape& t, const Var& x, const F::Pool2dOptions& o) {
  return apply(t, OpId::kAvgPool2d, {x, o.kernel_size, o.stride, o.padding, o.ceil_mode, o.count_include_pad});
}

Var adaptive_avg_pool2d(Tape& t, const Var& x, const std::vector<int64_t>& output_size) {
  return apply(t, OpId::kAdaptiveAvgPool2d, {x, output_size});
}

Var cat(Tape& t, const std::vector<Var>& xs, int64_t dim) { return apply(t, OpId::kCat, {xs, dim}); }

Var reshape(Tape& t, const Var& x, Shape shape) { return apply(t, OpId::kReshape, {x, std::move(shape)}); }

Var transpose(Tape& t, const Var& x, int64_t dim0, int64_t dim1) {
  return apply(t, OpId::kMethodTranspose, {x, dim0, dim1});
}

Var permute(Tape& t, const Var& x, std::vector<int64_t> dims) {
  return apply(t, OpId::kMethodPermute, {x, std::move(dims)});
}

Var layer_norm(Tape& t, const Var& x, std::vector<int64_t> normalized_shape, const Var& weight, const Var& bias,
               double eps) {
  return apply(t, OpId::kLayerNorm, {x, std::move(normalized_shape), weight, bias, eps});
}

Var matmul(Tape& t, const Var& a, const Var& b) { return apply(t, OpId::kMatmul, {a, b}); }

Var bmm(Tape& t, const Var& a, const Var& b) { return apply(t, OpId::kBmm, {a, b}); }

Var embedding(Tape& t, const Var& indices, const Var& weight, std::optional<int64_t> padding_idx) {
  if (padding_idx) return apply(t, OpId::kEmbedding, {indices, weight, *padding_idx});
  return apply(t, OpId::kEmbedding, {indices, weight});
}

Var conv_transpose2d(Tape& t, const Var& x, const Var& w, const Var& b, const F::ConvTranspose2dOptions& o) {
  return apply(t, OpId::kConvTranspose2d, {x, w, b, o.stride, o.padding, o.output_padding, o.groups, o.dilation});
}

Var channel_shuffle(Tape& t, const Var& x, int64_t groups) { return apply(t, OpId::kChannelShuffle, {x, groups}); }
Var narrow(Tape& t, const Var& x, int64_t dim, int64_t start, int64_t length) {
  return apply(t, OpId::kNarrow, {x, dim, start, length});
}
Var select(Tape& t, const Var& x, int64_t dim, int64_t index) { return apply(t, OpId::kSelect, {x, dim, index}); }
Var expand(Tape& t, const Var& x, std::vector<int64_t> sizes) {
  return apply(t, OpId::kMethodExpand, {x, std::move(sizes)});
}
Var expand_as(Tape& t, const Var& x, const Var& other) { return apply(t, OpId::kMethodExpandAs, {x, other}); }
Var multi_head_attention(Tape& t, const Var& x, const Var& in_w, const Var& in_b, const Var& out_w, const Var& out_b,
                         int64_t num_heads, bool batch_first) {
  return apply(t, OpId::kMultiheadAttention, {x, in_w, in_b, out_w, out_b, num_heads, batch_first});
}

Var interpolate(Tape& t, const Var& x, const F::InterpolateOptions& o) {
  const double sh = o.scale_factor.empty() ? 0.0 : o.scale_factor[0],
               sw = o.scale_factor.empty() ? 0.0 : o.scale_factor.back();
  return apply(t, OpId::kInterpolate, {x, o.size, sh, sw, static_cast<int64_t>(o.mode), o.align_corners});
}

Var mean(Tape& t, const Var& x, const std::vector<int64_t>& dims, bool keepdim) {
  return apply(t, OpId::kMean, {x, dims, keepdim});
}

}  // namespace ag
}  // namespace train
}  // namespace qfx
