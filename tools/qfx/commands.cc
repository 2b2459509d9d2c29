// qfx command line: demo, run, eval and bench on fp32 zoo models (see commands.h).
#include "tools/qfx/commands.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "fmt/core.h"
#include "qfx/backend/cuda_model.h"
#include "qfx/core/parallel.h"
#include "qfx/fx/tracer.h"
#include "qfx/io/model_file.h"
#include "qfx/io/npy.h"
#include "qfx/io/safetensors.h"
#include "qfx/kernels/f32.h"
#include "qfx/kernels/qconv.h"
#include "qfx/models/quantizable.h"
#include "qfx/models/zoo.h"
#include "qfx/nn/functional.h"
#include "qfx/nn/modules.h"
#include "qfx/quant/eager.h"
#include "qfx/quant/metrics.h"
#include "qfx/quant/observer.h"
#include "qfx/quant/passes.h"
#include "qfx/quant/quantized_modules.h"
#include "qfx/train/trainer.h"

namespace qfx {
namespace cli {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

Tensor SeededInput(const Shape& shape, uint64_t seed) {
  Tensor x = Tensor::Empty(shape);
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = dist(gen);
  return x;
}

// A one-line progress bar on stderr, drawn only when stderr is a terminal.
class Progress {
 public:
  Progress(const char* what, int64_t total) : what_(what), total_(total), tty_(::isatty(2)) {}
  void Update(int64_t done) {
    if (!tty_) return;
    const int width = 30, filled = static_cast<int>(width * done / std::max<int64_t>(1, total_));
    std::fprintf(stderr, "\r%s [%s%s] %lld/%lld", what_, std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), static_cast<long long>(done),
                 static_cast<long long>(total_));
    if (done >= total_) std::fprintf(stderr, "\n");
  }

 private:
  const char* what_;
  int64_t total_;
  bool tty_;
};

// Runs `model` over x in batches along dim 0 and concatenates the outputs.
absl::StatusOr<Tensor> RunBatched(nn::Module& model, const Tensor& x, int64_t batch, const char* what) {
  if (x.dim() < 1 || x.size(0) == 0) return absl::InvalidArgumentError("input must be [N, ...] with N > 0");
  if (x.dtype() != DType::kF32) {
    return absl::InvalidArgumentError(absl::StrCat("input is ", x.ToString(), "; models take f32 (<f4 or <f8)"));
  }
  std::vector<Tensor> outs;
  Progress progress(what, x.size(0));
  for (int64_t i = 0; i < x.size(0); i += batch) {
    const int64_t n = std::min(batch, x.size(0) - i);
    absl::StatusOr<Tensor> y = RunModule(model, x.Narrow0(i, n));
    if (!y.ok()) {
      return absl::Status(y.status().code(), absl::StrCat("batch at row ", i, ": ", y.status().message()));
    }
    outs.push_back(*y);
    progress.Update(i + n);
  }
  Tensor out;
  QFX_RETURN_IF_ERROR(CatchErrors([&] { out = F::cat(outs, 0); }));
  return out;
}

}  // namespace

namespace {

std::string QuantizableNames() {
  std::vector<std::string> names;
  for (const models::ModelInfo& info : models::ListQuantizableModels()) names.push_back(info.name);
  return absl::StrJoin(names, ", ");
}

}  // namespace

absl::StatusOr<std::shared_ptr<nn::Module>> OpenModel(const ModelFlags& f, Shape* input_shape) {
  if (!f.file.empty() && !f.model.empty())
    return absl::InvalidArgumentError("give either a .qfx file or --model, not both");
  if (!f.file.empty() && !f.weights.empty())
    return absl::InvalidArgumentError(absl::StrCat("--weights is for --model: ", f.file, " carries its own weights"));
  if (!f.file.empty()) {
    QFX_ASSIGN_OR_RETURN(io::ModelFile file, io::LoadModel(f.file));
    if (input_shape != nullptr) *input_shape = file.input_shape;
    return std::shared_ptr<nn::Module>(file.module);
  }
  if (f.model.empty()) return absl::InvalidArgumentError("name a model: a .qfx file or --model NAME");
  std::shared_ptr<nn::Module> model;
  if (models::GetModelInfo(f.model).ok()) {
    QFX_ASSIGN_OR_RETURN(model, models::Create(f.model, f.seed));
    if (input_shape != nullptr) *input_shape = models::GetModelInfo(f.model)->input_shape;
  } else {
    absl::StatusOr<std::shared_ptr<nn::Module>> q = models::CreateQuantizable(f.model, f.seed);
    if (!q.ok()) {
      return absl::NotFoundError(
          absl::StrCat(models::GetModelInfo(f.model).status().message(), "; eager-mode models: ", QuantizableNames()));
    }
    model = *q;
    for (const models::ModelInfo& info : models::ListQuantizableModels()) {
      if (info.name == f.model && input_shape != nullptr) *input_shape = info.input_shape;
    }
  }
  if (!f.weights.empty()) QFX_RETURN_IF_ERROR(io::LoadWeights(*model, f.weights, /*strict=*/true));
  model->eval();
  return model;
}

absl::Status CheckFlow(const std::string& flow) {
  if (flow == "fx" || flow == "eager") return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("--flow ", flow, ": must be fx or eager"));
}

absl::StatusOr<std::shared_ptr<nn::Module>> OpenEagerModel(const ModelFlags& f, bool qat) {
  if (!f.file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--flow eager needs the model's C++ class (--model NAME), not the "
                     "graph in ",
                     f.file, "; use --flow fx for a .qfx file"));
  }
  QFX_ASSIGN_OR_RETURN(auto model, OpenModel(f));
  bool has_stub = false;
  for (const auto& [path, m] : model->named_modules()) has_stub = has_stub || m->type_name() == "QuantStub";
  if (!has_stub) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--flow eager: ", f.model,
        " has no QuantStub to start quantization at; eager-mode models: ", QuantizableNames(), " (or use --flow fx)"));
  }
  absl::StatusOr<std::vector<std::vector<std::string>>> lists = models::FusionLists(f.model, *model);
  if (lists.ok()) {
    if (qat) model->train();
    QFX_RETURN_IF_ERROR(qat ? quant::FuseModulesQat(*model, *lists) : quant::FuseModules(*model, *lists));
  }
  return model;
}

absl::StatusOr<std::shared_ptr<fx::GraphModule>> ModelGraph(const ModelFlags& f, std::shared_ptr<nn::Module> model,
                                                            bool fp32_only) {
  auto gm = std::dynamic_pointer_cast<fx::GraphModule>(model);
  if (gm == nullptr) {
    // A zoo model is traced on a zero input of its default shape, so forward may read sizes (shufflenet's
    // chunk does); only the sizes it reads are specialised.
    fx::TracerOptions options;
    if (absl::StatusOr<models::ModelInfo> info = models::GetModelInfo(f.model); info.ok()) {
      options.example_inputs = {Tensor::Zeros(info->input_shape)};
    }
    return fx::SymbolicTrace(model, options);
  }
  if (!fp32_only) return gm;
  for (const fx::Node* n : gm->graph()) {
    if (quant::NodeRole(*gm, *n) == nn::QuantRole::kQuantized) {
      return absl::InvalidArgumentError(absl::StrCat(f.file, " is already int8 (node %", n->name(),
                                                     "): give the fp32 model (a .qfx saved before convert)"));
    }
  }
  return gm;
}

std::string ModelName(const ModelFlags& f) { return f.file.empty() ? f.model : f.file; }

absl::StatusOr<Shape> ParseShape(const std::string& s) {
  Shape shape;
  for (absl::string_view part : absl::StrSplit(s, ',')) {
    int64_t d;
    if (!absl::SimpleAtoi(part, &d) || d <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("--shape '", s, "': '", part, "' is not a positive integer"));
    }
    shape.push_back(d);
  }
  return shape;
}

absl::StatusOr<Shape> InputShape(const ModelFlags& model, const std::string& shape_flag, const Shape& recorded) {
  if (!shape_flag.empty()) return ParseShape(shape_flag);
  if (recorded.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(ModelName(model), " records no input shape: pass --shape"));
  }
  return recorded;
}

int64_t StateBytes(nn::Module& m) {
  int64_t bytes = 0;
  for (const auto& [name, t] : m.state_dict()) bytes += static_cast<int64_t>(t.nbytes());
  return bytes;
}

absl::Status CheckFinite(const Tensor& x, const std::string& path, const char* what) {
  if (x.dtype() != DType::kF32 || x.dim() < 1 || x.size(0) == 0) return absl::OkStatus();  // checked elsewhere
  const float* p = x.data<float>();
  const int64_t per_row = x.numel() / x.size(0);
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (!std::isfinite(p[i])) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", what, " must be finite; row ", i / per_row,
                                                     ", element ", i % per_row, " is ", p[i]));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Tensor> ReadCalibration(const std::string& path) {
  QFX_ASSIGN_OR_RETURN(Tensor x, io::ReadNpy(path));
  if (x.dtype() != DType::kF32 || x.dim() < 2 || x.size(0) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": calibration data ", x.ToString(), " must be f32 [N, ...]"));
  }
  // Observers skip NaN and saturate on Inf, so such data would give a silently wrong model.
  QFX_RETURN_IF_ERROR(CheckFinite(x, path, "calibration data"));
  return x;
}

absl::StatusOr<int64_t> Calibrate(nn::Module& gm, const Tensor& x, const std::string& path, int64_t batch,
                                  int64_t max_batches) {
  // max_batches * batch only when it is below N (so it cannot overflow).
  const bool fewer = max_batches > 0 && max_batches < (x.size(0) + batch - 1) / batch;
  const int64_t total = fewer ? max_batches * batch : x.size(0);
  Progress progress("calibrate", total);
  for (int64_t i = 0; i < total; i += batch) {
    const int64_t n = std::min(batch, total - i);
    absl::StatusOr<Tensor> y = RunModule(gm, x.Narrow0(i, n));
    if (!y.ok()) {
      return absl::Status(y.status().code(),
                          absl::StrCat(path, ": calibration batch at row ", i, ": ", y.status().message()));
    }
    progress.Update(i + n);
  }
  for (const std::string& w : quant::CalibrationWarnings(gm)) std::fprintf(stderr, "qfx: warning: %s\n", w.c_str());
  return total;
}

namespace {

// Latencies of `runs` calls after `warmup` untimed ones, in ms, sorted ascending.
absl::StatusOr<std::vector<double>> TimeRuns(nn::Module& model, const Tensor& x, int warmup, int runs) {
  for (int i = 0; i < warmup; ++i) QFX_RETURN_IF_ERROR(RunModule(model, x).status());
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = Clock::now();
    QFX_RETURN_IF_ERROR(RunModule(model, x).status());
    ms.push_back(MsSince(t0));
  }
  std::sort(ms.begin(), ms.end());
  return ms;
}

absl::StatusOr<double> MedianMs(nn::Module& model, const Tensor& x, int runs) {
  QFX_ASSIGN_OR_RETURN(const std::vector<double> ms, TimeRuns(model, x, /*warmup=*/1, runs));
  return ms[ms.size() / 2];
}

}  // namespace

// The whole story on built-in defaults: seeded resnet18 in fp32, quantized with the x86 preset on
// synthetic calibration data, and the two compared.
absl::Status Demo() {
  const std::string name = "resnet18";
  QFX_ASSIGN_OR_RETURN(auto info, models::GetModelInfo(name));
  QFX_ASSIGN_OR_RETURN(auto model, models::Create(name, /*seed=*/0));
  Shape batch_shape = info.input_shape;
  batch_shape[0] = 8;
  const Tensor x = SeededInput(info.input_shape, /*seed=*/1), eval = SeededInput(batch_shape, 2),
               calib = SeededInput(batch_shape, 3);
  fmt::print("qfx demo: {} ({}), seeded weights, seeded input {}, {} threads\n", name, info.description,
             ShapeToString(x.shape()), NumThreads());
  QFX_ASSIGN_OR_RETURN(Tensor y, RunModule(*model, x));
  std::vector<int64_t> idx(y.size(1));
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
  const float* logits = y.data<float>();
  std::partial_sort(idx.begin(), idx.begin() + 5, idx.end(),
                    [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  fmt::print("top-5 logits (class: logit):\n");
  for (int i = 0; i < 5; ++i) fmt::print("  {:4d}: {:+.5f}\n", idx[i], logits[idx[i]]);
  QFX_ASSIGN_OR_RETURN(const double fp32_ms, MedianMs(*model, x, 5));
  fmt::print("fp32 latency: median {:.2f} ms over 5 runs\n", fp32_ms);

  // Quantize: trace, fuse + prepare (x86 preset), calibrate on 8 synthetic images, convert.
  const auto t0 = Clock::now();
  QFX_ASSIGN_OR_RETURN(auto gm, fx::SymbolicTrace(model));
  quant::PrepareOptions po;
  QFX_ASSIGN_OR_RETURN(po.config, quant::LoadQuantConfig("x86"));
  QFX_ASSIGN_OR_RETURN(quant::PrepareReport report, quant::Prepare(*gm, po));
  QFX_RETURN_IF_ERROR(RunModule(*gm, calib).status());
  QFX_RETURN_IF_ERROR(quant::Convert(*gm, report));
  fmt::print("quantized with x86 in {:.0f} ms: {} int8 patterns, {} left in float\n", MsSince(t0),
             report.quantized.size(), report.left_float.size());

  QFX_ASSIGN_OR_RETURN(Tensor ref, RunModule(*model, eval));
  QFX_ASSIGN_OR_RETURN(Tensor q, RunModule(*gm, eval));
  const Tensor ref_top = F::argmax(ref), q_top = F::argmax(q);
  int agree = 0;
  for (int64_t i = 0; i < ref_top.numel(); ++i) agree += ref_top.data<int64_t>()[i] == q_top.data<int64_t>()[i];
  QFX_ASSIGN_OR_RETURN(const double int8_ms, MedianMs(*gm, x, 5));
  const int64_t fp32_bytes = StateBytes(*model), int8_bytes = StateBytes(*gm);
  fmt::print("int8 vs fp32 on 8 seeded images: SQNR {:.1f} dB, top-1 agreement {}/8\n", quant::SqnrDb(ref, q), agree);
  fmt::print("int8 latency: median {:.2f} ms ({:.2f}x fp32)\n", int8_ms, int8_ms / fp32_ms);
  fmt::print("size: fp32 {:.1f} MB, int8 {:.1f} MB ({:.0f}%)\n", fp32_bytes / 1e6, int8_bytes / 1e6,
             100.0 * static_cast<double>(int8_bytes) / static_cast<double>(fp32_bytes));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<nn::Module>> OnDevice(const ModelFlags& f, std::shared_ptr<nn::Module> model) {
  if (f.device == "cpu") return model;
  if (f.device != "cuda") return absl::InvalidArgumentError(absl::StrCat("--device ", f.device, ": cpu or cuda"));
  auto gm = std::dynamic_pointer_cast<fx::GraphModule>(model);
  if (f.file.empty() || gm == nullptr) {
    return absl::InvalidArgumentError(
        "--device cuda runs int8 .qfx files (from qfx quantize), not zoo models in fp32: quantize the model first");
  }
  absl::StatusOr<std::shared_ptr<backend::CudaModule>> cuda = backend::CudaModule::Load(gm);
  if (!cuda.ok()) {
    return absl::Status(cuda.status().code(), absl::StrCat(f.file, ": --device cuda: ", cuda.status().message()));
  }
  return std::shared_ptr<nn::Module>(*cuda);
}

absl::Status Run(const RunFlags& f) {
  QFX_ASSIGN_OR_RETURN(auto opened, OpenModel(f.model));
  QFX_ASSIGN_OR_RETURN(auto model, OnDevice(f.model, opened));
  QFX_ASSIGN_OR_RETURN(Tensor x, io::ReadNpy(f.input));
  QFX_RETURN_IF_ERROR(CheckFinite(x, f.input, "input"));  // int8 would read NaN as 0, fp32 relu drop it
  QFX_ASSIGN_OR_RETURN(Tensor y, RunBatched(*model, x, f.batch, "run"));
  QFX_RETURN_IF_ERROR(io::WriteNpy(f.output, y));
  fmt::print("wrote {} {}\n", f.output, y.ToString());
  return absl::OkStatus();
}

absl::StatusOr<double> Top1(nn::Module& model, const Tensor& x, const Tensor& labels, int64_t batch) {
  model.eval();
  QFX_ASSIGN_OR_RETURN(Tensor y, RunBatched(model, x, batch, "eval"));
  if (y.dim() != 2)
    return absl::InvalidArgumentError(absl::StrCat("model output ", y.ToString(), " is not [N, classes]"));
  QFX_ASSIGN_OR_RETURN(const Tensor wide, train::IntegerLabels(labels));
  const int64_t correct = train::CountCorrect(y, wide);
  return static_cast<double>(correct) / static_cast<double>(labels.size(0));
}

absl::Status Eval(const EvalFlags& f) {
  QFX_ASSIGN_OR_RETURN(auto opened, OpenModel(f.model));
  QFX_ASSIGN_OR_RETURN(auto model, OnDevice(f.model, opened));
  QFX_ASSIGN_OR_RETURN(Tensor x, io::ReadNpy(f.input));
  QFX_RETURN_IF_ERROR(CheckFinite(x, f.input, "input"));  // int8 would read NaN as 0, fp32 relu drop it
  QFX_ASSIGN_OR_RETURN(Tensor labels, io::ReadNpy(f.labels));
  if (labels.dim() != 1 || x.dim() < 1 || labels.size(0) != x.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat(f.labels, ": labels ", labels.ToString(), " must be [N] with N = ",
                                                   x.dim() ? x.size(0) : 0, " rows of ", f.input));
  }
  absl::StatusOr<double> top1 = Top1(*model, x, labels, f.batch);
  if (!top1.ok()) return absl::Status(top1.status().code(), absl::StrCat(f.labels, ": ", top1.status().message()));
  fmt::print("images: {}\n", labels.size(0));
  fmt::print("top1: {:.4f}\n", *top1);
  return absl::OkStatus();
}

// What the int8 layers of a model run on: the ISA, then the convolution and linear paths with their counts,
// e.g. "AVX2: gemm_maddubs x20, linear_maddubs x1".
std::string Int8Paths(nn::Module& model) {
  std::map<std::string, int> counts;
  for (const auto& [path, m] : model.named_modules()) {
    if (auto* c = dynamic_cast<const quant::QuantizedConv2d*>(m)) ++counts[kernels::PathName(c->packed().path())];
    if (auto* l = dynamic_cast<const quant::QuantizedLinear*>(m)) ++counts[kernels::PathName(l->packed().path())];
  }
  std::string out = kernels::Int8PathName();
  const char* sep = ": ";
  for (const auto& [name, n] : counts) {
    out += fmt::format("{}{} x{}", sep, name, n);
    sep = ", ";
  }
  return out;
}

namespace {

// Times every node of a graph as the Interpreter runs it (summed over runs), and keeps the size of each
// node's output (for MAC counts).
class TimingInterpreter : public fx::Interpreter {
 public:
  using fx::Interpreter::Interpreter;
  std::map<const fx::Node*, double> ms;
  std::map<const fx::Node*, int64_t> numel;

 protected:
  Tensor CallFunction(const fx::Node& n, const std::vector<OpArg>& args) override {
    return Timed(n, [&] { return fx::Interpreter::CallFunction(n, args); });
  }
  Tensor CallMethod(const fx::Node& n, const std::vector<OpArg>& args) override {
    return Timed(n, [&] { return fx::Interpreter::CallMethod(n, args); });
  }
  Tensor CallModule(const fx::Node& n, const std::vector<OpArg>& args) override {
    return Timed(n, [&] { return fx::Interpreter::CallModule(n, args); });
  }

 private:
  template <typename Fn>
  Tensor Timed(const fx::Node& n, Fn fn) {
    const auto t0 = Clock::now();
    Tensor y = fn();
    ms[&n] += MsSince(t0);
    numel[&n] = y.defined() ? y.numel() : 0;
    return y;
  }
};

// Multiply-accumulates of one call of a convolution or linear layer (int8 or fp32) with `outputs` output
// values, or 0.
double LayerMacs(nn::Module* m, int64_t outputs) {
  Tensor w;
  if (auto* q = dynamic_cast<quant::QuantizedWeighted*>(m)) w = q->layer().weight_q;
  if (auto* c = dynamic_cast<nn::Conv2d*>(m)) w = c->weight;
  if (auto* l = dynamic_cast<nn::Linear*>(m)) w = l->weight;
  if (!w.defined() || w.dim() < 1 || w.size(0) == 0) return 0;
  return static_cast<double>(outputs) * static_cast<double>(w.numel() / w.size(0));
}

std::string LayerPath(nn::Module* m) {
  if (auto* c = dynamic_cast<const quant::QuantizedConv2d*>(m)) return kernels::PathName(c->packed().path());
  if (auto* l = dynamic_cast<const quant::QuantizedLinear*>(m)) return kernels::PathName(l->packed().path());
  return "";
}

// bench --profile: per node, the mean time over `runs` runs, slowest first, to a cumulative 95%.
absl::Status Profile(fx::GraphModule& gm, const Tensor& x, int runs) {
  TimingInterpreter timing(gm);
  QFX_RETURN_IF_ERROR(timing.Run(x).status());  // warm-up
  timing.ms.clear();
  for (int i = 0; i < runs; ++i) QFX_RETURN_IF_ERROR(timing.Run(x).status());
  std::vector<std::pair<double, const fx::Node*>> order;
  double total = 0;
  for (const auto& [n, t] : timing.ms) {
    order.push_back({t / runs, n});
    total += t / runs;
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  fmt::print("{:<28} {:<22} {:>9} {:>6} {:>7}  {}\n", "node", "target", "ms", "%", "GMAC/s", "int8 path");
  double shown = 0;
  for (const auto& [t, n] : order) {
    nn::Module* m = n->op() == fx::Opcode::kCallModule ? gm.submodule(n->target().path) : nullptr;
    const double macs = m ? LayerMacs(m, timing.numel[n]) : 0;
    fmt::print("{:<28} {:<22} {:>9.3f} {:>5.1f}% {:>7}  {}\n", n->name(), m ? m->type_name() : n->target_string(), t,
               100 * t / total, macs > 0 ? fmt::format("{:.1f}", macs / (t * 1e6)) : "", m ? LayerPath(m) : "");
    shown += t;
    if (shown > 0.95 * total) break;
  }
  fmt::print("total {:.3f} ms over {} nodes (interpreted, per-node timing)\n", total, order.size());
  return absl::OkStatus();
}

}  // namespace

absl::Status Bench(const BenchFlags& f) {
  Shape recorded;
  QFX_ASSIGN_OR_RETURN(auto opened, OpenModel(f.model, &recorded));
  QFX_ASSIGN_OR_RETURN(auto model, OnDevice(f.model, opened));
  QFX_ASSIGN_OR_RETURN(Shape shape, InputShape(f.model, f.shape, recorded));
  if (f.threads > 0) SetNumThreads(f.threads);
  const Tensor x = SeededInput(shape, 1);
  if (f.profile) {
    if (f.model.device != "cpu") return absl::InvalidArgumentError("--profile times the nodes of a CPU run");
    QFX_ASSIGN_OR_RETURN(auto gm, ModelGraph(f.model, model, /*fp32_only=*/false));  // a zoo model is traced
    return Profile(*gm, x, f.iters);
  }
  QFX_ASSIGN_OR_RETURN(const std::vector<double> ms, TimeRuns(*model, x, /*warmup=*/3, f.iters));
  const double median = ms[ms.size() / 2];
  if (f.json) {
    fmt::print(
        "{{\"median_ms\":{:.3f},\"min_ms\":{:.3f},\"max_ms\":{:.3f},\"device\":\"{}\",\"inputs_per_s\":{:.1f}}}\n",
        median, ms.front(), ms.back(), f.model.device, 1000.0 * static_cast<double>(shape[0]) / median);
  } else if (f.model.device == "cuda") {
    fmt::print("{} {} on {}: median {:.3f} ms, min {:.3f}, max {:.3f} ({} iters, CUDA graph replay), {:.0f} inputs/s\n",
               f.model.file, ShapeToString(shape), backend::CudaDeviceName(), median, ms.front(), ms.back(), ms.size(),
               1000.0 * static_cast<double>(shape[0]) / median);
  } else {
    const bool int8 = !f.model.file.empty();
    fmt::print("{} {} threads {}: median {:.2f} ms, min {:.2f}, max {:.2f} ({} iters; {} kernels: {})\n",
               int8 ? f.model.file : f.model.model + " fp32", ShapeToString(shape), NumThreads(), median, ms.front(),
               ms.back(), ms.size(), int8 ? "int8" : "fp32", int8 ? Int8Paths(*model) : kernels::GemmF32TargetName());
  }
  return absl::OkStatus();
}

}  // namespace cli
}  // namespace qfx
