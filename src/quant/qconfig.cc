// qfx quant: names, ranges and validation of observer specs (see include/qfx/quant/qconfig.h).
#include "qfx/quant/qconfig.h"

#include <tuple>

#include "absl/strings/str_cat.h"
#include "qfx/core/status.h"

namespace qfx {
namespace quant {

const char* QDTypeName(QDType d) {
  switch (d) {
    case QDType::kQUInt8:
      return "quint8";
    case QDType::kQInt8:
      return "qint8";
    case QDType::kQInt32:
      return "qint32";
    case QDType::kFloat16:
      return "float16";
  }
  return "?";
}

const char* QSchemeName(QScheme s) {
  switch (s) {
    case QScheme::kPerTensorAffine:
      return "per_tensor_affine";
    case QScheme::kPerTensorSymmetric:
      return "per_tensor_symmetric";
    case QScheme::kPerChannelAffine:
      return "per_channel_affine";
    case QScheme::kPerChannelSymmetric:
      return "per_channel_symmetric";
  }
  return "?";
}

const char* ObserverKindName(ObserverKind k) {
  switch (k) {
    case ObserverKind::kMinMax:
      return "minmax";
    case ObserverKind::kMovingAverageMinMax:
      return "moving_average_minmax";
    case ObserverKind::kPerChannelMinMax:
      return "per_channel_minmax";
    case ObserverKind::kMovingAveragePerChannelMinMax:
      return "moving_average_per_channel_minmax";
    case ObserverKind::kHistogram:
      return "histogram";
    case ObserverKind::kPlaceholder:
      return "placeholder";
    case ObserverKind::kFixedQParams:
      return "fixed_qparams";
    case ObserverKind::kReuseInput:
      return "reuse_input";
    case ObserverKind::kNoop:
      return "noop";
    case ObserverKind::kHistogramPt2:
      return "histogram_pt2";
  }
  return "?";
}

namespace {
template <typename E, typename NameFn>
bool ParseEnum(const std::string& name, int count, NameFn fn, E* out) {
  for (int i = 0; i < count; ++i) {
    if (name == fn(static_cast<E>(i))) {
      *out = static_cast<E>(i);
      return true;
    }
  }
  return false;
}
}  // namespace

bool ParseQDType(const std::string& name, QDType* out) { return ParseEnum(name, 4, QDTypeName, out); }
bool ParseQScheme(const std::string& name, QScheme* out) { return ParseEnum(name, 4, QSchemeName, out); }
bool ParseObserverKind(const std::string& name, ObserverKind* out) {
  return ParseEnum(name, 10, ObserverKindName, out);
}

bool IsPerChannel(QScheme s) { return s == QScheme::kPerChannelAffine || s == QScheme::kPerChannelSymmetric; }
bool IsSymmetric(QScheme s) { return s == QScheme::kPerTensorSymmetric || s == QScheme::kPerChannelSymmetric; }

bool ObserverSpec::operator==(const ObserverSpec& o) const {
  return std::tie(kind, dtype, qscheme, reduce_range, quant_min, quant_max, ch_axis, eps, averaging_constant, bins,
                  upsample_rate, fixed_scale, fixed_zero_point, fake_quant) ==
         std::tie(o.kind, o.dtype, o.qscheme, o.reduce_range, o.quant_min, o.quant_max, o.ch_axis, o.eps,
                  o.averaging_constant, o.bins, o.upsample_rate, o.fixed_scale, o.fixed_zero_point, o.fake_quant);
}

std::string ObserverSpec::ToString() const {
  std::string s = absl::StrCat(fake_quant ? "fake_quant:" : "", ObserverKindName(kind), "(", QDTypeName(dtype), ", ",
                               QSchemeName(qscheme));
  if (reduce_range) absl::StrAppend(&s, ", reduce_range");
  if (quant_min && quant_max) absl::StrAppend(&s, ", range ", *quant_min, "..", *quant_max);
  if (kind == ObserverKind::kFixedQParams)
    absl::StrAppend(&s, ", scale ", fixed_scale, ", zero_point ", fixed_zero_point);
  return s + ")";
}

// PyTorch's calculate_qmin_qmax (torch/ao/quantization/utils.py), including its quirk of halving a
// custom range under reduce_range with floor division.
absl::StatusOr<std::pair<int64_t, int64_t>> QuantRange(const ObserverSpec& s) {
  auto floor_half = [](int64_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); };
  if (s.quant_min.has_value() != s.quant_max.has_value()) {
    return absl::InvalidArgumentError("quant_min and quant_max must be given together");
  }
  if (s.quant_min) {
    const int64_t lo = *s.quant_min, hi = *s.quant_max;
    if (!(lo <= 0 && 0 <= hi)) {
      return absl::InvalidArgumentError(absl::StrCat("custom range ", lo, "..", hi, " must include 0"));
    }
    if (!(lo < hi))
      return absl::InvalidArgumentError(absl::StrCat("quant_min ", lo, " must be less than quant_max ", hi));
    const int64_t dmin = s.dtype == QDType::kQInt8 ? -128 : s.dtype == QDType::kQUInt8 ? 0 : INT32_MIN;
    const int64_t dmax = s.dtype == QDType::kQInt8 ? 127 : s.dtype == QDType::kQUInt8 ? 255 : INT32_MAX;
    if (lo < dmin || hi > dmax) {
      return absl::InvalidArgumentError(absl::StrCat("custom range ", lo, "..", hi, " does not fit ",
                                                     QDTypeName(s.dtype), " (", dmin, "..", dmax, ")"));
    }
    return s.reduce_range ? std::make_pair(floor_half(lo), floor_half(hi)) : std::make_pair(lo, hi);
  }
  switch (s.dtype) {
    case QDType::kQInt8:
      return s.reduce_range ? std::make_pair<int64_t, int64_t>(-64, 63) : std::make_pair<int64_t, int64_t>(-128, 127);
    case QDType::kQUInt8:
      return s.reduce_range ? std::make_pair<int64_t, int64_t>(0, 127) : std::make_pair<int64_t, int64_t>(0, 255);
    case QDType::kQInt32:
      return std::make_pair<int64_t, int64_t>(INT32_MIN, INT32_MAX);
    case QDType::kFloat16:
      return std::make_pair<int64_t, int64_t>(0, 15);
  }
  return absl::InternalError("unknown dtype");
}

namespace {

absl::Status CheckHistogramBudget(const ObserverSpec& s) {
  if (s.bins <= 0 || s.upsample_rate <= 0) return absl::InvalidArgumentError("bins and upsample_rate must be positive");
  if (s.bins > kMaxHistogramBins) {
    return absl::InvalidArgumentError(
        absl::StrCat("bins ", s.bins, " is above the limit of ", kMaxHistogramBins, " (PyTorch's default is 2048)"));
  }
  if (s.upsample_rate > kMaxUpsampledBins / s.bins) {
    return absl::InvalidArgumentError(absl::StrCat("bins * upsample_rate = ", s.bins, " * ", s.upsample_rate,
                                                   " is above the limit of ", kMaxUpsampledBins,
                                                   " (PyTorch's default is 2048 * 128)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateSpec(const ObserverSpec& s) {
  const std::string name = ObserverKindName(s.kind);
  const bool uniform = s.kind == ObserverKind::kMinMax || s.kind == ObserverKind::kMovingAverageMinMax ||
                       s.kind == ObserverKind::kPerChannelMinMax ||
                       s.kind == ObserverKind::kMovingAveragePerChannelMinMax || s.kind == ObserverKind::kHistogram ||
                       s.kind == ObserverKind::kHistogramPt2;
  const bool per_channel_kind =
      s.kind == ObserverKind::kPerChannelMinMax || s.kind == ObserverKind::kMovingAveragePerChannelMinMax;
  if (uniform && s.dtype == QDType::kFloat16) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " observer cannot produce float16; use observer = \"placeholder\""));
  }
  if (uniform && per_channel_kind != IsPerChannel(s.qscheme)) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, " observer needs a ", per_channel_kind ? "per_channel" : "per_tensor", " qscheme, got ",
        QSchemeName(s.qscheme), per_channel_kind ? "" : " (use per_channel_minmax for per-channel quantization)"));
  }
  if (uniform && s.kind != ObserverKind::kHistogram && s.kind != ObserverKind::kHistogramPt2 &&
      s.qscheme == QScheme::kPerTensorSymmetric && s.reduce_range && s.dtype == QDType::kQUInt8) {
    return absl::InvalidArgumentError("reduce_range is not supported for per_tensor_symmetric quint8 (as in PyTorch)");
  }
  if (s.averaging_constant <= 0 || s.averaging_constant > 1) {
    return absl::InvalidArgumentError(absl::StrCat("averaging_constant ", s.averaging_constant, " must be in (0, 1]"));
  }
  QFX_RETURN_IF_ERROR(CheckHistogramBudget(s));
  if (!ScaleInRange(s.eps)) {
    return absl::InvalidArgumentError(
        absl::StrCat("eps ", s.eps, " must be finite and within [", kMinScale, ", ", kMaxScale, "]"));
  }
  QFX_ASSIGN_OR_RETURN(const auto range, QuantRange(s));
  if (s.kind == ObserverKind::kFixedQParams) {
    if (!ScaleInRange(s.fixed_scale)) {
      return absl::InvalidArgumentError(absl::StrCat("fixed_qparams scale ", s.fixed_scale,
                                                     " must be finite and within [", kMinScale, ", ", kMaxScale, "]"));
    }
    if (s.fixed_zero_point < range.first || s.fixed_zero_point > range.second) {
      return absl::InvalidArgumentError(absl::StrCat("fixed_qparams zero_point ", s.fixed_zero_point,
                                                     " must lie in the quantized range ", range.first, "..",
                                                     range.second));
    }
  }
  return absl::OkStatus();
}

}  // namespace quant
}  // namespace qfx
