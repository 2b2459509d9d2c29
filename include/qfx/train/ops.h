// qfx train: differentiable ops. Each computes its forward with the same fp32 code as inference
// (qfx::F, so a trained model's eval forward is the one that runs after training) and records its
// backward on the tape. Shapes are validated by the forward, which throws qfx::Error naming the op.
#pragma once

#include <optional>
#include <random>
#include <variant>
#include <vector>

#include "qfx/nn/functional.h"
#include "qfx/quant/observer.h"
#include "qfx/train/autograd.h"

namespace qfx {
namespace train {
namespace ag {

Var conv2d(Tape& t, const Var& x, const Var& w, const Var& b, const F::Conv2dOptions& opt);  // b may be undefined
Var linear(Tape& t, const Var& x, const Var& w, const Var& b);
// Batch norm over dim 1. Training: batch statistics, and running stats (when defined) updated in place
// exactly as F::batch_norm does. Eval: running stats, gradients to x, weight and bias only.
Var batch_norm(Tape& t, const Var& x, const Tensor& running_mean, const Tensor& running_var, const Var& weight,
               const Var& bias, bool training, double momentum, double eps);

// An op argument on the tape: a Var where the graph has a tensor, else the constant.
using Value = std::variant<std::monostate, Var, int64_t, double, bool, std::vector<int64_t>, std::vector<Var>>;
// Any op of the registry with a registered backward (qfx/nn/ops.h: a vjp), on tape values.
Var apply(Tape& t, OpId op, const std::vector<Value>& args);
// Any elementwise op of the registry (qfx/nn/ops.h: one with a derivative), `args` its arguments after x.
Var elementwise(Tape& t, const Var& x, OpId op, const std::vector<OpArg>& args = {});
Var relu(Tape& t, const Var& x);
Var relu6(Tape& t, const Var& x);
Var hardtanh(Tape& t, const Var& x, float min_val, float max_val);
Var hardswish(Tape& t, const Var& x);
Var hardsigmoid(Tape& t, const Var& x);
Var sigmoid(Tape& t, const Var& x);
Var tanh(Tape& t, const Var& x);
Var silu(Tape& t, const Var& x);
Var softmax(Tape& t, const Var& x, int64_t dim);
// Zeroes each value with probability p (drawn from rng) and scales the rest by 1/(1-p); identity in eval.
Var dropout(Tape& t, const Var& x, double p, bool training, std::mt19937_64& rng);
Var stochastic_depth(Tape& t, const Var& x, double p, F::StochasticDepthMode mode, bool training, std::mt19937_64& rng);

Var max_pool2d(Tape& t, const Var& x, const F::Pool2dOptions& opt);
Var avg_pool2d(Tape& t, const Var& x, const F::Pool2dOptions& opt);
Var adaptive_avg_pool2d(Tape& t, const Var& x, const std::vector<int64_t>& output_size);

// Elementwise with broadcasting; gradients are summed back to each input's shape.
Var add(Tape& t, const Var& a, const Var& b);
Var mul(Tape& t, const Var& a, const Var& b);
Var div(Tape& t, const Var& a, const Var& b);
Var cat(Tape& t, const std::vector<Var>& xs, int64_t dim);
Var reshape(Tape& t, const Var& x, Shape shape);  // view, flatten and reshape
Var transpose(Tape& t, const Var& x, int64_t dim0, int64_t dim1);
Var permute(Tape& t, const Var& x, std::vector<int64_t> dims);
Var layer_norm(Tape& t, const Var& x, std::vector<int64_t> normalized_shape, const Var& weight, const Var& bias,
               double eps = 1e-5);  // weight, bias may be Var{}
Var matmul(Tape& t, const Var& a, const Var& b);
Var bmm(Tape& t, const Var& a, const Var& b);
Var interpolate(Tape& t, const Var& x, const F::InterpolateOptions& opt);
Var embedding(Tape& t, const Var& indices, const Var& weight, std::optional<int64_t> padding_idx = std::nullopt);
Var channel_shuffle(Tape& t, const Var& x, int64_t groups);
Var narrow(Tape& t, const Var& x, int64_t dim, int64_t start, int64_t length);
Var select(Tape& t, const Var& x, int64_t dim, int64_t index);
Var expand(Tape& t, const Var& x, std::vector<int64_t> sizes);
Var expand_as(Tape& t, const Var& x, const Var& other);  // other's shape only: it gets no gradient
// nn.MultiheadAttention's self-attention (F::multi_head_attention); the biases may be Var{}.
Var multi_head_attention(Tape& t, const Var& x, const Var& in_proj_weight, const Var& in_proj_bias,
                         const Var& out_proj_weight, const Var& out_proj_bias, int64_t num_heads, bool batch_first);
Var conv_transpose2d(Tape& t, const Var& x, const Var& w, const Var& b, const F::ConvTranspose2dOptions& opt);
Var mean(Tape& t, const Var& x, const std::vector<int64_t>& dims, bool keepdim);

// Fake quantization with the straight-through estimator, PyTorch's cachemask rule: the gradient passes
// where nearbyint(x / scale) + zero_point lies in [quant_min, quant_max], and is zero elsewhere.
Var fake_quantize(Tape& t, const Var& x, const quant::QParams& qp);

// Mean cross-entropy of logits [N, C] against i64 labels [N] (softmax + negative log-likelihood).
Var cross_entropy(Tape& t, const Var& logits, const Tensor& labels);

}  // namespace ag
}  // namespace train
}  // namespace qfx
