// qfx fx: Graph::Lint, the invariant check every pass and test runs (see include/qfx/fx/graph.h).
// Each failure names the node and the rule, so a broken pass is found at the node it broke.
#include <set>

#include "absl/strings/str_cat.h"
#include "qfx/fx/graph.h"
#include "qfx/nn/module.h"
#include "qfx/nn/ops.h"

namespace qfx {
namespace fx {
namespace {

absl::Status Bad(const Node& n, const std::string& rule) {
  return absl::InternalError(
      absl::StrCat("Lint: node %", n.name(), " (", OpcodeName(n.op()), "[target=", n.target_string(), "]): ", rule));
}

bool Contains(const std::vector<Node*>& v, const Node* n) { return std::find(v.begin(), v.end(), n) != v.end(); }

absl::Status CheckTarget(const Node& n, nn::Module* owner) {
  switch (n.op()) {
    case Opcode::kCallFunction:
    case Opcode::kCallMethod: {
      if (n.target().op >= OpId::kNumOps) return Bad(n, "target must be a registered op");
      const nn::OpSchema& op = nn::GetOpSchema(n.target().op);
      if (op.is_method != (n.op() == Opcode::kCallMethod)) {
        return Bad(n, absl::StrCat("op '", op.name, "' is a ", op.is_method ? "method" : "function", "; use ",
                                   op.is_method ? "call_method" : "call_function"));
      }
      const int argc = static_cast<int>(n.args().size());
      if (argc < op.min_args || argc > op.max_args) {
        return Bad(n, absl::StrCat("op '", op.name, "' takes ", op.min_args, "..", op.max_args, " args, has ", argc));
      }
      return absl::OkStatus();
    }
    case Opcode::kCallModule:
      if (n.target().path.empty()) return Bad(n, "call_module needs a module path");
      if (owner && owner->submodule(n.target().path) == nullptr) {
        return Bad(n, absl::StrCat("module '", n.target().path, "' does not exist in the owning module"));
      }
      if (n.args().empty()) return Bad(n, "call_module needs its input as args[0]");
      return absl::OkStatus();
    case Opcode::kGetAttr:
      if (n.target().path.empty()) return Bad(n, "get_attr needs an attribute path");
      if (owner && !owner->tensor_at(n.target().path).defined()) {
        return Bad(n, absl::StrCat("attribute '", n.target().path, "' does not exist in the owning module"));
      }
      return n.args().empty() ? absl::OkStatus() : Bad(n, "get_attr takes no args");
    case Opcode::kPlaceholder:
      if (n.target().path.empty()) return Bad(n, "placeholder needs an argument name");
      return n.args().empty() ? absl::OkStatus() : Bad(n, "placeholder takes no args");
    case Opcode::kOutput:
      return n.args().size() == 1 ? absl::OkStatus() : Bad(n, "output takes exactly one arg");
  }
  return Bad(n, "illegal opcode");
}

}  // namespace

absl::Status Graph::Lint(nn::Module* owner) const {
  std::set<const Node*> seen;
  std::set<std::string> names;
  bool placeholders_done = false, output_seen = false;
  for (const Node* n = root_->next_; n != root_.get(); n = n->next_) {
    if (n->graph_ != this) return Bad(*n, "is owned by another graph");
    if (n->erased_) return Bad(*n, "was erased but is still linked");
    if (n->next_->prev_ != n || n->prev_->next_ != n) return Bad(*n, "prev/next links are inconsistent");
    if (!names.insert(n->name_).second) return Bad(*n, "name is not unique");
    if (static_cast<int>(n->op_) > static_cast<int>(Opcode::kOutput)) return Bad(*n, "illegal opcode");
    if (output_seen) return Bad(*n, "comes after the output node");
    if (n->op_ == Opcode::kPlaceholder && placeholders_done) return Bad(*n, "placeholders must come first");
    if (n->op_ != Opcode::kPlaceholder) placeholders_done = true;
    output_seen = n->op_ == Opcode::kOutput;
    for (const Node* in : n->inputs()) {
      if (in->graph_ != this) return Bad(*n, absl::StrCat("uses %", in->name_, " from another graph"));
      if (!seen.count(in))
        return Bad(*n, absl::StrCat("uses %", in->name_, " before it is defined (topological order)"));
      if (!Contains(in->users_, n)) return Bad(*n, absl::StrCat("is missing from the users of its input %", in->name_));
    }
    for (const Node* u : n->users_) {
      if (!Contains(u->inputs(), n))
        return Bad(*n, absl::StrCat("lists %", u->name_, " as a user but it does not use it"));
    }
    QFX_RETURN_IF_ERROR(CheckTarget(*n, owner));
    seen.insert(n);
  }
  if (!output_seen) return absl::InternalError("Lint: the graph has no output node (it must be last)");
  return absl::OkStatus();
}

}  // namespace fx
}  // namespace qfx
