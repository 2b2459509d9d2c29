// qfx quant: the module kinds of the quantization layer (see qfx/nn/ops.h, ModuleKind): the int8 modules
// that convert produces and the fused modules that fusion produces, so that .qfx files can save and
// rebuild them. The float modules' kinds are listed with their ops in src/nn/ops.cc.
#include <mutex>

#include "absl/strings/str_cat.h"
#include "qfx/nn/ops.h"
#include "qfx/quant/fused_modules.h"
#include "qfx/quant/quantized_modules.h"

namespace qfx {
namespace quant {
namespace {

using json = nlohmann::json;

nn::ModuleKind WeightedKind(const std::string& type, std::type_index cpp_type) {
  nn::ModuleKind k;
  k.type = type;
  k.cpp_type = cpp_type;
  k.config = [](const nn::Module& m) { return static_cast<const QuantizedWeighted&>(m).Config(); };
  k.make = [](const json& c) { return std::shared_ptr<nn::Module>(ValueOrThrow(QuantizedWeighted::FromConfig(c))); };
  return k;
}

nn::ModuleKind DynamicKind() {
  nn::ModuleKind k;
  k.type = "DynamicQuantizedLinear";
  k.cpp_type = typeid(DynamicQuantizedLinear);
  k.config = [](const nn::Module& m) { return static_cast<const DynamicQuantizedLinear&>(m).Config(); };
  k.make = [](const json& c) {
    return std::shared_ptr<nn::Module>(ValueOrThrow(DynamicQuantizedLinear::FromConfig(c)));
  };
  return k;
}

// ConvReLU2d, LinearReLU, BNReLU2d: {"parts": [{"type": ..., "config": ...}, {...}]}.
nn::ModuleKind FusedKind(const std::string& type) {
  nn::ModuleKind k;
  k.type = type;
  k.cpp_type = typeid(FusedSequential);
  k.config = [](const nn::Module& m) {
    json parts = json::array();
    for (const auto& [name, child] : m.named_children()) {
      json config = ValueOrThrow(nn::ModuleConfig(*child));  // fails for a part of no registered kind
      parts.push_back({{"type", nn::KindOf(*child)->type}, {"config", std::move(config)}});
    }
    return json{{"parts", parts}};
  };
  k.make = [type](const json& c) {
    const json& parts = c.at("parts");
    if (!parts.is_array() || parts.size() != 2) ThrowInvalid("a fused module has two parts");
    auto first = ValueOrThrow(nn::MakeModule(parts[0].at("type").get<std::string>(), parts[0].at("config")));
    auto second = ValueOrThrow(nn::MakeModule(parts[1].at("type").get<std::string>(), parts[1].at("config")));
    return std::shared_ptr<nn::Module>(MakeFused(type, first, second));
  };
  return k;
}

}  // namespace

absl::Status RegisterModuleKinds() {
  static absl::Status* status = [] {
    std::vector<nn::ModuleKind> kinds = {WeightedKind("QuantizedConv2d", typeid(QuantizedConv2d)),
                                         WeightedKind("QuantizedConvReLU2d", typeid(QuantizedConv2d)),
                                         WeightedKind("QuantizedLinear", typeid(QuantizedLinear)),
                                         WeightedKind("QuantizedLinearReLU", typeid(QuantizedLinear)),
                                         DynamicKind(),
                                         FusedKind("ConvReLU2d"),
                                         FusedKind("LinearReLU"),
                                         FusedKind("BNReLU2d")};
    auto* s = new absl::Status;
    for (nn::ModuleKind& k : kinds) s->Update(nn::RegisterModuleKind(std::move(k)));
    return s;
  }();
  return *status;
}

}  // namespace quant
}  // namespace qfx
