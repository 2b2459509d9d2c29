// qfx quant: the modules convert produces.
//
//   ReferenceWeighted   the reference quantized form of a Conv2d / Linear (plain, fused with ReLU, or QAT
//                       with its batch norm folded): runs in float with dequantized int8 weights (PyTorch's
//                       reference modules) and carries the int8 weights for lowering.
//   QuantizedConv2d     int8 convolution with a fused requantizing epilogue (optional ReLU clamp)
//   QuantizedLinear     the same for Linear
//   DynamicQuantizedLinear  dynamic quantization's Linear: float in and out, int8 per-channel weights,
//                       the input quantized per call from its own min/max (PyTorch's linear_dynamic)
// Quantized modules take and return quint8 tensors (per-tensor qparams) and check their input's qparams.
// Their persistent state (int8 weight, per-channel weight scales, int32 bias) is in the state_dict and
// their configuration in Config(), so a .qfx file can rebuild them without the model's C++ class.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "qfx/kernels/int8.h"
#include "qfx/nn/modules.h"
#include "qfx/quant/observer.h"

namespace qfx {
namespace quant {

// What convert knows about a quantized Conv2d or Linear layer.
struct QuantizedLayer {
  bool is_conv = true;
  bool relu = false;
  // Conv geometry (in_channels, out_channels, kernel, stride, padding, dilation, groups); Linear uses
  // in_channels / out_channels only.
  int64_t in_channels = 0, out_channels = 0, kernel = 1, stride = 1, padding = 0, dilation = 1, groups = 1;
  Tensor weight_q;      // i8, [out, in/groups, k, k] or [out, in]
  Tensor weight_scale;  // f32 [out] (a per-tensor scale repeated)
  Tensor bias;          // f32 [out] (zeros when the layer had none)
};

class ReferenceWeighted : public nn::Module {
 public:
  explicit ReferenceWeighted(QuantizedLayer layer);
  std::string type_name() const override { return layer_.is_conv ? (layer_.relu ? "ReferenceConvReLU2d" : "ReferenceConv2d")
                                                                  : (layer_.relu ? "ReferenceLinearReLU" : "ReferenceLinear"); }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override;
  const QuantizedLayer& layer() const { return layer_; }

 private:
  QuantizedLayer layer_;
  Tensor weight_deq_;
  F::Conv2dOptions options_;
};

class QuantizedWeighted : public nn::Module {
 public:
  QuantizedWeighted(QuantizedLayer layer, QuantInfo input, QuantInfo output);
  std::string type_name() const override {
    return layer_.is_conv ? (layer_.relu ? "QuantizedConvReLU2d" : "QuantizedConv2d")
                          : (layer_.relu ? "QuantizedLinearReLU" : "QuantizedLinear");
  }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override;
  nlohmann::json Config() const;
  static absl::StatusOr<std::shared_ptr<QuantizedWeighted>> FromConfig(const nlohmann::json& config);
  // Narrows the output clamp to the quantized values of [lo, hi] (a following ReLU6 / Hardtanh / ReLU
  // folded into the epilogue: exact, as the clamp commutes with quantization).
  void FoldClamp(float lo, float hi);
  int32_t clamp_lo() const { return clamp_lo_; }
  int32_t clamp_hi() const { return clamp_hi_; }
  // Recomputes what derives from the weights (int32 bias, weight sums, multipliers): call after loading
  // new weights into the state_dict.
  void Prepack();
  const QuantInfo& input_qparams() const { return input_; }
  const QuantInfo& output_qparams() const { return output_; }

 private:
  QuantizedLayer layer_;
  QuantInfo input_, output_;
  Tensor bias_q_;                 // i32 [out], registered as "bias"
  std::vector<int32_t> weight_sum_;
  std::vector<float> multiplier_;
  kernels::AlignedVector<int32_t> packed_weight_;
  kernels::AlignedVector<int8_t> tap_weight_;  // tap-major copy for the AMX implicit-GEMM convolution (may be empty)
  kernels::AlignedVector<int32_t> window_weight_;  // windowed copy for the windowed im2col (may be empty)
  int32_t weight_max_pair_ = -1;
  int32_t clamp_lo_ = 0, clamp_hi_ = 255;  // output clamp (ReLU: clamp_lo_ = zero point)
};

// PyTorch's dynamically quantized Linear (torch.ao.nn.quantized.dynamic.Linear, fbgemm's linear_dynamic
// with reduce_range): each call takes the input's min and max (widened to include 0), chooses quint8
// qparams over [0, 127] (reduce_range, so vpmaddubsw is exact) or [0, 255] with ATen's
// ChooseQuantizationParams, quantizes, multiplies with the int8 weights and writes float
//   y = float(acc) * (s_x * s_w[c]) + bias[c].
class DynamicQuantizedLinear : public nn::Module {
 public:
  DynamicQuantizedLinear(QuantizedLayer layer, bool reduce_range);
  std::string type_name() const override { return "DynamicQuantizedLinear"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override;
  nlohmann::json Config() const;
  static absl::StatusOr<std::shared_ptr<DynamicQuantizedLinear>> FromConfig(const nlohmann::json& config);
  void Prepack();  // after loading new weights

 private:
  QuantizedLayer layer_;
  bool reduce_range_;
  std::vector<int32_t> weight_sum_;
  kernels::AlignedVector<int32_t> packed_weight_;
  int32_t weight_max_pair_ = -1;
};

// Quantizes a float layer's weight with `spec` (a weight observer run over it), as convert does.
absl::StatusOr<QuantizedLayer> QuantizeLayer(const Tensor& weight, const Tensor& bias, const ObserverSpec& spec);
// The same with given qparams (a QAT weight fake-quant's: the grid the model was trained on).
absl::StatusOr<QuantizedLayer> QuantizeLayer(const Tensor& weight, const Tensor& bias, const QParams& qp);

}  // namespace quant
}  // namespace qfx
