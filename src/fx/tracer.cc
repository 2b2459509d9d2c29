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
};

class Tracer : public TraceHook, public nn::ModuleTraceHook {
 public:
  Tracer(nn::Module& root, const TracerOptions& options, Graph& graph) : root_(root), options_(options), graph_(graph) {
    for (const auto& [path, m] : root.named_modules()) module_paths_[m] = path;
    for (const auto& [path, t] : root.named_parameters()) tensor_paths_[t.raw_data()] = path;
    for (const auto& [path, t] : root.named_buffers()) tensor_paths_[t.raw_data()] = path;
    scope_.push_back({"", root.type_name()});
  }

  Tensor Proxy(Node* n) { return Tensor::Proxy(std::make_shared<ProxyHandle>(ProxyHandle{n, this})); }

  // Traces root.forward_args and adds the output node.
  void Run() {
    nn::ForwardArgs args;
    for (const std::string& name : root_.forward_arg_names()) {
      auto concrete = std::find_if(options_.concrete_args.begin(), options_.concrete_args.end(),
                                   [&](const auto& e) { return e.first == name; });
      if (concrete != options_.concrete_args.end()) {
        args.values.emplace_back(name, concrete->second);
      } else {
        args.values.emplace_back(name, Proxy(graph_.Placeholder(name)));
      }
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
    return Proxy(n);
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
      return Proxy(n);
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
  QFX_RETURN_IF_ERROR(CatchErrors([&] { Tracer(*root, options, *graph).Run(); }));
  auto gm = std::make_shared<GraphModule>(root, std::move(graph), root->type_name());
  QFX_RETURN_IF_ERROR(gm->Lint());
  return gm;
}

}  // namespace fx
}  // namespace qfx
