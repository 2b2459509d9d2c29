// qfx nn: the standard fp32 modules, with PyTorch's semantics, defaults and parameter names.
//
// Constructors initialise weights as PyTorch does by default (uniform in +-1/sqrt(fan_in) for conv and
// linear weights and biases, drawn from nn::Generator()); batch norm starts at weight 1, bias 0,
// running mean 0, running var 1, num_batches_tracked 0 (an i64 scalar, as in PyTorch's state_dict).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qfx/nn/functional.h"
#include "qfx/nn/module.h"

namespace qfx {
namespace nn {

// A 2-d size, height first: one integer for both axes (PyTorch's `kernel_size=3`) or one per axis
// ({1, 7}, PyTorch's `kernel_size=(1, 7)`).
struct Size2 {
  Size2(int64_t both) : h(both), w(both) {}  // NOLINT(google-explicit-constructor): as PyTorch takes an int
  Size2(int64_t h, int64_t w) : h(h), w(w) {}
  bool square() const { return h == w; }
  std::vector<int64_t> vec() const { return {h, w}; }
  bool operator==(const Size2& o) const { return h == o.h && w == o.w; }
  bool operator!=(const Size2& o) const { return !(*this == o); }
  int64_t h, w;
};

struct Conv2dArgs {
  Size2 stride = 1, padding = 0, dilation = 1;
  int64_t groups = 1;
  bool bias = true;
};

// The Conv2dArgs that `options` (each list one value for both axes, or two) and a bias flag stand for.
Conv2dArgs Conv2dArgsOf(const F::Conv2dOptions& options, bool bias);

class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, Conv2dArgs args = {});
  std::string type_name() const override { return "Conv2d"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override;
  // The stride, padding, dilation, groups and bias flag this layer was built with (from `options`).
  Conv2dArgs args() const;

  int64_t in_channels, out_channels;
  Size2 kernel_size;
  F::Conv2dOptions options;
  Tensor weight, bias;  // bias undefined when args.bias is false
};

struct ConvTranspose2dArgs {
  Size2 stride = 1, padding = 0, output_padding = 0;
  int64_t groups = 1;
  bool bias = true;
  Size2 dilation = 1;  // PyTorch's argument order
};

// nn.ConvTranspose2d: weight [in, out / groups, kH, kW], initialised as PyTorch does (fan_in from dim 1).
class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, Size2 kernel_size, ConvTranspose2dArgs args = {});
  std::string type_name() const override { return "ConvTranspose2d"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override { return F::conv_transpose2d(x, weight, bias, options); }

  int64_t in_channels, out_channels;
  Size2 kernel_size;
  F::ConvTranspose2dOptions options;
  Tensor weight, bias;  // bias undefined when args.bias is false
};

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  std::string type_name() const override { return "Linear"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override;

  int64_t in_features, out_features;
  Tensor weight, bias;
};

// nn.MultiheadAttention's out_proj: a Linear under PyTorch's class name, so that no flow takes it for a
// Linear of its own (dynamic quantization swaps Linear by type name; the attention reads its weight).
class NonDynamicallyQuantizableLinear : public Linear {
 public:
  using Linear::Linear;
  std::string type_name() const override { return "NonDynamicallyQuantizableLinear"; }
};

// nn.MultiheadAttention for self-attention, with PyTorch's parameter names (in_proj_weight [3E, E],
// in_proj_bias [3E], out_proj.weight / .bias) and initialisation (xavier-uniform in_proj_weight, zero biases).
// A leaf: one call_module node, as torch.fx records it; its op is F::multi_head_attention. forward(x) is
// PyTorch's self_attention(x, x, x, need_weights=False)[0]; forward_args takes one tensor, or query, key and
// value, which must be one tensor (cross-attention, masks and attention dropout in training are not supported yet).
class MultiheadAttention : public Module {
 public:
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, double dropout = 0.0, bool bias = true,
                     bool batch_first = false);
  std::string type_name() const override { return "MultiheadAttention"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override;
  Tensor forward_args(const ForwardArgs& args) override;

  int64_t embed_dim, num_heads;
  double dropout;
  bool batch_first;
  Tensor in_proj_weight, in_proj_bias;  // in_proj_bias undefined without bias
  std::shared_ptr<NonDynamicallyQuantizableLinear> out_proj;
};

// Shared by BatchNorm1d ([N, C] or [N, C, L]) and BatchNorm2d ([N, C, H, W]).
class BatchNormBase : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  bool is_leaf() const override { return true; }

  int64_t num_features;
  double eps, momentum;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 protected:
  BatchNormBase(int64_t num_features, double eps, double momentum);
  virtual void CheckInput(const Tensor& x) const = 0;
};

class BatchNorm2d : public BatchNormBase {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1)
      : BatchNormBase(num_features, eps, momentum) {}
  std::string type_name() const override { return "BatchNorm2d"; }

 private:
  void CheckInput(const Tensor& x) const override;
};

class BatchNorm1d : public BatchNormBase {
 public:
  explicit BatchNorm1d(int64_t num_features, double eps = 1e-5, double momentum = 0.1)
      : BatchNormBase(num_features, eps, momentum) {}
  std::string type_name() const override { return "BatchNorm1d"; }

 private:
  void CheckInput(const Tensor& x) const override;
};

// LayerNorm over the last dimensions (normalized_shape), PyTorch's nn.LayerNorm: weight 1 and bias 0 when
// elementwise_affine, else none.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(std::vector<int64_t> normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  std::string type_name() const override { return "LayerNorm"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override { return F::layer_norm(x, normalized_shape, weight, bias, eps); }

  std::vector<int64_t> normalized_shape;
  double eps;
  Tensor weight, bias;
};

// nn.Embedding: weight [num_embeddings, embedding_dim] drawn from N(0, 1), the padding_idx row zero (a
// negative padding_idx counts from the end, as PyTorch's; it is kept non-negative).
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, std::optional<int64_t> padding_idx = std::nullopt);
  std::string type_name() const override { return "Embedding"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override { return F::embedding(x, weight, padding_idx); }
  int64_t num_embeddings, embedding_dim;
  std::optional<int64_t> padding_idx;
  Tensor weight;
};

class ChannelShuffle : public Module {
 public:
  explicit ChannelShuffle(int64_t groups);
  std::string type_name() const override { return "ChannelShuffle"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override { return F::channel_shuffle(x, groups); }
  int64_t groups;
};

// Stateless elementwise modules.
#define QFX_ELEMENTWISE_MODULE(Name, fn)                          \
  class Name : public Module {                                    \
   public:                                                        \
    std::string type_name() const override { return #Name; }      \
    bool is_leaf() const override { return true; }                \
    Tensor forward(const Tensor& x) override { return F::fn(x); } \
  };
QFX_ELEMENTWISE_MODULE(ReLU, relu)
QFX_ELEMENTWISE_MODULE(ReLU6, relu6)
QFX_ELEMENTWISE_MODULE(Hardswish, hardswish)
QFX_ELEMENTWISE_MODULE(Hardsigmoid, hardsigmoid)
QFX_ELEMENTWISE_MODULE(Sigmoid, sigmoid)
QFX_ELEMENTWISE_MODULE(Tanh, tanh)
QFX_ELEMENTWISE_MODULE(SiLU, silu)
QFX_ELEMENTWISE_MODULE(GELU, gelu)  // approximate='none'
#undef QFX_ELEMENTWISE_MODULE

class Hardtanh : public Module {
 public:
  explicit Hardtanh(float min_val = -1.f, float max_val = 1.f);
  std::string type_name() const override { return "Hardtanh"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override { return F::hardtanh(x, min_val, max_val); }
  float min_val, max_val;
};

class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : negative_slope(negative_slope) {}
  std::string type_name() const override { return "LeakyReLU"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override { return F::leaky_relu(x, negative_slope); }
  double negative_slope;
};

class Softmax : public Module {
 public:
  explicit Softmax(int64_t dim) : dim(dim) {}
  std::string type_name() const override { return "Softmax"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override { return F::softmax(x, dim); }
  int64_t dim;
};

class MaxPool2d : public Module {
 public:
  // stride 0 means "equal to kernel_size", as PyTorch's stride=None.
  explicit MaxPool2d(Size2 kernel_size, Size2 stride = 0, Size2 padding = 0, Size2 dilation = 1,
                     bool ceil_mode = false);
  std::string type_name() const override { return "MaxPool2d"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override { return F::max_pool2d(x, options); }
  F::Pool2dOptions options;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Size2 kernel_size, Size2 stride = 0, Size2 padding = 0, bool ceil_mode = false,
                     bool count_include_pad = true);
  std::string type_name() const override { return "AvgPool2d"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override { return F::avg_pool2d(x, options); }
  F::Pool2dOptions options;
};

// nn.Upsample: F::interpolate with fixed options (nearest or bilinear; a size or a scale factor).
class Upsample : public Module {
 public:
  explicit Upsample(F::InterpolateOptions options);
  std::string type_name() const override { return "Upsample"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override { return F::interpolate(x, options); }
  F::InterpolateOptions options;
};

class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(int64_t output_h, int64_t output_w = 0);  // output_w 0: square
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override { return F::adaptive_avg_pool2d(x, output_size); }
  std::vector<int64_t> output_size;
};

class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim(start_dim), end_dim(end_dim) {}
  std::string type_name() const override { return "Flatten"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override { return F::flatten(x, start_dim, end_dim); }
  int64_t start_dim, end_dim;
};

class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  std::string type_name() const override { return "Dropout"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override { return F::dropout(x, p, is_training()); }
  double p;
};

// torchvision.ops.StochasticDepth: not a torch.nn module, so traced through (a call_function
// stochastic_depth node, as torch.fx gives), with no parameters.
class StochasticDepth : public Module {
 public:
  StochasticDepth(double p, F::StochasticDepthMode mode) : p(p), mode(mode) {}
  std::string type_name() const override { return "StochasticDepth"; }
  Tensor forward(const Tensor& x) override { return F::stochastic_depth(x, p, mode, is_training()); }
  double p;
  F::StochasticDepthMode mode;
};

class Identity : public Module {
 public:
  std::string type_name() const override { return "Identity"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override { return x; }
};

// Calls its children in order; children are named "0", "1", ... as in PyTorch.
class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  std::string type_name() const override { return "Sequential"; }
  Tensor forward(const Tensor& x) override;
  void push_back(std::shared_ptr<Module> module);
  // Appends a child under its own name (torch.nn.Sequential(OrderedDict(...)): RegNet's "a", "b", "c").
  void push_back(const std::string& name, std::shared_ptr<Module> module);
  size_t size() const { return named_children().size(); }
  Module& operator[](size_t i) const { return *named_children().at(i).second; }
};

// Holds modules named "0", "1", ...; has no forward.
class ModuleList : public Module {
 public:
  ModuleList() = default;
  std::string type_name() const override { return "ModuleList"; }
  void push_back(std::shared_ptr<Module> module);
  size_t size() const { return named_children().size(); }
  Module& operator[](size_t i) const { return *named_children().at(i).second; }
};

}  // namespace nn
}  // namespace qfx
