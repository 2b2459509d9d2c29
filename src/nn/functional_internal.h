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

}  // namespace F
}  // namespace qfx
