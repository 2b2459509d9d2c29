// qfx quant: QConfigMapping resolution and PyTorch's default mappings (see qconfig_mapping.h).
#include "qfx/quant/qconfig_mapping.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "qfx/nn/ops.h"
#include "qfx/quant/fused_modules.h"
#include "qfx/quant/qat_modules.h"
#include "src/quant/regex_internal.h"

namespace qfx {
namespace quant {

std::string QConfigMapping::Rule::Describe() const {
  switch (kind) {
    case Kind::kObjectType:
      return absl::StrCat("object_type '", key, "'");
    case Kind::kModuleNameRegex:
      return absl::StrCat("module_name_regex '", key, "'");
    case Kind::kModuleName:
      return absl::StrCat("module_name '", key, "'");
    case Kind::kModuleNameObjectTypeOrder:
      return absl::StrCat("module_name_object_type_order ('", key, "', '", type, "', ", index, ")");
  }
  return "rule";
}

void QConfigMapping::AddRule(Rule r) { rules_.push_back(std::move(r)); }

QConfigMapping& QConfigMapping::SetGlobal(MaybeQConfig q) {
  global_ = std::move(q);
  return *this;
}

QConfigMapping& QConfigMapping::SetObjectType(const std::string& type, MaybeQConfig q) {
  AddRule({Rule::Kind::kObjectType, type, "", 0, std::move(q)});
  return *this;
}

absl::Status QConfigMapping::SetModuleNameRegex(const std::string& regex, MaybeQConfig q) {
  QFX_RETURN_IF_ERROR(internal::ModuleRegex::Compile(regex, "module_name_regex").status());
  AddRule({Rule::Kind::kModuleNameRegex, regex, "", 0, std::move(q)});
  return absl::OkStatus();
}

QConfigMapping& QConfigMapping::SetModuleName(const std::string& name, MaybeQConfig q) {
  AddRule({Rule::Kind::kModuleName, name, "", 0, std::move(q)});
  return *this;
}

QConfigMapping& QConfigMapping::SetModuleNameObjectTypeOrder(const std::string& module, const std::string& type,
                                                             int64_t index, MaybeQConfig q) {
  AddRule({Rule::Kind::kModuleNameObjectTypeOrder, module, type, index, std::move(q)});
  return *this;
}

// PyTorch's _generate_node_name_to_qconfig over one graph, recording which rules matched.
class Assigner {
 public:
  explicit Assigner(const QConfigMapping& m) : m_(m), used_(m.rules_.size(), false) {
    for (const auto& r : m.rules_) {
      if (r.kind != QConfigMapping::Rule::Kind::kModuleNameRegex) continue;
      auto re = internal::ModuleRegex::Compile(r.key, "module_name_regex");  // checked by SetModuleNameRegex
      regexes_.push_back(re.ok() ? *re : nullptr);
    }
  }

  MaybeQConfig Node(fx::GraphModule& gm, const fx::Node& n) {
    const std::string& scope_path = n.meta.scope.path;
    switch (n.op()) {
      case fx::Opcode::kGetAttr: {
        const std::string parent = Parent(n.target().path);
        nn::Module* owner = gm.submodule(parent);
        return ForModule(owner && !parent.empty() ? owner->type_name() : "", parent, m_.global_);
      }
      case fx::Opcode::kCallFunction: {
        const std::string op = n.target_string();
        MaybeQConfig q = ObjectType(op, m_.global_);
        q = ForModule(n.meta.scope.type, scope_path, q);
        return Order(scope_path, op, q);
      }
      case fx::Opcode::kCallMethod: {
        MaybeQConfig q = ForModule(n.target_string(), scope_path, m_.global_);
        return ForModule(n.meta.scope.type, scope_path, q);
      }
      case fx::Opcode::kCallModule: {
        nn::Module* mod = gm.submodule(n.target().path);
        const std::string type = mod ? mod->type_name() : "";
        MaybeQConfig q = Name(n.target().path, Regex(n.target().path, FusedOrObjectType(mod, type, n.target().path)));
        return Order(Parent(n.target().path), type, q);
      }
      default:
        return std::nullopt;
    }
  }

  // Problems met while assigning (fused modules whose parts' object_type rules disagree).
  const std::vector<std::string>& Notes() const { return notes_; }

  std::vector<std::string> Unused() const {
    std::vector<std::string> out;
    for (size_t i = m_.preset_rules_; i < m_.rules_.size(); ++i) {
      if (!used_[i]) out.push_back(absl::StrCat(m_.rules_[i].Describe(), " matched no node"));
    }
    return out;
  }

 private:
  using Kind = QConfigMapping::Rule::Kind;

  static std::string Parent(const std::string& path) {
    const size_t dot = path.rfind('.');
    return dot == std::string::npos ? "" : path.substr(0, dot);
  }

  // The last rule of `kind` satisfying `match`, marked used; or -1.
  template <typename Match>
  int Find(Kind kind, Match match) {
    for (int i = static_cast<int>(m_.rules_.size()) - 1; i >= 0; --i) {
      if (m_.rules_[i].kind == kind && match(m_.rules_[i])) {
        used_[i] = true;
        return i;
      }
    }
    return -1;
  }

  // The module types a fused module was made of (PyTorch's _FusedModule parts), or empty.
  static std::vector<std::string> FusedParts(nn::Module* m) {
    std::vector<std::string> parts;
    if (auto* f = dynamic_cast<FusedSequential*>(m)) {
      for (const auto& [name, child] : f->named_children()) parts.push_back(child->type_name());
    } else if (auto* c = dynamic_cast<QatConv2d*>(m)) {
      if (c->bn || c->relu) parts.push_back("Conv2d");
      if (c->bn) parts.push_back(c->bn->type_name());
      if (c->relu && !parts.empty()) parts.push_back("ReLU");
    } else if (auto* l = dynamic_cast<QatLinear*>(m)) {
      if (l->relu) parts = {"Linear", "ReLU"};
    }
    return parts;
  }

  // The object_type rule of a module; for a fused module without a rule of its own, its parts' rules when
  // they agree (PyTorch's update_qconfig_for_fusion, which raises when they differ: here a note says so and
  // the fused module keeps `fallback`).
  MaybeQConfig FusedOrObjectType(nn::Module* m, const std::string& type, const std::string& path) {
    const int own = Find(Kind::kObjectType, [&](const auto& r) { return r.key == type; });
    if (own >= 0) return m_.rules_[own].qconfig;
    const std::vector<std::string> parts = FusedParts(m);
    if (parts.empty()) return m_.global_;
    std::vector<int> rules;
    for (const std::string& part : parts)
      rules.push_back(Find(Kind::kObjectType, [&](const auto& r) { return r.key == part; }));
    bool agree = true;
    for (int r : rules) {
      agree = agree && (r < 0) == (rules[0] < 0) && (r < 0 || m_.rules_[r].qconfig == m_.rules_[rules[0]].qconfig);
    }
    if (agree) return rules[0] >= 0 ? m_.rules_[rules[0]].qconfig : m_.global_;
    notes_.push_back(absl::StrCat("fused module '", path, "' (", type, " of ", absl::StrJoin(parts, ", "),
                                  "): the object_type rules of its parts differ; give them the same qconfig (PyTorch "
                                  "requires it) — it keeps the global qconfig"));
    return m_.global_;
  }

  MaybeQConfig ObjectType(const std::string& type, const MaybeQConfig& fallback) {
    if (type.empty()) return fallback;
    const int i = Find(Kind::kObjectType, [&](const auto& r) { return r.key == type; });
    return i >= 0 ? m_.rules_[i].qconfig : fallback;
  }

  MaybeQConfig Regex(const std::string& name, const MaybeQConfig& fallback) {
    size_t k = 0;
    for (size_t i = 0; i < m_.rules_.size(); ++i) {  // in order: the first match wins
      if (m_.rules_[i].kind != Kind::kModuleNameRegex) continue;
      const auto& re = regexes_[k++];
      if (re != nullptr && re->MatchesPrefix(name)) {
        used_[i] = true;
        return m_.rules_[i].qconfig;
      }
    }
    return fallback;
  }

  MaybeQConfig Name(const std::string& name, const MaybeQConfig& fallback) {
    for (std::string n = name; !n.empty(); n = Parent(n)) {
      const int i = Find(Kind::kModuleName, [&](const auto& r) { return r.key == n; });
      if (i >= 0) return m_.rules_[i].qconfig;
    }
    return fallback;
  }

  MaybeQConfig ForModule(const std::string& type, const std::string& name, const MaybeQConfig& fallback) {
    return Name(name, Regex(name, ObjectType(type, fallback)));
  }

  MaybeQConfig Order(const std::string& module, const std::string& type, const MaybeQConfig& fallback) {
    const int64_t index = counts_[module][type]++;
    const int i = Find(Kind::kModuleNameObjectTypeOrder,
                       [&](const auto& r) { return r.key == module && r.type == type && r.index == index; });
    return i >= 0 ? m_.rules_[i].qconfig : fallback;
  }

  const QConfigMapping& m_;
  std::vector<bool> used_;
  std::vector<std::shared_ptr<const internal::ModuleRegex>> regexes_;
  std::map<std::string, std::map<std::string, int64_t>> counts_;
  std::vector<std::string> notes_;
};

std::unordered_map<const fx::Node*, MaybeQConfig> QConfigMapping::Assign(fx::GraphModule& module,
                                                                         std::vector<std::string>* unused) const {
  Assigner a(*this);
  std::unordered_map<const fx::Node*, MaybeQConfig> out;
  for (fx::Node* n : module.graph()) out[n] = a.Node(module, *n);
  if (unused) {
    *unused = a.Unused();
    unused->insert(unused->end(), a.Notes().begin(), a.Notes().end());
  }
  return out;
}

// ----- PyTorch's default mappings -----

namespace {

ObserverSpec Spec(ObserverKind kind, QDType dtype, QScheme qscheme, bool reduce_range = false) {
  ObserverSpec s;
  s.kind = kind;
  s.dtype = dtype;
  s.qscheme = qscheme;
  s.reduce_range = reduce_range;
  return s;
}

ObserverSpec WithRange(ObserverSpec s, int64_t lo, int64_t hi) {
  s.quant_min = lo;
  s.quant_max = hi;
  return s;
}

ObserverSpec FakeQuant(ObserverSpec s) {
  s.fake_quant = true;
  return s;
}

ObserverSpec Fixed(float scale, int64_t zero_point, bool qat) {
  ObserverSpec s = WithRange(Spec(ObserverKind::kFixedQParams, QDType::kQUInt8, QScheme::kPerTensorAffine), 0, 255);
  s.fixed_scale = scale;
  s.fixed_zero_point = zero_point;
  s.fake_quant = qat;
  return s;
}

struct PresetParts {
  bool qat, reduce_range, per_channel_weight;
};

absl::StatusOr<PresetParts> Parts(const std::string& name) {
  std::string base = name;
  const bool qat = base.size() > 4 && base.compare(base.size() - 4, 4, "_qat") == 0;
  if (qat) base = base.substr(0, base.size() - 4);
  if (base == "x86" || base == "fbgemm") return PresetParts{qat, true, true};
  if (base == "onednn") return PresetParts{qat, false, true};
  if (base == "qnnpack") return PresetParts{qat, false, false};
  return absl::NotFoundError(
      absl::StrCat("unknown qconfig preset '", name,
                   "'; presets: x86 fbgemm qnnpack onednn and their _qat forms, or a .toml rule file"));
}

QConfig GlobalQConfig(const PresetParts& p) {
  const ObserverKind weight_kind_ptq = p.per_channel_weight ? ObserverKind::kPerChannelMinMax : ObserverKind::kMinMax;
  const ObserverKind weight_kind_qat =
      p.per_channel_weight ? ObserverKind::kMovingAveragePerChannelMinMax : ObserverKind::kMovingAverageMinMax;
  const QScheme weight_scheme = p.per_channel_weight ? QScheme::kPerChannelSymmetric : QScheme::kPerTensorSymmetric;
  QConfig q;
  if (!p.qat) {
    q.activation = Spec(ObserverKind::kHistogram, QDType::kQUInt8, QScheme::kPerTensorAffine, p.reduce_range);
    q.weight = Spec(weight_kind_ptq, QDType::kQInt8, weight_scheme);
  } else {
    // FusedMovingAvgObsFakeQuantize(MovingAverageMinMaxObserver, quant_min=0, quant_max=255, reduce_range)
    q.activation = FakeQuant(WithRange(
        Spec(ObserverKind::kMovingAverageMinMax, QDType::kQUInt8, QScheme::kPerTensorAffine, p.reduce_range), 0, 255));
    q.weight = FakeQuant(WithRange(Spec(weight_kind_qat, QDType::kQInt8, weight_scheme), -128, 127));
  }
  return q;
}

}  // namespace

namespace {

// Each preset and the backend whose patterns and constraints it targets (one table, read by both lookups).
struct PresetEntry {
  const char* name;
  const char* backend;
};
constexpr PresetEntry kPresets[] = {
    {"x86", "x86"},     {"fbgemm", "fbgemm"},     {"qnnpack", "qnnpack"},     {"onednn", "onednn"},
    {"x86_qat", "x86"}, {"fbgemm_qat", "fbgemm"}, {"qnnpack_qat", "qnnpack"}, {"onednn_qat", "onednn"},
    {"dynamic", "x86"}};

}  // namespace

const std::vector<std::string>& PresetNames() {
  static const auto* names = [] {
    auto* v = new std::vector<std::string>;
    for (const PresetEntry& p : kPresets) v->push_back(p.name);
    return v;
  }();
  return *names;
}

std::string PresetBackend(const std::string& preset) {
  for (const PresetEntry& p : kPresets) {
    if (preset == p.name) return p.backend;
  }
  return "";
}

// PyTorch's per_channel_dynamic_qconfig: PlaceholderObserver(quint8) activations (quantized at run time),
// PerChannelMinMaxObserver(qint8, per_channel_symmetric) weights.
static QConfig DynamicQConfig() {
  return QConfig{Spec(ObserverKind::kPlaceholder, QDType::kQUInt8, QScheme::kPerTensorAffine),
                 Spec(ObserverKind::kPerChannelMinMax, QDType::kQInt8, QScheme::kPerChannelSymmetric)};
}

absl::StatusOr<QConfig> PresetQConfig(const std::string& name) {
  if (name == "dynamic") return DynamicQConfig();
  QFX_ASSIGN_OR_RETURN(PresetParts p, Parts(name));
  return GlobalQConfig(p);
}

absl::StatusOr<QConfigMapping> PresetMapping(const std::string& name) {
  if (name == "dynamic") {  // Linear layers only (modules and the linear function); everything else float
    QConfigMapping m;
    m.SetObjectType("Linear", DynamicQConfig());
    m.SetObjectType("linear", DynamicQConfig());
    m.MarkPresetEnd();
    return m;
  }
  QFX_ASSIGN_OR_RETURN(PresetParts p, Parts(name));
  const QConfig global = GlobalQConfig(p);
  QConfigMapping m;
  m.SetGlobal(global);
  // Ops with fixed output ranges: _FIXED_QPARAMS_OP_TO_OBSERVER.
  // Their weight entry is PyTorch's default_weight_observer / default_weight_fake_quant (never used).
  ObserverSpec weight = Spec(ObserverKind::kMinMax, QDType::kQInt8, QScheme::kPerTensorSymmetric);
  if (p.qat)
    weight = FakeQuant(
        WithRange(Spec(ObserverKind::kMovingAverageMinMax, QDType::kQInt8, QScheme::kPerTensorSymmetric), -128, 127));
  const QConfig sigmoid_like{Fixed(1.f / 256.f, 0, p.qat), weight};
  const QConfig tanh_like{Fixed(2.f / 256.f, 128, p.qat), weight};
  // From the registry's fixed ranges: [0, 1] ops, then [-1, 1] ops, each module kind before its function.
  for (const nn::FixedRange range : {nn::FixedRange::kUnit, nn::FixedRange::kSymmetric}) {
    for (const nn::OpSchema& op : nn::AllOps()) {
      if (op.fixed_range != range) continue;
      const QConfig& q = range == nn::FixedRange::kUnit ? sigmoid_like : tanh_like;
      for (const nn::ModuleKind& kind : op.modules) m.SetObjectType(kind.type, q);
      if (op.id != OpId::kSoftmax) m.SetObjectType(op.name, q);  // PyTorch lists only nn.Softmax
    }
  }
  // reshape shares its input's observer.
  m.SetObjectType("reshape", QConfig{Spec(ObserverKind::kReuseInput, QDType::kQUInt8, QScheme::kPerTensorAffine),
                                     Spec(ObserverKind::kNoop, QDType::kQUInt8, QScheme::kPerTensorAffine)});
  m.MarkPresetEnd();
  return m;
}

}  // namespace quant
}  // namespace qfx
