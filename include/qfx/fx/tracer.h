// qfx fx: symbolic tracing, after torch.fx's symbolic_trace.
//
// SymbolicTrace runs the root module's forward on proxy values. A call of a leaf module (the standard
// nn modules, or any listed in TracerOptions::leaf_modules) becomes one call_module node; other modules
// are traced through, so the same module called twice gives two nodes with the same target. Functions
// in qfx::F become call_function nodes, Tensor::Reshape / Flatten call_method nodes, and parameters or
// buffers read directly in forward get_attr nodes. Needing a concrete value of a traced one (its shape,
// its data, a flag argument) fails with a TraceError that names the module and the ways out; a shape
// can be read when the trace is specialised on example inputs (TracerOptions::example_inputs).
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
  // Example values of the graph's inputs (the forward arguments not in concrete_args, in order). Given,
  // the trace is specialised on them as torch.export is on static shapes: every op also runs on the
  // example values, so forward may read traced tensors' shapes (x.size(1), x.shape()); each size read is
  // recorded on its node (NodeMeta::specialized) and a later run with other sizes there is an error.
  // Buffers that the example run changes (batch-norm statistics) are restored afterwards.
  std::vector<Tensor> example_inputs;
};

// Traces `root` into a GraphModule that shares root's submodules and parameters and runs the same
// kernels in the same order (outputs are bit-identical to root's). The graph is linted.
absl::StatusOr<std::shared_ptr<GraphModule>> SymbolicTrace(std::shared_ptr<nn::Module> root,
                                                           const TracerOptions& options = {});

}  // namespace fx
}  // namespace qfx
