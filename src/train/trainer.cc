// qfx train: BatchLoader and Train (see include/qfx/train/trainer.h).
#include "qfx/train/trainer.h"

#include <chrono>
#include <cstring>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "qfx/quant/passes.h"
#include "qfx/train/graph_tape.h"
#include "qfx/train/ops.h"

namespace qfx {
namespace train {

absl::StatusOr<Tensor> IntegerLabels(const Tensor& y) {
  if (y.dtype() == DType::kI64) return y;
  if (y.dtype() == DType::kF32) return absl::InvalidArgumentError("labels must be integers, got " + y.ToString());
  Tensor out = Tensor::Uninitialized(y.shape(), DType::kI64);
  for (int64_t i = 0, n = y.numel(); i < n; ++i) {
    switch (y.dtype()) {
      case DType::kI32:
        out.data<int64_t>()[i] = y.data<int32_t>()[i];
        break;
      case DType::kU8:
        out.data<int64_t>()[i] = y.data<uint8_t>()[i];
        break;
      default:
        out.data<int64_t>()[i] = y.data<int8_t>()[i];
        break;
    }
  }
  return out;
}

int64_t CountCorrect(const Tensor& logits, const Tensor& labels) {
  const Tensor pred = F::argmax(logits);
  int64_t correct = 0;
  for (int64_t i = 0; i < labels.numel(); ++i) correct += pred.data<int64_t>()[i] == labels.data<int64_t>()[i];
  return correct;
}

namespace {

// Rows `idx` of t, gathered into a new [idx.size(), ...] tensor.
Tensor Gather(const Tensor& t, const int64_t* idx, int64_t count) {
  Shape shape = t.shape();
  shape[0] = count;
  Tensor out = Tensor::Uninitialized(shape, t.dtype());
  const size_t row = t.nbytes() / static_cast<size_t>(t.size(0));
  for (int64_t i = 0; i < count; ++i) {
    std::memcpy(static_cast<char*>(out.raw_data()) + i * row, static_cast<const char*>(t.raw_data()) + idx[i] * row,
                row);
  }
  return out;
}

}  // namespace

BatchLoader::BatchLoader(Tensor x, Tensor y, int64_t batch, uint64_t seed)
    : x_(std::move(x)), y_(std::move(y)), n_(x_.size(0)), batch_(batch), seed_(seed), order_(n_) {
  std::iota(order_.begin(), order_.end(), 0);
}

absl::StatusOr<BatchLoader> BatchLoader::Make(const Tensor& x, const Tensor& y, int64_t batch, uint64_t seed) {
  if (batch < 1) return absl::InvalidArgumentError(absl::StrCat("batch size ", batch, " must be at least 1"));
  if (x.dtype() != DType::kF32 || x.dim() < 2) {
    return absl::InvalidArgumentError(absl::StrCat("training inputs ", x.ToString(), " must be f32 [N, ...]"));
  }
  if (y.dim() != 1 || y.size(0) != x.size(0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("labels ", y.ToString(), " must be one per input: [", x.size(0), "] for inputs ", x.ToString()));
  }
  QFX_ASSIGN_OR_RETURN(Tensor labels, IntegerLabels(y));
  return BatchLoader(x, labels, batch, seed);
}

void BatchLoader::StartEpoch(int64_t epoch) {
  std::iota(order_.begin(), order_.end(), 0);
  std::mt19937_64 rng(seed_ * 1000003u + static_cast<uint64_t>(epoch));
  for (int64_t i = n_ - 1; i > 0; --i) std::swap(order_[i], order_[rng() % static_cast<uint64_t>(i + 1)]);
  pos_ = 0;
}

bool BatchLoader::Next(Tensor* x, Tensor* y) {
  if (pos_ >= n_) return false;
  const int64_t count = std::min(batch_, n_ - pos_);
  *x = Gather(x_, order_.data() + pos_, count);
  *y = Gather(y_, order_.data() + pos_, count);
  pos_ += count;
  return true;
}

namespace {

void ApplyFreezes(fx::GraphModule& module, const TrainOptions& o, int64_t epoch) {
  if (o.freeze_observers_after >= 0 && epoch >= o.freeze_observers_after) quant::EnableObservers(module, false);
  if (o.freeze_bn_after >= 0 && epoch >= o.freeze_bn_after) quant::FreezeBnStats(module, true);
}

}  // namespace

absl::StatusOr<std::vector<EpochStats>> Train(fx::GraphModule& module, const Tensor& x, const Tensor& y,
                                              const TrainOptions& o, const TrainCallbacks& callbacks) {
  if (o.epochs < 1) return absl::InvalidArgumentError(absl::StrCat("epochs ", o.epochs, " must be at least 1"));
  QFX_RETURN_IF_ERROR(ValidateSchedule(o.schedule));
  QFX_ASSIGN_OR_RETURN(BatchLoader loader, BatchLoader::Make(x, y, o.batch, o.seed));
  QFX_ASSIGN_OR_RETURN(std::unique_ptr<Optimizer> opt, MakeOptimizer(module.named_parameters(), o.optimizer));
  GraphForward forward(module, o.seed);
  QFX_RETURN_IF_ERROR(forward.CheckDifferentiable());
  std::vector<EpochStats> history;
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    module.train(true);
    ApplyFreezes(module, o, epoch);
    opt->set_lr(LearningRate(o.schedule, o.optimizer.lr, epoch));
    loader.StartEpoch(epoch);
    double loss_sum = 0;
    int64_t correct = 0, seen = 0, step = 0;
    Tensor bx, by;
    while (loader.Next(&bx, &by)) {
      Tape tape;
      absl::StatusOr<Var> out = forward.Run(tape, bx);
      if (!out.ok())
        return absl::Status(out.status().code(),
                            absl::StrCat("epoch ", epoch + 1, " step ", step + 1, ": ", out.status().message()));
      Var loss;
      const absl::Status s = CatchErrors([&] {
        loss = ag::cross_entropy(tape, *out, by);
        tape.Backward(loss);
      });
      if (!s.ok())
        return absl::Status(s.code(), absl::StrCat("epoch ", epoch + 1, " step ", step + 1, ": ", s.message()));
      opt->Step(tape);
      const double l = loss.value.data<float>()[0];
      if (!std::isfinite(l)) {
        return absl::FailedPreconditionError(
            absl::StrCat("epoch ", epoch + 1, " step ", step + 1, ": the loss is not finite; lower the learning rate"));
      }
      loss_sum += l * by.numel();
      correct += CountCorrect(out->value, by);
      seen += by.numel();
      ++step;
      if (callbacks.on_step) {
        callbacks.on_step({epoch, step, loader.num_batches(), loss_sum / seen, static_cast<double>(correct) / seen});
      }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    history.push_back({epoch, loss_sum / seen, static_cast<double>(correct) / seen, opt->lr(), seconds});
    if (callbacks.on_epoch) callbacks.on_epoch(history.back());
  }
  module.eval();
  return history;
}

}  // namespace train
}  // namespace qfx
