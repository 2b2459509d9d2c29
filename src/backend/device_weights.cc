// qfx backend: the int8 layers of a lowered model in the device layout (see qfx/backend/device_plan.h).
#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "qfx/backend/device_plan.h"
#include "qfx/quant/quantized_modules.h"

namespace qfx {
namespace backend {
namespace {

absl::Status LayerError(const fx::Node& n, const std::string& rule) {
  return absl::InvalidArgumentError(
      absl::StrCat("device plan: node %", n.name(), " (", n.target_string(), "): ", rule));
}

// weight [out][in/groups][kh][kw] (conv) or [out][in] (linear) -> [out][kh][kw][weight_icp], zero padded, and
// bias' = bias - x_zero_point * (sum of the row's weights).
absl::StatusOr<DeviceLayer> ConvertLayer(const fx::Node& n, const quant::QuantizedWeighted& m) {
  const quant::QuantizedLayer& l = m.layer();
  DeviceLayer d;
  d.node = n.name();
  const int64_t limit = std::numeric_limits<int32_t>::max();
  const auto fits = [limit](nn::Size2 v) { return v.h <= limit && v.w <= limit; };
  if (l.in_channels > limit || l.out_channels > limit || l.kernel.h > 4096 || l.kernel.w > 4096 || !fits(l.stride) ||
      !fits(l.padding) || !fits(l.dilation)) {
    return LayerError(n, "the layer is too large for the device backend's int32 sizes");
  }
  d.in_channels = static_cast<int32_t>(l.in_channels);
  d.out_channels = static_cast<int32_t>(l.out_channels);
  if (l.is_conv) {
    d.kh = static_cast<int32_t>(l.kernel.h);
    d.kw = static_cast<int32_t>(l.kernel.w);
    d.sh = static_cast<int32_t>(l.stride.h);
    d.sw = static_cast<int32_t>(l.stride.w);
    d.ph = static_cast<int32_t>(l.padding.h);
    d.pw = static_cast<int32_t>(l.padding.w);
    d.dh = static_cast<int32_t>(l.dilation.h);
    d.dw = static_cast<int32_t>(l.dilation.w);
    d.groups = static_cast<int32_t>(l.groups);
  }
  const int32_t icg = d.in_channels / d.groups, taps = d.kh * d.kw;
  d.weight_icp = UsesTensorCores(d) ? (icg + 31) / 32 * 32 : (icg + 3) / 4 * 4;
  d.x_scale = m.input_qparams().scale;
  d.x_zero_point = m.input_qparams().zero_point;
  d.y_scale = m.output_qparams().scale;
  d.y_zero_point = m.output_qparams().zero_point;
  d.lo = m.clamp_lo();
  d.hi = m.clamp_hi();
  kernels::QRequantValues rq;
  QFX_RETURN_IF_ERROR(CatchErrors([&] { rq = m.RequantValues(); }));
  d.multiplier = rq.multiplier;
  d.weight.assign(static_cast<size_t>(d.out_channels) * taps * d.weight_icp, 0);
  d.bias.resize(d.out_channels);
  const int8_t* w = l.weight_q.data<int8_t>();
  for (int32_t o = 0; o < d.out_channels; ++o) {
    int64_t sum = 0;
    for (int32_t c = 0; c < icg; ++c) {
      for (int32_t t = 0; t < taps; ++t) {
        const int8_t v = w[(static_cast<int64_t>(o) * icg + c) * taps + t];
        d.weight[(static_cast<size_t>(o) * taps + t) * d.weight_icp + c] = v;
        sum += v;
      }
    }
    const int64_t b = int64_t{rq.bias[o]} - int64_t{d.x_zero_point} * sum;
    if (b < std::numeric_limits<int32_t>::min() || b > limit) {
      return LayerError(n, absl::StrCat("bias[", o, "] - x_zero_point * sum(weights) = ", b, " overflows int32"));
    }
    d.bias[o] = static_cast<int32_t>(b);
  }
  return d;
}

}  // namespace

bool UsesTensorCores(const DeviceLayer& layer) { return layer.groups == 1; }

int64_t DeviceWeights::Bytes() const {
  int64_t bytes = 0;
  for (const DeviceLayer& l : layers) {
    bytes += static_cast<int64_t>(l.weight.size() + 4 * l.bias.size() + 4 * l.multiplier.size());
  }
  return bytes;
}

absl::StatusOr<DeviceWeights> BuildDeviceWeights(fx::GraphModule& model) {
  DeviceWeights w;
  for (fx::Node* n : model.graph()) {
    if (n->op() != fx::Opcode::kCallModule) continue;
    const auto* m = dynamic_cast<const quant::QuantizedWeighted*>(model.submodule(n->target().path));
    if (m == nullptr) continue;
    QFX_ASSIGN_OR_RETURN(DeviceLayer layer, ConvertLayer(*n, *m));
    w.layer_of[n->name()] = static_cast<int>(w.layers.size());
    w.layers.push_back(std::move(layer));
  }
  return w;
}

}  // namespace backend
}  // namespace qfx
