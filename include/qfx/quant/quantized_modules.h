// qfx quant: the modules convert produces.
//
//   ReferenceWeighted   the reference quantized form of a Conv2d / Linear (plain, fused with ReLU, or QAT
//                       with its batch norm folded): runs in float with dequantized int8 weights (PyTorch's
//                       reference modules) and carries the int8 weights for lowering.
//   QuantizedConv2d     int8 convolution with a fused requantizing epilogue (optional ReLU clamp); type
//                       names QuantizedConv2d / QuantizedConvReLU2d
//   QuantizedLinear     the same for Linear (QuantizedLinear / QuantizedLinearReLU)
// Both derive from QuantizedWeighted (qparams, clamp, .qfx config) and hold a packed kernel.
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
#include "qfx/kernels/qconv.h"
#include "qfx/nn/modules.h"
#include "qfx/quant/observer.h"

namespace qfx {
namespace quant {

// What convert knows about a quantized Conv2d or Linear layer.
struct QuantizedLayer {
  bool is_conv = true;
  bool relu = false;
  // Conv geometry (in_channels, out_channels, kernel, stride, padding, dilation, groups; the sizes per axis,
  // height first); Linear uses in_channels / out_channels only.
  int64_t in_channels = 0, out_channels = 0;
  nn::Size2 kernel = 1, stride = 1, padding = 0, dilation = 1;
  int64_t groups = 1;
  // The kernels' shape of a conv layer.
  kernels::QConv2dShape ConvShape() const;
  Tensor weight_q;      // i8, [out, in/groups, kh, kw] or [out, in]
  Tensor weight_scale;  // f32 [out] (a per-tensor scale repeated)
  Tensor bias;          // f32 [out] (zeros when the layer had none)
};

class ReferenceWeighted : public nn::Module {
 public:
  explicit ReferenceWeighted(QuantizedLayer layer);
  std::string type_name() const override {
    return layer_.is_conv ? (layer_.relu ? "ReferenceConvReLU2d" : "ReferenceConv2d")
                          : (layer_.relu ? "ReferenceLinearReLU" : "ReferenceLinear");
  }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override;
  const QuantizedLayer& layer() const { return layer_; }

 private:
  QuantizedLayer layer_;
  Tensor weight_deq_;
  F::Conv2dOptions options_;
};

// The shared part of QuantizedConv2d and QuantizedLinear: the int8 layer, its input and output qparams,
// the output clamp, and the .qfx configuration. Each subclass holds its packed kernel (qfx/kernels/qconv.h)
// and calls only the public kernel API.
class QuantizedWeighted : public nn::Module {
 public:
  bool is_leaf() const override { return true; }
  nlohmann::json Config() const;
  // QuantizedConv2d or QuantizedLinear, as the config's is_conv says.
  static absl::StatusOr<std::shared_ptr<QuantizedWeighted>> FromConfig(const nlohmann::json& config);
  // Narrows the output clamp to the quantized values of [lo, hi] (a following ReLU6 / Hardtanh / ReLU
  // folded into the epilogue: exact, as the clamp commutes with quantization), and packs again.
  void FoldClamp(float lo, float hi);
  int32_t clamp_lo() const { return clamp_lo_; }
  int32_t clamp_hi() const { return clamp_hi_; }
  // Packs the kernel again from what is in the state_dict (int32 bias and multipliers from the scales,
  // the weight layouts): call after loading new weights.
  virtual void Prepack() = 0;
  // Loaded weights that packing must not take: a bias that is not finite, a weight scale that is not finite
  // and positive (the error names the tensor and the channel).
  absl::Status CheckWeights() const;
  const QuantInfo& input_qparams() const { return input_; }
  const QuantizedLayer& layer() const { return layer_; }
  const QuantInfo& output_qparams() const { return output_; }
  // The int32 bias and the requantization multipliers of this layer (the rules of qfx/kernels/int8.h);
  // throws when the bias could overflow the accumulator. Other backends (the CUDA plan) read them here.
  kernels::QRequantValues RequantValues() const;

 protected:
  QuantizedWeighted(QuantizedLayer layer, QuantInfo input, QuantInfo output);
  // The kernel's requantization of this layer (values in `values`, which must outlive the returned view).
  kernels::QRequant Requant(const kernels::QRequantValues& values) const;
  // Throws unless x is quint8 with the qparams the layer was converted for.
  void CheckInput(const Tensor& x) const;

  QuantizedLayer layer_;
  QuantInfo input_, output_;
  int32_t clamp_lo_ = 0, clamp_hi_ = 255;  // output clamp (ReLU: clamp_lo_ = zero point)
};

class QuantizedConv2d final : public QuantizedWeighted {
 public:
  QuantizedConv2d(QuantizedLayer layer, QuantInfo input, QuantInfo output);
  std::string type_name() const override { return layer_.relu ? "QuantizedConvReLU2d" : "QuantizedConv2d"; }
  Tensor forward(const Tensor& x) override;
  void Prepack() override;
  const kernels::PackedQConv2d& packed() const { return packed_; }

 private:
  kernels::PackedQConv2d packed_;
};

class QuantizedLinear final : public QuantizedWeighted {
 public:
  QuantizedLinear(QuantizedLayer layer, QuantInfo input, QuantInfo output);
  std::string type_name() const override { return layer_.relu ? "QuantizedLinearReLU" : "QuantizedLinear"; }
  Tensor forward(const Tensor& x) override;
  void Prepack() override;
  const kernels::PackedQLinear& packed() const { return packed_; }

 private:
  kernels::PackedQLinear packed_;
};

// The lowered module of a reference Conv2d / Linear layer: QuantizedConv2d or QuantizedLinear.
std::shared_ptr<QuantizedWeighted> MakeQuantizedWeighted(QuantizedLayer layer, QuantInfo input, QuantInfo output);

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
  kernels::PackedQLinear packed_;
};

// Quantizes a float layer's weight with `spec` (a weight observer run over it), as convert does.
absl::StatusOr<QuantizedLayer> QuantizeLayer(const Tensor& weight, const Tensor& bias, const ObserverSpec& spec);
// The same with given qparams (a QAT weight fake-quant's: the grid the model was trained on).
absl::StatusOr<QuantizedLayer> QuantizeLayer(const Tensor& weight, const Tensor& bias, const QParams& qp);

// Registers the module kinds of this layer (int8 and fused modules: qfx/nn/ops.h ModuleKind) so that
// .qfx files can save and rebuild them; idempotent.
absl::Status RegisterModuleKinds();

}  // namespace quant
}  // namespace qfx
