// qfx fx: Node and Graph (see include/qfx/fx/graph.h).
#include "qfx/fx/graph.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "qfx/nn/module.h"
#include "qfx/nn/ops.h"

namespace qfx {
namespace fx {
namespace {

constexpr const char* kOpcodeNames[] = {"placeholder", "get_attr",    "call_function",
                                        "call_method", "call_module", "output"};

void CollectNodes(const Argument& a, std::vector<Node*>& out) {
  auto add = [&](Node* n) {
    if (n != nullptr && std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  };
  if (const auto* n = std::get_if<Node*>(&a)) add(*n);
  if (const auto* list = std::get_if<std::vector<Node*>>(&a)) {
    for (Node* n : *list) add(n);
  }
}

Argument Replaced(const Argument& a, Node* from, Node* to) {
  if (const auto* n = std::get_if<Node*>(&a)) return *n == from ? Argument(to) : a;
  if (const auto* list = std::get_if<std::vector<Node*>>(&a)) {
    std::vector<Node*> out = *list;
    std::replace(out.begin(), out.end(), from, to);
    return out;
  }
  return a;
}

}  // namespace

const char* OpcodeName(Opcode op) {
  const int i = static_cast<int>(op);
  return i >= 0 && i < 6 ? kOpcodeNames[i] : "(invalid opcode)";  // a corrupted node must still print
}

bool ParseOpcode(const std::string& name, Opcode* op) {
  for (int i = 0; i < 6; ++i) {
    if (name == kOpcodeNames[i]) {
      *op = static_cast<Opcode>(i);
      return true;
    }
  }
  return false;
}

std::string Node::target_string() const {
  if (op_ == Opcode::kCallFunction || op_ == Opcode::kCallMethod) {
    return target_.op < OpId::kNumOps ? nn::GetOpSchema(target_.op).name : "<invalid op>";
  }
  return target_.path;
}

std::vector<Node*> Node::inputs() const {
  std::vector<Node*> out;
  for (const Argument& a : args_) CollectNodes(a, out);
  for (const auto& [k, a] : kwargs_) CollectNodes(a, out);
  return out;
}

void Node::Relink(const std::vector<Node*>& old_inputs) {
  const std::vector<Node*> now = inputs();
  for (Node* in : old_inputs) {
    if (std::find(now.begin(), now.end(), in) == now.end()) {
      in->users_.erase(std::remove(in->users_.begin(), in->users_.end(), this), in->users_.end());
    }
  }
  for (Node* in : now) {
    if (std::find(in->users_.begin(), in->users_.end(), this) == in->users_.end()) in->users_.push_back(this);
  }
}

void Node::set_args(std::vector<Argument> args) {
  const std::vector<Node*> old = inputs();
  args_ = std::move(args);
  Relink(old);
}

void Node::set_arg(size_t i, Argument arg) {
  std::vector<Argument> args = args_;
  if (i >= args.size()) args.resize(i + 1);
  args[i] = std::move(arg);
  set_args(std::move(args));
}

void Node::set_kwargs(std::vector<std::pair<std::string, Argument>> kwargs) {
  const std::vector<Node*> old = inputs();
  kwargs_ = std::move(kwargs);
  Relink(old);
}

void Node::ReplaceInputWith(Node* old_input, Node* new_input) {
  const std::vector<Node*> old = inputs();
  for (Argument& a : args_) a = Replaced(a, old_input, new_input);
  for (auto& [k, a] : kwargs_) a = Replaced(a, old_input, new_input);
  Relink(old);
}

std::vector<Node*> Node::ReplaceAllUsesWith(Node* replacement) {
  const std::vector<Node*> users = users_;
  for (Node* u : users) u->ReplaceInputWith(this, replacement);
  return users;
}

Graph::Iterator& Graph::Iterator::operator++() {
  n_ = n_->next_;
  return *this;
}

Graph::Graph() : root_(new Node(this, Opcode::kOutput, Target{}, "<root>")) {
  root_->prev_ = root_->next_ = root_.get();
  insert_before_ = root_.get();
}

Graph::~Graph() = default;

std::vector<Node*> Graph::nodes() const {
  std::vector<Node*> out;
  for (Node* n : *this) out.push_back(n);
  return out;
}

size_t Graph::size() const { return nodes().size(); }

Node* Graph::output_node() const {
  for (Node* n = root_->prev_; n != root_.get(); n = n->prev_) {
    if (n->op_ == Opcode::kOutput) return n;
  }
  return nullptr;
}

// torch.fx's _Namespace.create_name: sanitise, then "base", "base_1", "base_2", ... until unused.
std::string Graph::UniqueName(const std::string& hint) {
  std::string candidate = hint.empty() ? "node" : hint;
  for (char& c : candidate) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') c = '_';
  }
  if (std::isdigit(static_cast<unsigned char>(candidate[0]))) candidate = "_" + candidate;
  std::string base = candidate;
  int num = 0;
  const size_t us = candidate.rfind('_');
  if (us != std::string::npos && us + 1 < candidate.size() &&
      std::all_of(candidate.begin() + us + 1, candidate.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) &&
      candidate.size() - us - 1 < 9) {
    base = candidate.substr(0, us);
    num = std::stoi(candidate.substr(us + 1));
  }
  while (used_names_.count(candidate)) candidate = absl::StrCat(base, "_", ++num);
  used_names_[candidate] = 0;
  return candidate;
}

void Graph::Link(Node* n, Node* before) {
  n->next_ = before;
  n->prev_ = before->prev_;
  before->prev_->next_ = n;
  before->prev_ = n;
}

void Graph::Unlink(Node* n) {
  n->prev_->next_ = n->next_;
  n->next_->prev_ = n->prev_;
}

Node* Graph::CreateNode(Opcode op, Target target, std::vector<Argument> args,
                        std::vector<std::pair<std::string, Argument>> kwargs, const std::string& name_hint) {
  owned_.emplace_back(new Node(this, op, std::move(target), UniqueName(name_hint)));
  Node* n = owned_.back().get();
  Link(n, insert_before_);
  n->set_args(std::move(args));
  n->set_kwargs(std::move(kwargs));
  return n;
}

Node* Graph::Placeholder(const std::string& name) {
  return CreateNode(Opcode::kPlaceholder, {OpId::kNumOps, name}, {}, {}, name);
}

namespace {

// torch.fx's _snake_case, which names nodes after their module or attribute path: an underscore before an
// upper-case letter that follows a lower-case one, everything lower-cased ("Mixed_5b.branch1x1" ->
// "mixed_5b.branch1x1", "AuxLogits" -> "aux_logits").
std::string SnakeCase(const std::string& s) {
  std::string out;
  bool prev_lower = false;
  for (char c : s) {
    const bool upper = std::isupper(static_cast<unsigned char>(c));
    if (prev_lower && upper) out += '_';
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    prev_lower = std::islower(static_cast<unsigned char>(c));
  }
  return out;
}

}  // namespace

Node* Graph::GetAttr(const std::string& path) {
  return CreateNode(Opcode::kGetAttr, {OpId::kNumOps, path}, {}, {}, SnakeCase(path));
}

Node* Graph::CallFunction(OpId op, std::vector<Argument> args) {
  return CreateNode(Opcode::kCallFunction, {op, ""}, std::move(args), {}, nn::GetOpSchema(op).name);
}

Node* Graph::CallMethod(OpId op, std::vector<Argument> args) {
  return CreateNode(Opcode::kCallMethod, {op, ""}, std::move(args), {}, nn::GetOpSchema(op).name);
}

Node* Graph::CallModule(const std::string& path, std::vector<Argument> args) {
  return CreateNode(Opcode::kCallModule, {OpId::kNumOps, path}, std::move(args), {}, SnakeCase(path));
}

Node* Graph::Output(Argument result) {
  return CreateNode(Opcode::kOutput, {OpId::kNumOps, "output"}, {std::move(result)}, {}, "output");
}

Graph::InsertPoint::~InsertPoint() { graph_->insert_before_ = saved_; }

void Graph::MoveBefore(Node* n, Node* before) {
  if (n == before) return;
  Unlink(n);
  Link(n, before);
}

absl::Status Graph::EraseNode(Node* n) {
  if (n->graph_ != this || n->erased_) {
    return absl::InvalidArgumentError(absl::StrCat("EraseNode: node %", n->name_, " is not in this graph"));
  }
  if (!n->users_.empty()) {
    std::vector<std::string> names;
    for (Node* u : n->users_) names.push_back("%" + u->name_);
    return absl::FailedPreconditionError(absl::StrCat("EraseNode: node %", n->name_, " still has ", n->users_.size(),
                                                      " user(s): ", absl::StrJoin(names, ", "),
                                                      "; replace its uses first (ReplaceAllUsesWith)"));
  }
  n->set_args({});
  n->set_kwargs({});
  if (insert_before_ == n) insert_before_ = n->next_;
  Unlink(n);  // n keeps its own prev_/next_, so an iterator standing on it moves on correctly
  n->erased_ = true;
  used_names_.erase(n->name_);
  return absl::OkStatus();
}

bool Graph::EliminateDeadCode() {
  bool changed = false;
  for (Node* n = root_->prev_; n != root_.get();) {
    Node* prev = n->prev_;
    if (n->users_.empty() && n->op_ != Opcode::kPlaceholder && n->op_ != Opcode::kOutput) {
      changed = EraseNode(n).ok() || changed;
    }
    n = prev;
  }
  return changed;
}

std::string FormatArgument(const Argument& a) {
  struct Visitor {
    std::string operator()(std::monostate) const { return "None"; }
    std::string operator()(Node* n) const { return n ? "%" + n->name() : "%<null>"; }
    std::string operator()(int64_t v) const { return absl::StrCat(v); }
    std::string operator()(double v) const { return absl::StrCat(v); }
    std::string operator()(bool v) const { return v ? "True" : "False"; }
    std::string operator()(OpId op) const { return nn::GetOpSchema(op).name; }
    std::string operator()(const std::vector<int64_t>& v) const {
      return absl::StrCat("[", absl::StrJoin(v, ", "), "]");
    }
    std::string operator()(const std::vector<Node*>& v) const {
      std::vector<std::string> parts;
      for (Node* n : v) parts.push_back((*this)(n));
      return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
    }
  };
  return std::visit(Visitor{}, a);
}

std::string Graph::FormatNode(const Node& n) {
  if (n.op() == Opcode::kOutput) {
    if (n.args().empty()) return "return None";
    const auto* result = std::get_if<Node*>(&n.args()[0]);
    return absl::StrCat("return ", result && *result ? (*result)->name() : FormatArgument(n.args()[0]));
  }
  std::string s = absl::StrCat("%", n.name(), " : [num_users=", n.users().size(), "] = ", OpcodeName(n.op()),
                               "[target=", n.target_string(), "]");
  if (n.op() == Opcode::kPlaceholder || n.op() == Opcode::kGetAttr) return s;
  std::vector<std::string> args, kwargs;
  for (const Argument& a : n.args()) args.push_back(FormatArgument(a));
  for (const auto& [k, a] : n.kwargs()) kwargs.push_back(absl::StrCat(k, ": ", FormatArgument(a)));
  return absl::StrCat(s, "(args = (", absl::StrJoin(args, ", "), args.size() == 1 ? ",)" : ")", ", kwargs = {",
                      absl::StrJoin(kwargs, ", "), "})");
}

std::string Graph::ToString() const {
  std::string out;
  for (Node* n : *this) absl::StrAppend(&out, FormatNode(*n), "\n");
  return out;
}

std::string SpecializedToString(const std::vector<int64_t>& sizes) {
  std::vector<std::string> parts;
  for (int64_t v : sizes) parts.push_back(v < 0 ? "?" : absl::StrCat(v));
  return absl::StrCat("[", absl::StrJoin(parts, ", "), "]");
}

absl::Status CheckSpecialized(const Node& n, const Tensor& value) {
  if (!n.meta.specialized) return absl::OkStatus();
  const std::vector<int64_t>& want = *n.meta.specialized;
  bool ok = value.defined() && !value.is_proxy() && value.dim() == static_cast<int64_t>(want.size());
  for (size_t d = 0; ok && d < want.size(); ++d) ok = want[d] < 0 || value.size(static_cast<int64_t>(d)) == want[d];
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("%", n.name(), " is ", value.ToString(), ", but the graph was traced specialised to sizes ",
                   SpecializedToString(want),
                   " of it (forward read them while tracing on example inputs); trace the model again "
                   "with an example input of this run's shape"));
}

}  // namespace fx
}  // namespace qfx
