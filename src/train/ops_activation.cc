// qfx train: backward of the elementwise ops (their derivatives are registered with the ops, src/nn/ops.cc)
// and of dropout (its mask is random state, drawn here).
#include <cmath>
#include <vector>

#include "qfx/nn/ops.h"
#include "qfx/train/ops.h"

namespace qfx {
namespace train {
namespace ag {

// y = op(x, args...) elementwise; dx = op's registered derivative(x, y) * dy.
Var elementwise(Tape& t, const Var& x, OpId op, const std::vector<OpArg>& args) {
  const nn::OpSchema& schema = nn::GetOpSchema(op);
  if (schema.derivative == nullptr) ThrowInvalid(schema.name, " is not an elementwise op with a derivative");
  std::vector<OpArg> all = {x.value};
  all.insert(all.end(), args.begin(), args.end());
  const Tensor xv = x.value, y = nn::RunOp(op, all);
  const nn::OpSchema::DerivativeFn derivative = schema.derivative;
  return t.Record(y, {x}, [xv, y, args, derivative](const Tensor& dy) {
    Tensor dx = Tensor::Uninitialized(xv.shape());
    derivative(args, xv.data<float>(), y.data<float>(), dy.data<float>(), dx.data<float>(), xv.numel());
    return std::vector<Tensor>{dx};
  });
}

Var relu(Tape& t, const Var& x) { return elementwise(t, x, OpId::kRelu); }
Var relu6(Tape& t, const Var& x) { return elementwise(t, x, OpId::kRelu6); }
Var hardtanh(Tape& t, const Var& x, float lo, float hi) {
  return elementwise(t, x, OpId::kHardtanh, {double{lo}, double{hi}});
}
Var hardswish(Tape& t, const Var& x) { return elementwise(t, x, OpId::kHardswish); }
Var hardsigmoid(Tape& t, const Var& x) { return elementwise(t, x, OpId::kHardsigmoid); }
Var sigmoid(Tape& t, const Var& x) { return elementwise(t, x, OpId::kSigmoid); }
Var tanh(Tape& t, const Var& x) { return elementwise(t, x, OpId::kTanh); }
Var silu(Tape& t, const Var& x) { return elementwise(t, x, OpId::kSilu); }

Var dropout(Tape& t, const Var& x, double p, bool training, std::mt19937_64& rng) {
  if (p < 0 || p > 1) ThrowInvalid("dropout: p ", p, " must be in [0, 1]");
  if (!training || p == 0) return x;
  const float scale = p == 1 ? 0.f : static_cast<float>(1 / (1 - p));
  Tensor mask = Tensor::Uninitialized(x.value.shape());
  std::bernoulli_distribution keep(1 - p);
  for (int64_t i = 0, n = mask.numel(); i < n; ++i) mask.data<float>()[i] = keep(rng) ? scale : 0.f;
  return t.Record(F::mul(x.value, mask), {x},
                  [mask](const Tensor& dy) { return std::vector<Tensor>{F::mul(dy, mask)}; });
}

Var stochastic_depth(Tape& t, const Var& x, double p, F::StochasticDepthMode mode, bool training,
                     std::mt19937_64& rng) {
  if (!training || p == 0) return x;
  const Tensor noise = F::StochasticDepthNoise(x.value.shape(), p, mode, rng);
  return t.Record(F::mul(x.value, noise), {x},
                  [noise](const Tensor& dy) { return std::vector<Tensor>{F::mul(dy, noise)}; });
}

}  // namespace ag
}  // namespace train
}  // namespace qfx
