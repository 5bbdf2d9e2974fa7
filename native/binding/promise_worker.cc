#include "promise_worker.h"

#include <new>

#include "common/error.h"
#include "env_state.h"

namespace vitmsn_binding {

Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

Napi::Promise rejected(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
  d.Reject(make_error(env, code, message).Value());
  return d.Promise();
}

void PromiseWorker::Execute() {
  try {
    run();
  } catch (const vitmsn::Error& e) {
    code_ = e.code();
    error_ = e.what();
  } catch (const std::bad_alloc&) {
    code_ = vitmsn::codes::kOutOfMemory;
    error_ = "out of memory";
  } catch (const std::exception& e) {
    code_ = vitmsn::codes::kInternal;
    error_ = std::string("internal error: ") + e.what();
  } catch (...) {
    code_ = vitmsn::codes::kInternal;
    error_ = "internal error";
  }
}

void PromiseWorker::OnWorkComplete(Napi::Env env, napi_status status) {
  try {
    if (status != napi_cancelled && env_can_run_js(env)) settle(env);
  } catch (...) {
    // The environment began to shut down while settling (worker.terminate() runs on another
    // thread), or, in a live one, even rejecting failed. Report what still can be; never let it out.
    if (env_can_run_js(env)) {
      try {
        Napi::Error::New(env, "vitmsn: could not settle a promise").ThrowAsJavaScriptException();
      } catch (...) {
      }
    }
  }
  Destroy();  // frees the request, the results and this worker's reference to the model
}

void PromiseWorker::settle(Napi::Env env) {
  Napi::HandleScope scope(env);
  if (!code_.empty()) {
    deferred_.Reject(make_error(env, code_, error_).Value());
    return;
  }
  try {
    deferred_.Resolve(result(env));
  } catch (const Napi::Error& e) {
    if (!env_can_run_js(env)) throw;
    deferred_.Reject(e.Value());
  } catch (const std::bad_alloc&) {
    deferred_.Reject(make_error(env, vitmsn::codes::kOutOfMemory, "out of memory while returning results").Value());
  }
}

}  // namespace vitmsn_binding
