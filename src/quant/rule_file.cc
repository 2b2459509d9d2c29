// qfx quant: TOML rule files (toml++), the text form of a QConfigMapping. See README "Rule files" and
// tools/qconfigs/. Unknown keys, wrong types, unknown names and bad regexes are errors naming the file,
// the line and the key; nothing is silently ignored.
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "qfx/quant/backend.h"
#include "qfx/quant/qconfig_mapping.h"
#include "toml++/toml.h"

namespace qfx {
namespace quant {
namespace {

class RuleReader {
 public:
  explicit RuleReader(std::string path) : path_(std::move(path)) {}

  absl::Status Error(const toml::node& at, const std::string& what) const {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ":", static_cast<int64_t>(at.source().begin.line), ": ", what));
  }

  absl::Status OnlyKeys(const toml::table& t, const std::set<std::string>& allowed, const std::string& where) const {
    for (const auto& [k, v] : t) {
      if (!allowed.count(std::string(k.str()))) {
        return Error(v, absl::StrCat("unknown key '", std::string(k.str()), "' in ", where,
                                     " (allowed: ", absl::StrJoin(allowed, ", "), ")"));
      }
    }
    return absl::OkStatus();
  }

  template <typename T>
  absl::StatusOr<T> Get(const toml::table& t, const std::string& key, const std::string& where,
                        const char* kind) const {
    const toml::node* n = t.get(key);
    if (n == nullptr) return Error(t, absl::StrCat("missing key '", key, "' in ", where));
    std::optional<T> v = n->value_exact<T>();
    if (!v) return Error(*n, absl::StrCat("'", key, "' in ", where, " must be ", kind));
    return *v;
  }

  absl::StatusOr<ObserverSpec> Spec(const toml::node& node, const std::string& where) const {
    const toml::table* t = node.as_table();
    if (t == nullptr) return Error(node, absl::StrCat(where, " must be a table like { observer = \"minmax\", ... }"));
    QFX_RETURN_IF_ERROR(
        OnlyKeys(*t,
                 {"observer", "dtype", "qscheme", "reduce_range", "quant_min", "quant_max", "ch_axis", "eps",
                  "averaging_constant", "bins", "upsample_rate", "scale", "zero_point", "fake_quant"},
                 where));
    ObserverSpec s;
    QFX_ASSIGN_OR_RETURN(std::string observer, Get<std::string>(*t, "observer", where, "a string"));
    if (!ParseObserverKind(observer, &s.kind)) {
      return Error(*t->get("observer"),
                   absl::StrCat("unknown observer '", observer, "' in ", where,
                                " (minmax, moving_average_minmax, per_channel_minmax, "
                                "moving_average_per_channel_minmax, histogram, placeholder, fixed_qparams)"));
    }
    if (s.kind == ObserverKind::kPerChannelMinMax || s.kind == ObserverKind::kMovingAveragePerChannelMinMax) {
      s.qscheme = QScheme::kPerChannelAffine;  // PyTorch's default for per-channel observers
    }
    QFX_RETURN_IF_ERROR(Optional(*t, where, &s));
    absl::Status valid = ValidateSpec(s);
    if (!valid.ok()) return Error(node, absl::StrCat(where, ": ", valid.message()));
    return s;
  }

 private:
  absl::Status Optional(const toml::table& t, const std::string& where, ObserverSpec* s) const {
    if (t.contains("dtype")) {
      QFX_ASSIGN_OR_RETURN(std::string v, Get<std::string>(t, "dtype", where, "a string"));
      if (!ParseQDType(v, &s->dtype))
        return Error(*t.get("dtype"), absl::StrCat("unknown dtype '", v, "' (quint8, qint8, qint32, float16)"));
    }
    if (t.contains("qscheme")) {
      QFX_ASSIGN_OR_RETURN(std::string v, Get<std::string>(t, "qscheme", where, "a string"));
      if (!ParseQScheme(v, &s->qscheme)) {
        return Error(*t.get("qscheme"), absl::StrCat("unknown qscheme '", v,
                                                     "' (per_tensor_affine, per_tensor_symmetric, "
                                                     "per_channel_affine, per_channel_symmetric)"));
      }
    }
    QFX_RETURN_IF_ERROR(GetIf<bool>(t, "reduce_range", where, "true or false", &s->reduce_range));
    QFX_RETURN_IF_ERROR(GetIf<bool>(t, "fake_quant", where, "true or false", &s->fake_quant));
    QFX_RETURN_IF_ERROR(GetIf<int64_t>(t, "quant_min", where, "an integer", &s->quant_min));
    QFX_RETURN_IF_ERROR(GetIf<int64_t>(t, "quant_max", where, "an integer", &s->quant_max));
    QFX_RETURN_IF_ERROR(GetIf<int64_t>(t, "ch_axis", where, "an integer", &s->ch_axis));
    QFX_RETURN_IF_ERROR(GetIf<int64_t>(t, "bins", where, "an integer", &s->bins));
    QFX_RETURN_IF_ERROR(GetIf<int64_t>(t, "upsample_rate", where, "an integer", &s->upsample_rate));
    QFX_RETURN_IF_ERROR(GetIf<int64_t>(t, "zero_point", where, "an integer", &s->fixed_zero_point));
    QFX_RETURN_IF_ERROR(GetIf<double>(t, "averaging_constant", where, "a float", &s->averaging_constant));
    if (t.contains("eps")) {
      QFX_ASSIGN_OR_RETURN(double eps, Get<double>(t, "eps", where, "a float"));
      s->eps = static_cast<float>(eps);
    }
    if (t.contains("scale")) {
      QFX_ASSIGN_OR_RETURN(double scale, Get<double>(t, "scale", where, "a float"));
      s->fixed_scale = static_cast<float>(scale);
    }
    return absl::OkStatus();
  }

  // Sets *out from `key` when present (an optional wraps the value).
  template <typename T, typename Out>
  absl::Status GetIf(const toml::table& t, const std::string& key, const std::string& where, const char* kind,
                     Out* out) const {
    if (!t.contains(key)) return absl::OkStatus();
    QFX_ASSIGN_OR_RETURN(T v, Get<T>(t, key, where, kind));
    *out = v;
    return absl::OkStatus();
  }

  std::string path_;
};

// Parses the whole document into a QuantConfig.
class RuleFileParser {
 public:
  RuleFileParser(const toml::table& root, std::string path) : root_(root), r_(path) { out_.source = std::move(path); }

  absl::StatusOr<QuantConfig> Run() {
    QFX_RETURN_IF_ERROR(r_.OnlyKeys(root_,
                                    {"version", "backend", "qconfig", "global", "object_type", "module_name_regex",
                                     "module_name", "module_name_object_type_order"},
                                    "the top level"));
    QFX_ASSIGN_OR_RETURN(int64_t version, r_.Get<int64_t>(root_, "version", "the top level", "an integer"));
    if (version != 1)
      return r_.Error(*root_.get("version"), absl::StrCat("version ", version, " is not supported (use version = 1)"));
    if (root_.contains("backend")) {
      QFX_ASSIGN_OR_RETURN(const std::string name, r_.Get<std::string>(root_, "backend", "the top level", "a string"));
      absl::StatusOr<const BackendConfig*> backend = GetBackendConfig(name);
      if (!backend.ok()) return r_.Error(*root_.get("backend"), std::string(backend.status().message()));
      out_.backend = *backend;
    }
    QFX_RETURN_IF_ERROR(NamedQConfigs());
    QFX_RETURN_IF_ERROR(Global());
    QFX_RETURN_IF_ERROR(Rules("object_type", {"type", "qconfig"}));
    QFX_RETURN_IF_ERROR(Rules("module_name_regex", {"regex", "qconfig"}));
    QFX_RETURN_IF_ERROR(Rules("module_name", {"name", "qconfig"}));
    QFX_RETURN_IF_ERROR(Rules("module_name_object_type_order", {"module", "type", "index", "qconfig"}));
    return std::move(out_);
  }

 private:
  absl::Status NamedQConfigs() {
    const toml::node* node = root_.get("qconfig");
    if (node == nullptr) return absl::OkStatus();
    const toml::table* t = node->as_table();
    if (t == nullptr) return r_.Error(*node, "[qconfig] must hold named tables like [qconfig.my_int8]");
    for (const auto& [k, v] : *t) {
      const std::string name(k.str()), where = absl::StrCat("[qconfig.", name, "]");
      if (name == "none" || IsPreset(name))
        return r_.Error(v, absl::StrCat(where, ": '", name, "' is reserved (a preset or none)"));
      const toml::table* q = v.as_table();
      if (q == nullptr) return r_.Error(v, absl::StrCat(where, " must be a table with activation and weight"));
      QFX_RETURN_IF_ERROR(r_.OnlyKeys(*q, {"activation", "weight"}, where));
      for (const char* part : {"activation", "weight"}) {
        if (!q->contains(part)) return r_.Error(v, absl::StrCat(where, " needs '", part, "'"));
      }
      QConfig qc;
      QFX_ASSIGN_OR_RETURN(qc.activation, r_.Spec(*q->get("activation"), where + ".activation"));
      QFX_ASSIGN_OR_RETURN(qc.weight, r_.Spec(*q->get("weight"), where + ".weight"));
      named_[name] = qc;
    }
    return absl::OkStatus();
  }

  static bool IsPreset(const std::string& name) {
    for (const std::string& p : PresetNames()) {
      if (p == name) return true;
    }
    return false;
  }

  absl::StatusOr<MaybeQConfig> Resolve(const toml::table& t, const std::string& where) {
    QFX_ASSIGN_OR_RETURN(std::string name, r_.Get<std::string>(t, "qconfig", where, "a string"));
    if (name == "none") return MaybeQConfig();
    auto it = named_.find(name);
    if (it != named_.end()) return MaybeQConfig(it->second);
    if (IsPreset(name)) return MaybeQConfig(*PresetQConfig(name));
    std::vector<std::string> known;
    for (const auto& [k, v] : named_) known.push_back(k);
    return r_.Error(*t.get("qconfig"), absl::StrCat("unknown qconfig '", name, "' in ", where, " (named: ",
                                                    known.empty() ? "none defined" : absl::StrJoin(known, ", "),
                                                    "; presets: ", absl::StrJoin(PresetNames(), ", "), "; or none)"));
  }

  absl::Status Global() {
    const toml::node* node = root_.get("global");
    if (node == nullptr) return absl::OkStatus();  // no global rule: float unless a rule says otherwise
    const toml::table* t = node->as_table();
    if (t == nullptr) return r_.Error(*node, "[global] must be a table with qconfig = ...");
    QFX_RETURN_IF_ERROR(r_.OnlyKeys(*t, {"qconfig"}, "[global]"));
    QFX_ASSIGN_OR_RETURN(std::string name, r_.Get<std::string>(*t, "qconfig", "[global]", "a string"));
    if (IsPreset(name)) {  // a preset brings its whole default mapping (fixed-qparams ops, reshape)
      QFX_ASSIGN_OR_RETURN(out_.mapping, PresetMapping(name));
      return absl::OkStatus();
    }
    QFX_ASSIGN_OR_RETURN(MaybeQConfig q, Resolve(*t, "[global]"));
    out_.mapping.SetGlobal(q);
    out_.mapping.MarkPresetEnd();
    return absl::OkStatus();
  }

  absl::Status Rules(const std::string& kind, const std::set<std::string>& keys) {
    const toml::node* node = root_.get(kind);
    if (node == nullptr) return absl::OkStatus();
    const toml::array* arr = node->as_array();
    if (arr == nullptr || !arr->is_array_of_tables()) {
      return r_.Error(*node, absl::StrCat("'", kind, "' must be written as [[", kind, "]] tables"));
    }
    for (const toml::node& item : *arr) {
      const toml::table& t = *item.as_table();
      const std::string where = absl::StrCat("[[", kind, "]]");
      QFX_RETURN_IF_ERROR(r_.OnlyKeys(t, keys, where));
      QFX_ASSIGN_OR_RETURN(MaybeQConfig q, Resolve(t, where));
      if (kind == "object_type") {
        QFX_ASSIGN_OR_RETURN(std::string type, r_.Get<std::string>(t, "type", where, "a string"));
        out_.mapping.SetObjectType(type, q);
      } else if (kind == "module_name_regex") {
        QFX_ASSIGN_OR_RETURN(std::string regex, r_.Get<std::string>(t, "regex", where, "a string"));
        absl::Status s = out_.mapping.SetModuleNameRegex(regex, q);
        if (!s.ok()) return r_.Error(*t.get("regex"), std::string(s.message()));
      } else if (kind == "module_name") {
        QFX_ASSIGN_OR_RETURN(std::string name, r_.Get<std::string>(t, "name", where, "a string"));
        out_.mapping.SetModuleName(name, q);
      } else {
        QFX_ASSIGN_OR_RETURN(std::string module, r_.Get<std::string>(t, "module", where, "a string"));
        QFX_ASSIGN_OR_RETURN(std::string type, r_.Get<std::string>(t, "type", where, "a string"));
        QFX_ASSIGN_OR_RETURN(int64_t index, r_.Get<int64_t>(t, "index", where, "an integer"));
        if (index < 0) return r_.Error(*t.get("index"), "index must be >= 0");
        out_.mapping.SetModuleNameObjectTypeOrder(module, type, index, q);
      }
    }
    return absl::OkStatus();
  }

  const toml::table& root_;
  RuleReader r_;
  QuantConfig out_;
  std::map<std::string, QConfig> named_;
};

}  // namespace

namespace {

// toml++ 3.3 reaches __builtin_unreachable (undefined behaviour) on some non-ASCII characters (found by
// tools/fuzz.sh under UBSan), so toml++ is given ASCII only: non-ASCII text in comments becomes spaces,
// anywhere else it is an error (module paths and qconfig names are ASCII).
absl::StatusOr<std::string> AsciiForToml(const std::string& text, const std::string& path) {
  std::string out = text;
  int64_t line = 1;
  char quote = 0;        // the open string's quote character, 0 outside strings
  bool multi = false;    // the open string is a """ or ''' one
  bool comment = false;  // inside a # comment
  for (size_t i = 0; i < out.size(); ++i) {
    const char c = out[i];
    if (c == '\n') {
      ++line;
      comment = false;
      if (!multi) quote = 0;  // an unterminated one-line string: toml++ reports it
      continue;
    }
    if (static_cast<unsigned char>(c) >= 0x80) {
      if (comment) {
        out[i] = ' ';
        continue;
      }
      return absl::InvalidArgumentError(absl::StrCat(path, ":", line, ": non-ASCII byte 0x",
                                                     absl::Hex(static_cast<unsigned char>(c)),
                                                     " outside a comment; rule files are ASCII there"));
    }
    if (comment) continue;
    if (quote == 0) {
      if (c == '#') {
        comment = true;
      } else if (c == '"' || c == '\'') {
        quote = c;
        multi = out.compare(i, 3, std::string(3, c)) == 0;
        if (multi) i += 2;
      }
    } else if (c == '\\' && quote == '"') {
      ++i;  // an escaped character in a basic string
    } else if (c == quote && (!multi || out.compare(i, 3, std::string(3, c)) == 0)) {
      if (multi) i += 2;
      quote = 0;
      multi = false;
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<QuantConfig> ParseRuleFile(const std::string& text, const std::string& path) {
  QFX_ASSIGN_OR_RETURN(const std::string ascii, AsciiForToml(text, path));
  toml::table root;
  try {
    root = toml::parse(ascii, path);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ":", static_cast<int64_t>(e.source().begin.line), ": ",
                                                   std::string(e.description()), " (not valid TOML)"));
  }
  return RuleFileParser(root, path).Run();
}

absl::StatusOr<QuantConfig> LoadQuantConfig(const std::string& spec) {
  for (const std::string& p : PresetNames()) {
    if (p == spec) {
      QuantConfig c;
      QFX_ASSIGN_OR_RETURN(c.mapping, PresetMapping(spec));
      QFX_ASSIGN_OR_RETURN(c.backend, GetBackendConfig(PresetBackend(spec)));
      c.source = spec;
      return c;
    }
  }
  std::ifstream f(spec);
  if (!f) {
    return absl::NotFoundError(absl::StrCat("--qconfig '", spec, "' is neither a preset (",
                                            absl::StrJoin(PresetNames(), ", "), ") nor a readable rule file"));
  }
  std::stringstream ss;
  ss << f.rdbuf();
  return ParseRuleFile(ss.str(), spec);
}

}  // namespace quant
}  // namespace qfx
