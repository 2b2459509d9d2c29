// qfx quant: the backend descriptions and pattern matching (see include/qfx/quant/backend.h). The op lists
// follow PyTorch 1.13's torch/ao/quantization/backend_config (_common_operator_config_utils.py).
#include "qfx/quant/backend.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace qfx {
namespace quant {
namespace {

OpMatcher Module(std::vector<std::string> types) { return OpMatcher{std::move(types), {}, {}}; }
OpMatcher Function(std::vector<OpId> ops) { return OpMatcher{{}, std::move(ops), {}}; }
OpMatcher Relu() { return OpMatcher{{"ReLU"}, {OpId::kRelu}, {}}; }

std::vector<BackendPattern> FusionPatterns() {
  const OpMatcher conv = Module({"Conv2d"}), bn2d = Module({"BatchNorm2d"}), linear = Module({"Linear"});
  return {
      {"conv-bn-relu", {conv, bn2d, Relu()}, ObservationType::kOwnObserver, Fusion::kConvBnReLU, true},
      {"conv-bn", {conv, bn2d}, ObservationType::kOwnObserver, Fusion::kConvBn, true},
      {"conv-relu", {conv, Relu()}, ObservationType::kOwnObserver, Fusion::kConvReLU, true},
      {"linear-bn", {linear, Module({"BatchNorm1d"})}, ObservationType::kOwnObserver, Fusion::kLinearBn, true},
      {"linear-relu", {linear, Relu()}, ObservationType::kOwnObserver, Fusion::kLinearReLU, true},
      {"bn-relu", {bn2d, Relu()}, ObservationType::kOwnObserver, Fusion::kBnReLU, false},
  };
}

std::vector<BackendPattern> PreparePatterns() {
  using OT = ObservationType;
  std::vector<BackendPattern> p = {
      {"add-relu", {Function({OpId::kAdd}), Relu()}, OT::kOwnObserver},
      {"mul-relu", {Function({OpId::kMul}), Relu()}, OT::kOwnObserver},
      {"conv", {Module({"Conv2d", "ConvReLU2d", "ConvBn2d", "ConvBnReLU2d"})}, OT::kOwnObserver, Fusion::kNone, true},
      {"linear", {Module({"Linear", "LinearReLU"})}, OT::kOwnObserver, Fusion::kNone, true},
      {"add", {Function({OpId::kAdd})}, OT::kBinary},
      {"mul", {Function({OpId::kMul})}, OT::kBinary},
      {"cat", {Function({OpId::kCat})}, OT::kShareInputObserver},
      {"hardswish", {OpMatcher{{"Hardswish"}, {OpId::kHardswish}, {}}}, OT::kOwnObserver},
      {"dropout", {OpMatcher{{"Dropout"}, {OpId::kDropout}, {}}}, OT::kOwnObserver},
      {"fixed-qparams",
       {OpMatcher{{"Sigmoid", "Hardsigmoid", "Tanh"}, {OpId::kSigmoid, OpId::kHardsigmoid, OpId::kTanh}, {}}},
       OT::kOwnObserver},
      {"share-qparams", {ShareQParamsOps()}, OT::kShareInputObserver},
  };
  return p;
}

}  // namespace

const OpMatcher& ShareQParamsOps() {
  static const OpMatcher* ops =
      new OpMatcher{{"AdaptiveAvgPool2d", "AvgPool2d", "Hardtanh", "Identity", "MaxPool2d", "ReLU", "ReLU6", "Flatten"},
                    {OpId::kAdaptiveAvgPool2d, OpId::kHardtanh, OpId::kMaxPool2d, OpId::kAvgPool2d, OpId::kRelu,
                     OpId::kRelu6, OpId::kFlatten, OpId::kReshape},
                    {OpId::kMethodReshape, OpId::kMethodView, OpId::kMethodFlatten}};
  return *ops;
}

const std::vector<std::string>& BackendNames() {
  static const auto* names = new std::vector<std::string>{"x86", "fbgemm", "qnnpack", "onednn"};
  return *names;
}

bool OpMatcher::Matches(fx::GraphModule& gm, const fx::Node& n) const {
  switch (n.op()) {
    case fx::Opcode::kCallModule: {
      nn::Module* m = gm.submodule(n.target().path);
      return m && std::find(module_types.begin(), module_types.end(), m->type_name()) != module_types.end();
    }
    case fx::Opcode::kCallFunction:
      return std::find(functions.begin(), functions.end(), n.target().op) != functions.end();
    case fx::Opcode::kCallMethod:
      return std::find(methods.begin(), methods.end(), n.target().op) != methods.end();
    default:
      return false;
  }
}

absl::StatusOr<BackendConfig> GetBackendConfig(const std::string& name) {
  if (std::find(BackendNames().begin(), BackendNames().end(), name) == BackendNames().end()) {
    return absl::NotFoundError(
        absl::StrCat("unknown backend '", name, "' (", absl::StrJoin(BackendNames(), ", "), ")"));
  }
  BackendConfig c;
  c.name = name;
  c.patterns = FusionPatterns();
  for (auto& p : PreparePatterns()) c.patterns.push_back(std::move(p));
  return c;
}

const BackendPattern* MatchPattern(const BackendConfig& config, fx::GraphModule& gm, fx::Node* node, bool fusion,
                                   std::vector<fx::Node*>* matched) {
  for (const BackendPattern& p : config.patterns) {
    if ((p.fusion != Fusion::kNone) != fusion) continue;
    std::vector<fx::Node*> chain;
    fx::Node* n = node;
    bool ok = true;
    for (size_t i = p.ops.size(); ok && i-- > 0;) {
      ok = n != nullptr && p.ops[i].Matches(gm, *n) && (n == node || n->users().size() == 1);
      if (!ok) break;
      chain.push_back(n);
      n = i > 0 && !n->args().empty() && std::holds_alternative<fx::Node*>(n->args()[0])
              ? std::get<fx::Node*>(n->args()[0])
              : nullptr;
    }
    if (!ok) continue;
    std::reverse(chain.begin(), chain.end());
    *matched = chain;
    return &p;
  }
  return nullptr;
}

}  // namespace quant
}  // namespace qfx
