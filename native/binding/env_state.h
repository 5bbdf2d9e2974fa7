// Whether an environment can still run JavaScript. It cannot once it is shutting down: a worker
// being terminated or calling process.exit(), an Electron renderer closing. Work that completes
// then has nobody to report to; N-API calls that would run JS fail (napi_pending_exception with no
// exception pending), and node-addon-api turns each failure into a C++ exception that must not
// escape into Node (that would be std::terminate).
#pragma once
#include <node_api.h>

namespace vitmsn_binding {

// Main (JS) thread only. False as soon as the environment has started to shut down.
bool env_can_run_js(napi_env env) noexcept;

}  // namespace vitmsn_binding
