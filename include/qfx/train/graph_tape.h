// qfx train: a GraphModule's forward recorded on a tape, so its backward can run.
//
// GraphForward walks the graph as the Interpreter does, but each node calls the differentiable op of
// its target: call_function / call_method nodes by OpId, call_module nodes by module type (the standard
// modules, Sequential and fused modules part by part, observers and FakeQuantize with the
// straight-through estimator, and the QAT modules of qfx/quant/qat_modules.h expanded into their ops as
// PyTorch's _forward_approximate computes them). Module state changes exactly as in an ordinary forward:
// batch-norm running statistics and num_batches_tracked, observer statistics and fake-quant qparams.
#pragma once

#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qfx/fx/graph_module.h"
#include "qfx/train/autograd.h"

namespace qfx {
namespace train {

class GraphForward {
 public:
  // `seed` drives dropout masks.
  explicit GraphForward(fx::GraphModule& module, uint64_t seed = 0) : module_(module), rng_(seed) {}

  // Every node with no backward, one line each ("%fc : call_module[target=fc] (ConvTranspose2d): ..."),
  // or OK. Training checks this first so a bad model fails before any step.
  absl::Status CheckDifferentiable() const;
  // Runs the graph on x, recording on `tape`; errors name the node, as the Interpreter's do.
  absl::StatusOr<Var> Run(Tape& tape, const Tensor& x);

 private:
  fx::GraphModule& module_;
  std::mt19937_64 rng_;
};

// The names a module type must have for GraphForward to differentiate it, for error messages.
std::vector<std::string> DifferentiableModuleTypes();

}  // namespace train
}  // namespace qfx
