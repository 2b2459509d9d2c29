// qfx nn: the standard modules (see include/qfx/nn/modules.h).
#include "qfx/nn/modules.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "qfx/core/trace.h"
#include "qfx/kernels/f32.h"
#include "src/nn/fused_eval.h"

namespace qfx {
namespace nn {
namespace {

// PyTorch's default: kaiming_uniform_(a=sqrt(5)) gives bound 1/sqrt(fan_in); bias uses the same bound.
void DefaultInit(const Tensor& weight, const Tensor& bias, int64_t fan_in) {
  const float bound = fan_in > 0 ? 1.f / std::sqrt(static_cast<float>(fan_in)) : 0.f;
  UniformInit(weight, -bound, bound);
  if (bias.defined()) UniformInit(bias, -bound, bound);
}

}  // namespace

Conv2d::Conv2d(int64_t in, int64_t out, Size2 k, Conv2dArgs args) : in_channels(in), out_channels(out), kernel_size(k) {
  if (in <= 0 || out <= 0 || k.h <= 0 || k.w <= 0 || args.groups <= 0 || in % args.groups || out % args.groups) {
    ThrowInvalid("Conv2d(", in, ", ", out, ", (", k.h, ", ", k.w, "), groups=", args.groups,
                 "): channels and kernel size must be positive and divisible by groups");
  }
  if (args.stride.h <= 0 || args.stride.w <= 0 || args.dilation.h <= 0 || args.dilation.w <= 0 || args.padding.h < 0 ||
      args.padding.w < 0) {
    ThrowInvalid("Conv2d(", in, ", ", out, ", (", k.h, ", ", k.w, ")): stride (", args.stride.h, ", ", args.stride.w,
                 ") and dilation (", args.dilation.h, ", ", args.dilation.w, ") must be positive and padding (",
                 args.padding.h, ", ", args.padding.w, ") non-negative");
  }
  options.stride = args.stride.vec();
  options.padding = args.padding.vec();
  options.dilation = args.dilation.vec();
  options.groups = args.groups;
  weight = register_parameter("weight", Tensor::Empty({out, in / args.groups, k.h, k.w}));
  if (args.bias) bias = register_parameter("bias", Tensor::Empty({out}));
  DefaultInit(weight, bias, in / args.groups * k.h * k.w);
}

ConvTranspose2d::ConvTranspose2d(int64_t in, int64_t out, Size2 k, ConvTranspose2dArgs a)
    : in_channels(in), out_channels(out), kernel_size(k) {
  if (in <= 0 || out <= 0 || k.h <= 0 || k.w <= 0 || a.groups <= 0 || in % a.groups || out % a.groups) {
    ThrowInvalid("ConvTranspose2d(", in, ", ", out, ", (", k.h, ", ", k.w, "), groups=", a.groups,
                 "): channels and kernel size must be positive and divisible by groups");
  }
  options.stride = a.stride.vec();
  options.padding = a.padding.vec();
  options.output_padding = a.output_padding.vec();
  options.dilation = a.dilation.vec();
  options.groups = a.groups;
  weight = register_parameter("weight", Tensor::Empty({in, out / a.groups, k.h, k.w}));
  if (a.bias) bias = register_parameter("bias", Tensor::Empty({out}));
  DefaultInit(weight, bias, out / a.groups * k.h * k.w);
}

Conv2dArgs Conv2dArgsOf(const F::Conv2dOptions& o, bool bias) {
  const auto pair = [](const std::vector<int64_t>& v) { return v.size() == 1 ? Size2(v[0]) : Size2(v.at(0), v.at(1)); };
  return Conv2dArgs{pair(o.stride), pair(o.padding), pair(o.dilation), o.groups, bias};
}

Conv2dArgs Conv2d::args() const { return Conv2dArgsOf(options, bias.defined()); }

Tensor Conv2d::forward(const Tensor& x) { return F::conv2d(x, weight, bias, options); }

Linear::Linear(int64_t in, int64_t out, bool has_bias) : in_features(in), out_features(out) {
  if (in <= 0 || out <= 0) ThrowInvalid("Linear(", in, ", ", out, "): features must be positive");
  weight = register_parameter("weight", Tensor::Empty({out, in}));
  if (has_bias) bias = register_parameter("bias", Tensor::Empty({out}));
  DefaultInit(weight, bias, in);
}

Tensor Linear::forward(const Tensor& x) { return F::linear(x, weight, bias); }

MultiheadAttention::MultiheadAttention(int64_t e, int64_t h, double p, bool bias, bool first)
    : embed_dim(e), num_heads(h), dropout(p), batch_first(first) {
  if (e <= 0 || h <= 0 || e % h != 0 || e > (int64_t{1} << 20)) {
    ThrowInvalid("MultiheadAttention(", e, ", ", h,
                 "): embed_dim must be positive, at most 2^20 and divisible by num_heads (positive)");
  }
  if (!(p >= 0 && p <= 1)) ThrowInvalid("MultiheadAttention: dropout ", p, " must lie in [0, 1]");
  in_proj_weight = register_parameter("in_proj_weight", Tensor::Empty({3 * e, e}));
  const float bound = static_cast<float>(std::sqrt(6.0 / static_cast<double>(4 * e)));  // xavier_uniform_
  UniformInit(in_proj_weight, -bound, bound);
  if (bias) in_proj_bias = register_parameter("in_proj_bias", Tensor::Zeros({3 * e}));
  out_proj = register_module("out_proj", std::make_shared<NonDynamicallyQuantizableLinear>(e, e, bias));
  if (bias) out_proj->bias.Fill(0.f);
}

Tensor MultiheadAttention::forward(const Tensor& x) {
  if (is_training() && dropout > 0) {
    ThrowInvalid("MultiheadAttention: attention dropout (", dropout,
                 ") in training is not supported; build it with dropout 0");
  }
  return F::multi_head_attention(x, in_proj_weight, in_proj_bias, out_proj->weight, out_proj->bias, num_heads,
                                 batch_first);
}

Tensor MultiheadAttention::forward_args(const ForwardArgs& args) {
  if (args.values.size() == 1) return forward(args.tensor(args.values[0].first));
  const Tensor q = args.tensor("query");
  for (const char* name : {"key", "value"}) {
    const Tensor t = args.tensor(name);
    const bool same =
        t.is_proxy() ? t.proxy_handle() == q.proxy_handle() : t.SharesStorage(q) && t.shape() == q.shape();
    if (!same) {
      ThrowInvalid("MultiheadAttention: ", name,
                   " must be the query (self-attention); cross-attention is not "
                   "supported yet");
    }
  }
  return forward(q);
}

BatchNormBase::BatchNormBase(int64_t c, double eps, double momentum) : num_features(c), eps(eps), momentum(momentum) {
  if (c <= 0) ThrowInvalid("BatchNorm(", c, "): num_features must be positive");
  weight = register_parameter("weight", Tensor::Full({c}, 1.f));
  bias = register_parameter("bias", Tensor::Zeros({c}));
  running_mean = register_buffer("running_mean", Tensor::Zeros({c}));
  running_var = register_buffer("running_var", Tensor::Full({c}, 1.f));
  num_batches_tracked = register_buffer("num_batches_tracked", Tensor::Zeros({}, DType::kI64));
}

Tensor BatchNormBase::forward(const Tensor& x) {
  CheckInput(x);
  if (is_training()) num_batches_tracked.data<int64_t>()[0] += 1;
  return F::batch_norm(x, running_mean, running_var, weight, bias, is_training(), momentum, eps);
}

void BatchNorm2d::CheckInput(const Tensor& x) const {
  if (x.dim() != 4) ThrowInvalid("BatchNorm2d: input ", x.ToString(), " must be 4-d [N, C, H, W]");
}

void BatchNorm1d::CheckInput(const Tensor& x) const {
  if (x.dim() != 2 && x.dim() != 3) ThrowInvalid("BatchNorm1d: input ", x.ToString(), " must be [N, C] or [N, C, L]");
}

LayerNorm::LayerNorm(std::vector<int64_t> shape, double eps, bool affine)
    : normalized_shape(std::move(shape)), eps(eps) {
  bool ok = !normalized_shape.empty();
  for (int64_t d : normalized_shape) ok = ok && d > 0;
  if (!ok) ThrowInvalid("LayerNorm(", ShapeToString(normalized_shape), "): normalized_shape must be positive sizes");
  if (!(eps >= 0)) ThrowInvalid("LayerNorm: eps ", eps, " must be non-negative");
  if (affine) {
    weight = register_parameter("weight", Tensor::Full(normalized_shape, 1.f));
    bias = register_parameter("bias", Tensor::Zeros(normalized_shape));
  }
}

Embedding::Embedding(int64_t num, int64_t dim, std::optional<int64_t> padding)
    : num_embeddings(num), embedding_dim(dim), padding_idx(padding) {
  if (num <= 0 || dim <= 0) ThrowInvalid("Embedding(", num, ", ", dim, "): sizes must be positive");
  if (padding && (*padding < -num || *padding >= num)) {
    ThrowInvalid("Embedding(", num, ", ", dim, "): padding_idx ", *padding, " must lie in [-", num, ", ", num, ")");
  }
  if (padding_idx && *padding_idx < 0) *padding_idx += num;
  weight = register_parameter("weight", Tensor::Empty({num, dim}));
  NormalInit(weight, 0.f, 1.f);
  if (padding_idx) std::fill_n(weight.data<float>() + *padding_idx * dim, dim, 0.f);
}

ChannelShuffle::ChannelShuffle(int64_t g) : groups(g) {
  if (g <= 0) ThrowInvalid("ChannelShuffle(", g, "): groups must be positive");
}

Hardtanh::Hardtanh(float lo, float hi) : min_val(lo), max_val(hi) {
  if (!(lo < hi)) ThrowInvalid("Hardtanh: min_val ", lo, " must be less than max_val ", hi);
}

namespace {

// PyTorch's stride=None: each axis's stride 0 is that axis's kernel size.
std::vector<int64_t> PoolStride(Size2 k, Size2 stride) {
  return {stride.h ? stride.h : k.h, stride.w ? stride.w : k.w};
}

}  // namespace

MaxPool2d::MaxPool2d(Size2 k, Size2 stride, Size2 padding, Size2 dilation, bool ceil_mode) {
  options.kernel_size = k.vec();
  options.stride = PoolStride(k, stride);
  options.padding = padding.vec();
  options.dilation = dilation.vec();
  options.ceil_mode = ceil_mode;
}

AvgPool2d::AvgPool2d(Size2 k, Size2 stride, Size2 padding, bool ceil_mode, bool count_include_pad) {
  options.kernel_size = k.vec();
  options.stride = PoolStride(k, stride);
  options.padding = padding.vec();
  options.ceil_mode = ceil_mode;
  options.count_include_pad = count_include_pad;
}

Upsample::Upsample(F::InterpolateOptions o) : options(std::move(o)) {
  if (options.size.empty() == options.scale_factor.empty() || options.size.size() > 2 ||
      options.scale_factor.size() > 2) {
    ThrowInvalid("Upsample: give exactly one of size and scale_factor, each one value or two (h, w)");
  }
  for (int64_t s : options.size) {
    if (s <= 0) ThrowInvalid("Upsample: size ", s, " must be positive");
  }
  for (double s : options.scale_factor) {
    if (!(s > 0) || !std::isfinite(s)) ThrowInvalid("Upsample: scale_factor ", s, " must be positive");
  }
  if (options.mode == F::InterpolateOptions::Mode::kNearest && options.align_corners) {
    ThrowInvalid("Upsample: align_corners only applies to mode 'bilinear'");
  }
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int64_t h, int64_t w) : output_size{h, w ? w : h} {}

Dropout::Dropout(double p) : p(p) {
  if (p < 0 || p > 1) ThrowInvalid("Dropout: p ", p, " must be in [0, 1]");
}

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (const auto& m : modules) push_back(m);
}

void Sequential::push_back(std::shared_ptr<Module> module) {
  register_module(std::to_string(size()), std::move(module));
}

void Sequential::push_back(const std::string& name, std::shared_ptr<Module> module) {
  register_module(name, std::move(module));
}

namespace {

// A child whose call is its forward alone: no hooks to run.
bool PlainCall(const Module& m) { return m.hooks().empty(); }

// If children[i], [i + 1] (and [i + 2]) are Conv2d -> BatchNorm2d in eval mode (-> ReLU / ReLU6 / Hardtanh),
// all without hooks, and x is a concrete fp32 tensor with no tracer running, runs them as one fused pass
// (bit for bit their result: src/nn/fused_eval.h) into *y and returns how many children it ran; else 0.
size_t FuseConvBnActivation(const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children, size_t i,
                            const Tensor& x, Tensor* y) {
  if (i + 1 >= children.size() || ActiveTraceHook() != nullptr || x.is_proxy() || x.is_quantized() ||
      x.dtype() != DType::kF32 || x.dim() != 4) {
    return 0;
  }
  const Module& first = *children[i].second;
  const Module& second = *children[i + 1].second;
  const auto* conv = dynamic_cast<const Conv2d*>(&first);
  const auto* bn = dynamic_cast<const BatchNorm2d*>(&second);
  if (conv == nullptr || bn == nullptr || first.type_name() != "Conv2d" || second.type_name() != "BatchNorm2d" ||
      bn->is_training() || !PlainCall(first) || !PlainCall(second) || !bn->running_mean.defined() ||
      !bn->running_var.defined()) {
    return 0;
  }
  using Activation = kernels::ConvEpilogue::Activation;
  Activation activation = Activation::kNone;
  float lo = 0.f, hi = 0.f;
  if (i + 2 < children.size() && PlainCall(*children[i + 2].second)) {
    const Module& act = *children[i + 2].second;
    if (act.type_name() == "ReLU") {
      activation = Activation::kRelu;
    } else if (act.type_name() == "ReLU6") {
      activation = Activation::kHardtanh, hi = 6.f;  // F::relu6 is hardtanh(0, 6)
    } else if (const auto* ht = dynamic_cast<const Hardtanh*>(&act); ht != nullptr && act.type_name() == "Hardtanh") {
      activation = Activation::kHardtanh, lo = ht->min_val, hi = ht->max_val;
    }
  }
  *y = F::conv2d_batch_norm_eval(x, conv->weight, conv->bias, conv->options, bn->running_mean, bn->running_var,
                                 bn->weight, bn->bias, bn->eps, activation, lo, hi);
  return activation == Activation::kNone ? 2 : 3;
}

}  // namespace

Tensor Sequential::forward(const Tensor& x) {
  const auto& children = named_children();
  Tensor y = x;
  for (size_t i = 0; i < children.size();) {
    Tensor fused;
    if (const size_t ran = FuseConvBnActivation(children, i, y, &fused)) {
      y = std::move(fused);
      i += ran;
      continue;
    }
    y = (*children[i].second)(y);
    ++i;
  }
  return y;
}

void ModuleList::push_back(std::shared_ptr<Module> module) {
  register_module(std::to_string(size()), std::move(module));
}

}  // namespace nn
}  // namespace qfx
