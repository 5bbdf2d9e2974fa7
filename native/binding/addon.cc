// Module entry: the addon's whole JS surface (typed in lib/binding.ts).
#include <napi.h>

#include "addon_data.h"
#include "common/knobs.h"
#include "backend/registry.h"
#include "logreg_binding.h"
#include "model_wrap.h"
#include "preprocess_binding.h"

namespace vitmsn_binding {
namespace {

Napi::Value backends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<vitmsn::BackendInfo> list = vitmsn::list_backends();
  Napi::Array out = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", list[i].name);
    o.Set("compiled", list[i].compiled);
    o.Set("available", list[i].available);
    o.Set("detail", list[i].detail);
    Napi::Array dtypes = Napi::Array::New(env, list[i].dtypes.size());
    for (size_t k = 0; k < list[i].dtypes.size(); ++k) dtypes.Set(static_cast<uint32_t>(k), list[i].dtypes[k]);
    o.Set("dtypes", dtypes);
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

// The knob table with the raw value of each in this process's environment ("" when unset). Values
// are not checked here: a bad one is reported by the backend that reads it.
Napi::Value knob_table(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env, vitmsn::knobs::kKnobCount);
  for (size_t i = 0; i < vitmsn::knobs::kKnobCount; ++i) {
    const vitmsn::knobs::Spec& s = vitmsn::knobs::table()[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", s.name);
    o.Set("values", s.values);
    o.Set("default", s.fallback);
    o.Set("read", std::string(s.read_when) == "process" ? "once per process" : "when a backend is made");
    o.Set("meaning", s.meaning);
    const char* raw = std::getenv(s.name);
    o.Set("value", raw ? raw : "");
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

Napi::Value default_threads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), vitmsn::default_cpu_threads());
}

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->model_ctor = Napi::Persistent(ModelWrap::define(env));
  env.SetInstanceData<AddonData>(data);  // deleted by Node when this environment goes away
  exports.Set("loadModel", Napi::Function::New<load_model>(env, "loadModel"));
  exports.Set("backends", Napi::Function::New<backends>(env, "backends"));
  exports.Set("preprocess", Napi::Function::New<preprocess>(env, "preprocess"));
  exports.Set("fitLogRegPaths", Napi::Function::New<fit_logreg_paths>(env, "fitLogRegPaths"));
  exports.Set("knobs", Napi::Function::New<knob_table>(env, "knobs"));
  exports.Set("defaultThreads", Napi::Function::New<default_threads>(env, "defaultThreads"));
  return exports;
}

}  // namespace
}  // namespace vitmsn_binding

static Napi::Object init_addon(Napi::Env env, Napi::Object exports) { return vitmsn_binding::init(env, exports); }
NODE_API_MODULE(vitmsn, init_addon)
