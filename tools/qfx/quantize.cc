// qfx command line: `qfx quantize` — trace a zoo model (or take an fp32 .qfx file's graph), fuse, prepare, calibrate
// (progress bar on a terminal), convert to int8 and save a .qfx file; prints what was quantized, what stayed float and
// why, and the fp32 and int8 sizes.
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "fmt/core.h"
#include "qfx/fx/tracer.h"
#include "qfx/io/model_file.h"
#include "qfx/models/zoo.h"
#include "qfx/quant/eager.h"
#include "qfx/quant/passes.h"
#include "tools/qfx/commands.h"

namespace qfx {
namespace cli {
namespace {

int64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

// Dynamic quantization: Linear layers only, no calibration.
absl::Status QuantizeDynamically(const QuantizeFlags& f, const quant::QuantConfig& config, fx::GraphModule& gm,
                                 const Shape& input_shape, int64_t fp32_bytes) {
  if (!f.calib.empty()) std::fprintf(stderr, "qfx: warning: --calib is not used: %s is dynamic\n", f.qconfig.c_str());
  QFX_ASSIGN_OR_RETURN(quant::DynamicReport report, quant::QuantizeDynamic(gm, config));
  for (const std::string& w : report.warnings) std::fprintf(stderr, "qfx: warning: %s\n", w.c_str());
  QFX_RETURN_IF_ERROR(
      io::SaveModel(f.out, gm, input_shape, absl::StrCat(ModelName(f.model), " quantized with ", f.qconfig)));
  fmt::print("quantized {} with {} (dynamic): {} Linear layers int8, activations quantized per call\n",
             ModelName(f.model), f.qconfig, report.quantized.size());
  for (const auto& [node, reason] : report.left_float) fmt::print("  float: %{} ({})\n", node, reason);
  PrintSizes(fp32_bytes, f.out);
  return absl::OkStatus();
}

// Eager mode: prepare the model's tree, calibrate, swap in int8 modules, then save the converted model's
// trace (what the FX flow saves, so qfx run / eval / bench take it).
absl::Status QuantizeEager(const QuantizeFlags& f, const quant::QuantConfig& config) {
  bool dynamic = config.mapping.global() && quant::IsDynamic(*config.mapping.global());
  for (const auto& rule : config.mapping.rules())
    dynamic = dynamic || (rule.qconfig && quant::IsDynamic(*rule.qconfig));
  if (dynamic) {
    return absl::InvalidArgumentError(absl::StrCat("--flow eager with ", f.qconfig,
                                                   ": dynamic quantization traces nothing and needs no stubs; use "
                                                   "--flow fx (the C++ API has quant::QuantizeDynamicEager)"));
  }
  if (f.calib.empty()) return absl::InvalidArgumentError("--flow eager: give --calib X.npy with calibration inputs");
  QFX_ASSIGN_OR_RETURN(auto model, OpenEagerModel(f.model, /*qat=*/false));
  const int64_t fp32_bytes = StateBytes(*model);
  QFX_ASSIGN_OR_RETURN(Tensor calib, ReadCalibration(f.calib));
  QFX_ASSIGN_OR_RETURN(quant::EagerReport prepared, quant::PrepareEager(*model, &config.mapping));
  for (const std::string& w : prepared.warnings) std::fprintf(stderr, "qfx: warning: %s\n", w.c_str());
  QFX_ASSIGN_OR_RETURN(const int64_t used, Calibrate(*model, calib, f.calib, f.batch, f.calib_batches));
  QFX_ASSIGN_OR_RETURN(quant::EagerReport converted, quant::ConvertEager(*model));
  for (const std::string& w : converted.warnings) std::fprintf(stderr, "qfx: warning: %s\n", w.c_str());
  QFX_ASSIGN_OR_RETURN(auto gm, quant::TraceConverted(model, calib.Narrow0(0, 1)));
  Shape input_shape = calib.shape();
  input_shape[0] = 1;
  QFX_RETURN_IF_ERROR(io::SaveModel(f.out, *gm, input_shape,
                                    absl::StrCat(ModelName(f.model), " quantized in eager mode with ", f.qconfig),
                                    SameOutputs(*gm, calib.Narrow0(0, 1))));
  fmt::print("quantized {} in eager mode with {}: {} observers calibrated on {} inputs, {} modules swapped\n",
             ModelName(f.model), f.qconfig, prepared.observed.size(), used, converted.swapped.size());
  std::map<std::string, int> types;
  for (const auto& [path, type] : converted.swapped) ++types[type];
  for (const auto& [type, n] : types) fmt::print("  {} x {}\n", n, type);
  PrintSizes(fp32_bytes, f.out);
  return absl::OkStatus();
}

}  // namespace

// What `qfx quantize` checks of the file it writes, beyond LoadModel's rules: the model read back gives
// the outputs of the model in memory, bit for bit, on the first calibration input.
io::ModelCheck SameOutputs(fx::GraphModule& gm, const Tensor& x) {
  return [&gm, x](fx::GraphModule& reloaded) -> absl::Status {
    QFX_ASSIGN_OR_RETURN(const Tensor want, nn::RunModule(gm, x));
    QFX_ASSIGN_OR_RETURN(const Tensor got, nn::RunModule(reloaded, x));
    if (want.shape() != got.shape() || want.dtype() != got.dtype() ||
        std::memcmp(want.raw_data(), got.raw_data(), want.nbytes()) != 0) {
      return absl::InternalError(
          "the model read back gives other outputs than the model in memory on the first calibration input "
          "(a qfx bug: please report it with the command)");
    }
    return absl::OkStatus();
  };
}

void PrintSizes(int64_t fp32_bytes, const std::string& out) {
  const int64_t int8_bytes = FileSize(out);
  fmt::print("size: fp32 {:.2f} MB -> int8 {:.2f} MB ({:.1f}%), wrote {}\n", fp32_bytes / 1e6, int8_bytes / 1e6,
             100.0 * static_cast<double>(int8_bytes) / static_cast<double>(fp32_bytes), out);
}

absl::Status Quantize(const QuantizeFlags& f) {
  if (!f.quantizer.empty()) return QuantizePt2e(f);
  QFX_RETURN_IF_ERROR(CheckFlow(f.flow));
  Shape recorded;  // the input shape a dynamic model is saved with
  QFX_ASSIGN_OR_RETURN(auto model, OpenModel(f.model, &recorded));
  QFX_ASSIGN_OR_RETURN(quant::QuantConfig config, quant::LoadQuantConfig(f.qconfig));
  if (config.mapping.global() && config.mapping.global()->activation.fake_quant) {
    return absl::InvalidArgumentError(
        absl::StrCat("--qconfig ", f.qconfig, " is for quantization-aware training; use qfx qat"));
  }
  if (f.flow == "eager") return QuantizeEager(f, config);
  const int64_t fp32_bytes = StateBytes(*model);
  QFX_ASSIGN_OR_RETURN(auto gm, ModelGraph(f.model, model, /*fp32_only=*/true));
  if (quant::HasDynamicQConfig(config.mapping, *gm)) return QuantizeDynamically(f, config, *gm, recorded, fp32_bytes);
  if (f.calib.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--qconfig ", f.qconfig,
                                                   " is static: give --calib X.npy with "
                                                   "calibration inputs (only the dynamic preset needs none)"));
  }
  QFX_ASSIGN_OR_RETURN(Tensor calib, ReadCalibration(f.calib));
  quant::PrepareOptions po;
  po.config = config;
  QFX_ASSIGN_OR_RETURN(quant::PrepareReport report, quant::Prepare(*gm, po));
  for (const std::string& w : report.warnings) std::fprintf(stderr, "qfx: warning: %s\n", w.c_str());
  QFX_ASSIGN_OR_RETURN(const int64_t used, Calibrate(*gm, calib, f.calib, f.batch, f.calib_batches));
  QFX_RETURN_IF_ERROR(quant::Convert(*gm, report));
  Shape input_shape = calib.shape();
  input_shape[0] = 1;
  QFX_RETURN_IF_ERROR(io::SaveModel(f.out, *gm, input_shape,
                                    absl::StrCat(ModelName(f.model), " quantized with ", f.qconfig),
                                    SameOutputs(*gm, calib.Narrow0(0, 1))));
  fmt::print("quantized {} with {} (backend {}): {} int8 patterns, {} observers calibrated on {} inputs\n",
             ModelName(f.model), f.qconfig, config.backend->name, report.quantized.size(), report.observers, used);
  // A float elementwise op between two int8 ops is gone from the converted graph: Lower made it a q_unary
  // table with the float detour's bytes.
  std::set<std::string> remaining;
  for (const fx::Node* n : gm->graph()) remaining.insert(n->name());
  for (const auto& [node, reason] : report.left_float) {
    fmt::print("  float: %{} ({}{})\n", node, quant::FloatReasonText(reason),
               remaining.count(node) ? "" : "; runs as its int8 table, the float result's exact bytes");
  }
  if (report.left_float.empty()) fmt::print("  every op is int8\n");
  PrintSizes(fp32_bytes, f.out);
  return absl::OkStatus();
}

}  // namespace cli
}  // namespace qfx
