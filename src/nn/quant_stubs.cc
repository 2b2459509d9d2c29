// qfx nn: QuantStub, DeQuantStub, QuantWrapper and FloatFunctional (see include/qfx/nn/quant_stubs.h).
#include "qfx/nn/quant_stubs.h"

namespace qfx {
namespace nn {

QuantWrapper::QuantWrapper(std::shared_ptr<Module> module) {
  quant_ = register_module("quant", std::make_shared<QuantStub>());
  dequant_ = register_module("dequant", std::make_shared<DeQuantStub>());
  module_ = register_module("module", std::move(module));
}

Tensor QuantWrapper::forward(const Tensor& x) { return (*dequant_)((*module_)((*quant_)(x))); }

FloatFunctional::FloatFunctional() { register_module("activation_post_process", std::make_shared<Identity>()); }

Tensor FloatFunctional::forward(const Tensor&) {
  ThrowInvalid("FloatFunctional has no forward: call its add, add_relu, mul, add_scalar, mul_scalar or cat");
}

FloatFunctional* FloatFunctional::Converted() const { return dynamic_cast<FloatFunctional*>(redirect_target()); }

Tensor FloatFunctional::Observe(const Tensor& r) { return (*submodule("activation_post_process"))(r); }

Tensor FloatFunctional::add(const Tensor& a, const Tensor& b) {
  if (FloatFunctional* q = Converted()) return q->add(a, b);
  return Observe(F::add(a, b));
}

Tensor FloatFunctional::add_relu(const Tensor& a, const Tensor& b) {
  if (FloatFunctional* q = Converted()) return q->add_relu(a, b);
  return Observe(F::relu(F::add(a, b)));
}

Tensor FloatFunctional::mul(const Tensor& a, const Tensor& b) {
  if (FloatFunctional* q = Converted()) return q->mul(a, b);
  return Observe(F::mul(a, b));
}

// Not observed, as in PyTorch: the quantized op derives its output qparams from its input's.
Tensor FloatFunctional::add_scalar(const Tensor& a, double b) {
  if (FloatFunctional* q = Converted()) return q->add_scalar(a, b);
  return F::add(a, static_cast<float>(b));
}

Tensor FloatFunctional::mul_scalar(const Tensor& a, double b) {
  if (FloatFunctional* q = Converted()) return q->mul_scalar(a, b);
  return F::mul(a, static_cast<float>(b));
}

Tensor FloatFunctional::cat(const std::vector<Tensor>& xs, int64_t dim) {
  if (FloatFunctional* q = Converted()) return q->cat(xs, dim);
  return Observe(F::cat(xs, dim));
}

}  // namespace nn
}  // namespace qfx
