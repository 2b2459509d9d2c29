// qfx train: the mini-batch loader and the training loop shared by `qfx train` (fp32) and `qfx qat`.
//
// Each epoch shuffles the samples with a seeded generator (the same seed gives the same batches),
// runs forward on the tape, cross-entropy against the labels, backward and one optimiser step per
// batch, then moves the learning rate along its schedule. For QAT, observers can be frozen and batch
// norm statistics frozen once a given number of epochs has finished (PyTorch's recipe).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qfx/fx/graph_module.h"
#include "qfx/train/optim.h"

namespace qfx {
namespace train {

// y as i64 labels (i32 / u8 / i8 widened); an error naming the dtype for float labels.
absl::StatusOr<Tensor> IntegerLabels(const Tensor& y);
// How many rows of logits [N, C] have their argmax equal to the i64 label.
int64_t CountCorrect(const Tensor& logits, const Tensor& labels);

// Seeded, shuffled mini-batches over x [N, ...] (f32) and y [N] (i64; i32/u8/i8 labels are widened).
class BatchLoader {
 public:
  static absl::StatusOr<BatchLoader> Make(const Tensor& x, const Tensor& y, int64_t batch, uint64_t seed);
  // Reshuffles (the permutation depends only on the seed and the epoch number).
  void StartEpoch(int64_t epoch);
  // The next batch, or false at the end of the epoch. The last batch may be smaller.
  bool Next(Tensor* x, Tensor* y);
  int64_t num_batches() const { return (n_ + batch_ - 1) / batch_; }
  int64_t num_samples() const { return n_; }

 private:
  BatchLoader(Tensor x, Tensor y, int64_t batch, uint64_t seed);
  Tensor x_, y_;
  int64_t n_, batch_, pos_ = 0;
  uint64_t seed_;
  std::vector<int64_t> order_;
};

struct TrainOptions {
  int64_t epochs = 5;
  int64_t batch = 64;
  uint64_t seed = 0;
  OptimizerOptions optimizer;
  ScheduleOptions schedule;
  // QAT only (-1: never): after this many epochs, observers stop updating / batch norm stops updating.
  int64_t freeze_observers_after = -1;
  int64_t freeze_bn_after = -1;
};

struct StepStats {
  int64_t epoch, step, steps;
  double loss, accuracy;  // running means over the epoch so far
};

struct EpochStats {
  int64_t epoch;
  double loss, accuracy, lr, seconds;
};

struct TrainCallbacks {
  std::function<void(const StepStats&)> on_step;
  std::function<void(const EpochStats&)> on_epoch;
};

// Trains `module` in place (train mode during, eval mode after). Fails before the first step when a node
// has no backward, or naming the epoch and step when a batch fails.
absl::StatusOr<std::vector<EpochStats>> Train(fx::GraphModule& module, const Tensor& x, const Tensor& y,
                                              const TrainOptions& options, const TrainCallbacks& callbacks = {});

}  // namespace train
}  // namespace qfx
