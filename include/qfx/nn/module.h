// qfx nn: Module, the base of every model, like torch.nn.Module.
//
// A module registers named submodules, parameters and buffers (the names PyTorch uses, so a
// state_dict exported from PyTorch loads as it is). Parameters and buffers are Tensor handles whose
// storage is updated in place (load_state_dict, batch-norm statistics, optimisers): never rebind them.
// forward() takes and returns one Tensor (forward_args takes named arguments); call a module with
// operator(), which the symbolic tracer hooks (ModuleTraceHook) to record calls on traced values.
// Errors inside forward throw qfx::Error; RunModule turns them into a Status.
#pragma once

#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qfx/core/tensor.h"
#include "qfx/core/trace.h"

namespace qfx {
namespace nn {

// Ordered (name, tensor) pairs: what state_dict() returns and load_state_dict() takes.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module;

// Named arguments of a forward call, for modules whose forward takes more than one tensor or takes
// non-tensor options (which tracing can specialise with TracerOptions::concrete_args). Accessors throw
// naming the argument when it is missing or of another type; flag/integer/real on a traced value throw
// TraceError.
struct ForwardArgs {
  std::vector<std::pair<std::string, OpArg>> values;

  const OpArg& get(const std::string& name) const;
  Tensor tensor(const std::string& name) const;
  bool flag(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  double real(const std::string& name) const;
};

// Forward hooks (PyTorch's register_forward_pre_hook / register_forward_hook): a pre-hook may rewrite the
// arguments, a hook the output. The eager quantization flow observes module outputs with them.
using ForwardPreHook = std::function<void(Module& module, ForwardArgs& args)>;
using ForwardHook = std::function<void(Module& module, const ForwardArgs& args, Tensor& output)>;
struct ModuleHooks {
  std::vector<std::pair<int64_t, ForwardPreHook>> pre;  // (handle, hook), in registration order
  std::vector<std::pair<int64_t, ForwardHook>> post;
  bool empty() const { return pre.empty() && post.empty(); }
};

// State another layer attaches to a module (the eager flow's qconfig); nn itself never reads it.
struct ModuleExtension {
  virtual ~ModuleExtension() = default;
};

// What the tracer (src/fx) installs to see module calls on traced values.
class ModuleTraceHook {
 public:
  virtual ~ModuleTraceHook() = default;
  virtual Tensor CallModule(Module& module, const ForwardArgs& args) = 0;
};
ModuleTraceHook* ActiveModuleTraceHook();
class ScopedModuleTraceHook {
 public:
  explicit ScopedModuleTraceHook(ModuleTraceHook* hook);
  ~ScopedModuleTraceHook();
  ScopedModuleTraceHook(const ScopedModuleTraceHook&) = delete;
  ScopedModuleTraceHook& operator=(const ScopedModuleTraceHook&) = delete;

 private:
  ModuleTraceHook* previous_;
};

// Marks `module`'s forward as running on this thread while in scope (operator() does this; the tracer,
// which calls the root's forward_args directly, does it too), so that calls of swapped-out children made
// from that forward follow their redirect (Module::SwapSubmodule).
class RunningScope {
 public:
  explicit RunningScope(const Module* module);
  ~RunningScope();
  RunningScope(const RunningScope&) = delete;
  RunningScope& operator=(const RunningScope&) = delete;

 private:
  const Module* previous_;
};

class Module {
 public:
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The PyTorch class name ("Conv2d", "ResNet", ...).
  virtual std::string type_name() const = 0;
  // Leaf modules are recorded as one call_module node by the tracer; others are traced through.
  // The standard modules (except containers) are leaves, as in torch.fx.
  virtual bool is_leaf() const { return false; }

  // Default: throws kUnimplemented (containers such as ModuleList have no forward).
  virtual Tensor forward(const Tensor& x);
  // The general form. Default: forward(args.tensor(first argument name)).
  virtual Tensor forward_args(const ForwardArgs& args);
  // Names of forward's arguments, the graph's placeholders when traced. Default: {"x"}.
  virtual std::vector<std::string> forward_arg_names() const { return {"x"}; }

  // Calls forward (or records the call while tracing).
  Tensor operator()(const Tensor& x);
  Tensor operator()(const ForwardArgs& args);

  // Submodules in registration order, recursively, each once, self first with name "".
  std::vector<std::pair<std::string, Module*>> named_modules(const std::string& prefix = "");
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return children_; }
  NamedTensors named_parameters(const std::string& prefix = "") const;
  NamedTensors named_buffers(const std::string& prefix = "") const;  // persistent buffers only
  // Parameters then persistent buffers of each module, parents before children, as PyTorch orders them.
  NamedTensors state_dict(const std::string& prefix = "") const;
  // Copies every tensor of `dict` into the matching parameter or buffer. Validates everything first
  // and loads nothing on error: the error lists every missing key, unexpected key (both only when
  // strict) and every shape or dtype mismatch (always).
  absl::Status load_state_dict(const NamedTensors& dict, bool strict = true);

  // The submodule at a dotted path ("layer1.0.conv1"), or nullptr.
  Module* submodule(const std::string& path);
  // The same, as the owning pointer its parent holds (nullptr for "" or a missing path).
  std::shared_ptr<Module> shared_submodule(const std::string& path);
  // Own parameter or buffer by name, or an undefined tensor.
  Tensor tensor(const std::string& name) const;
  // Puts `module` at a dotted path, replacing the submodule there or adding a new one under an existing
  // parent. Fails naming the path when the parent does not exist.
  // A null `module` removes the submodule at `path`.
  absl::Status SetSubmodule(const std::string& path, std::shared_ptr<Module> module);
  // The parameter or buffer at a dotted path ("layer1.0.bn1.running_mean"), or an undefined tensor.
  Tensor tensor_at(const std::string& path);

  // Swaps the submodule at `path` for `module` in the tree (SetSubmodule) and redirects the old module's
  // calls made from its parent's forward to `module`: user classes call children through the pointers
  // they keep in members, which still hold the old object. Calls from other callers (a fused module that
  // holds the old module as its part) still run the old module. Fails when there is no module at `path`.
  absl::Status SwapSubmodule(const std::string& path, std::shared_ptr<Module> module);
  // Where calls from `parent` go instead of this module (null when not swapped). The tree owns the module
  // swapped in; the old one only refers to it (an owning pointer made a cycle whenever the new module
  // holds the old one as a part, as fused modules do, and leaked the model). A later swap at the same path
  // redirects every module swapped out there before.
  Module* redirect_target() const { return redirect_.lock().get(); }

  // Hooks run around every call (operator()), in registration order; handles are unique per process.
  int64_t RegisterForwardPreHook(ForwardPreHook hook);
  int64_t RegisterForwardHook(ForwardHook hook);
  bool RemoveHook(int64_t handle);  // false when no hook has this handle
  const ModuleHooks& hooks() const { return hooks_; }

  std::shared_ptr<ModuleExtension> extension() const { return extension_; }
  void set_extension(std::shared_ptr<ModuleExtension> e) { extension_ = std::move(e); }

  // Called on every module of the tree after load_state_dict copied new values in (a module that packs
  // its weights packs them again). Default: nothing.
  virtual void StateLoaded() {}

  // Sets training mode here and in every submodule (virtual: QAT modules keep frozen batch norms frozen).
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

 protected:
  Module() = default;

  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    AddChild(name, module);
    return module;
  }
  Tensor register_parameter(const std::string& name, Tensor t);
  Tensor register_buffer(const std::string& name, Tensor t, bool persistent = true);
  // Registers other's children, parameters and buffers as this module's own (shared, not copied).
  void AdoptMembers(const Module& other);

 private:
  struct Slot {
    std::string name;
    Tensor tensor;
    bool persistent;
  };
  void AddChild(const std::string& name, std::shared_ptr<Module> module);
  void CheckNewName(const std::string& name) const;
  void CollectModules(const std::string& prefix, std::vector<std::pair<std::string, Module*>>& out);
  Tensor Call(const ForwardArgs& args);  // hooks, then the trace hook or forward_args
  bool Redirected() const;               // a call from the parent that swapped this module out

  ModuleHooks hooks_;
  std::shared_ptr<ModuleExtension> extension_;
  const Module* redirect_parent_ = nullptr;  // identity only
  std::weak_ptr<Module> redirect_;
  // On a parent: the children swapped out of it, by name (SwapSubmodule keeps their redirects current).
  std::vector<std::pair<std::string, std::weak_ptr<Module>>> swapped_out_;

  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::vector<Slot> params_, buffers_;
  bool training_ = true;
};

// Runs module(x) and turns a thrown qfx::Error into a Status.
absl::StatusOr<Tensor> RunModule(Module& module, const Tensor& x);
absl::StatusOr<Tensor> RunModule(Module& module, const ForwardArgs& args);

// The generator that module constructors and the zoo draw initial weights from.
std::mt19937_64& Generator();
void ManualSeed(uint64_t seed);
// In-place initialisers (PyTorch's torch.nn.init, drawn from Generator()).
void UniformInit(const Tensor& t, float lo, float hi);
void NormalInit(const Tensor& t, float mean, float stddev);

}  // namespace nn
}  // namespace qfx
