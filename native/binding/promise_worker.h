// An AsyncWorker that settles a Promise and turns engine exceptions into JS errors with a stable
// `code`. Work runs on libuv's pool so the event loop keeps turning while a model loads or runs.
#pragma once
#include <napi.h>

#include <string>

namespace vitmsn_binding {

// Builds `new Error(message)` with `err.code = code`.
Napi::Error make_error(Napi::Env env, const std::string& code, const std::string& message);

class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env, const char* name)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  virtual void run() = 0;                               // worker thread; may throw
  virtual Napi::Value result(Napi::Env env) = 0;        // main thread, after run() succeeded

 private:
  void Execute() final;
  void OnOK() final;
  void OnError(const Napi::Error& e) final;

  Napi::Promise::Deferred deferred_;
  std::string code_;
};

}  // namespace vitmsn_binding
