// qfx quant: the min/max observer family, fixed-qparams and pass-through observers, and PyTorch's
// _calculate_qparams (see include/qfx/quant/observer.h). Float arithmetic mirrors PyTorch's float32 ops.
#include "qfx/quant/observer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "src/quant/observers_internal.h"

namespace qfx {
namespace quant {

bool IsObserverModule(const nn::Module* module) {
  return dynamic_cast<const Observer*>(module) != nullptr || dynamic_cast<const FakeQuantize*>(module) != nullptr;
}

Observer::Observer(const ObserverSpec& spec) : spec_(spec) {
  const auto range = QuantRange(spec);
  quant_min_ = range.ok() ? range->first : 0;
  quant_max_ = range.ok() ? range->second : 255;
}

QParams Observer::CalculateQParams() const {
  throw Error(absl::FailedPreconditionError(
      absl::StrCat(type_name(), " has no quantization parameters (it only marks how a value is treated)")));
}

QParams Observer::FromMinMax(const std::vector<float>& min_val, const std::vector<float>& max_val) const {
  QParams qp;
  qp.quant_min = quant_min_;
  qp.quant_max = quant_max_;
  qp.dtype = spec_.dtype;
  qp.qscheme = spec_.qscheme;
  qp.ch_axis = spec_.ch_axis;
  const bool uninitialized =
      min_val.empty() || (min_val.size() == 1 && min_val[0] == INFINITY && max_val[0] == -INFINITY);
  if (uninitialized) {  // PyTorch warns and returns its defaults
    qp.scale = {1.f};
    qp.zero_point = {0};
    return qp;
  }
  const bool custom = spec_.quant_min.has_value();
  for (size_t c = 0; c < min_val.size(); ++c) {
    const float min_neg = std::min(min_val[c], 0.f);
    float max_pos = std::max(max_val[c], 0.f);
    float scale;
    int64_t zp = 0;
    if (IsSymmetric(spec_.qscheme)) {
      max_pos = std::max(-min_neg, max_pos);
      scale = max_pos / static_cast<float>(static_cast<double>(quant_max_ - quant_min_) / 2);
      scale = std::max(scale, spec_.eps);
      if (spec_.dtype == QDType::kQUInt8) zp = custom ? (quant_min_ + quant_max_) / 2 : 128;
    } else {
      scale = (max_pos - min_neg) / static_cast<float>(quant_max_ - quant_min_);
      scale = std::max(scale, spec_.eps);
      zp = quant_min_ - static_cast<int64_t>(std::nearbyint(min_neg / scale));
      zp = std::min(std::max(zp, quant_min_), quant_max_);
    }
    qp.scale.push_back(scale);
    qp.zero_point.push_back(zp);
  }
  return qp;
}

namespace internal {

std::pair<float, float> AminMax(const Tensor& x) {
  const float* p = x.data<float>();
  float lo = INFINITY, hi = -INFINITY;
  for (int64_t i = 0, n = x.numel(); i < n; ++i) {
    lo = std::min(lo, p[i]);
    hi = std::max(hi, p[i]);
  }
  return {lo, hi};
}

void AminMaxPerChannel(const Tensor& x, int64_t axis, std::vector<float>* lo, std::vector<float>* hi) {
  const int64_t a = NormalizeDim(axis, x.dim(), "per-channel observer ch_axis");
  const int64_t channels = x.size(a);
  int64_t inner = 1;
  for (int64_t d = a + 1; d < x.dim(); ++d) inner *= x.size(d);
  lo->assign(channels, INFINITY);
  hi->assign(channels, -INFINITY);
  const float* p = x.data<float>();
  for (int64_t i = 0, n = x.numel(); i < n; ++i) {
    const int64_t c = (i / inner) % channels;
    (*lo)[c] = std::min((*lo)[c], p[i]);
    (*hi)[c] = std::max((*hi)[c], p[i]);
  }
}

}  // namespace internal

namespace {

using internal::AminMax;
using internal::AminMaxPerChannel;

void CheckInput(const char* name, const Tensor& x) {
  if (x.dtype() != DType::kF32) ThrowInvalid(name, ": observes f32 values, got ", x.ToString());
}

class MinMaxObserver : public Observer {
 public:
  explicit MinMaxObserver(const ObserverSpec& s) : Observer(s) {}
  std::string type_name() const override {
    return spec_.kind == ObserverKind::kMinMax ? "MinMaxObserver" : "MovingAverageMinMaxObserver";
  }
  Tensor forward(const Tensor& x) override {
    CheckInput("MinMaxObserver", x);
    if (x.numel() == 0) return x;
    const auto [lo, hi] = AminMax(x);
    if (spec_.kind == ObserverKind::kMinMax || (min_val_ == INFINITY && max_val_ == -INFINITY)) {
      min_val_ = std::min(lo, min_val_);
      max_val_ = std::max(hi, max_val_);
    } else {
      const float c = static_cast<float>(spec_.averaging_constant);
      min_val_ = min_val_ + c * (lo - min_val_);
      max_val_ = max_val_ + c * (hi - max_val_);
    }
    return x;
  }
  QParams CalculateQParams() const override { return FromMinMax({min_val_}, {max_val_}); }
  bool GetMinMax(std::vector<float>* lo, std::vector<float>* hi) const override {
    *lo = {min_val_};
    *hi = {max_val_};
    return true;
  }

 private:
  float min_val_ = INFINITY, max_val_ = -INFINITY;
};

class PerChannelMinMaxObserver : public Observer {
 public:
  explicit PerChannelMinMaxObserver(const ObserverSpec& s) : Observer(s) {}
  std::string type_name() const override {
    return spec_.kind == ObserverKind::kPerChannelMinMax ? "PerChannelMinMaxObserver"
                                                         : "MovingAveragePerChannelMinMaxObserver";
  }
  Tensor forward(const Tensor& x) override {
    CheckInput("PerChannelMinMaxObserver", x);
    if (x.numel() == 0) return x;
    std::vector<float> lo, hi;
    AminMaxPerChannel(x, spec_.ch_axis, &lo, &hi);
    if (!min_val_.empty() && min_val_.size() != lo.size()) {
      ThrowInvalid(type_name(), ": input ", x.ToString(), " has ", lo.size(), " channels on axis ", spec_.ch_axis,
                   " but earlier inputs had ", min_val_.size());
    }
    if (min_val_.empty()) {
      min_val_ = lo;
      max_val_ = hi;
      return x;
    }
    const float c = static_cast<float>(spec_.averaging_constant);
    for (size_t i = 0; i < lo.size(); ++i) {
      if (spec_.kind == ObserverKind::kPerChannelMinMax) {
        min_val_[i] = std::min(lo[i], min_val_[i]);
        max_val_[i] = std::max(hi[i], max_val_[i]);
      } else {
        min_val_[i] = min_val_[i] + c * (lo[i] - min_val_[i]);
        max_val_[i] = max_val_[i] + c * (hi[i] - max_val_[i]);
      }
    }
    return x;
  }
  QParams CalculateQParams() const override { return FromMinMax(min_val_, max_val_); }
  bool GetMinMax(std::vector<float>* lo, std::vector<float>* hi) const override {
    *lo = min_val_;
    *hi = max_val_;
    return true;
  }

 private:
  std::vector<float> min_val_, max_val_;
};

class FixedQParamsObserver : public Observer {
 public:
  explicit FixedQParamsObserver(const ObserverSpec& s) : Observer(s) {}
  std::string type_name() const override { return "FixedQParamsObserver"; }
  Tensor forward(const Tensor& x) override { return x; }
  QParams CalculateQParams() const override {
    QParams qp;
    qp.scale = {spec_.fixed_scale};
    qp.zero_point = {spec_.fixed_zero_point};
    qp.quant_min = quant_min_;
    qp.quant_max = quant_max_;
    qp.dtype = spec_.dtype;
    qp.qscheme = spec_.qscheme;
    return qp;
  }
};

// Placeholder, reuse-input and noop observers: pass-through markers.
class PassThroughObserver : public Observer {
 public:
  explicit PassThroughObserver(const ObserverSpec& s) : Observer(s) {}
  std::string type_name() const override {
    switch (spec_.kind) {
      case ObserverKind::kPlaceholder:
        return "PlaceholderObserver";
      case ObserverKind::kReuseInput:
        return "ReuseInputObserver";
      default:
        return "NoopObserver";
    }
  }
  Tensor forward(const Tensor& x) override { return x; }
};

}  // namespace

absl::StatusOr<std::shared_ptr<Observer>> MakeObserver(const ObserverSpec& spec) {
  QFX_RETURN_IF_ERROR(ValidateSpec(spec));
  switch (spec.kind) {
    case ObserverKind::kMinMax:
    case ObserverKind::kMovingAverageMinMax:
      return std::shared_ptr<Observer>(std::make_shared<MinMaxObserver>(spec));
    case ObserverKind::kPerChannelMinMax:
    case ObserverKind::kMovingAveragePerChannelMinMax:
      return std::shared_ptr<Observer>(std::make_shared<PerChannelMinMaxObserver>(spec));
    case ObserverKind::kHistogram:
    case ObserverKind::kHistogramPt2:
      return internal::MakeHistogramObserver(spec);
    case ObserverKind::kFixedQParams:
      return std::shared_ptr<Observer>(std::make_shared<FixedQParamsObserver>(spec));
    case ObserverKind::kPlaceholder:
    case ObserverKind::kReuseInput:
    case ObserverKind::kNoop:
      return std::shared_ptr<Observer>(std::make_shared<PassThroughObserver>(spec));
  }
  return absl::InternalError("unknown observer kind");
}

std::vector<std::string> CalibrationWarnings(nn::Module& root) {
  std::vector<std::string> warnings;
  for (const auto& [path, m] : root.named_modules()) {
    const Observer* o = dynamic_cast<const Observer*>(m);
    if (o == nullptr) {
      if (auto* fq = dynamic_cast<FakeQuantize*>(m)) o = &fq->observer();
    }
    std::vector<float> lo, hi;
    if (o == nullptr || !o->GetMinMax(&lo, &hi) || lo.empty()) continue;
    bool constant = true;
    for (size_t c = 0; c < lo.size(); ++c) constant = constant && std::isfinite(lo[c]) && lo[c] == hi[c];
    if (!constant) continue;
    warnings.push_back(absl::StrCat("observer '", path, "' saw only the value ", lo[0],
                                    lo.size() > 1 ? " (or one value per channel)" : "",
                                    " in calibration (a zero range): its tensor quantizes to a single value; "
                                    "calibrate on data that varies, or check the model's input"));
  }
  return warnings;
}

}  // namespace quant
}  // namespace qfx
