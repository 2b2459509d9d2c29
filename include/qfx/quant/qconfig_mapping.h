// qfx quant: QConfigMapping — which QConfig each node of a graph gets — with PyTorch 1.13's rule kinds
// and precedence, the default mappings of its backends, and TOML rule files.
//
// Precedence, lowest to highest: global < object_type < module_name_regex < module_name <
// module_name_object_type_order. Regexes match from the start of the module name, in the order given;
// the first match wins. A module_name rule also covers the module's submodules. A function or method
// call takes its own object_type rule first and is then overridden by the rules of the module it is
// called from (that module's type, regexes and names), as PyTorch's _generate_node_name_to_qconfig does.
// A fused module (ConvReLU2d, ConvBnReLU2d, LinearReLU, BNReLU2d) with no object_type rule of its own takes
// its parts' rules when they agree, as PyTorch's update_qconfig_for_fusion (which raises when they differ;
// qfx reports it with the unused-rule warnings and keeps the global qconfig).
// std::nullopt ("none") means: leave it in float.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "qfx/fx/graph_module.h"
#include "qfx/quant/backend.h"
#include "qfx/quant/qconfig.h"

namespace qfx {
namespace quant {

using MaybeQConfig = std::optional<QConfig>;

class QConfigMapping {
 public:
  QConfigMapping& SetGlobal(MaybeQConfig q);
  QConfigMapping& SetObjectType(const std::string& type, MaybeQConfig q);  // "Linear", "add", "reshape", ...
  // Fails on a regex that does not compile.
  absl::Status SetModuleNameRegex(const std::string& regex, MaybeQConfig q);
  QConfigMapping& SetModuleName(const std::string& name, MaybeQConfig q);
  QConfigMapping& SetModuleNameObjectTypeOrder(const std::string& module, const std::string& type, int64_t index,
                                               MaybeQConfig q);
  // Rules added after this call are "user" rules: a user rule that matches no node is reported.
  void MarkPresetEnd() { preset_rules_ = rules_.size(); }

  const MaybeQConfig& global() const { return global_; }

  // The qconfig of every node of `graph` (placeholders and output get none), PyTorch's way. Each user rule
  // that matched no node is described in *unused (e.g. "module_name 'fc2' matched no node"), as is each
  // fused module whose parts' object_type rules disagree.
  std::unordered_map<const fx::Node*, MaybeQConfig> Assign(fx::GraphModule& module,
                                                           std::vector<std::string>* unused = nullptr) const;

  struct Rule {
    enum class Kind { kObjectType, kModuleNameRegex, kModuleName, kModuleNameObjectTypeOrder } kind;
    std::string key;    // type, regex or module name
    std::string type;   // module_name_object_type_order only
    int64_t index = 0;  // module_name_object_type_order only
    MaybeQConfig qconfig;
    std::string Describe() const;
  };
  const std::vector<Rule>& rules() const { return rules_; }

 private:
  friend class Assigner;
  void AddRule(Rule r);

  MaybeQConfig global_;
  std::vector<Rule> rules_;  // insertion order (regexes are tried in this order)
  size_t preset_rules_ = 0;
};

// PyTorch 1.13's get_default_qconfig_mapping(backend) / get_default_qat_qconfig_mapping(backend) for
// "x86", "fbgemm", "qnnpack", "onednn" and their "_qat" forms.
absl::StatusOr<QConfigMapping> PresetMapping(const std::string& name);
// The global qconfig of a preset.
absl::StatusOr<QConfig> PresetQConfig(const std::string& name);
const std::vector<std::string>& PresetNames();
// The backend a preset targets: "x86" for x86 and x86_qat, "x86" for dynamic, ...; "" for no preset.
std::string PresetBackend(const std::string& preset);

// A loaded rule file (or preset): the mapping and the backend whose patterns and constraints apply.
struct QuantConfig {
  QConfigMapping mapping;
  const BackendConfig* backend = DefaultBackend();  // resolved when the config is loaded
  std::string source;                               // the preset name or the file path
};

// Parses a TOML rule file (format: README "Rule files", examples in tools/qconfigs/). Errors name the
// file, the line and the key.
absl::StatusOr<QuantConfig> ParseRuleFile(const std::string& text, const std::string& path);
// `spec` is a preset name or a path to a rule file.
absl::StatusOr<QuantConfig> LoadQuantConfig(const std::string& spec);

}  // namespace quant
}  // namespace qfx
