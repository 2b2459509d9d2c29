// qfx train: SGD, Adam and the learning-rate schedules (see include/qfx/train/optim.h).
#include "qfx/train/optim.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace qfx {
namespace train {
namespace {

constexpr double kPi = 3.14159265358979323846;

struct Slot {
  Tensor param, buf1, buf2;  // buf1: momentum / exp_avg, buf2: exp_avg_sq
};

std::vector<Slot> Slots(const nn::NamedTensors& params) {
  std::vector<Slot> slots;
  for (const auto& [name, p] : params) slots.push_back({p, Tensor(), Tensor()});
  return slots;
}

// torch.optim.SGD (dampening 0).
class Sgd : public Optimizer {
 public:
  Sgd(const nn::NamedTensors& params, const OptimizerOptions& o) : Optimizer(o.lr), o_(o), slots_(Slots(params)) {}
  void Step(const Tape& tape) override {
    const float wd = static_cast<float>(o_.weight_decay), mom = static_cast<float>(o_.momentum);
    const float lr = static_cast<float>(lr_);
    for (Slot& s : slots_) {
      const Tensor g = tape.ParamGrad(s.param);
      if (!g.defined()) continue;
      float* p = s.param.data<float>();
      const float* pg = g.data<float>();
      const int64_t n = s.param.numel();
      const bool first = !s.buf1.defined();
      if (mom != 0 && first) s.buf1 = Tensor::Uninitialized(s.param.shape());
      for (int64_t i = 0; i < n; ++i) {
        float d = wd != 0 ? pg[i] + wd * p[i] : pg[i];
        if (mom != 0) {
          float& b = s.buf1.data<float>()[i];
          b = first ? d : b * mom + d;
          d = o_.nesterov ? d + mom * b : b;
        }
        p[i] = p[i] + (-lr) * d;
      }
    }
  }

 private:
  OptimizerOptions o_;
  std::vector<Slot> slots_;
};

// torch.optim.Adam (amsgrad off), _single_tensor_adam.
class Adam : public Optimizer {
 public:
  Adam(const nn::NamedTensors& params, const OptimizerOptions& o) : Optimizer(o.lr), o_(o), slots_(Slots(params)) {}
  void Step(const Tape& tape) override {
    ++step_;
    const float b1 = static_cast<float>(o_.beta1), b2 = static_cast<float>(o_.beta2);
    const float c1 = static_cast<float>(1 - o_.beta1), c2 = static_cast<float>(1 - o_.beta2);
    const float wd = static_cast<float>(o_.weight_decay), eps = static_cast<float>(o_.eps);
    const double bc1 = 1 - std::pow(o_.beta1, step_), bc2 = 1 - std::pow(o_.beta2, step_);
    const float step_size = static_cast<float>(lr_ / bc1), bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    for (Slot& s : slots_) {
      const Tensor g = tape.ParamGrad(s.param);
      if (!g.defined()) continue;
      if (!s.buf1.defined()) {
        s.buf1 = Tensor::Zeros(s.param.shape());
        s.buf2 = Tensor::Zeros(s.param.shape());
      }
      float *p = s.param.data<float>(), *m = s.buf1.data<float>(), *v = s.buf2.data<float>();
      const float* pg = g.data<float>();
      for (int64_t i = 0, n = s.param.numel(); i < n; ++i) {
        const float d = wd != 0 ? pg[i] + wd * p[i] : pg[i];
        m[i] = m[i] * b1 + c1 * d;
        v[i] = v[i] * b2 + c2 * d * d;
        const float denom = std::sqrt(v[i]) / bc2_sqrt + eps;
        p[i] = p[i] + (-step_size) * (m[i] / denom);
      }
    }
  }

 private:
  OptimizerOptions o_;
  std::vector<Slot> slots_;
  int64_t step_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Optimizer>> MakeOptimizer(const nn::NamedTensors& params, const OptimizerOptions& o) {
  if (!(o.lr > 0)) return absl::InvalidArgumentError(absl::StrCat("learning rate ", o.lr, " must be positive"));
  if (o.weight_decay < 0) return absl::InvalidArgumentError("weight decay must not be negative");
  for (const auto& [name, p] : params) {
    if (p.dtype() != DType::kF32) return absl::InvalidArgumentError(absl::StrCat("parameter ", name, " is not f32"));
  }
  if (o.kind == "sgd") {
    if (o.momentum < 0) return absl::InvalidArgumentError("sgd momentum must not be negative");
    return std::unique_ptr<Optimizer>(new Sgd(params, o));
  }
  if (o.kind == "adam") {
    if (!(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1)) {
      return absl::InvalidArgumentError("adam betas must lie in [0, 1)");
    }
    return std::unique_ptr<Optimizer>(new Adam(params, o));
  }
  return absl::InvalidArgumentError(absl::StrCat("optimizer '", o.kind, "' is unknown; use adam or sgd"));
}

absl::Status ValidateSchedule(const ScheduleOptions& s) {
  if (s.kind != "constant" && s.kind != "step" && s.kind != "cosine") {
    return absl::InvalidArgumentError(
        absl::StrCat("learning-rate schedule '", s.kind, "' is unknown; use constant, step or cosine"));
  }
  if (s.kind == "step" && s.step_size < 1)
    return absl::InvalidArgumentError("step schedule: step size must be at least 1");
  if (s.kind == "cosine" && s.total_epochs < 1)
    return absl::InvalidArgumentError("cosine schedule: needs at least 1 epoch");
  return absl::OkStatus();
}

double LearningRate(const ScheduleOptions& s, double base, int64_t epoch) {
  if (s.kind == "step") return base * std::pow(s.gamma, static_cast<double>(epoch / s.step_size));
  if (s.kind == "cosine") {
    return s.eta_min + (base - s.eta_min) * (1 + std::cos(kPi * static_cast<double>(epoch) / s.total_epochs)) / 2;
  }
  return base;
}

}  // namespace train
}  // namespace qfx
