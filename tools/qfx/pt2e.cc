// qfx command line: the PT2E flow (`qfx quantize --quantizer xnnpack|x86_inductor`, `qfx dump --stage
// exported|annotated|prepared|converted --quantizer ...`): export, annotate, prepare, calibrate (progress bar
// on a terminal), convert to Q/DQ, lower to the int8 kernels and save a .qfx file; the dump stages show the
// graph with each node's annotation, observer qparams, or why it stays float.
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "fmt/core.h"
#include "qfx/io/model_file.h"
#include "qfx/quant/observer.h"
#include "qfx/quant/pt2e.h"
#include "qfx/quant/quantized_modules.h"
#include "tools/qfx/commands.h"

namespace qfx {
namespace cli {
namespace {

std::string AnnotationNote(const quant::QuantizationAnnotation& a) {
  std::string note;
  for (const auto& [input, spec] : a.input_qspec_map)
    absl::StrAppend(&note, note.empty() ? "" : "; ", "in %", input->name(), ": ", quant::SpecString(spec));
  if (a.output_qspec) absl::StrAppend(&note, note.empty() ? "" : "; ", "out: ", quant::SpecString(*a.output_qspec));
  if (!a.note.empty()) absl::StrAppend(&note, note.empty() ? "" : "; ", "float: ", a.note);
  return note;
}

std::map<const fx::Node*, std::string> PreparedNotes(fx::GraphModule& gm, const quant::Pt2eReport& report,
                                                     bool calibrated) {
  std::map<const fx::Node*, std::string> notes;
  std::map<std::string, std::string> float_why(report.left_float.begin(), report.left_float.end());
  for (fx::Node* n : gm.graph()) {
    if (auto f = float_why.find(n->name()); f != float_why.end()) notes[n] = "float: " + f->second;
    nn::Module* m = n->op() == fx::Opcode::kCallModule ? gm.submodule(n->target().path) : nullptr;
    if (quant::IsObserverModule(m)) notes[n] = ObserverNote(*m, calibrated, /*with_dtype=*/true);
  }
  return notes;
}

absl::StatusOr<std::shared_ptr<quant::PatternQuantizer>> QuantizerOf(const std::string& name, bool per_tensor) {
  if (name.empty()) {
    return absl::InvalidArgumentError("the PT2E stages need --quantizer xnnpack or --quantizer x86_inductor");
  }
  return quant::MakeQuantizer(name, !per_tensor);
}

}  // namespace

absl::Status DumpPt2e(const DumpFlags& f, fx::GraphModule& gm, std::map<const fx::Node*, std::string>* notes) {
  QFX_RETURN_IF_ERROR(quant::InlineModules(gm));
  if (f.stage == "exported") return absl::OkStatus();
  QFX_ASSIGN_OR_RETURN(auto quantizer, QuantizerOf(f.quantizer, f.per_tensor));
  if (f.stage == "annotated") {
    QFX_RETURN_IF_ERROR(quant::AnnotatePt2e(gm, *quantizer));
    for (fx::Node* n : gm.graph()) {
      if (const quant::QuantizationAnnotation* a = quant::FindAnnotation(n)) (*notes)[n] = AnnotationNote(*a);
    }
    return absl::OkStatus();
  }
  if (f.stage != "prepared" && f.stage != "converted") {
    return absl::InvalidArgumentError(
        absl::StrCat("--stage '", f.stage, "' with --quantizer must be exported, annotated, prepared or converted"));
  }
  QFX_ASSIGN_OR_RETURN(quant::Pt2eReport report, quant::PreparePt2e(gm, *quantizer));
  if (!f.calib.empty()) {
    QFX_ASSIGN_OR_RETURN(const Tensor calib, ReadCalibration(f.calib));
    QFX_RETURN_IF_ERROR(Calibrate(gm, calib, f.calib, f.batch, /*max_batches=*/0).status());
  }
  if (f.stage == "prepared") {
    *notes = PreparedNotes(gm, report, !f.calib.empty());
    return absl::OkStatus();
  }
  if (f.calib.empty()) return absl::InvalidArgumentError("--stage converted needs --calib X.npy to calibrate with");
  QFX_RETURN_IF_ERROR(quant::ConvertPt2e(gm));
  return quant::LowerPt2e(gm);
}

absl::Status QuantizePt2e(const QuantizeFlags& f) {
  if (f.flow == "eager")
    return absl::InvalidArgumentError("--quantizer is the PT2E flow: it does not take --flow eager");
  if (f.calib.empty()) return absl::InvalidArgumentError("--quantizer: give --calib X.npy with calibration inputs");
  QFX_ASSIGN_OR_RETURN(auto model, OpenModel(f.model));
  const int64_t fp32_bytes = StateBytes(*model);
  QFX_ASSIGN_OR_RETURN(auto gm, ModelGraph(f.model, model, /*fp32_only=*/true));
  QFX_RETURN_IF_ERROR(quant::InlineModules(*gm));
  QFX_ASSIGN_OR_RETURN(auto quantizer, QuantizerOf(f.quantizer, f.per_tensor));
  QFX_ASSIGN_OR_RETURN(Tensor calib, ReadCalibration(f.calib));
  QFX_ASSIGN_OR_RETURN(quant::Pt2eReport report, quant::PreparePt2e(*gm, *quantizer));
  QFX_ASSIGN_OR_RETURN(const int64_t used, Calibrate(*gm, calib, f.calib, f.batch, f.calib_batches));
  QFX_RETURN_IF_ERROR(quant::ConvertPt2e(*gm));
  QFX_RETURN_IF_ERROR(quant::LowerPt2e(*gm));
  Shape input_shape = calib.shape();
  input_shape[0] = 1;
  const std::string how = absl::StrCat(f.quantizer, f.per_tensor ? " (per-tensor weights)" : "");
  QFX_RETURN_IF_ERROR(io::SaveModel(f.out, *gm, input_shape,
                                    absl::StrCat(ModelName(f.model), " quantized (PT2E) with ", how),
                                    SameOutputs(*gm, calib.Narrow0(0, 1))));
  int layers = 0;
  for (const auto& [path, m] : gm->named_modules()) layers += dynamic_cast<quant::QuantizedWeighted*>(m) != nullptr;
  fmt::print("quantized {} (PT2E) with {}: {} int8 conv / linear layers, {} observers calibrated on {} inputs\n",
             ModelName(f.model), how, layers, report.observers, used);
  for (const auto& [node, why] : report.left_float) fmt::print("  float: %{} ({})\n", node, why);
  if (report.left_float.empty()) fmt::print("  every op is int8\n");
  PrintSizes(fp32_bytes, f.out);
  return absl::OkStatus();
}

}  // namespace cli
}  // namespace qfx
