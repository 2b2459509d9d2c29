// qfx quant (internal): graph helpers the PT2E passes share (pt2e_quantizer / pt2e_prepare / pt2e_convert.cc).
#pragma once

#include <cstdint>
#include <optional>
#include <variant>
#include <vector>

#include "qfx/fx/graph_module.h"
#include "qfx/nn/modules.h"  // Size2
#include "qfx/quant/observer.h"

namespace qfx {
namespace quant {
namespace internal {

// A call_function or call_method node (what Export makes of modules).
inline bool IsOpNode(const fx::Node* n) {
  return n->op() == fx::Opcode::kCallFunction || n->op() == fx::Opcode::kCallMethod;
}
// An op node calling `op` (false for null).
inline bool IsOp(const fx::Node* n, OpId op) { return n != nullptr && IsOpNode(n) && n->target().op == op; }
// Argument i of `n` when it is a node, else nullptr.
inline fx::Node* NodeArg(const fx::Node* n, size_t i) {
  if (i >= n->args().size()) return nullptr;
  const auto* p = std::get_if<fx::Node*>(&n->args()[i]);
  return p ? *p : nullptr;
}
// A call of an observer or fake-quant module (false for null).
inline bool IsObserverNode(fx::GraphModule& gm, const fx::Node* n) {
  return n != nullptr && n->op() == fx::Opcode::kCallModule && IsObserverModule(gm.submodule(n->target().path));
}
// The (height, width) of a conv's stride, padding or dilation argument (a list of two integers, or of one
// for both axes), or none.
inline std::optional<nn::Size2> PairValue(const fx::Argument& a) {
  const auto* v = std::get_if<std::vector<int64_t>>(&a);
  if (v == nullptr || v->empty() || v->size() > 2) return std::nullopt;
  return nn::Size2((*v)[0], v->back());
}

}  // namespace internal
}  // namespace quant
}  // namespace qfx
