// Per-environment state (the addon is context-aware: main thread, worker_threads and Electron
// renderers each get their own).
#pragma once
#include <napi.h>

namespace vitmsn_binding {

struct AddonData {
  Napi::FunctionReference model_ctor;
};

inline AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace vitmsn_binding
