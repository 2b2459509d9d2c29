// qfx nn: the op registry, the one place an op is defined, shared by the tracer, the interpreter, the
// graph formats, training and quantization.
//
// Each OpId (qfx/core/trace.h) has one OpSchema: how graphs spell it, whether it is a function or a
// Tensor method, torch.fx's spelling of the same target, its fp32 implementation on positional OpArgs,
// for elementwise ops the derivative training uses, its role in quantization (which prepare pattern
// observes it and how convert lowers it), and the modules whose forward is this op (their PyTorch class
// names, .qfx configs and the op arguments they stand for). Adding an op is its OpId, one entry in
// src/nn/ops.cc and its kernel (the traced function in qfx::F); see the README, "Adding an op".
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <typeindex>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "qfx/core/trace.h"
#include "qfx/nn/functional.h"
#include "qfx/nn/module.h"
#include "qfx/nn/modules.h"  // Size2

namespace qfx {
namespace nn {

// How an op takes part in quantization (PyTorch 1.13's backend_config op lists for x86 / fbgemm).
enum class QuantRole : uint8_t {
  kFloat,          // no int8 form: stays float (softmax, gelu, silu, batch_norm on its own, ...)
  kWeighted,       // conv2d / linear: a qint8 weight, an observed output (the modules only)
  kBinary,         // add / mul: own output observer with two tensor inputs, shared with a scalar operand
  kCat,            // shares its inputs' observer, lowered to q_cat
  kShareQParams,   // output shares the input's qparams; runs directly on quint8 (pools, relu, reshape, ...)
  kTable,          // own output observer, lowered to q_unary's 256-entry table (hardswish, leaky_relu, ...)
  kFixedQParams,   // fixed output qparams from the qconfig (sigmoid, tanh, hardsigmoid), lowered to q_unary
  kObservedFloat,  // observed input, own output observer, fp32 between them (layer_norm: PyTorch's quantized op
                   // computes on dequantized values), left as dequantize -> op -> quantize
  kQuantized,      // an op on quint8 tensors that convert produces (quantize, q_add, ...): no backward
};

// Ops whose output range is fixed, so presets give them fixed qparams (PyTorch's
// _FIXED_QPARAMS_OP_TO_OBSERVER): [0, 1] gets scale 1/256 and zero point 0, [-1, 1] scale 2/256 and 128.
enum class FixedRange : uint8_t { kNone, kUnit, kSymmetric };

// A module type that .qfx files can rebuild and passes can recognise by its C++ type. Built-in kinds are
// listed in their op's schema (ReLU under relu) or, for modules that compute no single op, registered
// with RegisterModuleKind (user-defined leaf modules too, so models using them can be saved and loaded).
struct ModuleKind {
  std::string type;                         // the registered name, PyTorch's class name ("ReLU", "Conv2d")
  std::type_index cpp_type = typeid(void);  // identity: the C++ class
  // The op's arguments after the input for a module whose forward is its schema's op (empty function
  // otherwise), e.g. Hardtanh -> {min_val, max_val}, Conv2d -> {weight, bias, stride, padding, ...}.
  std::function<std::vector<OpArg>(const Module&)> op_args;
  std::function<nlohmann::json(const Module&)> config;                 // what a .qfx file stores
  std::function<std::shared_ptr<Module>(const nlohmann::json&)> make;  // rebuilds it; may throw
  QuantRole role = QuantRole::kFloat;  // for kinds that compute no registered op (Identity: share-qparams)
  OpId op = OpId::kNumOps;             // filled from the schema that lists it
};

// A kind for a stateless module that default-constructs (ReLU, Identity): empty config.
template <typename M>
ModuleKind StatelessKind(std::string type) {
  ModuleKind k;
  k.type = std::move(type);
  k.cpp_type = typeid(M);
  k.op_args = [](const Module&) { return std::vector<OpArg>{}; };
  k.config = [](const Module&) { return nlohmann::json::object(); };
  k.make = [](const nlohmann::json&) { return std::shared_ptr<Module>(std::make_shared<M>()); };
  return k;
}

struct OpSchema {
  OpId id;
  const char* name;        // qfx's spelling: "add", "flatten", "adaptive_avg_pool2d", ...
  bool is_method;          // call_method (a Tensor method) rather than call_function
  const char* torch_name;  // torch.fx's qualified target: "_operator.add", "torch.flatten", "reshape"
  int min_args, max_args;  // positional arguments accepted
  Tensor (*run)(const std::vector<OpArg>& args);  // fp32 implementation; throws qfx::Error on bad input
  QuantRole role = QuantRole::kFloat;
  // Elementwise ops: dx = (d y / d x at x, y) * dy over n values, given the op's arguments after the input
  // (training's backward). Null for other ops (their backward is structural: src/train).
  using DerivativeFn = void (*)(const std::vector<OpArg>& args, const float* x, const float* y, const float* dy,
                                float* dx, int64_t n);
  DerivativeFn derivative = nullptr;
  // Other ops with a backward of their own here: the gradients of the tensor arguments (in order, a list
  // argument giving one per element; undefined for one that gets none) from y = run(args) and dy. Ops with
  // neither have their backward in src/train (graph_tape.cc: the stateful dropout and batch_norm).
  // `want` has one flag per tensor argument: whether its gradient is needed.
  using VjpFn = std::vector<Tensor> (*)(const std::vector<OpArg>& args, const Tensor& y, const Tensor& dy,
                                        const std::vector<bool>& want);
  VjpFn vjp = nullptr;
  // Clamp-like ops (relu, relu6, hardtanh): the [lo, hi] their arguments after the input give, which
  // convert folds into a preceding int8 conv / linear.
  bool (*clamp)(const std::vector<OpArg>& args, float* lo, float* hi) = nullptr;
  std::vector<ModuleKind> modules;  // the module types whose forward is this op
  FixedRange fixed_range = FixedRange::kNone;
  // The identity in eval mode, whatever its other arguments (dropout, stochastic_depth): its q_unary table
  // is a requantization. Its last argument is the training flag.
  bool identity_in_eval = false;
  // Share-qparams ops whose outputs are some of their inputs' values (max_pool2d, relu, reshapes, ...), so
  // quantize(op(dequantize(q))) to other qparams is the op on q then a requantization, exactly (Lower).
  bool selects_values = false;
};

// Argument i of `op` as a T, from any argument variant (OpArg, training's values); throws naming both.
template <typename T, typename V>
const T& ArgAs(const std::vector<V>& args, size_t i, const char* op, const char* want) {
  if (i < args.size()) {
    if (const T* v = std::get_if<T>(&args[i])) return *v;
  }
  ThrowInvalid(op, ": argument ", i, " must be ", want);
}
// The options of conv2d(x, w, b, stride, padding, dilation, groups), max_pool2d(x, kernel, stride, padding,
// dilation, ceil_mode) and avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad)
// calls: decoded once for the fp32 run and for training.
template <typename V>
F::Conv2dOptions Conv2dOptionsOf(const std::vector<V>& a) {
  using Ints = std::vector<int64_t>;
  F::Conv2dOptions o;
  o.stride = ArgAs<Ints>(a, 3, "conv2d", "a list of integers");
  o.padding = ArgAs<Ints>(a, 4, "conv2d", "a list of integers");
  o.dilation = ArgAs<Ints>(a, 5, "conv2d", "a list of integers");
  o.groups = ArgAs<int64_t>(a, 6, "conv2d", "an integer");
  return o;
}
// kernel_size, stride and padding: arguments 1 to 3 of both pools.
template <typename V>
F::Pool2dOptions PoolWindowOf(const std::vector<V>& a, const char* op) {
  F::Pool2dOptions o;
  o.kernel_size = ArgAs<std::vector<int64_t>>(a, 1, op, "a list of integers");
  o.stride = ArgAs<std::vector<int64_t>>(a, 2, op, "a list of integers");
  o.padding = ArgAs<std::vector<int64_t>>(a, 3, op, "a list of integers");
  return o;
}
template <typename V>
F::Pool2dOptions MaxPool2dOptionsOf(const std::vector<V>& a) {
  F::Pool2dOptions o = PoolWindowOf(a, "max_pool2d");
  o.dilation = ArgAs<std::vector<int64_t>>(a, 4, "max_pool2d", "a list of integers");
  o.ceil_mode = ArgAs<bool>(a, 5, "max_pool2d", "a bool");
  return o;
}
template <typename V>
F::Pool2dOptions AvgPool2dOptionsOf(const std::vector<V>& a) {
  F::Pool2dOptions o = PoolWindowOf(a, "avg_pool2d");
  o.ceil_mode = ArgAs<bool>(a, 4, "avg_pool2d", "a bool");
  o.count_include_pad = ArgAs<bool>(a, 5, "avg_pool2d", "a bool");
  return o;
}

const OpSchema& GetOpSchema(OpId id);
inline bool IdentityInEval(OpId id) { return id != OpId::kNumOps && GetOpSchema(id).identity_in_eval; }
inline bool SelectsValues(OpId id) { return id != OpId::kNumOps && GetOpSchema(id).selects_values; }
// Sets an identity-in-eval op's training flag (its last argument) to `training`, so that a graph runs the op in
// its module's mode, as a Dropout module runs (torch.fx keeps the flag of the mode it traced in: a model traced
// in eval would never drop in training, one traced in training would drop at inference). Returns whether
// `args` held such a flag; any argument variant (OpArg, training's values).
template <typename V>
bool FollowModuleMode(OpId op, bool training, std::vector<V>& args) {
  if (!IdentityInEval(op) || args.empty() || !std::holds_alternative<bool>(args.back())) return false;
  args.back() = training;
  return true;
}
// The op spelled `name` as a function (is_method false) or a method, or nullptr.
const OpSchema* FindOp(absl::string_view name, bool is_method);
const std::vector<OpSchema>& AllOps();

// Runs an op after checking the argument count; errors name the op.
Tensor RunOp(OpId id, const std::vector<OpArg>& args);

// Registers a module kind; an error when its name or C++ type is taken.
absl::Status RegisterModuleKind(ModuleKind kind);
// The kind registered as `type`, or nullptr.
const ModuleKind* FindModuleKind(absl::string_view type);
// The kind of `m`'s C++ type, or nullptr.
const ModuleKind* KindOf(const Module& m);
// The op a module's forward computes (kNumOps for none) and its arguments after the input.
OpId ModuleOp(const Module& m, std::vector<OpArg>* args = nullptr);
// The quantization role of a module: its op's, or its kind's own.
QuantRole ModuleRole(const Module& m);
// Every registered kind's name, sorted, for messages.
std::vector<std::string> ModuleKindNames();
// Rebuilds a module of a registered kind from its config (in eval mode); errors name the type.
absl::StatusOr<std::shared_ptr<Module>> MakeModule(const std::string& type, const nlohmann::json& config);
// The config of a module of a registered kind; kUnimplemented naming its type otherwise.
absl::StatusOr<nlohmann::json> ModuleConfig(const Module& m);

// A Size2 in a .qfx config: one integer when square (the form every earlier file has), else [h, w].
nlohmann::json Size2ToJson(Size2 s);
// Either form of config[field]; an error names the field and the forms it takes.
absl::StatusOr<Size2> Size2FromJson(const nlohmann::json& config, const char* field);

}  // namespace nn
}  // namespace qfx
