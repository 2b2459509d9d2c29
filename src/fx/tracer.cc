// qfx fx: the symbolic tracer (see include/qfx/fx/tracer.h). It is both the core TraceHook (ops on
// proxies) and the nn ModuleTraceHook (module calls on proxies) while a trace runs on this thread.
#include "qfx/fx/tracer.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "qfx/nn/ops.h"

namespace qfx {
namespace fx {
namespace {

class Tracer;

struct ProxyHandle {
  Node* node;
  const Tracer* tracer;  // proxies from another (finished) trace are rejected, never dereferenced
  Tensor value;          // the example value when specialising, else undefined
};

// Runs `f` with no trace hooks: the example values of a specialised trace are computed, not recorded.
template <typename F>
Tensor Untraced(F&& f) {
  ScopedTraceHook no_op_hook(nullptr);
  nn::ScopedModuleTraceHook no_module_hook(nullptr);
  return f();
}

class Tracer : public TraceHook, public nn::ModuleTraceHook {
 public:
  Tracer(nn::Module& root, const TracerOptions& options, Graph& graph) : root_(root), options_(options), graph_(graph) {
    for (const auto& [path, m] : root.named_modules()) module_paths_[m] = path;
    for (const auto& [path, t] : root.named_parameters()) tensor_paths_[t.raw_data()] = path;
    for (const auto& [path, t] : root.named_buffers()) tensor_paths_[t.raw_data()] = path;
    scope_.push_back({"", root.type_name()});
  }

  Tensor Proxy(Node* n, Tensor value = Tensor()) {
    if (!value.defined()) return Tensor::Proxy(std::make_shared<ProxyHandle>(ProxyHandle{n, this, Tensor()}));
    const Shape shape = value.shape();
    const DType dtype = value.dtype();
    return Tensor::Proxy(std::make_shared<ProxyHandle>(ProxyHandle{n, this, std::move(value)}), shape, dtype);
  }
  bool specializing() const { return !options_.example_inputs.empty(); }

  // Traces root.forward_args and adds the output node.
  void Run() {
    nn::ForwardArgs args;
    size_t example = 0;
    for (const std::string& name : root_.forward_arg_names()) {
      auto concrete = std::find_if(options_.concrete_args.begin(), options_.concrete_args.end(),
                                   [&](const auto& e) { return e.first == name; });
      if (concrete != options_.concrete_args.end()) {
        args.values.emplace_back(name, concrete->second);
      } else {
        args.values.emplace_back(name, Proxy(graph_.Placeholder(name), ExampleInput(example++, name)));
      }
    }
    if (specializing() && example != options_.example_inputs.size()) {
      ThrowInvalid("example_inputs: ", options_.example_inputs.size(), " values for ", example, " inputs of ",
                   root_.type_name(), ".forward");
    }
    for (const auto& [name, value] : options_.concrete_args) {
      if (!HasName(root_.forward_arg_names(), name)) {
        ThrowInvalid("concrete_args: '", name, "' is not an argument of ", root_.type_name(), ".forward");
      }
    }
    ScopedTraceHook op_hook(this);
    nn::ScopedModuleTraceHook module_hook(this);
    nn::RunningScope running(&root_);
    const Tensor result = root_.forward_args(args);
    graph_.Output(NodeOf(result, "the value forward returns"));
  }

  Tensor RecordOp(OpId op, std::vector<OpArg> args) override {
    std::vector<Argument> graph_args;
    for (const OpArg& a : args) graph_args.push_back(ToArgument(a));
    const nn::OpSchema& schema = nn::GetOpSchema(op);
    Node* n = schema.is_method ? graph_.CallMethod(op, std::move(graph_args))
                               : graph_.CallFunction(op, std::move(graph_args));
    SetScope(n);
    if (!specializing()) return Proxy(n);
    std::vector<OpArg> values;
    for (const OpArg& a : args) values.push_back(ExampleValue(a));
    return Proxy(n, Example(n, [&] { return nn::RunOp(op, values); }));
  }

  bool Tracks(const Tensor& t) const override {
    return !t.is_proxy() && t.defined() && tensor_paths_.count(t.raw_data()) > 0;
  }

  void ShapeRead(const void* proxy_handle, int64_t what) override {
    const auto* handle = static_cast<const ProxyHandle*>(proxy_handle);
    if (handle->tracer != this)
      Fail("forward read the shape of a traced value from another trace", "do not keep traced values");
    const Shape& shape = handle->value.shape();
    std::optional<std::vector<int64_t>>& sizes = handle->node->meta.specialized;
    if (!sizes) sizes = std::vector<int64_t>(shape.size(), -1);
    for (size_t d = 0; d < shape.size(); ++d) {
      if (what == -1 || static_cast<int64_t>(d) == what) (*sizes)[d] = shape[d];
    }
  }

  Tensor CallModule(nn::Module& module, const nn::ForwardArgs& args) override {
    auto it = module_paths_.find(&module);
    if (it == module_paths_.end()) {
      Fail(absl::StrCat("a ", module.type_name(), " module that is not registered under the traced root was called"),
           "register it with register_module so it has a path");
    }
    const std::string& path = it->second;
    if (IsLeaf(module, path)) {
      std::vector<Argument> graph_args;
      for (const auto& [name, v] : args.values) graph_args.push_back(ToArgument(v));
      Node* n = graph_.CallModule(path, std::move(graph_args));
      SetScope(n);
      if (!specializing()) return Proxy(n);
      nn::ForwardArgs values;
      for (const auto& [name, v] : args.values) values.values.emplace_back(name, ExampleValue(v));
      return Proxy(n, Example(n, [&] { return module(values); }));
    }
    scope_.push_back({path, module.type_name()});
    Tensor out = module.forward_args(args);
    scope_.pop_back();
    return out;
  }

  [[noreturn]] void ConcreteValueRequired(const std::string& what, Needed needed) override {
    Fail(absl::StrCat("forward needs ", what, ", which is not known while tracing"), Fix(needed));
  }

 private:
  void SetScope(Node* n) const {
    if (scope_.size() > 1) n->meta.scope = ModuleScope{scope_.back().first, scope_.back().second};
  }

  static bool HasName(const std::vector<std::string>& names, const std::string& name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  }

  bool IsLeaf(const nn::Module& m, const std::string& path) const {
    if (options_.is_leaf) return options_.is_leaf(m, path);
    return m.is_leaf() || HasName(options_.leaf_modules, path) || HasName(options_.leaf_modules, m.type_name());
  }

  // What to do when a concrete value is needed: concrete_args fixes a forward argument of the root, never
  // a tensor's shape or data; a leaf module hides either from the trace.
  std::string Fix(Needed needed) const {
    const std::string& path = scope_.back().first;
    const std::string leaf =
        path.empty() ? "move the code that needs it into a submodule and make that a leaf (TracerOptions::leaf_modules)"
                     : absl::StrCat("make '", path, "' a leaf module (TracerOptions::leaf_modules = {\"", path,
                                    "\"}) so it is called as a whole");
    if (needed == Needed::kShape) {
      return absl::StrCat(
          "trace with example inputs (TracerOptions::example_inputs) to specialise the graph on "
          "their shapes, or ",
          leaf);
    }
    if (needed == Needed::kTensorValue) {
      return absl::StrCat(leaf, " (concrete_args cannot fix a value computed from a tensor)");
    }
    if (path.empty())
      return absl::StrCat("pass the value as a concrete argument (TracerOptions::concrete_args), or ", leaf);
    return absl::StrCat(leaf,
                        ", or, if the value comes from an argument of the root's forward, pass that as a "
                        "concrete argument (TracerOptions::concrete_args)");
  }

  [[noreturn]] void Fail(const std::string& problem, const std::string& fix) const {
    const auto& [path, type] = scope_.back();
    const std::string where =
        path.empty() ? absl::StrCat("the root module (", type, ")") : absl::StrCat("module '", path, "' (", type, ")");
    throw TraceError(absl::StrCat("TraceError in ", where, ": ", problem, ". Fix: ", fix, "."));
  }

  Tensor ExampleInput(size_t i, const std::string& name) const {
    if (!specializing() || i >= options_.example_inputs.size()) return Tensor();
    const Tensor& t = options_.example_inputs[i];
    if (!t.defined() || t.is_proxy()) ThrowInvalid("example_inputs: the value for '", name, "' is not a tensor");
    return t;
  }

  // A's example value: proxies replaced by theirs (a specialised trace's proxies all have one).
  OpArg ExampleValue(const OpArg& a) const {
    auto of = [this](const Tensor& t) {
      if (!t.is_proxy()) return t;
      const auto* handle = static_cast<const ProxyHandle*>(t.proxy_handle());
      if (handle->tracer != this) Fail("an argument is a traced value from another trace", "do not keep traced values");
      return handle->value;
    };
    if (const Tensor* t = std::get_if<Tensor>(&a)) return of(*t);
    if (const auto* list = std::get_if<std::vector<Tensor>>(&a)) {
      std::vector<Tensor> out;
      for (const Tensor& t : *list) out.push_back(of(t));
      return out;
    }
    return a;
  }

  // Node n's example value from `compute` (run untraced); an error there names the node.
  template <typename F>
  Tensor Example(const Node* n, F&& compute) const {
    Tensor value;
    const absl::Status s = CatchErrors([&] { value = Untraced(compute); });
    if (!s.ok()) {
      Fail(absl::StrCat("%", n->name(), " failed on the example inputs: ", s.message()),
           "give example inputs of the shape the model takes");
    }
    if (!value.defined()) Fail(absl::StrCat("%", n->name(), " gave no value on the example inputs"), "return a tensor");
    return value;
  }

  Node* NodeOf(const Tensor& t, const std::string& what) {
    if (t.is_proxy()) {
      const auto* handle = static_cast<const ProxyHandle*>(t.proxy_handle());
      if (handle->tracer != this)
        Fail(absl::StrCat(what, " is a traced value from another trace"), "do not keep traced values");
      return handle->node;
    }
    if (!t.defined()) Fail(absl::StrCat(what, " is an undefined tensor"), "return or pass a defined tensor");
    auto it = tensor_paths_.find(t.raw_data());
    if (it == tensor_paths_.end()) {
      Fail(absl::StrCat(what, " is a tensor that forward created and that is not a parameter or buffer"),
           "register it with register_buffer in the constructor");
    }
    auto cached = get_attr_.find(it->second);
    if (cached != get_attr_.end()) return cached->second;
    return get_attr_[it->second] = graph_.GetAttr(it->second);
  }

  Argument ToArgument(const OpArg& a) {
    struct Visitor {
      Tracer& t;
      Argument operator()(std::monostate) const { return std::monostate(); }
      Argument operator()(const Tensor& x) const { return t.NodeOf(x, "an argument"); }
      Argument operator()(int64_t v) const { return v; }
      Argument operator()(double v) const { return v; }
      Argument operator()(bool v) const { return v; }
      Argument operator()(OpId v) const { return v; }
      Argument operator()(const std::vector<int64_t>& v) const { return v; }
      Argument operator()(const std::vector<Tensor>& v) const {
        std::vector<Node*> nodes;
        for (const Tensor& x : v) nodes.push_back(t.NodeOf(x, "a list element"));
        return nodes;
      }
    };
    return std::visit(Visitor{*this}, a);
  }

  nn::Module& root_;
  const TracerOptions& options_;
  Graph& graph_;
  std::unordered_map<const nn::Module*, std::string> module_paths_;
  std::unordered_map<const void*, std::string> tensor_paths_;
  std::map<std::string, Node*> get_attr_;
  std::vector<std::pair<std::string, std::string>> scope_;  // (path, type) of modules being traced through
};

}  // namespace

absl::StatusOr<std::shared_ptr<GraphModule>> SymbolicTrace(std::shared_ptr<nn::Module> root,
                                                           const TracerOptions& options) {
  if (!root) return absl::InvalidArgumentError("SymbolicTrace: root module is null");
  auto graph = std::make_unique<Graph>();
  // A specialised trace runs forward on the example inputs: keep the buffers it may change.
  std::vector<std::pair<Tensor, Tensor>> buffers;
  if (!options.example_inputs.empty()) {
    for (const auto& [path, t] : root->named_buffers()) buffers.emplace_back(t, t.Clone());
  }
  const absl::Status traced = CatchErrors([&] { Tracer(*root, options, *graph).Run(); });
  for (const auto& [live, saved] : buffers) live.CopyFrom(saved);
  QFX_RETURN_IF_ERROR(traced);
  auto gm = std::make_shared<GraphModule>(root, std::move(graph), root->type_name());
  QFX_RETURN_IF_ERROR(gm->Lint());
  return gm;
}

}  // namespace fx
}  // namespace qfx
