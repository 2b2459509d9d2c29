// qfx quant: the backend descriptions (see include/qfx/quant/backend.h). The op lists follow PyTorch 1.13's
// torch/ao/quantization/backend_config (_common_operator_config_utils.py); which op is in which list is
// its QuantRole in the op registry (src/nn/ops.cc), so a new op joins a pattern by its registration.
#include "qfx/quant/backend.h"

#include <algorithm>
#include <map>
#include <typeinfo>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "qfx/fx/matcher.h"
#include "qfx/quant/fused_modules.h"
#include "qfx/quant/qat_modules.h"

namespace qfx {
namespace quant {
namespace {

using nn::QuantRole;

OpMatcher Modules(std::vector<bool (*)(const nn::Module&)> types) { return OpMatcher{{}, std::move(types), false}; }
OpMatcher Function(OpId op) { return OpMatcher{{op}, {}, false}; }
OpMatcher Relu() { return OpMatcher{{OpId::kRelu}, {}, true}; }

template <typename First>
bool IsFusedOf(const nn::Module& m) {
  const auto* f = dynamic_cast<const FusedSequential*>(&m);
  return f != nullptr && f->size() > 0 && dynamic_cast<const First*>(&(*f)[0]) != nullptr;
}

// Every op (function, method, and the modules computing it) with quantization role `role`.
OpMatcher OpsWithRole(QuantRole role) {
  OpMatcher m;
  for (const nn::OpSchema& op : nn::AllOps()) {
    if (op.role == role) m.ops.push_back(op.id);
  }
  return m;
}

std::vector<BackendPattern> FusionPatterns() {
  const OpMatcher conv = Modules({IsA<nn::Conv2d>}), bn2d = Modules({IsA<nn::BatchNorm2d>}),
                  linear = Modules({IsA<nn::Linear>});
  return {
      {"conv-bn-relu", {conv, bn2d, Relu()}, ObservationType::kOwnObserver, Fusion::kConvBnReLU, true},
      {"conv-bn", {conv, bn2d}, ObservationType::kOwnObserver, Fusion::kConvBn, true},
      {"conv-relu", {conv, Relu()}, ObservationType::kOwnObserver, Fusion::kConvReLU, true},
      {"linear-bn", {linear, Modules({IsA<nn::BatchNorm1d>})}, ObservationType::kOwnObserver, Fusion::kLinearBn, true},
      {"linear-relu", {linear, Relu()}, ObservationType::kOwnObserver, Fusion::kLinearReLU, true},
      {"bn-relu", {bn2d, Relu()}, ObservationType::kOwnObserver, Fusion::kBnReLU, false},
  };
}

std::vector<BackendPattern> PreparePatterns() {
  using OT = ObservationType;
  std::vector<BackendPattern> p = {
      {"add-relu", {Function(OpId::kAdd), Relu()}, OT::kOwnObserver},
      {"mul-relu", {Function(OpId::kMul), Relu()}, OT::kOwnObserver},
      {"conv",
       {Modules({IsA<nn::Conv2d>, IsFusedOf<nn::Conv2d>, IsA<QatConv2d>})},
       OT::kOwnObserver,
       Fusion::kNone,
       true},
      {"linear",
       {Modules({IsA<nn::Linear>, IsFusedOf<nn::Linear>, IsA<QatLinear>})},
       OT::kOwnObserver,
       Fusion::kNone,
       true},
      {"add", {Function(OpId::kAdd)}, OT::kBinary},
      {"mul", {Function(OpId::kMul)}, OT::kBinary},
      {"matmul", {Function(OpId::kMatmul)}, OT::kBinary},
      {"cat", {Function(OpId::kCat)}, OT::kShareInputObserver},
  };
  // One pattern per table op and per observed-float op (PyTorch 1.13's native config: layer_norm), named after it.
  for (const nn::OpSchema& op : nn::AllOps()) {
    if (op.role == QuantRole::kTable || op.role == QuantRole::kObservedFloat) {
      p.push_back({op.name, {OpMatcher{{op.id}, {}, true}}, OT::kOwnObserver});
    }
  }
  p.push_back({"fixed-qparams", {OpsWithRole(QuantRole::kFixedQParams)}, OT::kOwnObserver});
  OpMatcher share = OpsWithRole(QuantRole::kShareQParams);
  // Identity itself: QuantStub / DeQuantStub (Identity in float) are not ops and stay float in the FX flow.
  share.modules.push_back([](const nn::Module& m) { return typeid(m) == typeid(nn::Identity); });
  p.push_back({"share-qparams", {share}, OT::kShareInputObserver});
  return p;
}

BackendConfig MakeBackend(const std::string& name) {
  BackendConfig c;
  c.name = name;
  c.patterns = FusionPatterns();
  for (auto& p : PreparePatterns()) c.patterns.push_back(std::move(p));
  return c;
}

}  // namespace

const std::vector<std::string>& BackendNames() {
  static const auto* names = new std::vector<std::string>{"x86", "fbgemm", "qnnpack", "onednn"};
  return *names;
}

OpId NodeOp(fx::GraphModule& gm, const fx::Node& n, std::vector<OpArg>* args) {
  switch (n.op()) {
    case fx::Opcode::kCallModule: {
      nn::Module* m = gm.submodule(n.target().path);
      return m == nullptr ? OpId::kNumOps : nn::ModuleOp(*m, args);
    }
    case fx::Opcode::kCallFunction:
    case fx::Opcode::kCallMethod:
      if (args != nullptr) {
        args->clear();
        for (size_t i = 1; i < n.args().size(); ++i) args->push_back(ConstantAs<OpArg>(n.args()[i]));
      }
      return n.target().op;
    default:
      return OpId::kNumOps;
  }
}

nn::QuantRole NodeRole(fx::GraphModule& gm, const fx::Node& n) {
  if (n.op() == fx::Opcode::kCallModule) {
    nn::Module* m = gm.submodule(n.target().path);
    return m == nullptr ? QuantRole::kFloat : nn::ModuleRole(*m);
  }
  const OpId op = NodeOp(gm, n);
  return op == OpId::kNumOps ? QuantRole::kFloat : nn::GetOpSchema(op).role;
}

bool OpMatcher::Matches(fx::GraphModule& gm, const fx::Node& n) const {
  if (n.op() == fx::Opcode::kCallModule) {
    nn::Module* m = gm.submodule(n.target().path);
    if (m == nullptr) return false;
    for (auto* is : modules) {
      if (is(*m)) return true;
    }
    if (!module_ops) return false;
  } else if (n.op() != fx::Opcode::kCallFunction && n.op() != fx::Opcode::kCallMethod) {
    return false;
  }
  const OpId op = NodeOp(gm, n);
  return op != OpId::kNumOps && std::find(ops.begin(), ops.end(), op) != ops.end();
}

absl::StatusOr<const BackendConfig*> GetBackendConfig(absl::string_view name) {
  static const auto* backends = [] {
    auto* m = new std::map<std::string, BackendConfig, std::less<>>;
    for (const std::string& b : BackendNames()) m->emplace(b, MakeBackend(b));
    return m;
  }();
  auto it = backends->find(name);
  if (it == backends->end()) {
    return absl::NotFoundError(
        absl::StrCat("unknown backend '", name, "' (", absl::StrJoin(BackendNames(), ", "), ")"));
  }
  return &it->second;
}

const BackendConfig* DefaultBackend() { return *GetBackendConfig("x86"); }

const BackendPattern* MatchPattern(const BackendConfig& config, fx::GraphModule& gm, fx::Node* node, bool fusion,
                                   std::vector<fx::Node*>* matched) {
  for (const BackendPattern& p : config.patterns) {
    if ((p.fusion != Fusion::kNone) != fusion) continue;
    std::vector<std::function<bool(const fx::Node&)>> ops;
    for (const OpMatcher& m : p.ops) ops.push_back([&m, &gm](const fx::Node& n) { return m.Matches(gm, n); });
    std::vector<fx::Node*> chain = fx::MatchChain(ops, node);
    if (chain.empty()) continue;
    *matched = std::move(chain);
    return &p;
  }
  return nullptr;
}

}  // namespace quant
}  // namespace qfx
