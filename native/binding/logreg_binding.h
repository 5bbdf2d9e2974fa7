// fitLogRegPaths(tasks, { tol, maxIter, threads }) → Promise<fits per task>: the linear probe's
// solver (engine/probe/logreg.h) on libuv's pool, the independent fits (CV folds) spread over threads.
#pragma once
#include <napi.h>

namespace vitmsn_binding {

Napi::Value fit_logreg_paths(const Napi::CallbackInfo& info);

}  // namespace vitmsn_binding
