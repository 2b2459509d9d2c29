// qfx nn: Module registration, traversal and state_dict loading (see include/qfx/nn/module.h).
#include "qfx/nn/module.h"

#include <atomic>
#include <map>
#include <set>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace qfx {
namespace nn {

namespace {
thread_local ModuleTraceHook* t_module_hook = nullptr;
// The module whose forward is running on this thread (the caller of a nested module call), or null.
thread_local const Module* t_running = nullptr;
std::atomic<int64_t> g_next_hook{1};

std::string ArgNames(const ForwardArgs& args) {
  std::vector<std::string> names;
  for (const auto& [name, v] : args.values) names.push_back(name);
  return absl::StrJoin(names, ", ");
}
}  // namespace

RunningScope::RunningScope(const Module* module) : previous_(t_running) { t_running = module; }
RunningScope::~RunningScope() { t_running = previous_; }

ModuleTraceHook* ActiveModuleTraceHook() { return t_module_hook; }
ScopedModuleTraceHook::ScopedModuleTraceHook(ModuleTraceHook* hook) : previous_(t_module_hook) { t_module_hook = hook; }
ScopedModuleTraceHook::~ScopedModuleTraceHook() { t_module_hook = previous_; }

const OpArg& ForwardArgs::get(const std::string& name) const {
  for (const auto& [n, v] : values) {
    if (n == name) return v;
  }
  ThrowInvalid("forward argument '", name, "' was not given (given: ", ArgNames(*this), ")");
}

Tensor ForwardArgs::tensor(const std::string& name) const {
  const OpArg& v = get(name);
  if (const Tensor* t = std::get_if<Tensor>(&v)) return *t;
  ThrowInvalid("forward argument '", name, "' must be a tensor");
}

template <typename T>
static T Scalar(const ForwardArgs& args, const std::string& name, const char* kind) {
  const OpArg& v = args.get(name);
  if (const Tensor* t = std::get_if<Tensor>(&v); t && t->is_proxy()) {
    if (TraceHook* hook = ActiveTraceHook())
      hook->ConcreteValueRequired(absl::StrCat("the value of argument '", name, "'"), TraceHook::Needed::kArgument);
  }
  if (const T* x = std::get_if<T>(&v)) return *x;
  ThrowInvalid("forward argument '", name, "' must be ", kind);
}

bool ForwardArgs::flag(const std::string& name) const { return Scalar<bool>(*this, name, "a bool"); }
int64_t ForwardArgs::integer(const std::string& name) const { return Scalar<int64_t>(*this, name, "an integer"); }
double ForwardArgs::real(const std::string& name) const { return Scalar<double>(*this, name, "a number"); }

Tensor Module::forward(const Tensor&) {
  throw Error(absl::UnimplementedError(absl::StrCat(type_name(), " has no forward(); call its submodules instead")));
}

Tensor Module::forward_args(const ForwardArgs& args) {
  if (args.values.size() != 1) {
    ThrowInvalid(type_name(), ".forward takes one argument, got ", args.values.size(), " (", ArgNames(args), ")");
  }
  return forward(args.tensor(args.values[0].first));
}

bool Module::Redirected() const { return t_running == redirect_parent_ && !redirect_.expired(); }

Tensor Module::operator()(const Tensor& x) {
  if (Redirected()) return (*redirect_.lock())(x);
  if (hooks_.empty()) {
    RunningScope running(this);
    if (x.is_proxy() && t_module_hook != nullptr)
      return t_module_hook->CallModule(*this, {{{forward_arg_names()[0], x}}});
    return forward(x);
  }
  return Call({{{forward_arg_names()[0], x}}});
}

Tensor Module::operator()(const ForwardArgs& args) {
  if (Redirected()) return (*redirect_.lock())(args);
  return Call(args);
}

Tensor Module::Call(const ForwardArgs& given) {
  ForwardArgs rewritten;
  const ForwardArgs* args = &given;
  if (!hooks_.pre.empty()) {
    rewritten = given;
    for (auto& [handle, hook] : hooks_.pre) hook(*this, rewritten);
    args = &rewritten;
  }
  Tensor out;
  {
    RunningScope running(this);
    bool traced = false;
    if (t_module_hook != nullptr) {
      for (const auto& [name, v] : args->values) traced = traced || AnyProxy({v});
    }
    out = traced ? t_module_hook->CallModule(*this, *args) : forward_args(*args);
  }
  // Post-hooks run in the caller's scope: a hook that calls a submodule (an observer) is not a redirect.
  for (auto& [handle, hook] : hooks_.post) hook(*this, *args, out);
  return out;
}

int64_t Module::RegisterForwardPreHook(ForwardPreHook hook) {
  const int64_t handle = g_next_hook++;
  hooks_.pre.emplace_back(handle, std::move(hook));
  return handle;
}

int64_t Module::RegisterForwardHook(ForwardHook hook) {
  const int64_t handle = g_next_hook++;
  hooks_.post.emplace_back(handle, std::move(hook));
  return handle;
}

bool Module::RemoveHook(int64_t handle) {
  auto drop = [&](auto& v) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (it->first == handle) {
        v.erase(it);
        return true;
      }
    }
    return false;
  };
  return drop(hooks_.pre) || drop(hooks_.post);
}

void Module::CheckNewName(const std::string& name) const {
  if (name.empty() || name.find('.') != std::string::npos) {
    ThrowInvalid(type_name(), ": attribute name '", name, "' must be non-empty and contain no '.'");
  }
  auto taken = [&](const auto& v) {
    for (const auto& e : v) {
      if constexpr (std::is_same_v<std::decay_t<decltype(e)>, Slot>) {
        if (e.name == name) return true;
      } else {
        if (e.first == name) return true;
      }
    }
    return false;
  };
  if (taken(children_) || taken(params_) || taken(buffers_)) {
    ThrowInvalid(type_name(), ": attribute '", name, "' is already registered");
  }
}

void Module::AddChild(const std::string& name, std::shared_ptr<Module> module) {
  CheckNewName(name);
  if (!module) ThrowInvalid(type_name(), ": submodule '", name, "' is null");
  children_.emplace_back(name, std::move(module));
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
  CheckNewName(name);
  params_.push_back({name, t, true});
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t, bool persistent) {
  CheckNewName(name);
  buffers_.push_back({name, t, persistent});
  return t;
}

void Module::CollectModules(const std::string& prefix, std::vector<std::pair<std::string, Module*>>& out) {
  for (const auto& e : out) {
    if (e.second == this) return;  // a module reachable twice is listed once, like PyTorch
  }
  out.emplace_back(prefix, this);
  for (auto& [name, child] : children_) {
    child->CollectModules(prefix.empty() ? name : prefix + "." + name, out);
  }
}

std::vector<std::pair<std::string, Module*>> Module::named_modules(const std::string& prefix) {
  std::vector<std::pair<std::string, Module*>> out;
  CollectModules(prefix, out);
  return out;
}

static std::string Join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

NamedTensors Module::named_parameters(const std::string& prefix) const {
  NamedTensors out;
  for (const Slot& s : params_) out.emplace_back(Join(prefix, s.name), s.tensor);
  for (const auto& [name, child] : children_) {
    for (auto& e : child->named_parameters(Join(prefix, name))) out.push_back(std::move(e));
  }
  return out;
}

NamedTensors Module::named_buffers(const std::string& prefix) const {
  NamedTensors out;
  for (const Slot& s : buffers_) {
    if (s.persistent) out.emplace_back(Join(prefix, s.name), s.tensor);
  }
  for (const auto& [name, child] : children_) {
    for (auto& e : child->named_buffers(Join(prefix, name))) out.push_back(std::move(e));
  }
  return out;
}

NamedTensors Module::state_dict(const std::string& prefix) const {
  NamedTensors out;
  for (const Slot& s : params_) out.emplace_back(Join(prefix, s.name), s.tensor);
  for (const Slot& s : buffers_) {
    if (s.persistent) out.emplace_back(Join(prefix, s.name), s.tensor);
  }
  for (const auto& [name, child] : children_) {
    for (auto& e : child->state_dict(Join(prefix, name))) out.push_back(std::move(e));
  }
  return out;
}

absl::Status Module::load_state_dict(const NamedTensors& dict, bool strict) {
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, t] : dict) given[name] = &t;
  std::vector<std::string> missing, unexpected, mismatched;
  std::set<std::string> own;
  const NamedTensors mine = state_dict();
  for (const auto& [name, t] : mine) {
    own.insert(name);
    auto it = given.find(name);
    if (it == given.end()) {
      missing.push_back(name);
    } else if (it->second->shape() != t.shape() || it->second->dtype() != t.dtype()) {
      mismatched.push_back(absl::StrCat(name, ": checkpoint ", it->second->ToString(), " vs model ", t.ToString()));
    }
  }
  for (const auto& [name, t] : dict) {
    if (!own.count(name)) unexpected.push_back(name);
  }
  std::vector<std::string> problems;
  if (strict && !missing.empty()) {
    problems.push_back(absl::StrCat(missing.size(), " missing key(s): ", absl::StrJoin(missing, ", ")));
  }
  if (strict && !unexpected.empty()) {
    problems.push_back(absl::StrCat(unexpected.size(), " unexpected key(s): ", absl::StrJoin(unexpected, ", ")));
  }
  if (!mismatched.empty()) {
    problems.push_back(absl::StrCat(mismatched.size(), " shape/dtype mismatch(es): ", absl::StrJoin(mismatched, "; ")));
  }
  if (!problems.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("load_state_dict into ", type_name(), ": ", absl::StrJoin(problems, "; "),
                     strict ? "" : " (strict=false skips only missing and unexpected keys)"));
  }
  for (const auto& [name, t] : mine) {
    auto it = given.find(name);
    if (it != given.end()) t.CopyFrom(*it->second);
  }
  for (const auto& [path, m] : named_modules()) m->StateLoaded();
  return absl::OkStatus();
}

Module* Module::submodule(const std::string& path) {
  if (path.empty()) return this;
  Module* m = this;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    Module* next = nullptr;
    for (auto& [name, child] : m->children_) {
      if (name == part) next = child.get();
    }
    if (next == nullptr) return nullptr;
    m = next;
  }
  return m;
}

std::shared_ptr<Module> Module::shared_submodule(const std::string& path) {
  const size_t dot = path.rfind('.');
  Module* parent = dot == std::string::npos ? this : submodule(path.substr(0, dot));
  if (parent == nullptr || path.empty()) return nullptr;
  const std::string name = dot == std::string::npos ? path : path.substr(dot + 1);
  for (auto& [n, child] : parent->children_) {
    if (n == name) return child;
  }
  return nullptr;
}

Tensor Module::tensor_at(const std::string& path) {
  const size_t dot = path.rfind('.');
  Module* owner = dot == std::string::npos ? this : submodule(path.substr(0, dot));
  return owner ? owner->tensor(dot == std::string::npos ? path : path.substr(dot + 1)) : Tensor();
}

absl::Status Module::SetSubmodule(const std::string& path, std::shared_ptr<Module> module) {
  const size_t dot = path.rfind('.');
  Module* parent = dot == std::string::npos ? this : submodule(path.substr(0, dot));
  if (parent == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("SetSubmodule('", path, "'): parent '", path.substr(0, dot), "' does not exist"));
  }
  const std::string name = dot == std::string::npos ? path : path.substr(dot + 1);
  auto& kids = parent->children_;
  for (auto it = kids.begin(); it != kids.end(); ++it) {
    if (it->first != name) continue;
    if (module) {
      it->second = std::move(module);
    } else {
      kids.erase(it);
    }
    return absl::OkStatus();
  }
  if (!module) return absl::NotFoundError(absl::StrCat("SetSubmodule('", path, "'): nothing to remove"));
  return CatchErrors([&] { parent->AddChild(name, std::move(module)); });
}

absl::Status Module::SwapSubmodule(const std::string& path, std::shared_ptr<Module> module) {
  std::shared_ptr<Module> old = shared_submodule(path);
  if (!old) return absl::NotFoundError(absl::StrCat("SwapSubmodule('", path, "'): there is no module at this path"));
  if (!module) return absl::InvalidArgumentError(absl::StrCat("SwapSubmodule('", path, "'): the new module is null"));
  const size_t dot = path.rfind('.');
  Module* parent = dot == std::string::npos ? this : submodule(path.substr(0, dot));
  const std::string name = dot == std::string::npos ? path : path.substr(dot + 1);
  QFX_RETURN_IF_ERROR(SetSubmodule(path, module));
  if (old == module) return absl::OkStatus();
  parent->swapped_out_.emplace_back(name, old);
  for (const auto& [n, weak] : parent->swapped_out_) {  // old and every module swapped out here before
    std::shared_ptr<Module> m = weak.lock();
    if (n != name || m == nullptr) continue;
    m->redirect_parent_ = parent;
    m->redirect_ = module;
  }
  return absl::OkStatus();
}

void Module::AdoptMembers(const Module& other) {
  for (const auto& [name, child] : other.children_) AddChild(name, child);
  for (const Slot& s : other.params_) register_parameter(s.name, s.tensor);
  for (const Slot& s : other.buffers_) register_buffer(s.name, s.tensor, s.persistent);
}

Tensor Module::tensor(const std::string& name) const {
  for (const Slot& s : params_) {
    if (s.name == name) return s.tensor;
  }
  for (const Slot& s : buffers_) {
    if (s.name == name) return s.tensor;
  }
  return Tensor();
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

absl::StatusOr<Tensor> RunModule(Module& module, const Tensor& x) {
  Tensor y;
  QFX_RETURN_IF_ERROR(CatchErrors([&] { y = module(x); }));
  return y;
}

absl::StatusOr<Tensor> RunModule(Module& module, const ForwardArgs& args) {
  Tensor y;
  QFX_RETURN_IF_ERROR(CatchErrors([&] { y = module(args); }));
  return y;
}

std::mt19937_64& Generator() {
  static std::mt19937_64 gen(0);
  return gen;
}

void ManualSeed(uint64_t seed) { Generator().seed(seed); }

void UniformInit(const Tensor& t, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  float* p = t.data<float>();
  for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = dist(Generator());
}

void NormalInit(const Tensor& t, float mean, float stddev) {
  std::normal_distribution<float> dist(mean, stddev);
  float* p = t.data<float>();
  for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = dist(Generator());
}

}  // namespace nn
}  // namespace qfx
