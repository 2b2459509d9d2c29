// qfx quant: the modules ConvertEager produces (see include/qfx/quant/eager.h).
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "qfx/quant/eager.h"

namespace qfx {
namespace quant {
namespace {

Tensor ScaleBuffer(float scale) { return Tensor::FromVector({1}, {scale}); }

Tensor ZeroPointBuffer(int32_t zero_point) {
  Tensor t = Tensor::Empty({1}, DType::kI64);
  t.data<int64_t>()[0] = zero_point;
  return t;
}

// The qparams in a module's `scale` / `zero_point` buffers (a loaded state may hold anything).
QuantInfo ReadQParams(const nn::Module& m, const Tensor& scale, const Tensor& zero_point) {
  const float s = scale.data<float>()[0];
  const int64_t z = zero_point.data<int64_t>()[0];
  if (!ScaleInRange(s) || z < 0 || z > 255) {
    ThrowInvalid(m.type_name(), ": scale ", s, " must be finite and within [", kMinScale, ", ", kMaxScale,
                 "] and zero_point ", z, " within 0..255 (a bad loaded state?)");
  }
  return QuantInfo{s, static_cast<int32_t>(z)};
}

void CheckQuantized(const nn::Module& m, const std::string& path, const Tensor& x) {
  if (x.is_proxy() || (x.is_quantized() && x.dtype() == DType::kU8)) return;
  ThrowInvalid("module '", path, "' (", m.type_name(), ") is int8 but got the float tensor ", x.ToString(),
               ": put a QuantStub before it in forward (or set its qconfig to none to keep it float)");
}

Tensor CopyQuantized(const Tensor& x, QuantInfo q) {
  Tensor y = Tensor::Quantized(x.shape(), DType::kU8, q);
  std::memcpy(y.raw_data(), x.raw_data(), x.nbytes());
  return y;
}

}  // namespace

Quantize::Quantize(QuantInfo q) {
  scale_ = register_buffer("scale", ScaleBuffer(q.scale));
  zero_point_ = register_buffer("zero_point", ZeroPointBuffer(q.zero_point));
}

Tensor Quantize::forward(const Tensor& x) {
  if (!x.is_proxy() && x.is_quantized()) {
    ThrowInvalid("Quantize: its input ", x.ToString(), " is quantized already (two QuantStubs in a row?)");
  }
  const QuantInfo q = ReadQParams(*this, scale_, zero_point_);
  return F::quantize(x, q.scale, q.zero_point);
}

Tensor DeQuantize::forward(const Tensor& x) {
  if (!x.is_proxy() && !x.is_quantized()) {
    ThrowInvalid("DeQuantize: its input ", x.ToString(),
                 " is float (is a QuantStub missing before the quantized part, or are two DeQuantStubs in a row?)");
  }
  return F::dequantize(x);
}

QFunctional::QFunctional(QuantInfo q) {
  scale_ = register_buffer("scale", ScaleBuffer(q.scale));
  zero_point_ = register_buffer("zero_point", ZeroPointBuffer(q.zero_point));
}

QuantInfo QFunctional::Out() const { return ReadQParams(*this, scale_, zero_point_); }

Tensor QFunctional::add(const Tensor& a, const Tensor& b) {
  const QuantInfo q = Out();
  return F::q_add(a, b, q.scale, q.zero_point, false);
}

Tensor QFunctional::add_relu(const Tensor& a, const Tensor& b) {
  const QuantInfo q = Out();
  return F::q_add(a, b, q.scale, q.zero_point, true);
}

Tensor QFunctional::mul(const Tensor& a, const Tensor& b) {
  const QuantInfo q = Out();
  return F::q_mul(a, b, q.scale, q.zero_point);
}

Tensor QFunctional::cat(const std::vector<Tensor>& xs, int64_t dim) {
  const QuantInfo q = Out();
  return F::q_cat(xs, dim, q.scale, q.zero_point);
}

// ATen's quantized add_scalar: the constant moves the zero point by round(b / scale) when the result
// stays in 0..255; otherwise the range is widened to hold it and the values are requantized.
Tensor QFunctional::add_scalar(const Tensor& a, double b) {
  CheckQuantized(*this, "add_scalar", a);
  const QuantInfo q = a.quant();
  const int64_t c_q = static_cast<int64_t>(std::nearbyint(b / q.scale));
  const int64_t z = q.zero_point - c_q;
  if (z >= 0 && z <= 255) return CopyQuantized(a, QuantInfo{q.scale, static_cast<int32_t>(z)});
  const double s = z < 0 ? (255.0 - z) / 255.0 * q.scale : static_cast<double>(z) / 255.0 * q.scale;
  const int32_t zp = z < 0 ? 0 : 255;
  return F::quantize(F::add(F::dequantize(a), static_cast<float>(b)), static_cast<float>(s), zp);
}

// ATen's quantized mul_scalar: the same integers with the scale times |b| (mirrored for b < 0).
Tensor QFunctional::mul_scalar(const Tensor& a, double b) {
  CheckQuantized(*this, "mul_scalar", a);
  const QuantInfo q = a.quant();
  if (b == 0.0) return Tensor::Quantized(a.shape(), DType::kU8, QuantInfo{1.f, 0});
  const float s = static_cast<float>(q.scale * std::fabs(b));
  if (b > 0) return CopyQuantized(a, QuantInfo{s, q.zero_point});
  Tensor y = Tensor::Quantized(a.shape(), DType::kU8, QuantInfo{s, 255 - q.zero_point});
  const uint8_t* pa = a.data<uint8_t>();
  uint8_t* py = y.data<uint8_t>();
  for (int64_t i = 0, n = a.numel(); i < n; ++i) py[i] = static_cast<uint8_t>(255 - pa[i]);
  return y;
}

EagerQuantizedWeighted::EagerQuantizedWeighted(QuantizedLayer layer, QuantInfo output, std::string path)
    : layer_(std::move(layer)), path_(std::move(path)) {
  register_buffer("weight", layer_.weight_q);
  register_buffer("weight_scale", layer_.weight_scale);
  register_buffer("bias", layer_.bias);
  scale_ = register_buffer("scale", ScaleBuffer(output.scale));
  zero_point_ = register_buffer("zero_point", ZeroPointBuffer(output.zero_point));
}

std::string EagerQuantizedWeighted::type_name() const {
  if (layer_.is_conv) return layer_.relu ? "QuantizedConvReLU2d" : "QuantizedConv2d";
  return layer_.relu ? "QuantizedLinearReLU" : "QuantizedLinear";
}

Tensor EagerQuantizedWeighted::forward(const Tensor& x) {
  CheckQuantized(*this, path_, x);
  const QuantInfo in = x.quant();
  std::shared_ptr<QuantizedWeighted> impl;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!built_ || built_->input_qparams().scale != in.scale || built_->input_qparams().zero_point != in.zero_point) {
      auto m = MakeQuantizedWeighted(layer_, in, ReadQParams(*this, scale_, zero_point_));
      if (absl::Status s = m->CheckWeights(); !s.ok()) ThrowInvalid("module '", path_, "': ", s.message());
      built_ = std::move(m);
    }
    impl = built_;
  }
  return impl->forward(x);
}

void EagerQuantizedWeighted::StateLoaded() {
  std::lock_guard<std::mutex> lock(mu_);
  built_.reset();
}

std::shared_ptr<QuantizedWeighted> EagerQuantizedWeighted::built() const {
  std::lock_guard<std::mutex> lock(mu_);
  return built_;
}

EagerQuantizedUnary::EagerQuantizedUnary(std::string type, OpId op, QuantInfo output)
    : type_(std::move(type)), op_(op) {
  scale_ = register_buffer("scale", ScaleBuffer(output.scale));
  zero_point_ = register_buffer("zero_point", ZeroPointBuffer(output.zero_point));
}

Tensor EagerQuantizedUnary::forward(const Tensor& x) {
  CheckQuantized(*this, type_, x);
  const QuantInfo q = ReadQParams(*this, scale_, zero_point_);
  return F::q_unary(x, op_, q.scale, q.zero_point);
}

}  // namespace quant
}  // namespace qfx
