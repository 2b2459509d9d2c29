// qfx quant (internal): graph helpers the PT2E passes share (pt2e_quantizer / pt2e_prepare / pt2e_convert.cc).
#pragma once

#include <cstdint>
#include <variant>
#include <vector>

#include "qfx/fx/graph_module.h"
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
// The one value of a list argument whose elements are all equal (a conv's square stride, padding or
// dilation), or -1.
inline int64_t SquareValue(const fx::Argument& a) {
  const auto* v = std::get_if<std::vector<int64_t>>(&a);
  if (v == nullptr || v->empty()) return -1;
  for (int64_t x : *v) {
    if (x != (*v)[0]) return -1;
  }
  return (*v)[0];
}

}  // namespace internal
}  // namespace quant
}  // namespace qfx
