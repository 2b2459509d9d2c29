// qfx nn: module-free fp32 operations with PyTorch semantics (torch.nn.functional and tensor ops).
//
// Each function validates its inputs and throws qfx::Error naming the op and the broken rule, so a
// wrong shape in model code fails with a message like
//   "conv2d: input f32[1, 4, 8, 8] has 4 channels but weight f32[8, 3, 3, 3] expects 3 (x groups 1)".
// Convolution and GEMM run the Highway kernels; the rest are scalar loops (their own reference).
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "qfx/core/tensor.h"
#include "qfx/core/trace.h"
#include "qfx/kernels/f32.h"
#include "qfx/nn/geometry.h"  // ConvTranspose2dGeometry

namespace qfx {
namespace F {

struct Conv2dOptions {
  std::vector<int64_t> stride = {1, 1}, padding = {0, 0}, dilation = {1, 1};
  int64_t groups = 1;
};
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& opt);
// The kernel geometry of that call, after checking every shape and option (what conv2d checks).
kernels::Conv2dGeometry Conv2dGeometryOf(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                         const Conv2dOptions& opt);
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);  // bias may be undefined

// Batch norm over dim 1 of [N, C, ...]. In training, uses batch statistics and, when running stats
// are given, updates them in place with momentum (unbiased variance, as PyTorch).
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps);

Tensor relu(const Tensor& x);
Tensor relu6(const Tensor& x);
Tensor hardtanh(const Tensor& x, float min_val = -1.f, float max_val = 1.f);
Tensor hardswish(const Tensor& x);
Tensor hardsigmoid(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor gelu(const Tensor& x);  // PyTorch's approximate='none': x * Phi(x), Phi by erf
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor softmax(const Tensor& x, int64_t dim);

// Transformer ops (src/nn/functional_attention.cc), PyTorch's semantics.
// layer_norm over the last normalized_shape.size() dimensions of x, which must equal normalized_shape:
// (x - mean) / sqrt(var + eps) * weight + bias with the biased variance; weight and bias (shaped
// normalized_shape) may be undefined.
Tensor layer_norm(const Tensor& x, const std::vector<int64_t>& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps = 1e-5);
// a [..., n, k] x b [..., k, m] -> [..., n, m], the batch dimensions broadcast (torch.matmul on operands
// of rank 2 or more; a 1-d operand is an error: unsqueeze it).
Tensor matmul(const Tensor& a, const Tensor& b);
// a [B, n, k] x b [B, k, m] -> [B, n, m] (torch.bmm: no broadcasting).
Tensor bmm(const Tensor& a, const Tensor& b);
// nn.MultiheadAttention's self-attention (query, key and value all x; no masks, no attention dropout), as
// F.multi_head_attention_forward computes it: x [B, L, E] (batch_first) or [L, B, E]; qkv = linear(x,
// in_proj_weight [3E, E], in_proj_bias [3E]); per head h of num_heads (E / num_heads = D wide),
// softmax(q_h / sqrt(D) k_h^T) v_h; the heads side by side through linear(., out_proj_weight [E, E],
// out_proj_bias [E]). Either bias may be undefined. One call_function node when traced.
Tensor multi_head_attention(const Tensor& x, const Tensor& in_proj_weight, const Tensor& in_proj_bias,
                            const Tensor& out_proj_weight, const Tensor& out_proj_bias, int64_t num_heads,
                            bool batch_first);
// torch.select (x[:, i] on dim 1): entry `index` of dimension `dim`, that dimension dropped (a negative
// index or dim counts from the end), as a copy of any dtype.
Tensor select(const Tensor& x, int64_t dim, int64_t index);
// x.expand(sizes) (traced as the Tensor method): x broadcast to `sizes`, which may add leading dimensions;
// -1 keeps a dimension's size, and only size-1 dimensions grow. A copy (storage is always contiguous).
Tensor expand(const Tensor& x, const std::vector<int64_t>& sizes);
// x.expand_as(other): expand(x, other's shape), traced as the Tensor method. Only other's shape is read, so a
// trace stays free of its sizes (ViT's class token per batch entry, whatever the batch).
Tensor expand_as(const Tensor& x, const Tensor& other);

// F.interpolate on [N, C, H, W] (src/nn/functional_resize.cc): exactly one of size and scale_factor (one
// value for both axes, or (h, w)); nearest picks floor(o * scale), bilinear weighs the two neighbours of
// scale * (o + 0.5) - 0.5 per axis (align_corners: (in - 1) / (out - 1) * o), with PyTorch's CPU index
// arithmetic. A quint8 input gives quint8 output with its qparams. Output sizes are at most 65536 each and
// 2^26 values per plane (a bound on what a graph file can make a run allocate).
struct InterpolateOptions {
  enum class Mode : int64_t { kNearest = 0, kBilinear = 1 };  // the op's mode argument in graph files
  std::vector<int64_t> size;
  std::vector<double> scale_factor;
  Mode mode = Mode::kNearest;
  bool align_corners = false;
};
Tensor interpolate(const Tensor& x, const InterpolateOptions& opt);

// ConvTranspose2d (PyTorch's conv_transpose2d, the adjoint of conv2d): weight [C_in, C_out / groups, kH,
// kW]; out = (in - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1 per axis.
struct ConvTranspose2dOptions {
  std::vector<int64_t> stride = {1, 1}, padding = {0, 0}, output_padding = {0, 0}, dilation = {1, 1};
  int64_t groups = 1;
};
Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const ConvTranspose2dOptions& opt);
// Its sizes, after checking every shape and option (what conv_transpose2d checks).
nn::ConvTranspose2dGeometry ConvTranspose2dGeometryOf(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                                      const ConvTranspose2dOptions& opt);

// Rows of weight [num_embeddings, dim] picked by i64 / i32 indices: [*indices.shape, dim]; an index out of
// range is an error naming it. padding_idx only stops that row's gradient, as PyTorch's.
Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<int64_t> padding_idx = std::nullopt);
// [N, C, *] as [N, groups, C / groups, *] with dims 1 and 2 swapped, back in [N, C, *] (any dtype).
Tensor channel_shuffle(const Tensor& x, int64_t groups);
// torch.narrow: entries [start, start + length) of dimension `dim` (a negative start counts from the end),
// as a copy (any dtype; a quantized tensor keeps its qparams).
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
// torch.chunk / torch.split: narrows of x along `dim`: `chunks` pieces of ceil(size / chunks) (fewer when
// they run out, as PyTorch's), pieces of split_size (the last smaller), or pieces of the given sizes (which
// must sum to the size). Traced, one narrow node per piece; the trace must be specialised on example
// inputs (TracerOptions::example_inputs), since the pieces depend on the size of `dim`.
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sections, int64_t dim = 0);
Tensor dropout(const Tensor& x, double p, bool training);
// torchvision.ops.stochastic_depth: in training, zeroes whole rows (mode kRow: each sample of the batch on
// its own) or the whole input (kBatch) with probability p and scales what survives by 1 / (1 - p); the
// identity otherwise. Traced as one call_function node, as torch.fx traces torchvision's wrapped function.
enum class StochasticDepthMode : int64_t { kBatch = 0, kRow = 1 };
Tensor stochastic_depth(const Tensor& x, double p, StochasticDepthMode mode, bool training);
// The noise stochastic_depth multiplies by: [N, 1, ...] (kRow) or [1, ...] (kBatch) of 0 and 1 / (1 - p).
Tensor StochasticDepthNoise(const Shape& shape, double p, StochasticDepthMode mode, std::mt19937_64& rng);

struct Pool2dOptions {
  std::vector<int64_t> kernel_size = {1, 1}, stride = {}, padding = {0, 0}, dilation = {1, 1};
  bool ceil_mode = false;
  bool count_include_pad = true;  // avg pool only
};
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& opt);
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& opt);
Tensor adaptive_avg_pool2d(const Tensor& x, std::vector<int64_t> output_size);

// Elementwise with numpy/PyTorch broadcasting.
Tensor add(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, float b);
Tensor mul(const Tensor& a, float b);
Tensor cat(const std::vector<Tensor>& xs, int64_t dim);
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor reshape(const Tensor& x, Shape shape);
Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim = false);

// Index of the largest value along the last dim of a [N, C] tensor, as i64 [N].
Tensor argmax(const Tensor& x);

// ----- Quantized tensors (quint8, per-tensor qparams; the rules of qfx/kernels/int8.h) -----
// max_pool2d, avg_pool2d, adaptive_avg_pool2d, relu, relu6, hardtanh, flatten, reshape and dropout (eval)
// also accept quantized tensors and keep their qparams (pool averages round half to even).
Tensor quantize(const Tensor& x, double scale, int64_t zero_point);
Tensor dequantize(const Tensor& q);
// a + b (optionally followed by relu) or a * b, requantized to (scale, zero_point).
Tensor q_add(const Tensor& a, const Tensor& b, double scale, int64_t zero_point, bool relu);
Tensor q_mul(const Tensor& a, const Tensor& b, double scale, int64_t zero_point);
// matmul on quint8 tensors a [..., m, k] and b [..., k, n]: with the same batch dimensions through
// kernels::QMatmul (integer products requantized to (scale, zero_point); k at most kernels::kQMatmulMaxK, the
// int32 accumulator's bound); batch dimensions that broadcast take the float detour (dequantize, matmul,
// quantize), as q_add does for shapes that broadcast.
Tensor q_matmul(const Tensor& a, const Tensor& b, double scale, int64_t zero_point);
Tensor q_cat(const std::vector<Tensor>& xs, int64_t dim, double scale, int64_t zero_point);
// An elementwise float op applied through a 256-entry table: out = quantize(op(dequantize(q))).
// `op` is the OpId of an elementwise op of the registry (qfx/nn/ops.h: a table or fixed-qparams role, or a
// derivative), `op_args` its arguments after the input (leaky_relu's slope); dropout is the identity (eval).
Tensor q_unary(const Tensor& q, OpId op, double scale, int64_t zero_point, const std::vector<OpArg>& op_args = {});

}  // namespace F
}  // namespace qfx
