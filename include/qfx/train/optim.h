// qfx train: optimisers (PyTorch 1.13's SGD and Adam update rules, in float32 in the same order) and
// learning-rate schedules (StepLR, CosineAnnealingLR), stepped per epoch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qfx/nn/module.h"
#include "qfx/train/autograd.h"

namespace qfx {
namespace train {

struct OptimizerOptions {
  std::string kind = "adam";  // "adam" or "sgd"
  double lr = 1e-3;
  double momentum = 0.9;  // sgd
  double weight_decay = 0;
  bool nesterov = false;                          // sgd
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Updates every parameter that received a gradient on `tape` (in place: modules see the new values).
  virtual void Step(const Tape& tape) = 0;
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }

 protected:
  explicit Optimizer(double lr) : lr_(lr) {}
  double lr_;
};

// Errors name the bad option ("optimizer 'rmsprop' is unknown; use adam or sgd").
absl::StatusOr<std::unique_ptr<Optimizer>> MakeOptimizer(const nn::NamedTensors& params,
                                                         const OptimizerOptions& options);

struct ScheduleOptions {
  std::string kind = "constant";  // "constant", "step" (StepLR) or "cosine" (CosineAnnealingLR)
  int64_t step_size = 1;          // step: multiply by gamma every step_size epochs
  double gamma = 0.1;
  int64_t total_epochs = 1;  // cosine: T_max
  double eta_min = 0;
};

// The learning rate of `epoch` (0-based) from `base`; kind errors are caught by ValidateSchedule.
double LearningRate(const ScheduleOptions& s, double base, int64_t epoch);
absl::Status ValidateSchedule(const ScheduleOptions& s);

}  // namespace train
}  // namespace qfx
