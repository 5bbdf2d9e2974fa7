#include "outputs.h"

#include <string>

#include "common/error.h"
#include "env_state.h"

namespace vitmsn_binding {

Napi::Float32Array output_array(Napi::Env env, size_t n, const char* what) {
  try {
    return Napi::Float32Array::New(env, n);
  } catch (const Napi::Error&) {
    if (!env_can_run_js(env)) throw;  // shutting down: not an allocation failure
    throw vitmsn::Error(vitmsn::codes::kOutOfMemory,
                        std::string("cannot allocate ") + what + " (" + std::to_string(n) + " floats)");
  }
}

Napi::Uint8Array output_bytes(Napi::Env env, size_t n, const char* what) {
  try {
    return Napi::Uint8Array::New(env, n);
  } catch (const Napi::Error&) {
    if (!env_can_run_js(env)) throw;
    throw vitmsn::Error(vitmsn::codes::kOutOfMemory,
                        std::string("cannot allocate ") + what + " (" + std::to_string(n) + " bytes)");
  }
}

Napi::Object forward_outputs(Napi::Env env, const vitmsn::Model& model, vitmsn::ForwardRequest& r,
                             const vitmsn::OutputSizes& sizes, float** logits_out) {
  const vitmsn::ModelConfig& c = model.config();
  const int64_t T = static_cast<int64_t>(sizes.last_hidden) / (r.B * c.hidden_size);
  Napi::Object o = Napi::Object::New(env);
  o.Set("B", Napi::Number::New(env, static_cast<double>(r.B)));
  o.Set("T", Napi::Number::New(env, static_cast<double>(T)));
  o.Set("D", Napi::Number::New(env, static_cast<double>(c.hidden_size)));
  o.Set("H", Napi::Number::New(env, static_cast<double>(c.num_heads)));
  Napi::Float32Array last = output_array(env, sizes.last_hidden, "last_hidden_state");
  r.last_hidden_out = last.Data();
  o.Set("lastHiddenState", last);
  // Each list is as long as the model has taps (empty when not asked).
  auto taps = [&](size_t count, size_t floats, std::vector<float*>& outs, const char* what) {
    outs.clear();
    Napi::Array list = Napi::Array::New(env, floats ? count : 0);
    for (size_t i = 0; floats && i < count; ++i) {
      Napi::Float32Array a = output_array(env, floats, what);
      outs.push_back(a.Data());
      list.Set(static_cast<uint32_t>(i), a);
    }
    return list;
  };
  o.Set("hiddenStates",
        taps(static_cast<size_t>(c.num_layers) + 1, sizes.hidden_state, r.hidden_states_out, "hidden_states"));
  o.Set("attentions", taps(static_cast<size_t>(c.num_layers), sizes.attention, r.attentions_out, "attentions"));
  const int64_t labels = sizes.logits ? static_cast<int64_t>(sizes.logits) / r.B : 0;
  o.Set("numLabels", Napi::Number::New(env, static_cast<double>(labels)));
  *logits_out = nullptr;
  if (sizes.logits) {
    Napi::Float32Array logits = output_array(env, sizes.logits, "logits");
    *logits_out = logits.Data();
    o.Set("logits", logits);
  } else {
    o.Set("logits", env.Null());
  }
  return o;
}

}  // namespace vitmsn_binding
