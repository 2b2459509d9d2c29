// qfx nn: the float modules with which a model marks itself up for eager-mode quantization, as
// torch.ao.quantization's QuantStub / DeQuantStub / QuantWrapper and torch.ao.nn.quantized's
// FloatFunctional define them.
//
//   QuantStub       where quantization starts: identity in float; the eager flow observes its output and
//                   converts it to a Quantize module.
//   DeQuantStub     where float resumes: identity in float; converted to DeQuantize.
//   QuantWrapper    QuantStub -> module -> DeQuantStub around any module (children quant, dequant, module).
//   FloatFunctional ops written in forward that need their own output qparams (add, add_relu, mul, cat, and
//                   the unobserved add_scalar / mul_scalar): each observed op's result passes through the
//                   child `activation_post_process` (Identity until prepare puts an observer there).
//                   Converted to QFunctional, to which a converted FloatFunctional's methods forward.
// None of them needs the quant library: a model built on them stays an ordinary float model.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "qfx/nn/modules.h"

namespace qfx {
namespace nn {

// Both are Identity in float (so training and the FX flow treat them as such) with their own type names.
class QuantStub : public Identity {
 public:
  std::string type_name() const override { return "QuantStub"; }
};

class DeQuantStub : public Identity {
 public:
  std::string type_name() const override { return "DeQuantStub"; }
};

class QuantWrapper : public Module {
 public:
  explicit QuantWrapper(std::shared_ptr<Module> module);
  std::string type_name() const override { return "QuantWrapper"; }
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<Module> quant_, dequant_, module_;
};

class FloatFunctional : public Module {
 public:
  FloatFunctional();
  std::string type_name() const override { return "FloatFunctional"; }
  // Throws: FloatFunctional is called through its methods.
  Tensor forward(const Tensor& x) override;

  virtual Tensor add(const Tensor& a, const Tensor& b);
  virtual Tensor add_relu(const Tensor& a, const Tensor& b);
  virtual Tensor mul(const Tensor& a, const Tensor& b);
  virtual Tensor add_scalar(const Tensor& a, double b);
  virtual Tensor mul_scalar(const Tensor& a, double b);
  virtual Tensor cat(const std::vector<Tensor>& xs, int64_t dim = 0);

 protected:
  // The module this one was swapped for by the parent that called it (its quantized form), or null.
  FloatFunctional* Converted() const;
  Tensor Observe(const Tensor& r);  // r through activation_post_process
};

}  // namespace nn
}  // namespace qfx
