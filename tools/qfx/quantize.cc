// qfx command line: `qfx quantize` — trace a zoo model, fuse, prepare, calibrate (progress bar on a
// terminal), convert to int8 and save a .qfx file; prints what was quantized, what stayed float and why,
// and the fp32 and int8 sizes.
#include <sys/stat.h>

#include <cstdio>
#include <map>

#include "absl/strings/str_cat.h"
#include "fmt/core.h"
#include "qfx/fx/tracer.h"
#include "qfx/quant/model_file.h"
#include "qfx/quant/passes.h"
#include "tools/qfx/commands.h"

namespace qfx {
namespace cli {
namespace {

int64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

}  // namespace

absl::Status Quantize(const QuantizeFlags& f) {
  QFX_ASSIGN_OR_RETURN(auto model, LoadModel(f.model));
  QFX_ASSIGN_OR_RETURN(quant::QuantConfig config, quant::LoadQuantConfig(f.qconfig));
  if (config.mapping.global() && config.mapping.global()->activation.fake_quant) {
    return absl::InvalidArgumentError(absl::StrCat("--qconfig ", f.qconfig, " is for quantization-aware training; use qfx qat"));
  }
  QFX_ASSIGN_OR_RETURN(Tensor calib, ReadCalibration(f.calib));
  const int64_t fp32_bytes = StateBytes(*model);
  QFX_ASSIGN_OR_RETURN(auto gm, fx::SymbolicTrace(model));
  quant::PrepareOptions po;
  po.config = config;
  QFX_ASSIGN_OR_RETURN(quant::PrepareReport report, quant::Prepare(*gm, po));
  for (const std::string& w : report.warnings) std::fprintf(stderr, "qfx: warning: %s\n", w.c_str());
  QFX_ASSIGN_OR_RETURN(const int64_t used, Calibrate(*gm, calib, f.calib, f.batch, f.calib_batches));
  QFX_RETURN_IF_ERROR(quant::Convert(*gm, report));
  Shape input_shape = calib.shape();
  input_shape[0] = 1;
  QFX_RETURN_IF_ERROR(quant::SaveModel(f.out, *gm, input_shape, absl::StrCat(f.model.model, " quantized with ", f.qconfig)));
  fmt::print("quantized {} with {} (backend {}): {} int8 patterns, {} observers calibrated on {} inputs\n", f.model.model,
             f.qconfig, config.backend, report.quantized.size(), report.observers, used);
  std::map<std::string, int> reasons;
  for (const auto& [node, reason] : report.left_float) ++reasons[quant::FloatReasonText(reason)];
  for (const auto& [node, reason] : report.left_float) fmt::print("  float: %{} ({})\n", node, quant::FloatReasonText(reason));
  if (report.left_float.empty()) fmt::print("  every op is int8\n");
  const int64_t int8_bytes = FileSize(f.out);
  fmt::print("size: fp32 {:.2f} MB -> int8 {:.2f} MB ({:.1f}%), wrote {}\n", fp32_bytes / 1e6, int8_bytes / 1e6,
             100.0 * static_cast<double>(int8_bytes) / static_cast<double>(fp32_bytes), f.out);
  return absl::OkStatus();
}

}  // namespace cli
}  // namespace qfx
