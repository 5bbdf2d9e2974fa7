#include "env_state.h"

namespace vitmsn_binding {

bool env_can_run_js(napi_env env) noexcept {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) != napi_ok) return false;
  if (pending) return true;  // only a live environment holds a JS exception
  // N-API has no direct query (napi_cannot_run_js needs Node-API 10): probe with the cheapest call
  // that would run JS, a property lookup on a fresh object. It fails only when JS cannot run.
  napi_value probe;
  bool has = false;
  if (napi_create_object(env, &probe) != napi_ok) return false;
  if (napi_has_named_property(env, probe, "x", &has) == napi_ok) return true;
  // A real exception thrown by the probe would mean a live environment: clear it, never leave it.
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
    return true;
  }
  return false;
}

}  // namespace vitmsn_binding
