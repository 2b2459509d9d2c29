// qfx core: the hook that symbolic tracing (src/fx) plugs into, and the op identifiers it records.
//
// A traced value is a proxy Tensor: it has no storage, only an opaque handle that the active tracer
// understands. Every traceable operation (the functions in qfx::F, the Tensor methods Reshape and
// Flatten, and module calls in src/nn) first asks ActiveTraceHook() whether any argument is a proxy and,
// if so, lets the tracer record it instead of computing. Reading a proxy's shape or data — anything that
// needs a concrete value — throws TraceError through the hook, which names the module being traced.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "qfx/core/tensor.h"

namespace qfx {

// Every op a graph can call. call_function ops come first, then call_method ops (Tensor methods).
// The registry in src/nn/ops.cc gives each its names, argument schema and fp32 implementation.
enum class OpId : uint16_t {
  // call_function
  kAdd,
  kMul,
  kCat,
  kFlatten,
  kReshape,
  kMean,
  kRelu,
  kRelu6,
  kHardtanh,
  kHardswish,
  kHardsigmoid,
  kSigmoid,
  kTanh,
  kSilu,
  kGelu,
  kLeakyRelu,
  kSoftmax,
  kDropout,
  kConv2d,
  kLinear,
  kBatchNorm,
  kMaxPool2d,
  kAvgPool2d,
  kAdaptiveAvgPool2d,
  kLayerNorm,
  kMatmul,
  kBmm,
  kInterpolate,
  kEmbedding,
  kChannelShuffle,
  kConvTranspose2d,
  kNarrow,
  kStochasticDepth,
  kMultiheadAttention,
  kSelect,
  // quantized call_function ops (convert produces them)
  kQuantize,
  kDequantize,
  kQAdd,
  kQMul,
  kQCat,
  kQUnary,
  kQMatmul,
  // call_method
  kMethodReshape,
  kMethodView,
  kMethodFlatten,
  kMethodTranspose,
  kMethodPermute,
  kMethodExpand,
  kMethodExpandAs,
  kNumOps
};

// One positional argument of a traced op: a tensor (maybe a proxy), a constant, a list, or an op (q_unary's
// table op: typed here, by its registered name in graph files).
using OpArg =
    std::variant<std::monostate, Tensor, int64_t, double, bool, std::vector<int64_t>, std::vector<Tensor>, OpId>;

// The constant alternatives (integer, number, bool, list of integers, an op where `To` holds one) of one
// argument variant (OpArg, fx::Argument, training's values) as another; anything else (tensors, nodes, None)
// becomes None.
template <typename To, typename From>
To ConstantAs(const From& arg) {
  return std::visit(
      [](const auto& v) -> To {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, double> || std::is_same_v<T, bool> ||
                      std::is_same_v<T, std::vector<int64_t>> ||
                      (std::is_same_v<T, OpId> && std::is_constructible_v<To, OpId>)) {
          return v;
        } else {
          return std::monostate();
        }
      },
      arg);
}

// Thrown when tracing meets a value it cannot represent in a graph (see issue 3's TraceError).
class TraceError : public Error {
 public:
  explicit TraceError(const std::string& message) : Error(absl::FailedPreconditionError(message)) {}
};

class TraceHook {
 public:
  virtual ~TraceHook() = default;
  // Records `op` applied to `args` (at least one is a proxy) and returns the proxy of its result.
  virtual Tensor RecordOp(OpId op, std::vector<OpArg> args) = 0;
  // Throws TraceError: `what` needed a concrete value of a proxy: a forward argument (concrete_args can
  // give it), a tensor's data (nothing can) or its shape (example inputs can).
  enum class Needed { kArgument, kTensorValue, kShape };
  [[noreturn]] virtual void ConcreteValueRequired(const std::string& what, Needed needed) = 0;
  // A shaped proxy's shape was read (a trace specialised on example inputs): one dimension (>= 0), all of
  // them (-1) or only the rank (-2). The tracer records it so that runs with other sizes there fail.
  virtual void ShapeRead(const void* proxy_handle, int64_t what) = 0;
  // Whether a concrete tensor stands for a value of the traced graph: the root's parameters and buffers,
  // which an op on them alone records as get_attr nodes (torch.fx's attribute proxies, e.g. ViT's
  // class_token.expand(n, -1, -1)).
  virtual bool Tracks(const Tensor& /*t*/) const { return false; }
};

// The hook of the tracer running on this thread, or nullptr.
TraceHook* ActiveTraceHook();
// Installs `hook` for this thread; restores the previous one on destruction.
class ScopedTraceHook {
 public:
  explicit ScopedTraceHook(TraceHook* hook);
  ~ScopedTraceHook();
  ScopedTraceHook(const ScopedTraceHook&) = delete;
  ScopedTraceHook& operator=(const ScopedTraceHook&) = delete;

 private:
  TraceHook* previous_;
};

bool AnyProxy(const std::vector<OpArg>& args);
// Whether any tensor argument is a proxy or a tensor `hook` tracks.
bool AnyTraced(const TraceHook& hook, const std::vector<OpArg>& args);

// If any argument is a traced value, records the op and returns true with *out set to the result proxy.
inline bool MaybeTrace(OpId op, std::vector<OpArg> args, Tensor* out) {
  if (ActiveTraceHook() == nullptr || !AnyTraced(*ActiveTraceHook(), args)) return false;
  *out = ActiveTraceHook()->RecordOp(op, std::move(args));
  return true;
}

}  // namespace qfx
