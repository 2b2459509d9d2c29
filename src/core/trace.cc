// qfx core: the thread's active trace hook (see include/qfx/core/trace.h).
#include "qfx/core/trace.h"

namespace qfx {
namespace {
thread_local TraceHook* t_hook = nullptr;
}  // namespace

TraceHook* ActiveTraceHook() { return t_hook; }

ScopedTraceHook::ScopedTraceHook(TraceHook* hook) : previous_(t_hook) { t_hook = hook; }
ScopedTraceHook::~ScopedTraceHook() { t_hook = previous_; }

bool AnyProxy(const std::vector<OpArg>& args) {
  for (const OpArg& a : args) {
    if (const Tensor* t = std::get_if<Tensor>(&a); t && t->is_proxy()) return true;
    if (const auto* list = std::get_if<std::vector<Tensor>>(&a)) {
      for (const Tensor& t : *list) {
        if (t.is_proxy()) return true;
      }
    }
  }
  return false;
}

bool AnyTraced(const TraceHook& hook, const std::vector<OpArg>& args) {
  auto traced = [&](const Tensor& t) { return t.is_proxy() || (t.defined() && hook.Tracks(t)); };
  for (const OpArg& a : args) {
    if (const Tensor* t = std::get_if<Tensor>(&a); t && traced(*t)) return true;
    if (const auto* list = std::get_if<std::vector<Tensor>>(&a)) {
      for (const Tensor& t : *list) {
        if (traced(t)) return true;
      }
    }
  }
  return false;
}

}  // namespace qfx
