// qfx quant: typed backend descriptions, like PyTorch's BackendConfig: which op patterns a backend can
// quantize, how each pattern's output is observed, which patterns fuse into what, and the dtypes its
// int8 kernels accept. One description per preset backend (x86, fbgemm, qnnpack, onednn).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qfx/fx/graph_module.h"
#include "qfx/nn/ops.h"
#include "qfx/quant/qconfig.h"

namespace qfx {
namespace quant {

// One op of a pattern: any of its alternatives. `ops` match call_function / call_method nodes of those
// ops and call_module nodes whose module computes one of them (its registered kind, qfx/nn/ops.h);
// `modules` match further modules by C++ type (fused and QAT modules).
struct OpMatcher {
  std::vector<OpId> ops;
  std::vector<bool (*)(const nn::Module&)> modules;
  bool module_ops = true;  // false: `ops` match only call_function / call_method nodes
  bool Matches(fx::GraphModule& gm, const fx::Node& n) const;
};
// True for modules of C++ type M (or derived from it).
template <typename M>
bool IsA(const nn::Module& m) {
  return dynamic_cast<const M*>(&m) != nullptr;
}
// The op a node computes: its target for call_function / call_method, its module's op for call_module
// (kNumOps for none); `args` (may be null) gets the op's constant arguments after the input.
OpId NodeOp(fx::GraphModule& gm, const fx::Node& n, std::vector<OpArg>* args = nullptr);
// The quantization role of what a node computes (qfx/nn/ops.h QuantRole).
nn::QuantRole NodeRole(fx::GraphModule& gm, const fx::Node& n);

enum class ObservationType : uint8_t {
  kOwnObserver,         // the output gets an observer of its own (PyTorch's OUTPUT_USE_DIFFERENT_OBSERVER_AS_INPUT)
  kShareInputObserver,  // the output shares its input's observer (OUTPUT_SHARE_OBSERVER_WITH_INPUT)
  kBinary,              // own with two tensor inputs, shared with one (add / mul with a scalar)
};

enum class Fusion : uint8_t { kNone, kConvBn, kConvBnReLU, kConvReLU, kLinearBn, kLinearReLU, kBnReLU };

struct BackendPattern {
  std::string name;            // "conv-bn-relu", "add-relu", "maxpool", ...
  std::vector<OpMatcher> ops;  // in execution order; each op's args[0] is the previous op's output
  ObservationType observation = ObservationType::kOwnObserver;
  Fusion fusion = Fusion::kNone;  // what Fuse turns it into (kNone: a pattern for Prepare)
  bool weighted = false;          // takes a qint8 weight (conv, linear and their fusions)
};

struct BackendConfig {
  std::string name;
  std::vector<BackendPattern> patterns;  // longest first within fusion and prepare patterns
  // The dtypes the backend's int8 kernels take; anything else is an error naming the node.
  QDType activation_dtype = QDType::kQUInt8;
  QDType weight_dtype = QDType::kQInt8;
  bool symmetric_weights = true;  // weight zero points must be 0
};

// The preset backend of that name (resolved once, when a config is loaded), or kNotFound listing them.
absl::StatusOr<const BackendConfig*> GetBackendConfig(absl::string_view name);
// The x86 backend, the default.
const BackendConfig* DefaultBackend();
// The preset backends' names, for validation and messages: x86, fbgemm, qnnpack, onednn.
const std::vector<std::string>& BackendNames();

// The pattern of `config` that ends at `node` (fx::MatchChain: its ops form a chain through args[0], inner nodes having
// no other user) with the most ops, or nullptr. `fusion` selects fusion patterns or prepare patterns.
// On success `matched` holds the chain in execution order.
const BackendPattern* MatchPattern(const BackendConfig& config, fx::GraphModule& gm, fx::Node* node, bool fusion,
                                   std::vector<fx::Node*>* matched);

}  // namespace quant
}  // namespace qfx
