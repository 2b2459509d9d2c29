// qfx quant: reference and quantized weighted modules (see include/qfx/quant/quantized_modules.h).
#include "qfx/quant/quantized_modules.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "qfx/nn/ops.h"  // Size2ToJson, Size2FromJson

namespace qfx {
namespace quant {

absl::StatusOr<QuantizedLayer> QuantizeLayer(const Tensor& weight, const Tensor& bias, const ObserverSpec& spec) {
  ObserverSpec s = spec;
  s.fake_quant = false;
  QFX_ASSIGN_OR_RETURN(std::shared_ptr<Observer> obs, MakeObserver(s));
  QParams qp;
  QFX_RETURN_IF_ERROR(CatchErrors([&] {
    (*obs)(weight);
    qp = obs->CalculateQParams();
  }));
  return QuantizeLayer(weight, bias, qp);
}

absl::StatusOr<QuantizedLayer> QuantizeLayer(const Tensor& weight, const Tensor& bias, const QParams& qp) {
  if (qp.scale.size() != 1 && static_cast<int64_t>(qp.scale.size()) != weight.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat("weight ", weight.ToString(), " has ", weight.size(0),
                                                   " output channels but its qparams have ", qp.scale.size(),
                                                   " scales"));
  }
  const int64_t out = weight.size(0), per_row = weight.numel() / out;
  QuantizedLayer l;
  l.out_channels = out;
  l.weight_q = Tensor::Empty(weight.shape(), DType::kI8);
  l.weight_scale = Tensor::Empty({out});
  l.bias = bias.defined() ? bias.Clone() : Tensor::Zeros({out});
  for (int64_t o = 0; o < out; ++o) {
    const size_t c = qp.scale.size() == 1 ? 0 : static_cast<size_t>(o);
    if (qp.zero_point[c] != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight zero point ", qp.zero_point[c], " must be 0 (symmetric weights)"));
    }
    const float scale = qp.scale[c], inv = 1.0f / scale;
    l.weight_scale.data<float>()[o] = scale;
    for (int64_t i = 0; i < per_row; ++i) {
      l.weight_q.data<int8_t>()[o * per_row + i] = static_cast<int8_t>(
          kernels::QuantizeValue(weight.data<float>()[o * per_row + i], inv, 0, static_cast<int32_t>(qp.quant_min),
                                 static_cast<int32_t>(qp.quant_max)));
    }
  }
  return l;
}

kernels::QConv2dShape QuantizedLayer::ConvShape() const {
  kernels::QConv2dShape s;
  s.in_channels = in_channels;
  s.out_channels = out_channels;
  s.kernel_h = kernel.h;
  s.kernel_w = kernel.w;
  s.stride_h = stride.h;
  s.stride_w = stride.w;
  s.pad_h = padding.h;
  s.pad_w = padding.w;
  s.dilation_h = dilation.h;
  s.dilation_w = dilation.w;
  s.groups = groups;
  return s;
}

ReferenceWeighted::ReferenceWeighted(QuantizedLayer layer) : layer_(std::move(layer)) {
  weight_deq_ = Tensor::Empty(layer_.weight_q.shape());
  const int64_t per_row = weight_deq_.numel() / layer_.out_channels;
  for (int64_t i = 0; i < weight_deq_.numel(); ++i) {
    weight_deq_.data<float>()[i] =
        static_cast<float>(layer_.weight_q.data<int8_t>()[i]) * layer_.weight_scale.data<float>()[i / per_row];
  }
  options_.stride = layer_.stride.vec();
  options_.padding = layer_.padding.vec();
  options_.dilation = layer_.dilation.vec();
  options_.groups = layer_.groups;
  register_buffer("weight", weight_deq_);
  register_buffer("bias", layer_.bias);
}

Tensor ReferenceWeighted::forward(const Tensor& x) {
  const Tensor y =
      layer_.is_conv ? F::conv2d(x, weight_deq_, layer_.bias, options_) : F::linear(x, weight_deq_, layer_.bias);
  return layer_.relu ? F::relu(y) : y;
}

QuantizedWeighted::QuantizedWeighted(QuantizedLayer layer, QuantInfo input, QuantInfo output)
    : layer_(std::move(layer)), input_(input), output_(output) {
  if (layer_.relu) clamp_lo_ = output_.zero_point;
  register_buffer("weight", layer_.weight_q);
  register_buffer("weight_scale", layer_.weight_scale);
  register_buffer("bias", layer_.bias);
}

void QuantizedWeighted::FoldClamp(float lo, float hi) {
  const float inv = 1.0f / output_.scale;
  if (!std::isinf(lo)) clamp_lo_ = std::max(clamp_lo_, kernels::QuantizeValue(lo, inv, output_.zero_point, 0, 255));
  if (!std::isinf(hi)) clamp_hi_ = std::min(clamp_hi_, kernels::QuantizeValue(hi, inv, output_.zero_point, 0, 255));
  Prepack();
}

kernels::QRequantValues QuantizedWeighted::RequantValues() const {
  kernels::QRequantValues v = kernels::RequantFromScales(
      layer_.out_channels, input_.scale, layer_.weight_scale.data<float>(), layer_.bias.data<float>(), output_.scale);
  // The int32 accumulator is bias + sum over the row of (x - x_zp) * w, |x - x_zp| <= 255, |w| <= 128: a
  // bias too large for that bound (a hostile file, or scales near the limits) would overflow it.
  const int64_t per_row = layer_.out_channels > 0 ? layer_.weight_q.numel() / layer_.out_channels : 0;
  const int64_t limit = int64_t{std::numeric_limits<int32_t>::max()} - 255 * 128 * per_row;
  for (size_t o = 0; o < v.bias.size(); ++o) {
    if (std::abs(int64_t{v.bias[o]}) > limit) {
      ThrowInvalid(type_name(), ": bias[", o, "] = ", layer_.bias.data<float>()[o], " quantizes to ", v.bias[o],
                   " (bias / (input scale ", input_.scale, " * weight scale ", layer_.weight_scale.data<float>()[o],
                   ")); with ", per_row, " products per output the int32 accumulator could overflow: it must be",
                   " within +-", limit, " (check the bias and the scales)");
    }
  }
  return v;
}

kernels::QRequant QuantizedWeighted::Requant(const kernels::QRequantValues& values) const {
  kernels::QRequant rq;
  rq.x_zero_point = input_.zero_point;
  rq.bias = values.bias.data();
  rq.multiplier = values.multiplier.data();
  rq.y_zero_point = output_.zero_point;
  rq.lo = clamp_lo_;
  rq.hi = clamp_hi_;
  return rq;
}

void QuantizedWeighted::CheckInput(const Tensor& x) const {
  if (!x.is_quantized() || x.dtype() != DType::kU8)
    ThrowInvalid(type_name(), ": input ", x.ToString(), " must be quint8");
  if (x.quant().scale != input_.scale || x.quant().zero_point != input_.zero_point) {
    ThrowInvalid(type_name(), ": input qparams (", x.quant().scale, ", ", x.quant().zero_point, ") differ from the (",
                 input_.scale, ", ", input_.zero_point, ") it was converted for");
  }
}

QuantizedConv2d::QuantizedConv2d(QuantizedLayer layer, QuantInfo input, QuantInfo output)
    : QuantizedWeighted(std::move(layer), input, output) {
  Prepack();
}

void QuantizedConv2d::Prepack() {
  const kernels::QRequantValues values = RequantValues();
  packed_ = kernels::PackQConv2d(layer_.ConvShape(), layer_.weight_q.data<int8_t>(), Requant(values));
}

Tensor QuantizedConv2d::forward(const Tensor& x) {
  CheckInput(x);
  if (x.dim() != 4 || x.size(1) != layer_.in_channels) {
    ThrowInvalid(type_name(), ": input ", x.ToString(), " must be [N, ", layer_.in_channels, ", H, W]");
  }
  const kernels::Conv2dGeometry g = packed_.shape().Geometry(x.size(0), x.size(2), x.size(3));
  if (g.out_h() <= 0 || g.out_w() <= 0)
    ThrowInvalid(type_name(), ": input ", x.ToString(), " is smaller than the kernel");
  Tensor y = Tensor::Quantized({g.batch, g.out_channels, g.out_h(), g.out_w()}, DType::kU8, output_);
  kernels::Run(packed_, g.batch, g.in_h, g.in_w, x.data<uint8_t>(), y.data<uint8_t>());
  return y;
}

QuantizedLinear::QuantizedLinear(QuantizedLayer layer, QuantInfo input, QuantInfo output)
    : QuantizedWeighted(std::move(layer), input, output) {
  Prepack();
}

void QuantizedLinear::Prepack() {
  const kernels::QRequantValues values = RequantValues();
  packed_ =
      kernels::PackQLinear(layer_.in_channels, layer_.out_channels, layer_.weight_q.data<int8_t>(), Requant(values));
}

Tensor QuantizedLinear::forward(const Tensor& x) {
  CheckInput(x);
  if (x.dim() < 1 || x.size(-1) != layer_.in_channels) {
    ThrowInvalid(type_name(), ": input ", x.ToString(), " must end in ", layer_.in_channels, " features");
  }
  Shape shape = x.shape();
  shape.back() = layer_.out_channels;
  Tensor y = Tensor::Quantized(shape, DType::kU8, output_);
  kernels::Run(packed_, x.numel() / layer_.in_channels, x.data<uint8_t>(), y.data<uint8_t>());
  return y;
}

std::shared_ptr<QuantizedWeighted> MakeQuantizedWeighted(QuantizedLayer layer, QuantInfo input, QuantInfo output) {
  if (layer.is_conv) return std::make_shared<QuantizedConv2d>(std::move(layer), input, output);
  return std::make_shared<QuantizedLinear>(std::move(layer), input, output);
}

nlohmann::json QuantizedWeighted::Config() const {
  return {{"is_conv", layer_.is_conv},
          {"relu", layer_.relu},
          {"in_channels", layer_.in_channels},
          {"out_channels", layer_.out_channels},
          {"kernel", nn::Size2ToJson(layer_.kernel)},
          {"stride", nn::Size2ToJson(layer_.stride)},
          {"padding", nn::Size2ToJson(layer_.padding)},
          {"dilation", nn::Size2ToJson(layer_.dilation)},
          {"groups", layer_.groups},
          {"input_scale", input_.scale},
          {"input_zero_point", input_.zero_point},
          {"output_scale", output_.scale},
          {"output_zero_point", output_.zero_point},
          {"clamp_lo", clamp_lo_},
          {"clamp_hi", clamp_hi_}};
}

absl::Status QuantizedWeighted::CheckWeights() const {
  const float* bias = layer_.bias.data<float>();
  const float* scale = layer_.weight_scale.data<float>();
  for (int64_t c = 0; c < layer_.out_channels; ++c) {
    if (!std::isfinite(bias[c])) {
      return absl::InvalidArgumentError(absl::StrCat("bias[", c, "] is ", bias[c], "; biases must be finite"));
    }
    if (!ScaleInRange(scale[c])) {
      return absl::InvalidArgumentError(absl::StrCat("weight scale[", c, "] is ", scale[c],
                                                     "; weight scales must be finite and within [", kMinScale, ", ",
                                                     kMaxScale, "]"));
    }
  }
  return absl::OkStatus();
}

namespace {

absl::Status BadConfig(const std::string& rule) {
  return absl::InvalidArgumentError(absl::StrCat("quantized layer config: ", rule));
}

Shape WeightShape(const QuantizedLayer& l) {
  return l.is_conv ? Shape{l.out_channels, l.in_channels / l.groups, l.kernel.h, l.kernel.w}
                   : Shape{l.out_channels, l.in_channels};
}

// The rules a layer read from a file must follow before anything is allocated or packed for it.
absl::Status CheckLayerConfig(const QuantizedLayer& l, const QuantInfo& in, const QuantInfo& out) {
  for (const auto& [name, v] : {std::pair<const char*, int64_t>{"in_channels", l.in_channels},
                                {"out_channels", l.out_channels},
                                {"kernel height", l.kernel.h},
                                {"kernel width", l.kernel.w},
                                {"groups", l.groups}}) {
    if (v <= 0) return BadConfig(absl::StrCat(name, " ", v, " must be positive"));
  }
  for (const auto& [name, q] : {std::pair<const char*, QuantInfo>{"input", in}, {"output", out}}) {
    if (!ScaleInRange(q.scale)) {
      return BadConfig(
          absl::StrCat(name, "_scale ", q.scale, " must be finite and within [", kMinScale, ", ", kMaxScale, "]"));
    }
    if (q.zero_point < 0 || q.zero_point > 255) {
      return BadConfig(absl::StrCat(name, "_zero_point ", q.zero_point, " must lie in 0..255 (quint8)"));
    }
  }
  if (l.is_conv) {
    for (const auto& [axis, k, stride, pad, dilation] :
         {std::tuple<const char*, int64_t, int64_t, int64_t, int64_t>{"height", l.kernel.h, l.stride.h, l.padding.h,
                                                                      l.dilation.h},
          {"width", l.kernel.w, l.stride.w, l.padding.w, l.dilation.w}}) {
      if (stride <= 0) return BadConfig(absl::StrCat(axis, " stride ", stride, " must be at least 1"));
      if (dilation <= 0) return BadConfig(absl::StrCat(axis, " dilation ", dilation, " must be at least 1"));
      // Padding past the kernel's reach only adds rows and columns that see nothing but padding.
      const int64_t reach = k > kMaxTensorBytes / dilation ? kMaxTensorBytes : dilation * (k - 1);
      if (pad < 0 || pad > reach) {
        return BadConfig(absl::StrCat(axis, " padding ", pad, " must lie in 0..dilation x (kernel - 1) = ", reach));
      }
    }
    if (l.in_channels % l.groups != 0 || l.out_channels % l.groups != 0) {
      return BadConfig(absl::StrCat("groups ", l.groups, " must divide in_channels ", l.in_channels,
                                    " and out_channels ", l.out_channels));
    }
  }
  int64_t weights = 0;
  if (!CheckedNumElements(WeightShape(l), 4, &weights)) {
    return BadConfig(
        absl::StrCat("a weight of shape ", ShapeToString(WeightShape(l)), " exceeds ", kMaxTensorBytes, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<QuantizedWeighted>> QuantizedWeighted::FromConfig(const nlohmann::json& c) {
  QuantizedLayer l;
  QuantInfo in, out;
  try {
    l.is_conv = c.at("is_conv").get<bool>();
    l.relu = c.at("relu").get<bool>();
    l.in_channels = c.at("in_channels").get<int64_t>();
    l.out_channels = c.at("out_channels").get<int64_t>();
    for (const auto& [field, size] : {std::pair<const char*, nn::Size2*>{"kernel", &l.kernel},
                                      {"stride", &l.stride},
                                      {"padding", &l.padding},
                                      {"dilation", &l.dilation}}) {
      absl::StatusOr<nn::Size2> v = nn::Size2FromJson(c, field);
      if (!v.ok()) return BadConfig(std::string(v.status().message()));
      *size = *v;
    }
    l.groups = c.at("groups").get<int64_t>();
    in = {c.at("input_scale").get<float>(), c.at("input_zero_point").get<int32_t>()};
    out = {c.at("output_scale").get<float>(), c.at("output_zero_point").get<int32_t>()};
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("quantized layer config: ", e.what()));
  }
  QFX_RETURN_IF_ERROR(CheckLayerConfig(l, in, out));
  const Shape wshape = WeightShape(l);
  l.weight_q = Tensor::Zeros(wshape, DType::kI8);
  l.weight_scale = Tensor::Full({l.out_channels}, 1.f);
  l.bias = Tensor::Zeros({l.out_channels});
  int32_t clamp_lo = 0, clamp_hi = 255;
  try {
    clamp_lo = c.at("clamp_lo").get<int32_t>();
    clamp_hi = c.at("clamp_hi").get<int32_t>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("quantized layer config: ", e.what()));
  }
  if (clamp_lo < 0 || clamp_hi > 255 || clamp_lo > clamp_hi) {
    return absl::InvalidArgumentError("quantized layer config: clamp_lo..clamp_hi must lie in 0..255");
  }
  std::shared_ptr<QuantizedWeighted> m = MakeQuantizedWeighted(std::move(l), in, out);
  m->clamp_lo_ = clamp_lo;
  m->clamp_hi_ = clamp_hi;
  return m;  // the caller loads the weights and packs (Prepack)
}

}  // namespace quant
}  // namespace qfx
