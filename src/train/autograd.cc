// qfx train: the tape (see include/qfx/train/autograd.h).
#include "qfx/train/autograd.h"

#include "qfx/core/status.h"
#include "qfx/nn/functional.h"

namespace qfx {
namespace train {

int64_t Tape::NewId() {
  grads_.emplace_back();
  return static_cast<int64_t>(grads_.size()) - 1;
}

Var Tape::Param(const Tensor& p) {
  auto it = params_.find(p.raw_data());
  if (it != params_.end()) return it->second;
  Var v{p, NewId()};
  params_.emplace(p.raw_data(), v);
  return v;
}

Var Tape::Record(Tensor out, const std::vector<Var>& inputs, BackwardFn backward) {
  Entry e{-1, {}, std::move(backward)};
  bool any = false;
  for (const Var& in : inputs) {
    e.inputs.push_back(in.id);
    any = any || in.requires_grad();
  }
  if (!any) return Constant(std::move(out));
  e.out = NewId();
  const int64_t id = e.out;
  entries_.push_back(std::move(e));
  return Var{std::move(out), id};
}

void Tape::Accumulate(int64_t id, const Tensor& g) {
  Tensor& slot = grads_[static_cast<size_t>(id)];
  slot = slot.defined() ? F::add(slot, g) : g;
}

void Tape::Backward(const Var& loss) {
  if (!loss.requires_grad()) ThrowInvalid("backward: the loss does not depend on any parameter");
  if (loss.value.numel() != 1) ThrowInvalid("backward: the loss ", loss.value.ToString(), " must have one element");
  Accumulate(loss.id, Tensor::Full(loss.value.shape(), 1.f));
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    Tensor& g = grads_[static_cast<size_t>(it->out)];
    if (!g.defined()) continue;
    const std::vector<Tensor> in_grads = it->backward(g);
    g = Tensor();  // intermediate gradients die as soon as they are used
    if (in_grads.size() != it->inputs.size()) {
      throw Error(absl::InternalError("backward: an op returned the wrong number of gradients"));
    }
    for (size_t i = 0; i < in_grads.size(); ++i) {
      if (it->inputs[i] >= 0 && in_grads[i].defined()) Accumulate(it->inputs[i], in_grads[i]);
    }
    it->backward = nullptr;  // release saved tensors
  }
}

Tensor Tape::ParamGrad(const Tensor& p) const {
  auto it = params_.find(p.raw_data());
  return it == params_.end() ? Tensor() : grads_[static_cast<size_t>(it->second.id)];
}

void Tape::Clear() {
  entries_.clear();
  grads_.clear();
  params_.clear();
}

}  // namespace train
}  // namespace qfx
