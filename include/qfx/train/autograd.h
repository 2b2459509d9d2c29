// qfx train: reverse-mode gradients on a tape.
//
// A forward pass in training records, for every op whose inputs need gradients, a closure that maps the
// op's output gradient to its inputs' gradients. Backward() walks the tape from the loss back to the
// parameters (the GraphModule's nodes in reverse order, with composite modules expanded into their
// ops) and accumulates each value's gradient out of place, so views shared between values are never
// written. Parameters enter the tape once per forward as leaves (Param), keyed by their storage, and
// keep their gradients until the tape is cleared; the optimiser reads them with ParamGrad.
#pragma once

#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>

#include "qfx/core/tensor.h"

namespace qfx {
namespace train {

// A value on the tape: its tensor and, when gradients flow to it, its slot (id >= 0).
struct Var {
  Tensor value;
  int64_t id = -1;
  bool requires_grad() const { return id >= 0; }
};

class Tape {
 public:
  // Maps the gradient of an op's output to the gradients of its inputs (one per input, in order; an
  // undefined tensor for an input that gets none).
  using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out)>;

  // A value no gradient flows to (inputs, labels, buffers).
  static Var Constant(Tensor t) { return Var{std::move(t), -1}; }
  // A trainable parameter: the same storage always gives the same Var during one forward.
  Var Param(const Tensor& p);
  // Records an op. When no input requires a gradient, returns a constant and records nothing.
  Var Record(Tensor out, const std::vector<Var>& inputs, BackwardFn backward);

  // Backpropagates from a one-element loss (its gradient is 1). Call once per recorded forward.
  void Backward(const Var& loss);
  // d(loss)/d(p) after Backward, or an undefined tensor when p did not take part.
  Tensor ParamGrad(const Tensor& p) const;
  // Forgets everything recorded (parameters and their gradients included).
  void Clear();

 private:
  struct Entry {
    int64_t out;
    std::vector<int64_t> inputs;
    BackwardFn backward;
  };
  int64_t NewId();
  void Accumulate(int64_t id, const Tensor& g);

  std::vector<Entry> entries_;
  std::vector<Tensor> grads_;
  std::unordered_map<const void*, Var> params_;
};

}  // namespace train
}  // namespace qfx
