// qfx nn: what the functional ops' files (functional*.cc) share: the tracing shortcut, optional tensor
// arguments and the f32 check.
#pragma once

#include "qfx/core/status.h"
#include "qfx/core/tensor.h"
#include "qfx/core/trace.h"

namespace qfx {
namespace F {

// Records the op instead of running it when an argument is a traced value (see qfx/core/trace.h).
#define QFX_TRACE_OP(op, ...)                                            \
  do {                                                                   \
    Tensor qfx_traced_;                                                  \
    if (MaybeTrace(op, {__VA_ARGS__}, &qfx_traced_)) return qfx_traced_; \
  } while (0)

// An optional tensor argument: None when undefined.
inline OpArg Optional(const Tensor& t) { return t.is_proxy() || t.defined() ? OpArg(t) : OpArg(); }

inline void CheckF32(const char* op, const Tensor& x, const char* what = "input") {
  if (!x.defined()) ThrowInvalid(op, ": ", what, " is undefined");
  if (x.dtype() != DType::kF32) ThrowInvalid(op, ": ", what, " ", x.ToString(), " must be f32");
}

// multi_head_attention's intermediate values, which its backward (src/nn/op_gradients_attention.cc) reuses.
struct SelfAttentionParts {
  int64_t batch = 0, length = 0, embed = 0, heads = 0;
  Tensor x;          // the input, batch first [B, L, E]
  Tensor qkv;        // linear(x, in_proj_weight, in_proj_bias) [B, L, 3E]
  Tensor q, k, v;    // [B * H, L, D], q divided by sqrt(D)
  Tensor p;          // softmax(q k^T) [B * H, L, L]
  Tensor heads_out;  // p v [B * H, L, D]
  Tensor o;          // the heads side by side [B, L, E]
  Tensor y;          // linear(o, out_proj_weight, out_proj_bias), batch first [B, L, E]
};
// Checks every shape (errors name the op and the argument) and computes the parts on concrete tensors.
SelfAttentionParts SelfAttention(const Tensor& x, const Tensor& in_proj_weight, const Tensor& in_proj_bias,
                                 const Tensor& out_proj_weight, const Tensor& out_proj_bias, int64_t num_heads,
                                 bool batch_first);

}  // namespace F
}  // namespace qfx
