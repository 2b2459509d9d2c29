// qfx fx: symbolic tracing, after torch.fx's symbolic_trace.
//
// SymbolicTrace runs the root module's forward on proxy values. A call of a leaf module (the standard
// nn modules, or any listed in TracerOptions::leaf_modules) becomes one call_module node; other modules
// are traced through, so the same module called twice gives two nodes with the same target. Functions
// in qfx::F become call_function nodes, Tensor::Reshape / Flatten call_method nodes, and parameters or
// buffers read directly in forward get_attr nodes. Needing a concrete value of a traced one (its shape,
// its data, a flag argument) fails with a TraceError that names the module and the two ways out.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "qfx/fx/graph_module.h"

namespace qfx {
namespace fx {

struct TracerOptions {
  // Extra leaf modules, by dotted path ("layer1.0") or by type name ("BasicBlock").
  std::vector<std::string> leaf_modules;
  // Replaces the default leaf rule (module.is_leaf() or listed above) when set.
  std::function<bool(const nn::Module& module, const std::string& path)> is_leaf;
  // Forward arguments of the root to specialise: no placeholder is made for them, and forward sees the
  // value (for example {"normalize", true}).
  std::vector<std::pair<std::string, OpArg>> concrete_args;
};

// Traces `root` into a GraphModule that shares root's submodules and parameters and runs the same
// kernels in the same order (outputs are bit-identical to root's). The graph is linted.
absl::StatusOr<std::shared_ptr<GraphModule>> SymbolicTrace(std::shared_ptr<nn::Module> root,
                                                           const TracerOptions& options = {});

}  // namespace fx
}  // namespace qfx
