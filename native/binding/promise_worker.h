// An AsyncWorker that settles a Promise and turns engine exceptions into JS errors with a stable
// `code`. Work runs on libuv's pool so the event loop keeps turning while a model loads or runs.
// When the environment shuts down while the work runs (worker.terminate(), process.exit() in a
// worker), the promise is left unsettled and the results are freed: nothing can observe them.
#pragma once
#include <napi.h>

#include <string>

namespace vitmsn_binding {

// Builds `new Error(message)` with `err.code = code`.
Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message);
// A promise already rejected with make_error(code, message): engine errors found on the main
// thread, before any work is queued, reach the caller the same way as those found later.
Napi::Promise rejected(Napi::Env env, const std::string& code, const std::string& message);

class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() const { return deferred_.Promise(); }
  // Keeps a JS value alive until the worker is gone (an input array the work reads in place).
  void keep_alive(const Napi::Value& v) {
    if (v.IsObject()) kept_ = Napi::Persistent(v.As<Napi::Object>());
  }

 protected:
  virtual void run() = 0;                         // worker thread; may throw
  virtual Napi::Value result(Napi::Env env) = 0;  // main thread, after run() succeeded

 private:
  void Execute() final;
  // Replaces node-addon-api's completion, which rethrows into JS whatever settling throws: in an
  // environment that is going away that rethrow fails too, and escapes into libuv.
  void OnWorkComplete(Napi::Env env, napi_status status) final;
  void settle(Napi::Env env);

  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference kept_;
  std::string code_, error_;  // set by Execute() when run() threw (code_ never empty then)
};

}  // namespace vitmsn_binding
