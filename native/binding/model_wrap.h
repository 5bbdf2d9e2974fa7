// The JS object behind lib/'s Model: holds a shared engine Model; forward() and loading run off
// the event loop. dispose() drops this object's reference; work in flight keeps its own.
#pragma once
#include <napi.h>

#include <memory>

#include "engine/model/model.h"

namespace vitmsn_binding {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  // Wraps a loaded model in a new JS object (called on the main thread).
  static Napi::Object wrap(Napi::Env env, std::shared_ptr<const vitmsn::Model> model, const std::string& device);
  explicit ModelWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value forward(const Napi::CallbackInfo& info);
  Napi::Value embed(const Napi::CallbackInfo& info);         // embed_worker.cc
  Napi::Value decode_jpegs(const Napi::CallbackInfo& info);  // embed_worker.cc
  Napi::Value max_batch(const Napi::CallbackInfo& info);     // max_batch.cc
  Napi::Value info(const Napi::CallbackInfo& info);
  Napi::Value dispose(const Napi::CallbackInfo& info);
  std::shared_ptr<const vitmsn::Model> live(Napi::Env env) const;

  std::shared_ptr<const vitmsn::Model> model_;
  std::string device_;
};

// loadModel(dir, config, { device, threads }) → Promise<ModelWrap>
Napi::Value load_model(const Napi::CallbackInfo& info);

}  // namespace vitmsn_binding
