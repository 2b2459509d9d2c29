// qfx quant: PrepareEager and PrepareQatEager, PyTorch's prepare / prepare_qat on the module tree (see
// include/qfx/quant/eager.h).
#include <set>

#include "absl/strings/str_cat.h"
#include "qfx/quant/fused_modules.h"
#include "qfx/quant/qat_modules.h"
#include "src/quant/eager_internal.h"

namespace qfx {
namespace quant {
namespace {

using ModulePtr = std::shared_ptr<nn::Module>;

// The leaf types that get an output observer (PyTorch's qconfig propagation list: the keys of its static,
// QAT and dynamic module mappings, for the module types qfx has). DeQuantStub is on it but never observed;
// Dropout is on it but _add_observer_ skips it.
bool Observable(const nn::Module& m) {
  static const std::set<std::string>* types = new std::set<std::string>{
      "QuantStub", "Conv2d",     "Linear",     "BatchNorm2d", "ReLU6",    "Hardswish",
      "LeakyReLU", "ConvReLU2d", "LinearReLU", "BNReLU2d",    "ConvBn2d", "ConvBnReLU2d",
  };
  return types->count(m.type_name()) > 0;
}

bool IsFloatFunctional(const nn::Module& m) { return dynamic_cast<const nn::FloatFunctional*>(&m) != nullptr; }

absl::StatusOr<ModulePtr> ActivationObserver(const QConfig& q, const std::string& path) {
  absl::StatusOr<ModulePtr> obs = MakeObserverOrFakeQuantize(q.activation);
  if (!obs.ok()) {
    return absl::Status(obs.status().code(),
                        absl::StrCat("module '", path, "': activation spec: ", obs.status().message()));
  }
  return obs;
}

// An observer child on `m`, run on its output by a forward hook (PyTorch's insert_activation_post_process).
absl::Status Observe(nn::Module& m, const std::string& path, EagerReport& report) {
  const QConfig* q = internal::ActiveQConfig(m);
  if (q == nullptr || m.type_name() == "DeQuantStub") return absl::OkStatus();
  if (m.submodule(internal::kObserverName) != nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("module '", path, "' already has an activation_post_process: prepare it only once"));
  }
  QFX_ASSIGN_OR_RETURN(ModulePtr obs, ActivationObserver(*q, path));
  obs->train(m.is_training());
  QFX_RETURN_IF_ERROR(m.SetSubmodule(internal::kObserverName, obs));
  internal::MutableStateOf(m).observer_hook =
      m.RegisterForwardHook([](nn::Module& self, const nn::ForwardArgs&, Tensor& out) {
        out = (*self.submodule(internal::kObserverName))(out);
      });
  report.observed.push_back(path);
  return absl::OkStatus();
}

// A FloatFunctional's observer replaces its Identity activation_post_process.
absl::Status ObserveFunctional(nn::Module& m, const std::string& path, EagerReport& report) {
  const QConfig* q = internal::ActiveQConfig(m);
  if (q == nullptr) return absl::OkStatus();
  QFX_ASSIGN_OR_RETURN(ModulePtr obs, ActivationObserver(*q, path));
  obs->train(m.is_training());
  QFX_RETURN_IF_ERROR(m.SetSubmodule(internal::kObserverName, obs));
  report.observed.push_back(path);
  return absl::OkStatus();
}

// PyTorch's _add_observer_: FloatFunctionals, fused and QAT modules, and leaves on the propagation list.
absl::Status AddObservers(nn::Module& m, const std::string& path, EagerReport& report) {
  const auto children = m.named_children();  // a copy: observers are added below
  for (const auto& [name, child] : children) {
    if (name == internal::kObserverName) continue;
    const std::string p = path.empty() ? name : absl::StrCat(path, ".", name);
    if (IsFloatFunctional(*child)) {
      QFX_RETURN_IF_ERROR(ObserveFunctional(*child, p, report));
    } else if (child->is_leaf()) {
      if (Observable(*child)) QFX_RETURN_IF_ERROR(Observe(*child, p, report));
    } else {
      QFX_RETURN_IF_ERROR(AddObservers(*child, p, report));
    }
  }
  return absl::OkStatus();
}

bool AnyQConfig(nn::Module& model) {
  for (const auto& [path, m] : model.named_modules()) {
    if (internal::ActiveQConfig(*m) != nullptr) return true;
  }
  return false;
}

absl::Status Propagate(nn::Module& model, const QConfigMapping* mapping, EagerReport& report) {
  if (mapping != nullptr) {
    QFX_ASSIGN_OR_RETURN(std::vector<std::string> warnings, PropagateQConfig(model, *mapping));
    report.warnings = std::move(warnings);
  } else {
    internal::InheritQConfig(model);
  }
  if (!AnyQConfig(model)) {
    return absl::InvalidArgumentError(
        "no module has a qconfig: pass a mapping (e.g. PresetMapping(\"x86\")) or SetQConfig on the modules to "
        "quantize");
  }
  return absl::OkStatus();
}

absl::Status Prepare(nn::Module& model, const QConfigMapping* mapping, EagerReport& report) {
  QFX_RETURN_IF_ERROR(Propagate(model, mapping, report));
  if (model.is_leaf()) {
    if (Observable(model)) QFX_RETURN_IF_ERROR(Observe(model, "", report));
    return absl::OkStatus();
  }
  return AddObservers(model, "", report);
}

// ----- QAT swaps (PyTorch's convert with the QAT module mapping) -----

absl::StatusOr<ModulePtr> WeightFakeQuant(const QConfig& q, const std::string& path) {
  if (!q.weight.fake_quant) {
    return absl::InvalidArgumentError(absl::StrCat("module '", path, "': weight spec ", q.weight.ToString(),
                                                   " must be a fake-quant spec for QAT (use a _qat preset)"));
  }
  return MakeObserverOrFakeQuantize(q.weight);
}

// The QAT module for `m`, or null when its type has none.
absl::StatusOr<ModulePtr> QatModule(nn::Module& m, const QConfig& q, const std::string& path) {
  const std::string type = m.type_name();
  auto* fused = dynamic_cast<FusedSequential*>(&m);
  nn::Module* first = fused ? &(*fused)[0] : &m;
  auto* conv = dynamic_cast<nn::Conv2d*>(first);
  auto* linear = dynamic_cast<nn::Linear*>(first);
  if (type != "Conv2d" && type != "Linear" && type != "ConvReLU2d" && type != "LinearReLU" && type != "ConvBn2d" &&
      type != "ConvBnReLU2d")
    return ModulePtr();
  if (conv == nullptr && linear == nullptr) return ModulePtr();
  QFX_ASSIGN_OR_RETURN(ModulePtr wfq, WeightFakeQuant(q, path));
  const bool relu = type == "ConvReLU2d" || type == "LinearReLU" || type == "ConvBnReLU2d";
  ModulePtr qat;
  if (conv) {
    std::shared_ptr<nn::BatchNormBase> bn;
    if (type == "ConvBn2d" || type == "ConvBnReLU2d")
      bn = std::dynamic_pointer_cast<nn::BatchNormBase>(fused->named_children()[1].second);
    qat = std::make_shared<QatConv2d>(*conv, bn, relu, wfq);
  } else {
    qat = std::make_shared<QatLinear>(*linear, relu, wfq);
  }
  qat->train(m.is_training());
  return qat;
}

absl::Status SwapForQat(nn::Module& m, const std::string& path, EagerReport& report) {
  const auto children = m.named_children();
  for (const auto& [name, child] : children) {
    const std::string p = path.empty() ? name : absl::StrCat(path, ".", name);
    const QConfig* q = internal::ActiveQConfig(*child);
    if (q != nullptr) {
      QFX_ASSIGN_OR_RETURN(ModulePtr qat, QatModule(*child, *q, p));
      if (qat) {
        internal::MutableStateOf(*qat) = *internal::StateOf(*child);
        QFX_RETURN_IF_ERROR(m.SwapSubmodule(name, qat));
        report.swapped[p] = qat->type_name();
        continue;
      }
    }
    if (!child->is_leaf()) QFX_RETURN_IF_ERROR(SwapForQat(*child, p, report));
  }
  return absl::OkStatus();
}

template <typename Fn>
void ForEachModule(nn::Module& model, Fn fn) {
  for (const auto& [path, m] : model.named_modules()) fn(m);
}

}  // namespace

absl::StatusOr<EagerReport> PrepareEager(nn::Module& model, const QConfigMapping* mapping) {
  EagerReport report;
  QFX_RETURN_IF_ERROR(Prepare(model, mapping, report));
  return report;
}

absl::StatusOr<EagerReport> PrepareQatEager(nn::Module& model, const QConfigMapping* mapping) {
  if (!model.is_training())
    return absl::FailedPreconditionError("PrepareQatEager prepares for training: call train() on the model first");
  EagerReport report;
  QFX_RETURN_IF_ERROR(Propagate(model, mapping, report));
  QFX_RETURN_IF_ERROR(SwapForQat(model, "", report));
  std::vector<std::string> warnings = std::move(report.warnings);
  QFX_RETURN_IF_ERROR(Prepare(model, nullptr, report));
  report.warnings = std::move(warnings);
  return report;
}

void FreezeBnStatsIn(nn::Module& model, bool freeze) {
  ForEachModule(model, [&](nn::Module* m) {
    if (auto* conv = dynamic_cast<QatConv2d*>(m)) freeze ? conv->FreezeBnStats() : conv->UpdateBnStats();
  });
}

void EnableObserversIn(nn::Module& model, bool on) {
  ForEachModule(model, [&](nn::Module* m) {
    if (auto* fq = dynamic_cast<FakeQuantize*>(m)) fq->enable_observer(on);
  });
}

void EnableFakeQuantIn(nn::Module& model, bool on) {
  ForEachModule(model, [&](nn::Module* m) {
    if (auto* fq = dynamic_cast<FakeQuantize*>(m)) fq->enable_fake_quant(on);
  });
}

}  // namespace quant
}  // namespace qfx
