// qfx quant: how a value is observed and quantized — dtypes, qschemes, observer specs, QConfig.
//
// These are plain typed descriptions (no string keys): a QConfig pairs an activation spec and a weight
// spec; an ObserverSpec names an observer kind and its arguments with PyTorch 1.13's defaults. Observers
// and fake-quant modules are built from specs by MakeObserver / MakeFakeQuantize (observer.h).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "qfx/kernels/int8.h"

namespace qfx {
namespace quant {

enum class QDType : uint8_t { kQUInt8, kQInt8, kQInt32, kFloat16 };
enum class QScheme : uint8_t { kPerTensorAffine, kPerTensorSymmetric, kPerChannelAffine, kPerChannelSymmetric };
enum class ObserverKind : uint8_t {
  kMinMax,                         // MinMaxObserver
  kMovingAverageMinMax,            // MovingAverageMinMaxObserver
  kPerChannelMinMax,               // PerChannelMinMaxObserver
  kMovingAveragePerChannelMinMax,  // MovingAveragePerChannelMinMaxObserver
  kHistogram,                      // HistogramObserver
  kPlaceholder,                    // PlaceholderObserver (float16 / dynamic: records nothing)
  kFixedQParams,                   // FixedQParamsObserver (sigmoid, tanh, ... outputs)
  kReuseInput,                     // ReuseInputObserver (reshape-like ops share their input's)
  kNoop,                           // NoopObserver
  kHistogramPt2,                   // PyTorch 2.x's (torchao's) HistogramObserver: exact histc bounds,
                                   // re-binning by bucketize, upsample rate 16 (what PT2E quantizers use)
};

const char* QDTypeName(QDType d);              // "quint8", "qint8", "qint32", "float16"
const char* QSchemeName(QScheme s);            // "per_tensor_affine", ...
const char* ObserverKindName(ObserverKind k);  // "minmax", "moving_average_minmax", "per_channel_minmax", ...
// Inverses of the names above; false for an unknown name.
bool ParseQDType(const std::string& name, QDType* out);
bool ParseQScheme(const std::string& name, QScheme* out);
bool ParseObserverKind(const std::string& name, ObserverKind* out);
bool IsPerChannel(QScheme s);
bool IsSymmetric(QScheme s);

// The scales qfx accepts anywhere: finite and within [kMinScale, kMaxScale] (qfx/kernels/int8.h).
using kernels::kMaxScale;
using kernels::kMinScale;
using kernels::ScaleInRange;

// Histogram observer budgets (PyTorch's defaults are 2048 bins, upsample_rate 128): `bins` and the
// upsampled histogram's length bins * upsample_rate are bounded, so a rule file cannot take all memory.
inline constexpr int64_t kMaxHistogramBins = int64_t{1} << 16;
inline constexpr int64_t kMaxUpsampledBins = int64_t{1} << 22;

struct ObserverSpec {
  ObserverKind kind = ObserverKind::kMinMax;
  QDType dtype = QDType::kQUInt8;
  QScheme qscheme = QScheme::kPerTensorAffine;
  bool reduce_range = false;
  std::optional<int64_t> quant_min, quant_max;  // a custom range needs both
  int64_t ch_axis = 0;
  float eps = std::numeric_limits<float>::epsilon();
  double averaging_constant = 0.01;  // moving-average observers
  int64_t bins = 2048;               // histogram
  int64_t upsample_rate = 128;       // histogram
  float fixed_scale = 1.f;           // fixed-qparams observer
  int64_t fixed_zero_point = 0;
  // QAT: wrap the observer in a FakeQuantize module (its output is fake-quantized).
  bool fake_quant = false;

  bool operator==(const ObserverSpec& o) const;
  std::string ToString() const;  // e.g. "histogram(quint8, per_tensor_affine, reduce_range)"
};

// The effective [quant_min, quant_max] of a spec, as PyTorch's calculate_qmin_qmax computes it.
absl::StatusOr<std::pair<int64_t, int64_t>> QuantRange(const ObserverSpec& spec);
// Checks a spec as PyTorch's observer constructors do; errors say what to change.
absl::Status ValidateSpec(const ObserverSpec& spec);

struct QConfig {
  ObserverSpec activation;
  ObserverSpec weight;
  bool operator==(const QConfig& o) const { return activation == o.activation && weight == o.weight; }
};

// A dynamic qconfig: activations quantized at run time (a quint8 placeholder observer), weights int8.
inline bool IsDynamic(const QConfig& q) {
  return q.activation.kind == ObserverKind::kPlaceholder && q.activation.dtype == QDType::kQUInt8 &&
         !q.activation.fake_quant;
}

}  // namespace quant
}  // namespace qfx
