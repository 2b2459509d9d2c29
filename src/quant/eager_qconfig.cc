// qfx quant: qconfigs on modules and their propagation for the eager flow (see include/qfx/quant/eager.h).
#include <set>

#include "absl/strings/str_cat.h"
#include "src/quant/eager_internal.h"
#include "src/quant/regex_internal.h"

namespace qfx {
namespace quant {
namespace internal {

EagerState* StateOf(const nn::Module& module) { return dynamic_cast<EagerState*>(module.extension().get()); }

EagerState& MutableStateOf(nn::Module& module) {
  if (EagerState* s = StateOf(module)) return *s;
  auto state = std::make_shared<EagerState>();
  EagerState& ref = *state;
  module.set_extension(std::move(state));
  return ref;
}

const QConfig* ActiveQConfig(const nn::Module& module) {
  const EagerState* s = StateOf(module);
  return s != nullptr && s->has_qconfig && s->qconfig.has_value() ? &*s->qconfig : nullptr;
}

}  // namespace internal

void SetQConfig(nn::Module& module, MaybeQConfig qconfig) {
  internal::EagerState& s = internal::MutableStateOf(module);
  s.has_qconfig = true;
  s.user_set = true;
  s.qconfig = std::move(qconfig);
}

const MaybeQConfig* GetQConfig(const nn::Module& module) {
  const internal::EagerState* s = internal::StateOf(module);
  return s != nullptr && s->has_qconfig ? &s->qconfig : nullptr;
}

namespace {

using Rule = QConfigMapping::Rule;

struct Propagator {
  const QConfigMapping& mapping;
  std::vector<std::shared_ptr<const internal::ModuleRegex>> regexes;  // one per rule (unused for other kinds)
  std::set<size_t> matched;
  bool keep_existing = false;  // modules that have a qconfig keep it (prepare without a mapping)

  // The qconfig `m` at `path` takes (PyTorch's _propagate_qconfig_helper), starting from `inherited`.
  MaybeQConfig Choose(const nn::Module& m, const std::string& path, const MaybeQConfig& inherited) {
    MaybeQConfig q = path.empty() ? mapping.global() : inherited;
    const std::vector<Rule>& rules = mapping.rules();
    for (Rule::Kind kind : {Rule::Kind::kObjectType, Rule::Kind::kModuleNameRegex, Rule::Kind::kModuleName}) {
      for (size_t i = 0; i < rules.size(); ++i) {
        const Rule& r = rules[i];
        if (r.kind != kind || !Matches(r, i, m, path)) continue;
        q = r.qconfig;
        matched.insert(i);
        if (kind == Rule::Kind::kModuleNameRegex) break;  // the first matching regex wins
      }
    }
    return q;
  }

  bool Matches(const Rule& r, size_t i, const nn::Module& m, const std::string& path) const {
    switch (r.kind) {
      case Rule::Kind::kObjectType:
        return r.key == m.type_name();
      case Rule::Kind::kModuleNameRegex:
        return !path.empty() && regexes[i]->MatchesWhole(path);
      case Rule::Kind::kModuleName:
        return r.key == path;
      case Rule::Kind::kModuleNameObjectTypeOrder:
        return false;
    }
    return false;
  }

  void Visit(nn::Module& m, const std::string& path, const MaybeQConfig& inherited) {
    internal::EagerState& s = internal::MutableStateOf(m);
    if (!s.user_set && !(keep_existing && s.has_qconfig)) s.qconfig = Choose(m, path, inherited);
    s.has_qconfig = true;
    const MaybeQConfig mine = s.qconfig;
    for (const auto& [name, child] : m.named_children()) {
      if (name == internal::kObserverName) continue;
      Visit(*child, path.empty() ? name : absl::StrCat(path, ".", name), mine);
    }
  }
};

}  // namespace

namespace internal {

void InheritQConfig(nn::Module& model) {
  const QConfigMapping none;
  Propagator p{none, {}, {}, true};
  p.Visit(model, "", std::nullopt);
}

}  // namespace internal

absl::StatusOr<std::vector<std::string>> PropagateQConfig(nn::Module& model, const QConfigMapping& mapping) {
  Propagator p{mapping, {}, {}, false};
  for (const Rule& r : mapping.rules()) {
    if (r.kind == Rule::Kind::kModuleNameObjectTypeOrder) {
      return absl::InvalidArgumentError(absl::StrCat("eager mode has no graph to count calls in: ", r.Describe(),
                                                     " needs the FX flow (use module_name rules instead)"));
    }
    std::shared_ptr<const internal::ModuleRegex> re;
    if (r.kind == Rule::Kind::kModuleNameRegex) {
      QFX_ASSIGN_OR_RETURN(re, internal::ModuleRegex::Compile(r.key, "module_name_regex"));
    }
    p.regexes.push_back(std::move(re));
  }
  p.Visit(model, "", std::nullopt);
  std::vector<std::string> warnings;
  for (size_t i = 0; i < mapping.rules().size(); ++i) {
    const Rule& r = mapping.rules()[i];
    if (r.kind != Rule::Kind::kObjectType && !p.matched.count(i))
      warnings.push_back(absl::StrCat(r.Describe(), " matched no module"));
  }
  return warnings;
}

}  // namespace quant
}  // namespace qfx
