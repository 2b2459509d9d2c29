// qfx command line: parses flags with CLI11 and dispatches to the subcommands in commands.cc.
//   qfx demo | quantize | run | eval | bench | dump | train | qat
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "CLI/CLI.hpp"
#include "absl/strings/str_join.h"
#include "hwy/targets.h"
#include "qfx/io/file.h"
#include "qfx/models/zoo.h"
#include "tools/qfx/commands.h"

namespace {

void AddModelFlags(CLI::App* cmd, qfx::cli::ModelFlags& f, bool fp32_file = false) {
  cmd->add_option("model_file", f.file,
                  fp32_file ? "an fp32 .qfx model file (io::SaveModel before convert) instead of --model"
                            : "a .qfx model file (from qfx quantize, or any saved graph) instead of --model");
  std::vector<std::string> names;
  for (const qfx::models::ModelInfo& info : qfx::models::ListModels()) names.push_back(info.name);
  cmd->add_option("--model", f.model, "zoo model name (" + absl::StrJoin(names, ", ") + ")");
  cmd->add_option("--weights", f.weights, "safetensors file with the model's state_dict (PyTorch names)");
  cmd->add_option(
      "--seed", f.seed,
      "seed of the default initialisation when --weights is not given (train, qat: also of shuffling and dropout)");
}

// run, eval and bench: where the model runs.
void AddDeviceFlag(CLI::App* cmd, qfx::cli::ModelFlags& f) {
  cmd->add_option("--device", f.device,
                  "cpu, or cuda: the whole int8 graph of a .qfx file on the GPU, bit-identical to the CPU")
      ->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda"}));
}

void AddTrainFlags(CLI::App* cmd, qfx::cli::TrainFlags& f) {
  cmd->add_option("--train-x", f.train_x, "training inputs, f32 .npy [N, ...]")->required();
  cmd->add_option("--train-y", f.train_y, "training labels, integer .npy [N]")->required();
  cmd->add_option("--test-x", f.test_x, "test inputs: report top-1 at the end");
  cmd->add_option("--test-y", f.test_y, "test labels");
  cmd->add_option("--epochs", f.epochs, "epochs")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--batch", f.batch, "mini-batch size")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--lr", f.lr, "learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--optimizer", f.optimizer, "adam | sgd")
      ->capture_default_str()
      ->check(CLI::IsMember({"adam", "sgd"}));
  cmd->add_option("--momentum", f.momentum, "sgd momentum")->capture_default_str();
  cmd->add_option("--weight-decay", f.weight_decay, "L2 weight decay")->capture_default_str();
  cmd->add_option("--schedule", f.schedule, "constant | step | cosine (per epoch)")
      ->capture_default_str()
      ->check(CLI::IsMember({"constant", "step", "cosine"}));
  cmd->add_option("--step-size", f.step_size, "step schedule: epochs per decay")->capture_default_str();
  cmd->add_option("--gamma", f.gamma, "step schedule: decay factor")->capture_default_str();
}

// QFX_DISABLE_AVX512=1 keeps the kernels off the AVX-512 targets (AVX2 at most), to see how qfx runs on
// a CPU without AVX-512 (results are identical by construction; only the speed changes).
void ApplyTargetOverrides() {
  const char* off = std::getenv("QFX_DISABLE_AVX512");
  if (off != nullptr && std::strcmp(off, "1") == 0) hwy::DisableTargets(HWY_AVX3 | HWY_AVX3_DL);
}

// `bazel run //tools:qfx -- ...` runs in the runfiles tree; relative paths on its command line are the
// caller's, from the directory Bazel names.
bool EnterBuildWorkingDirectory() {
  const char* dir = std::getenv("BUILD_WORKING_DIRECTORY");
  if (dir == nullptr || *dir == '\0' || chdir(dir) == 0) return true;
  std::fprintf(stderr, "qfx: error: cannot enter BUILD_WORKING_DIRECTORY %s: %s\n", dir, std::strerror(errno));
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  ApplyTargetOverrides();
  qfx::io::RemoveTemporaryFilesOnSignals();  // a write interrupted by Ctrl-C or kill leaves no file
  if (!EnterBuildWorkingDirectory()) return 1;
  CLI::App app{"qfx: graph-mode int8 quantization for C++ models"};
  app.require_subcommand(1);

  app.add_subcommand("demo", "run seeded resnet18 on a seeded input: top-5 logits and time");

  qfx::cli::RunFlags run;
  CLI::App* run_cmd = app.add_subcommand("run", "run a model over an .npy array, in batches, and save outputs");
  AddModelFlags(run_cmd, run.model);
  AddDeviceFlag(run_cmd, run.model);
  run_cmd->add_option("--input", run.input, "input .npy, [N, ...]")->required();
  run_cmd->add_option("--output", run.output, "output .npy to write")->required();
  run_cmd->add_option("--batch", run.batch, "batch size")->check(CLI::PositiveNumber);

  qfx::cli::EvalFlags eval;
  CLI::App* eval_cmd = app.add_subcommand("eval", "top-1 accuracy of a model on an .npy array and labels");
  AddModelFlags(eval_cmd, eval.model);
  AddDeviceFlag(eval_cmd, eval.model);
  eval_cmd->add_option("--input", eval.input, "input .npy, [N, ...]")->required();
  eval_cmd->add_option("--labels", eval.labels, "labels .npy, [N] integers")->required();
  eval_cmd->add_option("--batch", eval.batch, "batch size")->check(CLI::PositiveNumber);

  qfx::cli::BenchFlags bench;
  CLI::App* bench_cmd = app.add_subcommand("bench", "latency of a model: warm-up, then median/min/max ms");
  AddModelFlags(bench_cmd, bench.model);
  AddDeviceFlag(bench_cmd, bench.model);
  bench_cmd->add_option("--shape", bench.shape, "input shape, e.g. 1,3,224,224 (default: the model's)");
  bench_cmd->add_option("--threads", bench.threads, "threads (default: all cores)")->check(CLI::PositiveNumber);
  bench_cmd->add_option("--iters", bench.iters, "timed iterations")->check(CLI::PositiveNumber);
  bench_cmd->add_flag("--json", bench.json, "print one JSON line");
  bench_cmd->add_flag("--profile", bench.profile,
                      "also time every node of the graph (CPU): the slowest first, with each int8 layer's path and "
                      "G MAC/s");

  qfx::cli::QuantizeFlags quantize;
  CLI::App* quantize_cmd =
      app.add_subcommand("quantize", "fuse, prepare, calibrate, convert and save an int8 .qfx model");
  AddModelFlags(quantize_cmd, quantize.model, /*fp32_file=*/true);
  quantize_cmd->add_option("--qconfig", quantize.qconfig,
                           "preset (x86 fbgemm qnnpack onednn dynamic) or rule file (default x86)");
  quantize_cmd->add_option("--calib", quantize.calib, "calibration inputs, .npy [N, ...] (not for dynamic)");
  quantize_cmd->add_option("--calib-batches", quantize.calib_batches, "use at most this many batches (default all)")
      ->check(CLI::PositiveNumber);
  quantize_cmd->add_option("--batch", quantize.batch, "calibration batch size")->check(CLI::PositiveNumber);
  quantize_cmd->add_option("--out", quantize.out, "the .qfx file to write")->required();
  quantize_cmd
      ->add_option("--flow", quantize.flow,
                   "fx (trace, the default) or eager (module swap on a model marked up with QuantStub / "
                   "DeQuantStub, e.g. --model quantizable_resnet18)")
      ->check(CLI::IsMember({"fx", "eager"}));
  CLI::Option* quantize_quantizer =
      quantize_cmd
          ->add_option("--quantizer", quantize.quantizer,
                       "the PT2E flow with a backend's quantizer instead of a qconfig: xnnpack (qint8 "
                       "activations, symmetric weights) or x86_inductor (quint8 activations)")
          ->check(CLI::IsMember({"xnnpack", "x86_inductor"}));
  quantize_cmd->add_flag("--per-tensor", quantize.per_tensor, "PT2E: per-tensor weights (default per channel)")
      ->needs(quantize_quantizer);
  quantize_quantizer->excludes(quantize_cmd->get_option("--qconfig"));

  qfx::cli::DumpFlags dump;
  CLI::App* dump_cmd =
      app.add_subcommand("dump", "trace a model and show its graph (table, code, json, dot, svg, png)");
  AddModelFlags(dump_cmd, dump.model);
  dump_cmd->add_option("--format", dump.format, "table | code | json | dot | svg | png (default table)");
  dump_cmd->add_option("--out", dump.out, "output file (default: stdout; required for svg and png)");
  dump_cmd->add_option("--shape", dump.shape, "input shape for the shape column (default: the model's)");
  dump_cmd->add_option("--stage", dump.stage,
                       "traced | fused | prepared | converted (default traced); with --quantizer (PT2E): exported "
                       "| annotated | prepared | converted");
  CLI::Option* dump_quantizer = dump_cmd->add_option("--quantizer", dump.quantizer, "PT2E: xnnpack or x86_inductor")
                                    ->check(CLI::IsMember({"xnnpack", "x86_inductor"}));
  dump_cmd->add_flag("--per-tensor", dump.per_tensor, "PT2E: per-tensor weights")->needs(dump_quantizer);
  dump_cmd->add_option("--qconfig", dump.qconfig,
                       "preset (x86 fbgemm qnnpack onednn, *_qat) or rule file (default x86)");
  dump_cmd->add_option("--calib", dump.calib, "calibrate with this .npy (prepared: show qparams; converted: required)");
  dump_cmd->add_option("--batch", dump.batch, "calibration batch size")->check(CLI::PositiveNumber);

  qfx::cli::TrainFlags train;
  CLI::App* train_cmd = app.add_subcommand("train", "train a zoo model in fp32 (cross-entropy) and save its weights");
  AddModelFlags(train_cmd, train.model, /*fp32_file=*/true);
  AddTrainFlags(train_cmd, train);
  train_cmd->add_option("--out", train.out, "the .safetensors weights file to write")->required();

  qfx::cli::TrainFlags qat = train;
  qat.epochs = 1;
  qat.lr = 1e-4;
  CLI::App* qat_cmd =
      app.add_subcommand("qat", "quantization-aware fine-tuning, then convert to int8 and save a .qfx model");
  AddModelFlags(qat_cmd, qat.model, /*fp32_file=*/true);
  AddTrainFlags(qat_cmd, qat);
  CLI::Option* qat_qconfig = qat_cmd->add_option("--qconfig", qat.qconfig,
                                                 "QAT preset (x86_qat fbgemm_qat qnnpack_qat onednn_qat) or rule file "
                                                 "(default x86_qat)");
  CLI::Option* qat_quantizer =
      qat_cmd
          ->add_option("--quantizer", qat.quantizer,
                       "the PT2E flow with a backend's quantizer (its QAT config) instead of a qconfig: xnnpack or "
                       "x86_inductor")
          ->check(CLI::IsMember({"xnnpack", "x86_inductor"}))
          ->excludes(qat_qconfig);
  qat_cmd->add_flag("--per-tensor", qat.per_tensor, "PT2E: per-tensor weights (default per channel)")
      ->needs(qat_quantizer);
  qat_cmd->add_option("--freeze-bn-after", qat.freeze_bn_after, "freeze batch-norm statistics after this many epochs");
  qat_cmd->add_option("--freeze-observers-after", qat.freeze_observers_after,
                      "freeze observers after this many epochs");
  qat_cmd->add_option("--out", qat.out, "the .qfx file to write")->required();
  qat_cmd->add_option("--flow", qat.flow, "fx (the default) or eager (QAT modules swapped into the model's tree)")
      ->check(CLI::IsMember({"fx", "eager"}));

  CLI11_PARSE(app, argc, argv);

  absl::Status status;
  if (app.got_subcommand("demo")) status = qfx::cli::Demo();
  if (app.got_subcommand("run")) status = qfx::cli::Run(run);
  if (app.got_subcommand("eval")) status = qfx::cli::Eval(eval);
  if (app.got_subcommand("bench")) status = qfx::cli::Bench(bench);
  if (app.got_subcommand("dump")) status = qfx::cli::Dump(dump);
  if (app.got_subcommand("quantize")) status = qfx::cli::Quantize(quantize);
  if (app.got_subcommand("train")) status = qfx::cli::Train(train);
  if (app.got_subcommand("qat")) status = qfx::cli::Qat(qat);
  if (!status.ok()) {
    std::fprintf(stderr, "qfx: error: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
