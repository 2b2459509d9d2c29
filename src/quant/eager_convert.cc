// qfx quant: ConvertEager and QuantizeDynamicEager, PyTorch's convert / quantize_dynamic as module swaps
// on the tree (see include/qfx/quant/eager.h).
#include <set>

#include "absl/strings/str_cat.h"
#include "qfx/fx/tracer.h"
#include "qfx/quant/fused_modules.h"
#include "src/quant/eager_internal.h"
#include "src/quant/layers_internal.h"

namespace qfx {
namespace quant {
namespace {

using ModulePtr = std::shared_ptr<nn::Module>;

// Whether an observer (or a fake-quant's observer) never saw data: its qparams are the defaults.
bool SawNoData(nn::Module* obs) {
  Observer* o = dynamic_cast<Observer*>(obs);
  if (auto* fq = dynamic_cast<FakeQuantize*>(obs)) o = internal::TrainedQParams(fq) ? nullptr : &fq->observer();
  std::vector<float> lo, hi;
  return o != nullptr && o->GetMinMax(&lo, &hi) && (lo.empty() || (lo.size() == 1 && lo[0] > hi[0]));
}

// The qparams of `m`'s observer, or false when `m` has none; `empty` says whether it never saw data.
absl::StatusOr<bool> OutputQParams(nn::Module& m, QParams* qp, bool* empty) {
  nn::Module* obs = m.submodule(internal::kObserverName);
  if (obs == nullptr || !IsObserverModule(obs)) return false;
  QFX_ASSIGN_OR_RETURN(*qp, internal::ActivationQParams(obs));
  *empty = SawNoData(obs);
  return true;
}

QuantInfo Info(const QParams& qp) { return QuantInfo{qp.scale[0], static_cast<int32_t>(qp.zero_point[0])}; }

absl::Status NeedOutput(const EagerSwapContext& ctx) {
  if (ctx.output != nullptr) return absl::OkStatus();
  return absl::FailedPreconditionError("it has no observer: run PrepareEager (or PrepareQatEager) before ConvertEager");
}

absl::StatusOr<ModulePtr> SwapWeighted(nn::Module& m, const EagerSwapContext& ctx) {
  QFX_RETURN_IF_ERROR(NeedOutput(ctx));
  const std::string type = m.type_name();
  if ((type == "ConvBn2d" || type == "ConvBnReLU2d") && dynamic_cast<FusedSequential*>(&m) != nullptr) {
    return absl::FailedPreconditionError(
        "fused for QAT (FuseModulesQat) but not prepared for it: run PrepareQatEager, or fuse with FuseModules "
        "for post-training quantization");
  }
  QFX_ASSIGN_OR_RETURN(QuantizedLayer layer, internal::LayerOf(&m, ctx.qconfig.weight));
  return ModulePtr(std::make_shared<EagerQuantizedWeighted>(std::move(layer), Info(*ctx.output), ctx.path));
}

EagerMapping MakeDefault() {
  EagerMapping m;
  m.Set("QuantStub", [](nn::Module&, const EagerSwapContext& ctx) -> absl::StatusOr<ModulePtr> {
    QFX_RETURN_IF_ERROR(NeedOutput(ctx));
    return ModulePtr(std::make_shared<Quantize>(Info(*ctx.output)));
  });
  m.Set("DeQuantStub", [](nn::Module&, const EagerSwapContext&) -> absl::StatusOr<ModulePtr> {
    return ModulePtr(std::make_shared<DeQuantize>());
  });
  for (const char* type : {"Conv2d", "ConvReLU2d", "Linear", "LinearReLU", "ConvBn2d", "ConvBnReLU2d"})
    m.Set(type, SwapWeighted);
  m.Set("FloatFunctional", [](nn::Module&, const EagerSwapContext& ctx) -> absl::StatusOr<ModulePtr> {
    QFX_RETURN_IF_ERROR(NeedOutput(ctx));
    return ModulePtr(std::make_shared<QFunctional>(Info(*ctx.output)));
  });
  m.Set("Hardswish", [](nn::Module&, const EagerSwapContext& ctx) -> absl::StatusOr<ModulePtr> {
    QFX_RETURN_IF_ERROR(NeedOutput(ctx));
    return ModulePtr(std::make_shared<EagerQuantizedUnary>("QuantizedHardswish", OpId::kHardswish, Info(*ctx.output)));
  });
  return m;
}

// Float modules that take quantized tensors as they are (their int8 form keeps the input's qparams).
bool TakesQuantized(const nn::Module& m) {
  static const std::set<std::string>* types =
      new std::set<std::string>{"ReLU",    "ReLU6",   "Hardtanh", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
                                "Flatten", "Dropout", "Identity", "DeQuantize"};
  return types->count(m.type_name()) > 0;
}

// A float leaf module fails on a quantized input naming itself and the stub to add.
void GuardFloatInput(nn::Module& m, const std::string& path) {
  m.RegisterForwardPreHook([path](nn::Module& self, nn::ForwardArgs& args) {
    for (const auto& [name, v] : args.values) {
      const Tensor* t = std::get_if<Tensor>(&v);
      if (t == nullptr || t->is_proxy() || !t->is_quantized()) continue;
      ThrowInvalid("module '", path, "' (", self.type_name(), ") stays float but got the quantized tensor ",
                   t->ToString(),
                   ": put a DeQuantStub before it in forward (or give it a qconfig so that ConvertEager "
                   "makes it int8)");
    }
  });
}

struct Converter {
  const EagerMapping& mapping;
  EagerReport report;

  absl::Status Visit(nn::Module& m, const std::string& path) {
    const auto children = m.named_children();
    for (const auto& [name, child] : children) {
      if (name == internal::kObserverName) continue;
      const std::string p = path.empty() ? name : absl::StrCat(path, ".", name);
      if (!child->is_leaf() && !dynamic_cast<FusedSequential*>(child.get())) QFX_RETURN_IF_ERROR(Visit(*child, p));
      absl::Status s = Swap(m, name, child, p);
      if (!s.ok())
        return absl::Status(s.code(),
                            absl::StrCat("ConvertEager: module '", p, "' (", child->type_name(), "): ", s.message()));
    }
    return absl::OkStatus();
  }

  absl::Status Swap(nn::Module& parent, const std::string& name, const ModulePtr& child, const std::string& path) {
    const QConfig* q = internal::ActiveQConfig(*child);
    const EagerSwapFn* fn = mapping.Find(child->type_name());
    if (q == nullptr || fn == nullptr) return absl::OkStatus();
    QParams qp;
    bool empty = false;
    QFX_ASSIGN_OR_RETURN(bool observed, OutputQParams(*child, &qp, &empty));
    if (empty) report.warnings.push_back(absl::StrCat("observer of '", path, "' saw no data: scale 1, zero point 0"));
    EagerSwapContext ctx{path, *q, observed ? &qp : nullptr};
    QFX_ASSIGN_OR_RETURN(ModulePtr swapped, (*fn)(*child, ctx));
    if (!swapped || swapped == child) return absl::OkStatus();
    const int64_t observer_hook = internal::StateOf(*child) ? internal::StateOf(*child)->observer_hook : 0;
    for (const auto& [handle, hook] : child->hooks().pre) swapped->RegisterForwardPreHook(hook);
    for (const auto& [handle, hook] : child->hooks().post) {
      if (handle != observer_hook) swapped->RegisterForwardHook(hook);
    }
    swapped->train(child->is_training());
    QFX_RETURN_IF_ERROR(parent.SwapSubmodule(name, swapped));
    report.swapped[path] = swapped->type_name();
    return absl::OkStatus();
  }
};

// Removes every observer left (modules that were not swapped) and guards the float leaves.
absl::Status Finish(nn::Module& model) {
  for (const auto& [path, m] : model.named_modules()) {
    if (internal::EagerState* s = internal::StateOf(*m)) {
      if (s->observer_hook != 0) m->RemoveHook(s->observer_hook);
      s->observer_hook = 0;
    }
  }
  std::vector<nn::Module*> owners;  // modules with an observer child
  for (const auto& [path, m] : model.named_modules()) {
    if (!IsObserverModule(m) && IsObserverModule(m->submodule(internal::kObserverName))) owners.push_back(m);
  }
  for (nn::Module* owner : owners) {
    // A FloatFunctional keeps an Identity there, as PyTorch's QFunctional does.
    std::shared_ptr<nn::Module> identity;
    if (dynamic_cast<nn::FloatFunctional*>(owner) != nullptr) identity = std::make_shared<nn::Identity>();
    QFX_RETURN_IF_ERROR(owner->SetSubmodule(internal::kObserverName, identity));
  }
  for (const auto& [path, m] : model.named_modules()) {
    if (m->is_leaf() && !TakesQuantized(*m) && dynamic_cast<EagerQuantizedWeighted*>(m) == nullptr &&
        !IsObserverModule(m) && !path.empty())
      GuardFloatInput(*m, path);
  }
  return absl::OkStatus();
}

}  // namespace

EagerMapping& EagerMapping::Set(const std::string& type, EagerSwapFn fn) {
  swaps_[type] = std::move(fn);
  return *this;
}

const EagerSwapFn* EagerMapping::Find(const std::string& type) const {
  auto it = swaps_.find(type);
  return it == swaps_.end() ? nullptr : &it->second;
}

const EagerMapping& DefaultEagerMapping() {
  static const EagerMapping* m = new EagerMapping(MakeDefault());
  return *m;
}

absl::StatusOr<EagerReport> ConvertEager(nn::Module& model, const EagerMapping& mapping) {
  Converter c{mapping, {}};
  QFX_RETURN_IF_ERROR(c.Visit(model, ""));
  QFX_RETURN_IF_ERROR(Finish(model));
  model.eval();
  return std::move(c.report);
}

absl::StatusOr<std::shared_ptr<fx::GraphModule>> TraceConverted(std::shared_ptr<nn::Module> model,
                                                                const Tensor& example) {
  QFX_RETURN_IF_ERROR(nn::RunModule(*model, example).status());
  absl::StatusOr<std::shared_ptr<fx::GraphModule>> traced = fx::SymbolicTrace(model);
  if (!traced.ok()) {
    return absl::Status(traced.status().code(),
                        absl::StrCat("TraceConverted: the converted model does not trace (", traced.status().message(),
                                     "); it runs in eager mode but cannot be saved as .qfx"));
  }
  std::shared_ptr<fx::GraphModule> gm = *std::move(traced);
  for (const fx::Node* n : gm->graph()) {
    if (n->op() != fx::Opcode::kCallModule) continue;
    auto* eager = dynamic_cast<EagerQuantizedWeighted*>(gm->submodule(n->target().path));
    if (eager == nullptr) continue;
    std::shared_ptr<QuantizedWeighted> built = eager->built();
    if (!built) {
      return absl::FailedPreconditionError(absl::StrCat("TraceConverted: module '", n->target().path,
                                                        "' did not run on the example input, so its input qparams "
                                                        "are unknown"));
    }
    QFX_RETURN_IF_ERROR(gm->ReplaceSubmodule(n->target().path, built));
  }
  QFX_RETURN_IF_ERROR(gm->Lint());
  return gm;
}

absl::StatusOr<EagerReport> QuantizeDynamicEager(nn::Module& model, const std::set<std::string>& types,
                                                 const QConfig* qconfig) {
  QConfig q;
  if (qconfig != nullptr) {
    q = *qconfig;
  } else {
    QFX_ASSIGN_OR_RETURN(q, PresetQConfig("dynamic"));
  }
  EagerReport report;
  std::vector<std::pair<std::string, nn::Linear*>> linears;
  for (const auto& [path, m] : model.named_modules()) {
    if (path.empty() || !types.count(m->type_name())) continue;
    auto* linear = dynamic_cast<nn::Linear*>(m);
    if (linear == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("QuantizeDynamicEager: module '", path, "' (", m->type_name(),
                                                     ") has no dynamic int8 form (only Linear has)"));
    }
    linears.emplace_back(path, linear);
  }
  for (const auto& [path, linear] : linears) {
    absl::StatusOr<std::shared_ptr<DynamicQuantizedLinear>> d =
        internal::DynamicLinear(linear->weight, linear->bias, q);
    if (!d.ok()) {
      return absl::Status(d.status().code(),
                          absl::StrCat("QuantizeDynamicEager: module '", path, "': ", d.status().message()));
    }
    QFX_RETURN_IF_ERROR(model.SwapSubmodule(path, *d));
    report.swapped[path] = (*d)->type_name();
  }
  if (linears.empty()) report.warnings.push_back("no module of the given types: nothing was quantized");
  return report;
}

}  // namespace quant
}  // namespace qfx
