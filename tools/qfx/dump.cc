// qfx command line: `qfx dump` — trace a zoo model and print or save its graph as a table, code, JSON,
// DOT, SVG or PNG (the last two through Graphviz's `dot`).
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "qfx/fx/formats.h"
#include "qfx/fx/tracer.h"
#include "qfx/io/file.h"
#include "qfx/models/zoo.h"
#include "qfx/quant/observer.h"
#include "qfx/quant/passes.h"
#include "tools/qfx/commands.h"

extern char** environ;

namespace qfx {
namespace cli {
namespace {

bool OnPath(const std::string& tool) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "/usr/bin:/bin", ':')) {
    if (::access(absl::StrCat(dir, "/", tool).c_str(), X_OK) == 0) return true;
  }
  return false;
}

// Renders DOT text with Graphviz into `out` (atomically: dot writes a temporary file we rename).
absl::Status RenderDot(const std::string& dot_text, const std::string& format, const std::string& out) {
  if (!OnPath("dot")) {
    return absl::FailedPreconditionError(
        absl::StrCat("--format ", format,
                     " needs Graphviz's `dot`, which is not on PATH: install it with "
                     "`apt-get install graphviz` (tools/setup.sh does), or use --format dot and render it elsewhere"));
  }
  const std::string dot_file = absl::StrCat(out, ".tmp.", ::getpid(), ".dot");
  const std::string rendered = absl::StrCat(out, ".tmp.", ::getpid());
  QFX_RETURN_IF_ERROR(io::WriteFileAtomic(dot_file, dot_text));
  const std::string flag = "-T" + format;
  std::vector<std::string> argv_s = {"dot", flag, dot_file, "-o", rendered};
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  int status = 0;
  const int spawned = ::posix_spawnp(&pid, "dot", nullptr, nullptr, argv.data(), environ);
  if (spawned == 0) ::waitpid(pid, &status, 0);
  std::remove(dot_file.c_str());
  if (spawned != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::remove(rendered.c_str());
    return absl::InternalError(absl::StrCat("`dot ", flag, "` failed while rendering ", out));
  }
  if (std::rename(rendered.c_str(), out.c_str()) != 0) {
    std::remove(rendered.c_str());
    return absl::UnavailableError(absl::StrCat(out, ": cannot write the rendered graph"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Render(const fx::Graph& graph, const std::string& format, const std::string& title,
                                   const std::map<const fx::Node*, std::string>* notes) {
  if (format == "table") return fx::FormatTable(graph, notes);
  if (format == "code") return fx::FormatCode(graph);
  if (format == "json") return fx::GraphToJson(graph);
  if (format == "dot" || format == "svg" || format == "png") return fx::FormatDot(graph, title);
  return absl::InvalidArgumentError(absl::StrCat("--format '", format, "' must be table, code, json, dot, svg or png"));
}

}  // namespace

std::string ObserverNote(nn::Module& m, bool calibrated, bool with_dtype) {
  std::string note = m.type_name();
  auto* obs = dynamic_cast<quant::Observer*>(&m);
  if (calibrated && obs != nullptr) {
    (void)CatchErrors([&] {
      const quant::QParams qp = obs->CalculateQParams();
      if (with_dtype) absl::StrAppend(&note, " ", quant::QDTypeName(qp.dtype));
      absl::StrAppend(&note, " scale=", qp.scale[0], " zero_point=", qp.zero_point[0]);
      if (with_dtype && qp.scale.size() > 1) absl::StrAppend(&note, " (channel 0)");
    });
  }
  return note;
}

namespace {

// What Prepare did with each node: the quantized pattern, the observer (and its qparams once calibrated),
// or why the node stays float.
std::map<const fx::Node*, std::string> Notes(fx::GraphModule& gm, const quant::PrepareReport& report, bool calibrated) {
  std::map<const fx::Node*, std::string> notes;
  for (fx::Node* n : gm.graph()) {
    if (auto q = report.anchors.find(n); q != report.anchors.end()) notes[n] = "int8 " + q->second->name;
    if (auto f = report.left_float.find(n->name()); f != report.left_float.end()) {
      notes[n] = absl::StrCat("float: ", quant::FloatReasonText(f->second));
    }
    nn::Module* m = n->op() == fx::Opcode::kCallModule ? gm.submodule(n->target().path) : nullptr;
    if (quant::IsObserverModule(m)) notes[n] = ObserverNote(*m, calibrated, /*with_dtype=*/false);
  }
  return notes;
}

}  // namespace

absl::Status Dump(const DumpFlags& f) {
  Shape recorded;
  QFX_ASSIGN_OR_RETURN(auto model, OpenModel(f.model, &recorded));
  QFX_ASSIGN_OR_RETURN(Shape shape, InputShape(f.model, f.shape, recorded));
  QFX_ASSIGN_OR_RETURN(std::shared_ptr<fx::GraphModule> gm,
                       ModelGraph(f.model, model, /*fp32_only=*/f.stage != "traced"));
  std::map<const fx::Node*, std::string> notes;
  if (f.stage == "exported" || f.stage == "annotated" || !f.quantizer.empty()) {
    QFX_RETURN_IF_ERROR(DumpPt2e(f, *gm, &notes));
  } else if (f.stage == "fused" || f.stage == "prepared" || f.stage == "converted") {
    QFX_ASSIGN_OR_RETURN(quant::QuantConfig config, quant::LoadQuantConfig(f.qconfig));
    if (f.stage == "fused") {
      quant::FuseOptions fo;
      fo.backend = config.backend;
      fo.mapping = &config.mapping;
      QFX_RETURN_IF_ERROR(quant::Fuse(*gm, fo));
    } else {
      quant::PrepareOptions po;
      po.config = config;
      // Fake-quant specs (the *_qat presets) mean quantization-aware training: prepare for it.
      const bool qat = config.mapping.global() && config.mapping.global()->activation.fake_quant;
      if (qat) gm->train();
      QFX_ASSIGN_OR_RETURN(quant::PrepareReport report, qat ? quant::PrepareQat(*gm, po) : quant::Prepare(*gm, po));
      if (qat) gm->eval();
      for (const std::string& w : report.warnings) std::fprintf(stderr, "qfx: warning: %s\n", w.c_str());
      if (!f.calib.empty()) {
        QFX_ASSIGN_OR_RETURN(const Tensor calib, ReadCalibration(f.calib));
        QFX_RETURN_IF_ERROR(Calibrate(*gm, calib, f.calib, f.batch, /*max_batches=*/0).status());
      }
      if (f.stage == "converted") {
        if (f.calib.empty())
          return absl::InvalidArgumentError("--stage converted needs --calib X.npy to calibrate with");
        if (qat) return absl::InvalidArgumentError("--stage converted takes a post-training qconfig, not a _qat one");
        QFX_RETURN_IF_ERROR(quant::Convert(*gm, report));
      } else {
        notes = Notes(*gm, report, !f.calib.empty());
      }
    }
  } else if (f.stage != "traced") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--stage '", f.stage, "' must be traced, fused, prepared or converted (exported or annotated: the PT2E flow)"));
  }
  QFX_RETURN_IF_ERROR(fx::PropagateShapes(*gm, {shape}));
  QFX_ASSIGN_OR_RETURN(std::string text,
                       Render(gm->graph(), f.format, ModelName(f.model), notes.empty() ? nullptr : &notes));
  if (f.format == "svg" || f.format == "png") {
    if (f.out.empty()) return absl::InvalidArgumentError(absl::StrCat("--format ", f.format, " needs --out FILE"));
    return RenderDot(text, f.format, f.out);
  }
  if (f.out.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return absl::OkStatus();
  }
  return io::WriteFileAtomic(f.out, text);
}

}  // namespace cli
}  // namespace qfx
