// qfx quant: typed backend descriptions, like PyTorch's BackendConfig: which op patterns a backend can
// quantize, how each pattern's output is observed, which patterns fuse into what, and the dtypes its
// int8 kernels accept. One description per preset backend (x86, fbgemm, qnnpack, onednn).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qfx/fx/graph_module.h"
#include "qfx/quant/qconfig.h"

namespace qfx {
namespace quant {

// One op of a pattern: any of its alternatives (a module type, a function op or a method op).
struct OpMatcher {
  std::vector<std::string> module_types;  // "Conv2d", "ReLU", ...
  std::vector<OpId> functions;            // call_function ops
  std::vector<OpId> methods;              // call_method ops
  bool Matches(fx::GraphModule& gm, const fx::Node& n) const;
};

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

absl::StatusOr<BackendConfig> GetBackendConfig(const std::string& name);
// The preset backends' names, for validation and messages: x86, fbgemm, qnnpack, onednn.
const std::vector<std::string>& BackendNames();
// The ops whose output shares its input's qparams (pools, relu, relu6, hardtanh, identity, flatten,
// reshape, view): the prepare pattern "share-qparams", and what Lower runs directly on quint8 tensors.
const OpMatcher& ShareQParamsOps();

// The pattern of `config` that ends at `node` (its ops form a chain through args[0], inner nodes having
// no other user) with the most ops, or nullptr. `fusion` selects fusion patterns or prepare patterns.
// On success `matched` holds the chain in execution order.
const BackendPattern* MatchPattern(const BackendConfig& config, fx::GraphModule& gm, fx::Node* node, bool fusion,
                                   std::vector<fx::Node*>* matched);

}  // namespace quant
}  // namespace qfx
