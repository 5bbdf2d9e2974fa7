#include "promise_worker.h"

#include <new>

#include "engine/error.h"

namespace vitmsn_binding {

Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

void PromiseWorker::Execute() {
  try {
    run();
  } catch (const vitmsn::Error& e) {
    code_ = e.code();
    SetError(e.what());
  } catch (const std::bad_alloc&) {
    code_ = vitmsn::codes::kOutOfMemory;
    SetError("out of memory");
  } catch (const std::exception& e) {
    code_ = vitmsn::codes::kInternal;
    SetError(std::string("internal error: ") + e.what());
  } catch (...) {
    code_ = vitmsn::codes::kInternal;
    SetError("internal error");
  }
}

void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  try {
    deferred_.Resolve(result(env));
  } catch (const Napi::Error& e) {
    deferred_.Reject(e.Value());
  } catch (const std::bad_alloc&) {
    deferred_.Reject(make_error(env, vitmsn::codes::kOutOfMemory, "out of memory while returning results").Value());
  }
}

void PromiseWorker::OnError(const Napi::Error& e) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  deferred_.Reject(make_error(env, code_.empty() ? vitmsn::codes::kInternal : code_, e.Message()).Value());
}

}  // namespace vitmsn_binding
