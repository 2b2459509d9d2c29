// qfx command line: `qfx train` (fp32 training of a zoo model) and `qfx qat` (quantization-aware
// fine-tuning, then convert to the int8 kernels and save a .qfx file). Both show a progress bar with the
// running loss and accuracy on a terminal and one summary line per epoch either way.
#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "fmt/core.h"
#include "qfx/fx/tracer.h"
#include "qfx/io/model_file.h"
#include "qfx/io/npy.h"
#include "qfx/io/safetensors.h"
#include "qfx/quant/eager.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/pt2e.h"
#include "qfx/train/trainer.h"
#include "tools/qfx/commands.h"

namespace qfx {
namespace cli {
namespace {

absl::StatusOr<train::TrainOptions> Options(const TrainFlags& f) {
  train::TrainOptions o;
  o.epochs = f.epochs;
  o.batch = f.batch;
  o.seed = f.model.seed;
  o.optimizer.kind = f.optimizer;
  o.optimizer.lr = f.lr;
  o.optimizer.momentum = f.momentum;
  o.optimizer.weight_decay = f.weight_decay;
  o.schedule.kind = f.schedule;
  o.schedule.step_size = f.step_size;
  o.schedule.gamma = f.gamma;
  o.schedule.total_epochs = f.epochs;
  QFX_RETURN_IF_ERROR(train::ValidateSchedule(o.schedule));
  return o;
}

train::TrainCallbacks Reporter(int64_t epochs) {
  const bool tty = ::isatty(2);
  train::TrainCallbacks cb;
  cb.on_step = [tty, epochs](const train::StepStats& s) {
    if (!tty) return;
    const int width = 24, filled = static_cast<int>(width * s.step / std::max<int64_t>(1, s.steps));
    std::fprintf(stderr, "\repoch %lld/%lld [%s%s] %lld/%lld loss %.4f acc %.4f ", static_cast<long long>(s.epoch + 1),
                 static_cast<long long>(epochs), std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), static_cast<long long>(s.step),
                 static_cast<long long>(s.steps), s.loss, s.accuracy);
    if (s.step == s.steps) std::fprintf(stderr, "\r\033[K");
  };
  cb.on_epoch = [epochs](const train::EpochStats& e) {
    fmt::print("epoch {}/{}: loss {:.4f} train-acc {:.4f} lr {:.3g} ({:.1f} s)\n", e.epoch + 1, epochs, e.loss,
               e.accuracy, e.lr, e.seconds);
    std::fflush(stdout);
  };
  return cb;
}

struct Data {
  Tensor x, y;
};

absl::StatusOr<Data> ReadPair(const std::string& x_path, const std::string& y_path) {
  Data d;
  QFX_ASSIGN_OR_RETURN(d.x, io::ReadNpy(x_path));
  QFX_ASSIGN_OR_RETURN(d.y, io::ReadNpy(y_path));
  if (d.x.dtype() != DType::kF32 || d.x.dim() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(x_path, ": inputs ", d.x.ToString(), " must be f32 [N, ...]"));
  }
  if (d.y.dim() != 1 || d.y.size(0) != d.x.size(0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(y_path, ": labels ", d.y.ToString(), " must be [", d.x.size(0), "], one per row of ", x_path));
  }
  return d;
}

// Top-1 of `model` on the test split, when one is given.
absl::Status ReportTest(nn::Module& model, const TrainFlags& f, const char* what) {
  if (f.test_x.empty()) return absl::OkStatus();
  QFX_ASSIGN_OR_RETURN(Data test, ReadPair(f.test_x, f.test_y));
  QFX_ASSIGN_OR_RETURN(const double top1, Top1(model, test.x, test.y, f.batch));
  fmt::print("{} test top1: {:.4f} ({} images)\n", what, top1, test.x.size(0));
  return absl::OkStatus();
}

absl::Status CheckTestFlags(const TrainFlags& f) {
  if (f.test_x.empty() != f.test_y.empty())
    return absl::InvalidArgumentError("give both --test-x and --test-y, or neither");
  return absl::OkStatus();
}

}  // namespace

absl::Status Train(const TrainFlags& f) {
  QFX_RETURN_IF_ERROR(CheckTestFlags(f));
  QFX_ASSIGN_OR_RETURN(train::TrainOptions options, Options(f));
  QFX_ASSIGN_OR_RETURN(auto model, OpenModel(f.model));
  QFX_ASSIGN_OR_RETURN(Data data, ReadPair(f.train_x, f.train_y));
  model->train();
  QFX_ASSIGN_OR_RETURN(auto gm, ModelGraph(f.model, model, /*fp32_only=*/true));
  fmt::print("training {} on {} images: {} epochs, batch {}, {} lr {:g}, {} schedule\n", ModelName(f.model),
             data.x.size(0), f.epochs, f.batch, f.optimizer, f.lr, f.schedule);
  QFX_ASSIGN_OR_RETURN(auto history, train::Train(*gm, data.x, data.y, options, Reporter(f.epochs)));
  QFX_RETURN_IF_ERROR(io::WriteSafetensors(f.out, model->state_dict(), {{"qfx_model", ModelName(f.model)}}));
  QFX_RETURN_IF_ERROR(ReportTest(*gm, f, "fp32"));
  fmt::print("wrote {}\n", f.out);
  return absl::OkStatus();
}

// Eager mode: QAT modules and fake-quants swapped into the model's tree, trained through its trace (which
// shares the modules), converted by module swap and saved as the converted model's trace.
absl::Status QatEager(const TrainFlags& f, const quant::QuantConfig& config, const train::TrainOptions& options) {
  QFX_ASSIGN_OR_RETURN(auto model, OpenEagerModel(f.model, /*qat=*/true));
  QFX_ASSIGN_OR_RETURN(Data data, ReadPair(f.train_x, f.train_y));
  const int64_t fp32_bytes = StateBytes(*model);
  QFX_ASSIGN_OR_RETURN(quant::EagerReport prepared, quant::PrepareQatEager(*model, &config.mapping));
  for (const std::string& w : prepared.warnings) std::fprintf(stderr, "qfx: warning: %s\n", w.c_str());
  absl::StatusOr<std::shared_ptr<fx::GraphModule>> gm = fx::SymbolicTrace(model);
  if (!gm.ok()) {
    return absl::Status(gm.status().code(), absl::StrCat("--flow eager: training needs the prepared model's trace: ",
                                                         gm.status().message()));
  }
  fmt::print("QAT of {} in eager mode with {} on {} images: {} fake-quant observers, {} QAT modules; {} epochs\n",
             ModelName(f.model), f.qconfig, data.x.size(0), prepared.observed.size(), prepared.swapped.size(),
             f.epochs);
  QFX_ASSIGN_OR_RETURN(auto history, train::Train(**gm, data.x, data.y, options, Reporter(f.epochs)));
  quant::EnableObserversIn(*model, false);
  model->eval();
  QFX_RETURN_IF_ERROR(ReportTest(*model, f, "fake-quant"));
  QFX_ASSIGN_OR_RETURN(quant::EagerReport converted, quant::ConvertEager(*model));
  QFX_ASSIGN_OR_RETURN(auto int8, quant::TraceConverted(model, data.x.Narrow0(0, 1)));
  Shape input_shape = data.x.shape();
  input_shape[0] = 1;
  QFX_RETURN_IF_ERROR(
      io::SaveModel(f.out, *int8, input_shape, absl::StrCat(ModelName(f.model), " eager QAT with ", f.qconfig)));
  QFX_RETURN_IF_ERROR(ReportTest(*int8, f, "int8"));
  fmt::print("{} modules swapped to int8; fp32 {:.2f} MB; wrote {}\n", converted.swapped.size(), fp32_bytes / 1e6,
             f.out);
  return absl::OkStatus();
}

// The PT2E flow: export, the quantizer's QAT config, PrepareQatPt2e, train, ConvertPt2e, LowerPt2e.
absl::Status QatPt2e(const TrainFlags& f, const train::TrainOptions& options) {
  if (f.flow == "eager")
    return absl::InvalidArgumentError("--quantizer is the PT2E flow: it does not take --flow eager");
  QFX_ASSIGN_OR_RETURN(auto model, OpenModel(f.model));
  QFX_ASSIGN_OR_RETURN(Data data, ReadPair(f.train_x, f.train_y));
  const int64_t fp32_bytes = StateBytes(*model);
  QFX_ASSIGN_OR_RETURN(auto gm, ModelGraph(f.model, model, /*fp32_only=*/true));
  QFX_RETURN_IF_ERROR(quant::InlineModules(*gm));
  QFX_ASSIGN_OR_RETURN(auto quantizer, quant::MakeQuantizer(f.quantizer, !f.per_tensor, /*is_qat=*/true));
  QFX_ASSIGN_OR_RETURN(quant::Pt2eReport report, quant::PrepareQatPt2e(*gm, *quantizer));
  const std::string how = absl::StrCat(f.quantizer, f.per_tensor ? " (per-tensor weights)" : "");
  fmt::print("QAT of {} (PT2E) with {} on {} images: {} fake-quant modules; {} epochs, batch {}, {} lr {:g}\n",
             ModelName(f.model), how, data.x.size(0), report.observers, f.epochs, f.batch, f.optimizer, f.lr);
  QFX_ASSIGN_OR_RETURN(auto history, train::Train(*gm, data.x, data.y, options, Reporter(f.epochs)));
  quant::EnableObservers(*gm, false);
  gm->eval();
  QFX_RETURN_IF_ERROR(ReportTest(*gm, f, "fake-quant"));
  QFX_RETURN_IF_ERROR(quant::ConvertPt2e(*gm));
  QFX_RETURN_IF_ERROR(quant::LowerPt2e(*gm));
  Shape input_shape = data.x.shape();
  input_shape[0] = 1;
  QFX_RETURN_IF_ERROR(io::SaveModel(f.out, *gm, input_shape, absl::StrCat(ModelName(f.model), " QAT (PT2E) with ", how),
                                    SameOutputs(*gm, data.x.Narrow0(0, 1))));
  QFX_RETURN_IF_ERROR(ReportTest(*gm, f, "int8"));
  for (const auto& [node, why] : report.left_float) fmt::print("  float: %{} ({})\n", node, why);
  fmt::print("fp32 {:.2f} MB; wrote {}\n", fp32_bytes / 1e6, f.out);
  return absl::OkStatus();
}

absl::Status Qat(const TrainFlags& f) {
  QFX_RETURN_IF_ERROR(CheckTestFlags(f));
  QFX_RETURN_IF_ERROR(CheckFlow(f.flow));
  QFX_ASSIGN_OR_RETURN(train::TrainOptions options, Options(f));
  options.freeze_bn_after = f.freeze_bn_after;
  options.freeze_observers_after = f.freeze_observers_after;
  if (!f.quantizer.empty()) return QatPt2e(f, options);
  QFX_ASSIGN_OR_RETURN(quant::QuantConfig config, quant::LoadQuantConfig(f.qconfig));
  if (!config.mapping.global() || !config.mapping.global()->activation.fake_quant) {
    return absl::InvalidArgumentError(
        absl::StrCat("--qconfig ", f.qconfig,
                     " is for post-training quantization (no fake-quant); use a *_qat preset "
                     "such as x86_qat, or a rule file with fake_quant = true"));
  }
  if (f.flow == "eager") return QatEager(f, config, options);
  QFX_ASSIGN_OR_RETURN(auto model, OpenModel(f.model));
  QFX_ASSIGN_OR_RETURN(Data data, ReadPair(f.train_x, f.train_y));
  const int64_t fp32_bytes = StateBytes(*model);
  model->train();
  QFX_ASSIGN_OR_RETURN(auto gm, ModelGraph(f.model, model, /*fp32_only=*/true));
  quant::PrepareOptions po;
  po.config = config;
  QFX_ASSIGN_OR_RETURN(quant::PrepareReport report, quant::PrepareQat(*gm, po));
  for (const std::string& w : report.warnings) std::fprintf(stderr, "qfx: warning: %s\n", w.c_str());
  fmt::print("QAT of {} with {} on {} images: {} epochs, batch {}, {} lr {:g}\n", ModelName(f.model), f.qconfig,
             data.x.size(0), f.epochs, f.batch, f.optimizer, f.lr);
  QFX_ASSIGN_OR_RETURN(auto history, train::Train(*gm, data.x, data.y, options, Reporter(f.epochs)));
  // Freeze the trained qparams: evaluation must not move them, and convert uses exactly these.
  quant::EnableObservers(*gm, false);
  QFX_RETURN_IF_ERROR(ReportTest(*gm, f, "fake-quant"));
  QFX_RETURN_IF_ERROR(quant::Convert(*gm, report));
  Shape input_shape = data.x.shape();
  input_shape[0] = 1;
  QFX_RETURN_IF_ERROR(
      io::SaveModel(f.out, *gm, input_shape, absl::StrCat(ModelName(f.model), " QAT with ", f.qconfig)));
  QFX_RETURN_IF_ERROR(ReportTest(*gm, f, "int8"));
  fmt::print("{} int8 patterns, {} left float; fp32 {:.2f} MB; wrote {}\n", report.quantized.size(),
             report.left_float.size(), fp32_bytes / 1e6, f.out);
  return absl::OkStatus();
}

}  // namespace cli
}  // namespace qfx
