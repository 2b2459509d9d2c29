// qfx fx: GraphModule and the Interpreter (see include/qfx/fx/graph_module.h).
#include <algorithm>
#include <set>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "qfx/fx/graph_module.h"
#include "qfx/nn/ops.h"

namespace qfx {
namespace fx {
namespace {

OpArg Resolve(const Argument& a, const std::unordered_map<const Node*, OpArg>& env) {
  struct Visitor {
    const std::unordered_map<const Node*, OpArg>& env;
    OpArg Value(Node* n) const {
      auto it = env.find(n);
      if (it == env.end()) throw Error(absl::InternalError(absl::StrCat("value of %", n->name(), " is not available")));
      return it->second;
    }
    OpArg operator()(std::monostate) const { return std::monostate(); }
    OpArg operator()(Node* n) const { return Value(n); }
    OpArg operator()(int64_t v) const { return v; }
    OpArg operator()(double v) const { return v; }
    OpArg operator()(bool v) const { return v; }
    OpArg operator()(OpId v) const { return v; }
    OpArg operator()(const std::vector<int64_t>& v) const { return v; }
    OpArg operator()(const std::vector<Node*>& v) const {
      std::vector<Tensor> out;
      for (Node* n : v) {
        const OpArg x = Value(n);
        if (!std::holds_alternative<Tensor>(x)) ThrowInvalid("list element %", n->name(), " is not a tensor");
        out.push_back(std::get<Tensor>(x));
      }
      return out;
    }
  };
  return std::visit(Visitor{env}, a);
}

std::string Where(const Node& n) {
  return absl::StrCat("while executing %", n.name(), " : ", OpcodeName(n.op()), "[target=", n.target_string(), "]");
}

}  // namespace

GraphModule::GraphModule(std::shared_ptr<nn::Module> root, std::unique_ptr<Graph> graph, std::string class_name)
    : root_(std::move(root)), graph_(std::move(graph)), class_name_(std::move(class_name)) {
  if (class_name_.empty()) class_name_ = "GraphModule";
  AdoptMembers(*root_);
  train(root_->is_training());
}

namespace {

// A parent module copied into a GraphModule's own tree: same type name, children and parameters.
class CopiedParent : public nn::Module {
 public:
  explicit CopiedParent(const nn::Module& original) : type_(original.type_name()) { AdoptMembers(original); }
  std::string type_name() const override { return type_; }

 private:
  std::string type_;
};

}  // namespace

absl::Status GraphModule::ReplaceSubmodule(const std::string& path, std::shared_ptr<nn::Module> module) {
  nn::Module* parent = this;
  std::string prefix;
  size_t start = 0;
  for (size_t dot = path.find('.'); dot != std::string::npos; dot = path.find('.', start)) {
    prefix = path.substr(0, dot);
    nn::Module* child = submodule(prefix);
    if (child == nullptr)
      return absl::NotFoundError(absl::StrCat("ReplaceSubmodule('", path, "'): no module '", prefix, "'"));
    if (std::find(owned_parents_.begin(), owned_parents_.end(), child) == owned_parents_.end()) {
      auto copy = std::make_shared<CopiedParent>(*child);
      owned_parents_.push_back(copy.get());
      QFX_RETURN_IF_ERROR(parent->SetSubmodule(path.substr(start, dot - start), copy));
      child = copy.get();
    }
    parent = child;
    start = dot + 1;
  }
  return parent->SetSubmodule(path.substr(start), std::move(module));
}

absl::Status GraphModule::DeleteUnusedSubmodules() {
  // Paths the graph needs: called modules (with everything inside them) and the owners of attributes,
  // each with its parents.
  std::set<std::string> called, needed = {""};
  auto add_with_parents = [&](std::string path) {
    while (!path.empty()) {
      needed.insert(path);
      const size_t dot = path.rfind('.');
      path = dot == std::string::npos ? "" : path.substr(0, dot);
    }
  };
  for (fx::Node* n : *graph_) {
    const std::string& p = n->target().path;
    if (n->op() == Opcode::kCallModule) {
      called.insert(p);
      add_with_parents(p);
    }
    if (n->op() == Opcode::kGetAttr)
      add_with_parents(p.rfind('.') == std::string::npos ? "" : p.substr(0, p.rfind('.')));
  }
  // Walk every path (no de-duplication: a module reachable twice is checked at each path).
  std::vector<std::string> doomed;
  std::vector<std::pair<std::string, nn::Module*>> stack = {{"", this}};
  while (!stack.empty()) {
    auto [path, m] = stack.back();
    stack.pop_back();
    if (called.count(path)) continue;  // a called module keeps its insides
    for (const auto& [name, child] : m->named_children()) {
      const std::string p = path.empty() ? name : path + "." + name;
      if (needed.count(p)) {
        stack.emplace_back(p, child.get());
      } else {
        doomed.push_back(p);
      }
    }
  }
  for (const std::string& path : doomed) QFX_RETURN_IF_ERROR(ReplaceSubmodule(path, nullptr));
  return absl::OkStatus();
}

std::vector<std::string> GraphModule::forward_arg_names() const {
  std::vector<std::string> names;
  for (Node* n : *graph_) {
    if (n->op() == Opcode::kPlaceholder) names.push_back(n->target().path);
  }
  return names;
}

Tensor GraphModule::forward(const Tensor& x) {
  const std::vector<std::string> names = forward_arg_names();
  if (names.size() != 1) ThrowInvalid(class_name_, ": forward takes ", names.size(), " arguments; pass ForwardArgs");
  return forward_args({{{names[0], x}}});
}

Tensor GraphModule::forward_args(const nn::ForwardArgs& args) {
  Interpreter interpreter(*this);
  return ValueOrThrow(interpreter.Run(args));
}

absl::StatusOr<Tensor> Interpreter::Run(const Tensor& x) {
  const std::vector<std::string> names = module_.forward_arg_names();
  if (names.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("the graph takes ", names.size(), " inputs; pass ForwardArgs"));
  }
  return Run(nn::ForwardArgs{{{names[0], x}}});
}

absl::StatusOr<Tensor> Interpreter::Run(const nn::ForwardArgs& inputs) {
  // Free each value after its last user has run.
  std::unordered_map<const Node*, std::vector<const Node*>> dies_after;
  std::unordered_map<const Node*, const Node*> last_use;
  for (Node* n : module_.graph()) {
    for (Node* in : n->inputs()) last_use[in] = n;
  }
  for (const auto& [value, user] : last_use) dies_after[user].push_back(value);

  std::unordered_map<const Node*, OpArg> env;
  for (Node* n : module_.graph()) {
    OpArg value;
    absl::Status s = CatchErrors([&] { value = Execute(*n, inputs, env); });
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat(Where(*n), ": ", s.message()));
    if (const Tensor* t = std::get_if<Tensor>(&value)) QFX_RETURN_IF_ERROR(CheckSpecialized(*n, *t));
    OnValue(*n, value);
    if (n->op() == Opcode::kOutput) {
      if (!std::holds_alternative<Tensor>(value))
        return absl::InvalidArgumentError("the graph's output is not a tensor");
      return std::get<Tensor>(value);
    }
    env[n] = std::move(value);
    for (const Node* dead : dies_after[n]) env.erase(dead);
  }
  return absl::InvalidArgumentError("the graph has no output node");
}

OpArg Interpreter::Execute(const Node& n, const nn::ForwardArgs& inputs,
                           const std::unordered_map<const Node*, OpArg>& env) {
  std::vector<OpArg> args;
  for (const Argument& a : n.args()) args.push_back(Resolve(a, env));
  switch (n.op()) {
    case Opcode::kPlaceholder:
      return Placeholder(n, inputs);
    case Opcode::kGetAttr:
      return GetAttr(n);
    case Opcode::kCallFunction:
      return CallFunction(n, args);
    case Opcode::kCallMethod:
      return CallMethod(n, args);
    case Opcode::kCallModule:
      return CallModule(n, args);
    case Opcode::kOutput:
      return args.at(0);
  }
  throw Error(absl::InternalError("illegal opcode"));
}

OpArg Interpreter::Placeholder(const Node& n, const nn::ForwardArgs& inputs) { return inputs.get(n.target().path); }

Tensor Interpreter::GetAttr(const Node& n) {
  Tensor t = module_.tensor_at(n.target().path);
  if (!t.defined()) ThrowInvalid("attribute '", n.target().path, "' does not exist");
  return t;
}

Tensor Interpreter::CallFunction(const Node& n, const std::vector<OpArg>& args) {
  const OpId op = n.target().op;
  if (!nn::IdentityInEval(op)) return nn::RunOp(op, args);
  std::vector<OpArg> in_mode = args;  // stochastic_depth, a functional dropout: run in the module's mode
  nn::FollowModuleMode(op, module_.is_training(), in_mode);
  return nn::RunOp(op, in_mode);
}

Tensor Interpreter::CallMethod(const Node& n, const std::vector<OpArg>& args) { return nn::RunOp(n.target().op, args); }

Tensor Interpreter::CallModule(const Node& n, const std::vector<OpArg>& args) {
  nn::Module* m = module_.submodule(n.target().path);
  if (m == nullptr) ThrowInvalid("module '", n.target().path, "' does not exist");
  if (args.size() == 1 && std::holds_alternative<Tensor>(args[0])) return (*m)(std::get<Tensor>(args[0]));
  const std::vector<std::string> names = m->forward_arg_names();
  if (names.size() != args.size()) {
    ThrowInvalid("module '", n.target().path, "' takes ", names.size(), " arguments, got ", args.size());
  }
  nn::ForwardArgs fa;
  for (size_t i = 0; i < args.size(); ++i) fa.values.emplace_back(names[i], args[i]);
  return (*m)(fa);
}

namespace {

class ShapeRecorder : public Interpreter {
 public:
  using Interpreter::Interpreter;

 protected:
  void OnValue(Node& n, const OpArg& value) override {
    if (const Tensor* t = std::get_if<Tensor>(&value); t && t->defined())
      n.meta.tensor = TensorMeta{t->shape(), t->dtype()};
  }
};

}  // namespace

absl::Status PropagateShapes(GraphModule& module, const std::vector<Shape>& shapes) {
  const std::vector<std::string> names = module.forward_arg_names();
  if (names.size() != shapes.size()) {
    return absl::InvalidArgumentError(absl::StrCat("PropagateShapes: the graph takes ", names.size(), " inputs but ",
                                                   shapes.size(), " shapes were given"));
  }
  nn::ForwardArgs inputs;
  for (size_t i = 0; i < names.size(); ++i) {
    Tensor t;
    QFX_RETURN_IF_ERROR(CatchErrors([&] { t = Tensor::Zeros(shapes[i]); }));
    inputs.values.emplace_back(names[i], t);
  }
  const bool training = module.is_training();
  module.eval();  // zeros must not move batch-norm statistics
  ShapeRecorder recorder(module);
  const absl::Status s = recorder.Run(inputs).status();
  module.train(training);
  return s;
}

}  // namespace fx
}  // namespace qfx
