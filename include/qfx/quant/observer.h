// qfx quant: observers and fake-quant modules with PyTorch 1.13's numerics.
//
// Observers are nn::Modules (so prepare inserts them as call_module nodes named
// activation_post_process_<N>, and their statistics are buffers in the state_dict, as in PyTorch): forward
// records statistics and returns its input unchanged; CalculateQParams turns them into scale and zero
// point with PyTorch's formulas (min/max widened to include zero, eps clamp, symmetric and affine rules,
// round-half-to-even zero points, clamping, reduce_range and custom ranges). All arithmetic follows
// PyTorch's float32 order of operations so qparams agree with PyTorch's to the last bit or close to it.
#pragma once

#include <memory>
#include <vector>

#include "qfx/nn/module.h"
#include "qfx/quant/qconfig.h"

namespace qfx {
namespace quant {

struct QParams {
  std::vector<float> scale;         // one per tensor, or one per channel
  std::vector<int64_t> zero_point;  // same length as scale
  int64_t quant_min = 0, quant_max = 255;
  QDType dtype = QDType::kQUInt8;
  QScheme qscheme = QScheme::kPerTensorAffine;
  int64_t ch_axis = 0;
};

class Observer : public nn::Module {
 public:
  const ObserverSpec& spec() const { return spec_; }
  int64_t quant_min() const { return quant_min_; }
  int64_t quant_max() const { return quant_max_; }
  bool is_leaf() const override { return true; }
  // Throws qfx::Error for observers that have no qparams (placeholder, noop, reuse-input).
  virtual QParams CalculateQParams() const;
  // The running min/max (one per channel for per-channel observers); false for other kinds.
  virtual bool GetMinMax(std::vector<float>* /*lo*/, std::vector<float>* /*hi*/) const { return false; }

 protected:
  explicit Observer(const ObserverSpec& spec);
  // PyTorch's _calculate_qparams on per-tensor (size 1) or per-channel min/max.
  QParams FromMinMax(const std::vector<float>& min_val, const std::vector<float>& max_val) const;
  ObserverSpec spec_;
  int64_t quant_min_, quant_max_;
};

// Whether a module is an observer or a fake-quant module (what Prepare inserts), by its type.
bool IsObserverModule(const nn::Module* module);

// What calibration of `root` (a prepared GraphModule or eager model) left suspicious, one line per
// observer: a zero range (every value it saw was the same, so its scale falls back to eps and the
// tensor quantizes to one value), naming the observer's path and the value.
std::vector<std::string> CalibrationWarnings(nn::Module& root);

// Builds the observer a spec names (without the fake-quant wrapper); errors from ValidateSpec.
absl::StatusOr<std::shared_ptr<Observer>> MakeObserver(const ObserverSpec& spec);

// FakeQuantize: observes (when enabled), updates scale/zero_point, and fake-quantizes (when enabled):
//   out = (clamp(nearbyint(x * (1/scale)) + zero_point, quant_min, quant_max) - zero_point) * scale
// Over a moving-average observer it behaves as PyTorch's FusedMovingAvgObsFakeQuantize (what the QAT presets
// use): forward computes qparams with ATen's ChooseQuantizationParams (double-precision scale, symmetric
// ranges split as [-(n/2+1), n/2], zero point from the nearer end, scales below 6.1e-5 raised), while
// CalculateQParams (used by convert) keeps the observer's formula — exactly PyTorch's split.
class FakeQuantize : public nn::Module {
 public:
  explicit FakeQuantize(std::shared_ptr<Observer> observer);
  std::string type_name() const override { return "FakeQuantize"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override;
  // forward's first half: observe x (when enabled) and refresh qparams(), without fake-quantizing (the
  // training engine records the fake-quantization itself).
  void UpdateQParams(const Tensor& x);

  void enable_observer(bool on) { observer_enabled_ = on; }
  void enable_fake_quant(bool on) { fake_quant_enabled_ = on; }
  bool observer_enabled() const { return observer_enabled_; }
  bool fake_quant_enabled() const { return fake_quant_enabled_; }
  // The qparams of the last forward with the observer enabled (PyTorch's scale / zero_point buffers).
  const QParams& qparams() const { return qparams_; }
  QParams CalculateQParams() const { return observer_->CalculateQParams(); }
  Observer& observer() { return *observer_; }

 private:
  std::shared_ptr<Observer> observer_;
  bool observer_enabled_ = true, fake_quant_enabled_ = true;
  QParams qparams_;
};

absl::StatusOr<std::shared_ptr<nn::Module>> MakeObserverOrFakeQuantize(const ObserverSpec& spec);

// ATen's quant_utils ChooseQuantizationParams for one (min, max) pair.
void ChooseQuantizationParams(float min, float max, int64_t qmin, int64_t qmax, bool preserve_sparsity, float* scale,
                              int64_t* zero_point);

// The fake-quantize function itself (per tensor when qp has one scale, else per channel on qp.ch_axis).
Tensor FakeQuantizeTensor(const Tensor& x, const QParams& qp);

}  // namespace quant
}  // namespace qfx
