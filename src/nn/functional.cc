// qfx nn: fp32 functional ops (see include/qfx/nn/functional.h). Shape checks first, then loops.
#include "qfx/nn/functional.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "qfx/core/parallel.h"
#include "qfx/core/trace.h"
#include "qfx/kernels/f32.h"
#include "qfx/kernels/int8.h"
#include "qfx/nn/geometry.h"
#include "src/nn/functional_internal.h"
#include "src/nn/fused_eval.h"

namespace qfx {
namespace F {
namespace {

// Share-qparams ops on a quantized input: computed on the dequantized values and quantized back with the
// input's own qparams (exact for max / clamp ops, round-half-to-even for averages).
#define QFX_QUANTIZED_VIA_FLOAT(x, call)                                        \
  do {                                                                          \
    if ((x).is_quantized()) {                                                   \
      const Tensor qfx_f_ = dequantize(x);                                      \
      return quantize(call(qfx_f_), (x).quant().scale, (x).quant().zero_point); \
    }                                                                           \
  } while (0)

// Checks rank and (unless `quantized_ok` and x is a quint8 tensor) that x is f32.
void CheckRank(const char* op, const Tensor& x, int64_t rank, const char* layout, bool quantized_ok = false) {
  if (!(quantized_ok && x.is_quantized() && x.dtype() == DType::kU8)) CheckF32(op, x);
  if (x.dim() != rank) {
    ThrowInvalid(op, ": input ", x.ToString(), " must have rank ", rank, " (", layout, ")");
  }
}

// Expands an int list of size 1 or 2 into (h, w); throws naming the op and the parameter.
std::pair<int64_t, int64_t> Pair(const char* op, const char* name, const std::vector<int64_t>& v) {
  if (v.size() == 1) return {v[0], v[0]};
  if (v.size() == 2) return {v[0], v[1]};
  ThrowInvalid(op, ": ", name, " must have 1 or 2 values, got ", v.size());
}

constexpr int64_t kParallelGrain = 1 << 15;  // elements per thread below which one thread is faster

template <typename Fn>
Tensor Map(const char* op, const Tensor& x, Fn fn) {
  CheckF32(op, x);
  Tensor y = Tensor::Uninitialized(x.shape());
  const float* px = x.data<float>();
  float* py = y.data<float>();
  ParallelFor(x.numel(), kParallelGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) py[i] = fn(px[i]);
  });
  return y;
}

template <typename Fn>
Tensor Binary(const char* op, const Tensor& a, const Tensor& b, Fn fn) {
  CheckF32(op, a, "first operand");
  CheckF32(op, b, "second operand");
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  if (a.shape() == b.shape()) {
    Tensor y = Tensor::Uninitialized(a.shape());
    float* py = y.data<float>();
    ParallelFor(a.numel(), kParallelGrain, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) py[i] = fn(pa[i], pb[i]);
    });
    return y;
  }
  const Shape out = nn::BroadcastShape(op, a.shape(), b.shape());
  Tensor y = Tensor::Uninitialized(out);
  float* py = y.data<float>();
  nn::ForEachBroadcast(out, nn::BroadcastStrides(a.shape(), out), nn::BroadcastStrides(b.shape(), out),
                       [&](int64_t i, int64_t ia, int64_t ib) { py[i] = fn(pa[ia], pb[ib]); });
  return y;
}

struct PoolGeometry {
  int64_t kh, kw, sh, sw, ph, pw, dh, dw, oh, ow;
};

// For each output position o along one axis: the taps [first, second) whose input lies inside [0, in)
// (taps play the role of outputs: tap t reads o * stride - pad + t * dil).
std::vector<std::pair<int64_t, int64_t>> ValidTaps(int64_t out, int64_t stride, int64_t pad, int64_t dil, int64_t k,
                                                   int64_t in) {
  std::vector<std::pair<int64_t, int64_t>> taps(out);
  for (int64_t o = 0; o < out; ++o) taps[o] = kernels::ValidOutputRange(k, dil, o * stride - pad, in);
  return taps;
}

PoolGeometry MakePool(const char* op, const Tensor& x, const Pool2dOptions& opt) {
  CheckRank(op, x, 4, "N, C, H, W", /*quantized_ok=*/true);
  PoolGeometry g;
  std::tie(g.kh, g.kw) = Pair(op, "kernel_size", opt.kernel_size);
  std::tie(g.sh, g.sw) = opt.stride.empty() ? std::make_pair(g.kh, g.kw) : Pair(op, "stride", opt.stride);
  std::tie(g.ph, g.pw) = Pair(op, "padding", opt.padding);
  std::tie(g.dh, g.dw) = Pair(op, "dilation", opt.dilation);
  if (g.kh <= 0 || g.kw <= 0 || g.sh <= 0 || g.sw <= 0 || g.dh <= 0 || g.dw <= 0) {
    ThrowInvalid(op, ": kernel_size, stride and dilation must be positive");
  }
  if (g.ph * 2 > g.kh || g.pw * 2 > g.kw) ThrowInvalid(op, ": padding must be at most half the kernel size");
  g.oh = nn::PoolOutSize(x.size(2), g.kh, g.sh, g.ph, g.dh, opt.ceil_mode);
  g.ow = nn::PoolOutSize(x.size(3), g.kw, g.sw, g.pw, g.dw, opt.ceil_mode);
  if (g.oh <= 0 || g.ow <= 0) ThrowInvalid(op, ": input ", x.ToString(), " is too small for the kernel");
  return g;
}

}  // namespace

kernels::Conv2dGeometry Conv2dGeometryOf(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                         const Conv2dOptions& opt) {
  CheckRank("conv2d", x, 4, "N, C, H, W");
  CheckF32("conv2d", weight, "weight");
  if (weight.dim() != 4) ThrowInvalid("conv2d: weight ", weight.ToString(), " must have rank 4");
  kernels::Conv2dGeometry g;
  g.batch = x.size(0);
  g.in_channels = x.size(1);
  g.in_h = x.size(2);
  g.in_w = x.size(3);
  g.out_channels = weight.size(0);
  g.kernel_h = weight.size(2);
  g.kernel_w = weight.size(3);
  g.groups = opt.groups;
  std::tie(g.stride_h, g.stride_w) = Pair("conv2d", "stride", opt.stride);
  std::tie(g.pad_h, g.pad_w) = Pair("conv2d", "padding", opt.padding);
  std::tie(g.dilation_h, g.dilation_w) = Pair("conv2d", "dilation", opt.dilation);
  if (g.groups <= 0 || g.out_channels % g.groups != 0 || g.in_channels % g.groups != 0) {
    ThrowInvalid("conv2d: groups ", g.groups, " must divide in_channels ", g.in_channels, " and out_channels ",
                 g.out_channels);
  }
  if (weight.size(1) * g.groups != g.in_channels) {
    ThrowInvalid("conv2d: input ", x.ToString(), " has ", g.in_channels, " channels but weight ", weight.ToString(),
                 " expects ", weight.size(1) * g.groups, " (", weight.size(1), " x groups ", g.groups, ")");
  }
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != g.out_channels)) {
    ThrowInvalid("conv2d: bias ", bias.ToString(), " must be [", g.out_channels, "]");
  }
  if (g.stride_h <= 0 || g.stride_w <= 0 || g.dilation_h <= 0 || g.dilation_w <= 0 || g.pad_h < 0 || g.pad_w < 0) {
    ThrowInvalid("conv2d: stride and dilation must be positive and padding non-negative");
  }
  if (g.out_h() <= 0 || g.out_w() <= 0) {
    ThrowInvalid("conv2d: input ", x.ToString(), " is smaller than the dilated kernel ", weight.ToString());
  }
  return g;
}

// Each defined batch-norm parameter must be [c]; describe() names the input in the error.
template <class Describe>
void CheckBatchNormParameters(int64_t c, std::initializer_list<const Tensor*> parameters, const Describe& describe) {
  for (const Tensor* t : parameters) {
    if (t->defined() && (t->dim() != 1 || t->size(0) != c)) {
      ThrowInvalid("batch_norm: parameter ", t->ToString(), " must be [", c, "] for input ", describe());
    }
  }
}

// Channel ch of a batch norm as y = x * scale + shift, from its statistics.
void BatchNormScaleShift(double mean, double var, const Tensor& weight, const Tensor& bias, double eps, int64_t ch,
                         float* scale, float* shift) {
  const double w = weight.defined() ? weight.data<float>()[ch] : 1.0;
  const double b0 = bias.defined() ? bias.data<float>()[ch] : 0.0;
  *scale = static_cast<float>(w / std::sqrt(var + eps));
  *shift = static_cast<float>(b0 - mean * w / std::sqrt(var + eps));
}

Tensor conv2d_batch_norm_eval(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt,
                              const Tensor& running_mean, const Tensor& running_var, const Tensor& bn_weight,
                              const Tensor& bn_bias, double eps, kernels::ConvEpilogue::Activation activation, float lo,
                              float hi) {
  CheckF32("conv2d", x);
  const kernels::Conv2dGeometry g = Conv2dGeometryOf(x, weight, bias, opt);
  const int64_t c = g.out_channels;
  CheckBatchNormParameters(c, {&running_mean, &running_var, &bn_weight, &bn_bias},
                           [&] { return absl::StrCat("[", g.batch, ", ", c, ", ", g.out_h(), ", ", g.out_w(), "]"); });
  std::vector<float> scale(c), shift(c);
  for (int64_t ch = 0; ch < c; ++ch) {
    BatchNormScaleShift(running_mean.data<float>()[ch], running_var.data<float>()[ch], bn_weight, bn_bias, eps, ch,
                        &scale[ch], &shift[ch]);
  }
  kernels::ConvEpilogue post;
  post.scale = scale.data();
  post.shift = shift.data();
  post.activation = activation;
  post.lo = lo;
  post.hi = hi;
  Tensor y = Tensor::Uninitialized({g.batch, c, g.out_h(), g.out_w()});
  kernels::Conv2dF32(g, x.data<float>(), weight.data<float>(), bias.defined() ? bias.data<float>() : nullptr, post,
                     y.data<float>());
  return y;
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt) {
  QFX_TRACE_OP(OpId::kConv2d, x, weight, Optional(bias), opt.stride, opt.padding, opt.dilation, opt.groups);
  const kernels::Conv2dGeometry g = Conv2dGeometryOf(x, weight, bias, opt);
  Tensor y = Tensor::Uninitialized({g.batch, g.out_channels, g.out_h(), g.out_w()});
  kernels::Conv2dF32(g, x.data<float>(), weight.data<float>(), bias.defined() ? bias.data<float>() : nullptr,
                     y.data<float>());
  return y;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  QFX_TRACE_OP(OpId::kLinear, x, weight, Optional(bias));
  CheckF32("linear", x);
  CheckF32("linear", weight, "weight");
  if (weight.dim() != 2) ThrowInvalid("linear: weight ", weight.ToString(), " must be [out, in]");
  if (x.dim() < 1 || x.size(-1) != weight.size(1)) {
    ThrowInvalid("linear: input ", x.ToString(), " must end in in_features ", weight.size(1), " of weight ",
                 weight.ToString());
  }
  const int64_t out = weight.size(0), in = weight.size(1), rows = x.numel() / std::max<int64_t>(in, 1);
  if (bias.defined() && (bias.dim() != 1 || bias.size(0) != out)) {
    ThrowInvalid("linear: bias ", bias.ToString(), " must be [", out, "]");
  }
  Shape ys = x.shape();
  ys.back() = out;
  Tensor y = Tensor::Uninitialized(ys);
  kernels::GemmArgs g;
  g.m = rows;
  g.n = out;
  g.k = in;
  g.a = x.data<float>();
  g.lda = in;
  g.b = weight.data<float>();
  g.b_row_stride = 1;
  g.b_col_stride = in;
  g.c = y.data<float>();
  g.ldc = out;
  kernels::GemmF32(g);
  if (bias.defined()) {
    const float* pb = bias.data<float>();
    float* py = y.data<float>();
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < out; ++j) py[r * out + j] += pb[j];
    }
  }
  return y;
}

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  QFX_TRACE_OP(OpId::kBatchNorm, x, Optional(running_mean), Optional(running_var), Optional(weight), Optional(bias),
               training, momentum, eps);
  CheckF32("batch_norm", x);
  if (x.dim() < 2) ThrowInvalid("batch_norm: input ", x.ToString(), " must be [N, C, ...]");
  const int64_t n = x.size(0), c = x.size(1), inner = x.numel() / std::max<int64_t>(1, n * c);
  CheckBatchNormParameters(c, {&running_mean, &running_var, &weight, &bias}, [&] { return x.ToString(); });
  if (!training && (!running_mean.defined() || !running_var.defined())) {
    ThrowInvalid("batch_norm: eval mode needs running_mean and running_var");
  }
  const int64_t count = n * inner;
  if (training && count <= 1) {
    ThrowInvalid("batch_norm: training needs more than one value per channel, got input ", x.ToString());
  }
  Tensor y = Tensor::Uninitialized(x.shape());
  const float* px = x.data<float>();
  float* py = y.data<float>();
  std::vector<float> scale(c), shift(c);
  // Per-channel statistics (channels are independent: parallel over them).
  ParallelFor(c, training ? 1 : c, [&](int64_t c0, int64_t c1) {
    for (int64_t ch = c0; ch < c1; ++ch) {
      double mean, var;
      if (training) {
        double sum = 0, sq = 0;
        for (int64_t b = 0; b < n; ++b) {
          const float* p = px + (b * c + ch) * inner;
          for (int64_t i = 0; i < inner; ++i) sum += p[i];
        }
        mean = sum / count;
        for (int64_t b = 0; b < n; ++b) {
          const float* p = px + (b * c + ch) * inner;
          for (int64_t i = 0; i < inner; ++i) sq += (p[i] - mean) * (p[i] - mean);
        }
        var = sq / count;
        if (running_mean.defined()) {
          float& rm = running_mean.data<float>()[ch];
          float& rv = running_var.data<float>()[ch];
          rm = static_cast<float>((1 - momentum) * rm + momentum * mean);
          rv = static_cast<float>((1 - momentum) * rv + momentum * sq / (count - 1));
        }
      } else {
        mean = running_mean.data<float>()[ch];
        var = running_var.data<float>()[ch];
      }
      BatchNormScaleShift(mean, var, weight, bias, eps, ch, &scale[ch], &shift[ch]);
    }
  });
  ParallelFor(n * c, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, inner)), [&](int64_t lo, int64_t hi) {
    for (int64_t plane = lo; plane < hi; ++plane) {
      const float* p = px + plane * inner;
      float* q = py + plane * inner;
      const float sc = scale[plane % c], sh = shift[plane % c];
      for (int64_t i = 0; i < inner; ++i) q[i] = p[i] * sc + sh;
    }
  });
  return y;
}

// relu / hardtanh on a quantized tensor: an integer clamp to the quantized bounds, which equals
// quantize(clamp(dequantize(q))) exactly (quantize is monotonic and round-trips grid values).
static Tensor ClampQuantized(const Tensor& x, float lo, float hi) {
  const QuantInfo q = x.quant();
  const float inv = 1.0f / q.scale;
  const int32_t qlo = std::isinf(lo) ? 0 : kernels::QuantizeValue(lo, inv, q.zero_point, 0, 255);
  const int32_t qhi = std::isinf(hi) ? 255 : kernels::QuantizeValue(hi, inv, q.zero_point, 0, 255);
  Tensor y = Tensor::Quantized(x.shape(), DType::kU8, q);
  const uint8_t* px = x.data<uint8_t>();
  uint8_t* py = y.data<uint8_t>();
  const uint8_t lo8 = static_cast<uint8_t>(qlo), hi8 = static_cast<uint8_t>(qhi);
  ParallelFor(x.numel(), kParallelGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) py[i] = std::min(std::max(px[i], lo8), hi8);
  });
  return y;
}

Tensor relu(const Tensor& x) {
  QFX_TRACE_OP(OpId::kRelu, x);
  if (x.is_quantized()) return ClampQuantized(x, 0.f, std::numeric_limits<float>::infinity());
  return Map("relu", x, [](float v) { return v > 0.f ? v : 0.f; });
}
Tensor relu6(const Tensor& x) {
  QFX_TRACE_OP(OpId::kRelu6, x);
  return hardtanh(x, 0.f, 6.f);
}
Tensor hardtanh(const Tensor& x, float lo, float hi) {
  QFX_TRACE_OP(OpId::kHardtanh, x, double{lo}, double{hi});
  if (x.is_quantized()) return ClampQuantized(x, lo, hi);
  return Map("hardtanh", x, [lo, hi](float v) { return std::min(std::max(v, lo), hi); });
}
Tensor hardswish(const Tensor& x) {
  QFX_TRACE_OP(OpId::kHardswish, x);
  return Map("hardswish", x, [](float v) { return v * std::min(std::max(v + 3.f, 0.f), 6.f) / 6.f; });
}
Tensor hardsigmoid(const Tensor& x) {
  QFX_TRACE_OP(OpId::kHardsigmoid, x);
  return Map("hardsigmoid", x, [](float v) { return std::min(std::max(v + 3.f, 0.f), 6.f) / 6.f; });
}
Tensor sigmoid(const Tensor& x) {
  QFX_TRACE_OP(OpId::kSigmoid, x);
  return Map("sigmoid", x, [](float v) { return 1.f / (1.f + std::exp(-v)); });
}
Tensor tanh(const Tensor& x) {
  QFX_TRACE_OP(OpId::kTanh, x);
  return Map("tanh", x, [](float v) { return std::tanh(v); });
}
Tensor silu(const Tensor& x) {
  QFX_TRACE_OP(OpId::kSilu, x);
  return Map("silu", x, [](float v) { return v / (1.f + std::exp(-v)); });
}
Tensor gelu(const Tensor& x) {
  QFX_TRACE_OP(OpId::kGelu, x);
  return Map("gelu", x, [](float v) { return v * 0.5f * (1.f + std::erf(v * static_cast<float>(M_SQRT1_2))); });
}
Tensor leaky_relu(const Tensor& x, double negative_slope) {
  QFX_TRACE_OP(OpId::kLeakyRelu, x, negative_slope);
  const float slope = static_cast<float>(negative_slope);
  return Map("leaky_relu", x, [slope](float v) { return v > 0.f ? v : v * slope; });
}

Tensor softmax(const Tensor& x, int64_t dim) {
  QFX_TRACE_OP(OpId::kSoftmax, x, dim);
  CheckF32("softmax", x);
  const int64_t d = NormalizeDim(dim, x.dim(), "softmax");
  const int64_t len = x.size(d);
  int64_t inner = 1;
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.size(i);
  const int64_t outer = x.numel() / std::max<int64_t>(1, len * inner);
  Tensor y = Tensor::Uninitialized(x.shape());
  const float* px = x.data<float>();
  float* py = y.data<float>();
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const float* p = px + o * len * inner + i;
      float* q = py + o * len * inner + i;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t k = 0; k < len; ++k) mx = std::max(mx, p[k * inner]);
      float sum = 0.f;
      for (int64_t k = 0; k < len; ++k) sum += (q[k * inner] = std::exp(p[k * inner] - mx));
      for (int64_t k = 0; k < len; ++k) q[k * inner] /= sum;
    }
  }
  return y;
}

Tensor dropout(const Tensor& x, double p, bool training) {
  QFX_TRACE_OP(OpId::kDropout, x, p, training);
  if (p < 0 || p > 1) ThrowInvalid("dropout: p ", p, " must be in [0, 1]");
  if (!training || p == 0) return x;
  static std::mt19937 rng(0x5eed);
  std::bernoulli_distribution keep(1 - p);
  const float scale = p == 1 ? 0.f : static_cast<float>(1 / (1 - p));
  return Map("dropout", x, [&](float v) { return keep(rng) ? v * scale : 0.f; });
}

namespace {

// Max pooling of `planes` float planes (NaN propagates, as in PyTorch).
void MaxPoolPlanes(const PoolGeometry& g, int64_t planes, int64_t ih, int64_t iw, const float* px, float* py) {
  // Valid kernel taps per output row, and valid output columns per horizontal tap: the inner loop runs
  // over output columns with no bounds checks, so it vectorises.
  const auto rows = ValidTaps(g.oh, g.sh, g.ph, g.dh, g.kh, ih);
  std::vector<std::pair<int64_t, int64_t>> cols(g.kw);
  for (int64_t kx = 0; kx < g.kw; ++kx) cols[kx] = kernels::ValidOutputRange(g.ow, g.sw, kx * g.dw - g.pw, iw);
  ParallelFor(planes, 8, [&](int64_t b, int64_t e) {
    for (int64_t pl = b; pl < e; ++pl) {
      const float* xp = px + pl * ih * iw;
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        float* __restrict o = py + (pl * g.oh + oy) * g.ow;
        std::fill(o, o + g.ow, -std::numeric_limits<float>::infinity());
        for (int64_t ky = rows[oy].first; ky < rows[oy].second; ++ky) {
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            const float* __restrict xr = xp + (oy * g.sh - g.ph + ky * g.dh) * iw + kx * g.dw - g.pw;
            for (int64_t ox = cols[kx].first; ox < cols[kx].second; ++ox) {
              const float v = xr[ox * g.sw];
              o[ox] = (v > o[ox] || v != v) ? v : o[ox];
            }
          }
        }
      }
    }
  });
}

// Max pooling of quint8 planes, directly on the integers (the max commutes with the monotonic
// dequantization, so this is exact), separably: an output row's valid kernel rows are first reduced to
// one input-wide row (contiguous byte max, vectorised), then each horizontal tap takes its columns of that
// row (gathered first for strides other than 1: SIMD for stride 2).
void MaxPoolPlanesU8(const PoolGeometry& g, int64_t planes, int64_t ih, int64_t iw, const uint8_t* px, uint8_t* py) {
  const auto rows = ValidTaps(g.oh, g.sh, g.ph, g.dh, g.kh, ih);
  std::vector<std::pair<int64_t, int64_t>> cols(g.kw);
  for (int64_t kx = 0; kx < g.kw; ++kx) cols[kx] = kernels::ValidOutputRange(g.ow, g.sw, kx * g.dw - g.pw, iw);
  ParallelFor(planes, 8, [&](int64_t b, int64_t e) {
    const int64_t width = iw;                                // a local: uint8 stores may alias the captured references
    thread_local std::vector<uint8_t> column_max, gathered;  // per thread, grown once (no allocation per call)
    if (column_max.size() < static_cast<size_t>(width)) column_max.resize(width);
    if (gathered.size() < static_cast<size_t>(g.ow)) gathered.resize(g.ow);
    uint8_t* __restrict v = column_max.data();
    for (int64_t pl = b; pl < e; ++pl) {
      const uint8_t* xp = px + pl * ih * iw;
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        uint8_t* __restrict o = py + (pl * g.oh + oy) * g.ow;
        std::fill(o, o + g.ow, uint8_t{0});
        const int64_t ky0 = rows[oy].first, ky1 = rows[oy].second;
        if (ky0 >= ky1) continue;
        std::copy(xp + (oy * g.sh - g.ph + ky0 * g.dh) * width, xp + (oy * g.sh - g.ph + ky0 * g.dh + 1) * width, v);
        for (int64_t ky = ky0 + 1; ky < ky1; ++ky) {
          const uint8_t* __restrict r = xp + (oy * g.sh - g.ph + ky * g.dh) * width;
          for (int64_t i = 0; i < width; ++i) v[i] = std::max(v[i], r[i]);
        }
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const int64_t lo = cols[kx].first, hi = cols[kx].second, sw = g.sw, off = kx * g.dw - g.pw;
          const uint8_t* src = v + off;
          if (sw != 1) {
            kernels::GatherStridedU8(v + lo * sw + off, sw, hi - lo, gathered.data() + lo);
            src = gathered.data();
          }
          for (int64_t ox = lo; ox < hi; ++ox) o[ox] = std::max(o[ox], src[ox]);
        }
      }
    }
  });
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dOptions& opt) {
  QFX_TRACE_OP(OpId::kMaxPool2d, x, opt.kernel_size, opt.stride, opt.padding, opt.dilation, opt.ceil_mode);
  if (x.is_quantized() && x.dtype() == DType::kU8) {
    const PoolGeometry g = MakePool("max_pool2d", x, opt);
    Tensor y = Tensor::Quantized({x.size(0), x.size(1), g.oh, g.ow}, DType::kU8, x.quant());
    MaxPoolPlanesU8(g, x.size(0) * x.size(1), x.size(2), x.size(3), x.data<uint8_t>(), y.data<uint8_t>());
    return y;
  }
  QFX_QUANTIZED_VIA_FLOAT(x, [&](const Tensor& f) { return max_pool2d(f, opt); });
  const PoolGeometry g = MakePool("max_pool2d", x, opt);
  Tensor y = Tensor::Uninitialized({x.size(0), x.size(1), g.oh, g.ow});
  MaxPoolPlanes(g, x.size(0) * x.size(1), x.size(2), x.size(3), x.data<float>(), y.data<float>());
  return y;
}

Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& opt) {
  QFX_TRACE_OP(OpId::kAvgPool2d, x, opt.kernel_size, opt.stride, opt.padding, opt.ceil_mode, opt.count_include_pad);
  QFX_QUANTIZED_VIA_FLOAT(x, [&](const Tensor& f) { return avg_pool2d(f, opt); });
  const PoolGeometry g = MakePool("avg_pool2d", x, opt);
  if (g.dh != 1 || g.dw != 1) ThrowInvalid("avg_pool2d: dilation is not supported (PyTorch has none)");
  const int64_t planes = x.size(0) * x.size(1), ih = x.size(2), iw = x.size(3);
  Tensor y = Tensor::Uninitialized({x.size(0), x.size(1), g.oh, g.ow});
  const float* px = x.data<float>();
  float* py = y.data<float>();
  for (int64_t pl = 0; pl < planes; ++pl) {
    const float* xp = px + pl * ih * iw;
    for (int64_t oy = 0; oy < g.oh; ++oy) {
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        const nn::AvgPoolWindow w =
            nn::AvgWindow(oy, ox, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, ih, iw, opt.count_include_pad);
        float sum = 0.f;
        for (int64_t iy = w.y0; iy < w.y1; ++iy) {
          for (int64_t ix = w.x0; ix < w.x1; ++ix) sum += xp[iy * iw + ix];
        }
        py[(pl * g.oh + oy) * g.ow + ox] = sum / static_cast<float>(w.divisor);
      }
    }
  }
  return y;
}

Tensor adaptive_avg_pool2d(const Tensor& x, std::vector<int64_t> output_size) {
  QFX_TRACE_OP(OpId::kAdaptiveAvgPool2d, x, output_size);
  QFX_QUANTIZED_VIA_FLOAT(x, [&](const Tensor& f) { return adaptive_avg_pool2d(f, output_size); });
  CheckRank("adaptive_avg_pool2d", x, 4, "N, C, H, W");
  int64_t oh, ow;
  std::tie(oh, ow) = Pair("adaptive_avg_pool2d", "output_size", output_size);
  if (oh <= 0 || ow <= 0) ThrowInvalid("adaptive_avg_pool2d: output_size must be positive");
  const int64_t planes = x.size(0) * x.size(1), ih = x.size(2), iw = x.size(3);
  Tensor y = Tensor::Uninitialized({x.size(0), x.size(1), oh, ow});
  const float* px = x.data<float>();
  float* py = y.data<float>();
  for (int64_t pl = 0; pl < planes; ++pl) {
    const float* xp = px + pl * ih * iw;
    for (int64_t oy = 0; oy < oh; ++oy) {
      const int64_t y0 = oy * ih / oh, y1 = ((oy + 1) * ih + oh - 1) / oh;
      for (int64_t ox = 0; ox < ow; ++ox) {
        const int64_t x0 = ox * iw / ow, x1 = ((ox + 1) * iw + ow - 1) / ow;
        float sum = 0.f;
        for (int64_t iy = y0; iy < y1; ++iy) {
          for (int64_t ix = x0; ix < x1; ++ix) sum += xp[iy * iw + ix];
        }
        py[(pl * oh + oy) * ow + ox] = sum / static_cast<float>((y1 - y0) * (x1 - x0));
      }
    }
  }
  return y;
}

Tensor add(const Tensor& a, const Tensor& b) {
  QFX_TRACE_OP(OpId::kAdd, a, b);
  return Binary("add", a, b, [](float u, float v) { return u + v; });
}
Tensor mul(const Tensor& a, const Tensor& b) {
  QFX_TRACE_OP(OpId::kMul, a, b);
  return Binary("mul", a, b, [](float u, float v) { return u * v; });
}
Tensor add(const Tensor& a, float b) {
  QFX_TRACE_OP(OpId::kAdd, a, double{b});
  return Map("add", a, [b](float v) { return v + b; });
}
Tensor mul(const Tensor& a, float b) {
  QFX_TRACE_OP(OpId::kMul, a, double{b});
  return Map("mul", a, [b](float v) { return v * b; });
}

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  QFX_TRACE_OP(OpId::kCat, xs, dim);
  if (xs.empty()) ThrowInvalid("cat: needs at least one tensor");
  for (const Tensor& t : xs) CheckF32("cat", t);
  const Shape& s0 = xs[0].shape();
  const int64_t d = NormalizeDim(dim, xs[0].dim(), "cat");
  Shape out = s0;
  out[d] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Shape& s = xs[i].shape();
    bool ok = s.size() == s0.size();
    for (size_t j = 0; ok && j < s.size(); ++j) ok = static_cast<int64_t>(j) == d || s[j] == s0[j];
    if (!ok) {
      ThrowInvalid("cat: tensor ", i, " ", xs[i].ToString(), " must match ", xs[0].ToString(), " in every dim but ", d);
    }
    out[d] += s[d];
  }
  int64_t outer = 1, inner = 1;
  for (int64_t j = 0; j < d; ++j) outer *= s0[j];
  for (size_t j = d + 1; j < s0.size(); ++j) inner *= s0[j];
  Tensor y = Tensor::Uninitialized(out);
  float* py = y.data<float>();
  for (int64_t o = 0; o < outer; ++o) {
    for (const Tensor& t : xs) {
      const int64_t run = t.size(d) * inner;
      std::memcpy(py, t.data<float>() + o * run, run * sizeof(float));
      py += run;
    }
  }
  return y;
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  QFX_TRACE_OP(OpId::kFlatten, x, start_dim, end_dim);
  return x.Flatten(start_dim, end_dim);
}

Tensor reshape(const Tensor& x, Shape shape) {
  QFX_TRACE_OP(OpId::kReshape, x, shape);
  return x.Reshape(std::move(shape));
}

Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  QFX_TRACE_OP(OpId::kMean, x, dims, keepdim);
  QFX_QUANTIZED_VIA_FLOAT(x, [&](const Tensor& f) { return mean(f, dims, keepdim); });
  CheckF32("mean", x);
  std::vector<bool> reduce(x.dim(), dims.empty());
  for (int64_t d : dims) reduce[NormalizeDim(d, x.dim(), "mean")] = true;
  Shape out_keep = x.shape(), out;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (reduce[i]) out_keep[i] = 1;
    if (!reduce[i] || keepdim) out.push_back(out_keep[i]);
  }
  Tensor y = Tensor::Empty(out_keep);
  const auto st = nn::BroadcastStrides(out_keep, x.shape());
  const float* px = x.data<float>();
  float* py = y.data<float>();
  nn::ForEachBroadcast(x.shape(), st, st, [&](int64_t i, int64_t iy, int64_t) { py[iy] += px[i]; });
  const float count = static_cast<float>(x.numel() / std::max<int64_t>(1, y.numel()));
  for (int64_t i = 0, n = y.numel(); i < n; ++i) py[i] /= count;
  return y.Reshape(out);
}

Tensor argmax(const Tensor& x) {
  CheckRank("argmax", x, 2, "N, C");
  const int64_t n = x.size(0), c = x.size(1);
  Tensor y = Tensor::Uninitialized({n}, DType::kI64);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x.data<float>() + i * c;
    y.data<int64_t>()[i] = std::max_element(row, row + c) - row;
  }
  return y;
}

}  // namespace F
}  // namespace qfx
