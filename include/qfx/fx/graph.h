// qfx fx: the graph IR, after torch.fx's graph.py and node.py.
//
// A Graph is an ordered, doubly linked list of Nodes around a sentinel, so passes may insert and erase
// while iterating. Each node has one of six opcodes:
//   placeholder    a graph input; target is the argument name
//   get_attr       reads a parameter or buffer; target is its dotted path ("layer1.0.bn1.weight")
//   call_function  runs a function op; target is an OpId (see qfx/nn/ops.h), args are positional
//   call_method    runs a Tensor method op; target is an OpId, args[0] is the tensor
//   call_module    calls a submodule; target is its dotted path ("layer1.0.conv1")
//   output         the graph's result; args[0] is the returned value
// Use-def links are right by construction: args change only through set_args / set_arg /
// ReplaceAllUsesWith, which update every input's `users`. EraseNode refuses a node with users.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "qfx/core/tensor.h"
#include "qfx/core/trace.h"

namespace qfx {
namespace nn {
class Module;
}
namespace quant {
struct QuantizationAnnotation;  // qfx/quant/pt2e.h
}
namespace fx {

enum class Opcode : uint8_t { kPlaceholder, kGetAttr, kCallFunction, kCallMethod, kCallModule, kOutput };
const char* OpcodeName(Opcode op);  // torch.fx's spelling: "placeholder", "call_module", ...
bool ParseOpcode(const std::string& name, Opcode* op);

class Node;

// One argument of a node: None, a node, a constant, or a list of integers or of nodes.
using Argument =
    std::variant<std::monostate, Node*, int64_t, double, bool, std::vector<int64_t>, std::vector<Node*>, OpId>;

// What a node calls or reads: an op for call_function / call_method, a name or path otherwise.
struct Target {
  OpId op = OpId::kNumOps;
  std::string path;
  bool operator==(const Target& o) const { return op == o.op && path == o.path; }
};

// Typed facts about the value a node produces, filled by passes (shape propagation, later quantization).
struct TensorMeta {
  Shape shape;
  DType dtype = DType::kF32;
};
// The innermost module being traced through when the tracer recorded a node (torch.fx's
// nn_module_stack[-1]); empty path for the root's own forward.
struct ModuleScope {
  std::string path;
  std::string type;
};
struct NodeMeta {
  std::optional<TensorMeta> tensor;
  ModuleScope scope;
  // The quint8 qparams of the value: set by convert on the quantize nodes it inserts and by Lower on the
  // int8 ops it produces (what later lowering steps read, instead of the nodes' arguments).
  std::optional<QuantInfo> qparams;
  // The fusion pattern whose chain became this node's module ("conv-bn-relu"): set by Fuse and PrepareQat,
  // what PrepareReport names the node's quantized pattern by.
  std::string fusion;
  // The PT2E quantizer's annotation of this node (qfx/quant/pt2e.h), or null.
  std::shared_ptr<quant::QuantizationAnnotation> annotation;
  // The sizes of this value that forward read while the tracer specialised on example inputs (-1 for a
  // dimension it did not read; the rank always counts), as torch.export guards static shapes: a run whose
  // value differs there is an error (CheckSpecialized).
  std::optional<std::vector<int64_t>> specialized;
};

// OK when `value` matches n.meta.specialized (or the node has none); otherwise an error naming the node,
// the traced sizes and the way out (trace again with an example input of the new shape).
absl::Status CheckSpecialized(const Node& n, const Tensor& value);
// "[?, 116, ?, ?]": the sizes a specialised node holds to.
std::string SpecializedToString(const std::vector<int64_t>& sizes);

class Graph;

class Node {
 public:
  Opcode op() const { return op_; }
  const std::string& name() const { return name_; }
  const Target& target() const { return target_; }
  // The target as graphs print it: the op's name for call_function / call_method, the path otherwise.
  std::string target_string() const;
  const std::vector<Argument>& args() const { return args_; }
  const std::vector<std::pair<std::string, Argument>>& kwargs() const { return kwargs_; }
  // Nodes that use this node's value, in the order they started using it.
  const std::vector<Node*>& users() const { return users_; }
  // Nodes this node reads, in argument order, each once.
  std::vector<Node*> inputs() const;
  Node* prev() const { return prev_; }
  Node* next() const { return next_; }
  Graph* graph() const { return graph_; }
  bool erased() const { return erased_; }

  void set_args(std::vector<Argument> args);
  void set_arg(size_t i, Argument arg);
  void set_kwargs(std::vector<std::pair<std::string, Argument>> kwargs);
  // Makes every user of this node use `replacement` instead; returns the users that changed.
  std::vector<Node*> ReplaceAllUsesWith(Node* replacement);
  // Replaces `old_input` by `new_input` in this node's args and kwargs.
  void ReplaceInputWith(Node* old_input, Node* new_input);

  NodeMeta meta;

 private:
  friend class Graph;
  friend struct GraphTestPeer;  // tests corrupt nodes on purpose to exercise Lint
  Node(Graph* graph, Opcode op, Target target, std::string name)
      : graph_(graph), op_(op), target_(std::move(target)), name_(std::move(name)) {}
  void Relink(const std::vector<Node*>& old_inputs);

  Graph* graph_;
  Opcode op_;
  Target target_;
  std::string name_;
  std::vector<Argument> args_;
  std::vector<std::pair<std::string, Argument>> kwargs_;
  std::vector<Node*> users_;
  Node* prev_ = nullptr;
  Node* next_ = nullptr;
  bool erased_ = false;
};

class Graph {
 public:
  Graph();
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Iteration in order. Erasing the current node while iterating is safe (the iterator moves on
  // from the erased node's old successor).
  class Iterator {
   public:
    explicit Iterator(Node* n) : n_(n) {}
    Node* operator*() const { return n_; }
    Iterator& operator++();
    bool operator!=(const Iterator& o) const { return n_ != o.n_; }

   private:
    Node* n_;
  };
  Iterator begin() const { return Iterator(root_->next_); }
  Iterator end() const { return Iterator(root_.get()); }
  std::vector<Node*> nodes() const;  // a snapshot
  size_t size() const;
  Node* output_node() const;  // nullptr when there is none yet

  // Creates a node at the insert point (the end of the graph by default). `name_hint` is made unique
  // the torch.fx way ("add", "add_1", ...; dots become underscores). GetAttr and CallModule name their
  // node after the path in torch.fx's snake case ("Mixed_5b.branch_pool" -> "mixed_5b_branch_pool").
  Node* CreateNode(Opcode op, Target target, std::vector<Argument> args,
                   std::vector<std::pair<std::string, Argument>> kwargs = {}, const std::string& name_hint = "");
  Node* Placeholder(const std::string& name);
  Node* GetAttr(const std::string& path);
  Node* CallFunction(OpId op, std::vector<Argument> args);
  Node* CallMethod(OpId op, std::vector<Argument> args);
  Node* CallModule(const std::string& path, std::vector<Argument> args);
  Node* Output(Argument result);

  // RAII insert point: nodes created while it lives go before / after `n`, in creation order.
  class InsertPoint {
   public:
    ~InsertPoint();
    InsertPoint(const InsertPoint&) = delete;
    InsertPoint& operator=(const InsertPoint&) = delete;

   private:
    friend class Graph;
    InsertPoint(Graph* g, Node* before) : graph_(g), saved_(g->insert_before_) { g->insert_before_ = before; }
    Graph* graph_;
    Node* saved_;
  };
  InsertPoint InsertingBefore(Node* n) { return InsertPoint(this, n); }
  InsertPoint InsertingAfter(Node* n) { return InsertPoint(this, n->next_); }

  // Moves `n` to just before `before` (both in this graph).
  void MoveBefore(Node* n, Node* before);
  // Fails with kFailedPrecondition naming the users if `n` still has any.
  absl::Status EraseNode(Node* n);
  // Erases nodes without users, except placeholders and the output; returns whether any went.
  bool EliminateDeadCode();
  // Checks ownership, links, topological order, unique names, opcode/target/arg shape rules, and,
  // when `owner` is given, that every call_module and get_attr target exists in it.
  absl::Status Lint(nn::Module* owner = nullptr) const;

  // One line per node, like torch.fx's format_node:
  //   %add : [num_users=1] = call_function[target=add](args = (%x, %y), kwargs = {})
  static std::string FormatNode(const Node& n);
  std::string ToString() const;

 private:
  friend class Node;
  friend struct GraphTestPeer;
  std::string UniqueName(const std::string& hint);
  void Link(Node* n, Node* before);
  void Unlink(Node* n);

  std::unique_ptr<Node> root_;  // sentinel: root_->next_ is the first node
  std::vector<std::unique_ptr<Node>> owned_;
  std::map<std::string, int> used_names_;
  Node* insert_before_;
};

// Formats one argument as FX prints it: %name, 3, 1.5, True, None, [1, 2], [%a, %b].
std::string FormatArgument(const Argument& a);

}  // namespace fx
}  // namespace qfx
