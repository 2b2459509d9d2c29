// qfx nn: the op registry shared by the tracer, the interpreter and the graph formats.
//
// Each OpId (qfx/core/trace.h) has one schema: how graphs spell it, whether it is a function or a
// Tensor method, torch.fx's spelling of the same target, and its fp32 implementation on positional
// OpArgs. Adding an op is one entry here plus its traced function.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "qfx/core/trace.h"

namespace qfx {
namespace nn {

struct OpSchema {
  OpId id;
  const char* name;        // qfx's spelling: "add", "flatten", "adaptive_avg_pool2d", ...
  bool is_method;          // call_method (a Tensor method) rather than call_function
  const char* torch_name;  // torch.fx's qualified target: "_operator.add", "torch.flatten", "reshape"
  int min_args, max_args;  // positional arguments accepted
  Tensor (*run)(const std::vector<OpArg>& args);  // fp32 implementation; throws qfx::Error on bad input
};

const OpSchema& GetOpSchema(OpId id);
// The op spelled `name` as a function (is_method false) or a method, or nullptr.
const OpSchema* FindOp(absl::string_view name, bool is_method);
const std::vector<OpSchema>& AllOps();

// Runs an op after checking the argument count; errors name the op.
Tensor RunOp(OpId id, const std::vector<OpArg>& args);

}  // namespace nn
}  // namespace qfx
