// ModelWrap::maxBatch([C, H, W], forwardOptions, hostBytesPerImage, wanted): how many images of that
// shape (at most `wanted`) one forward may take with the memory this process has left now (encode()
// bounds its batches by it). Synchronous and cheap: a few reads of /proc and the cgroup files.
#include <cmath>

#include "common/error.h"
#include "convert.h"
#include "model_wrap.h"

namespace vitmsn_binding {

Napi::Value ModelWrap::max_batch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<const vitmsn::Model> model = live(env);
  if (!info[0].IsArray() || info[0].As<Napi::Array>().Length() != 3)
    throw_invalid(env, "maxBatch: shape must be [C, H, W]");
  Napi::Array s = info[0].As<Napi::Array>();
  int64_t dims[3];
  for (uint32_t i = 0; i < 3; ++i) {
    Napi::Value d = s.Get(i);
    const double x = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= 1 && x <= 1e9 && x == std::floor(x)))
      throw_invalid(env, "maxBatch: shape entries must be positive integers");
    dims[i] = static_cast<int64_t>(x);
  }
  vitmsn::ForwardRequest r;
  r.B = 1, r.C = dims[0], r.H = dims[1], r.W = dims[2];
  if (info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    auto flag = [&](const char* k) { return o.Get(k).IsBoolean() && o.Get(k).As<Napi::Boolean>().Value(); };
    r.output_hidden_states = flag("outputHiddenStates");
    r.output_attentions = flag("outputAttentions");
    r.interpolate_pos_encoding = flag("interpolatePosEncoding");
  }
  const double extra = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 0;
  if (!(extra >= 0 && std::isfinite(extra)))
    throw_invalid(env, "maxBatch: hostBytesPerImage must be a non-negative number");
  const double wanted = info[3].IsNumber() ? info[3].As<Napi::Number>().DoubleValue() : -1;
  if (!(wanted >= 1 && wanted <= 1e9 && wanted == std::floor(wanted)))
    throw_invalid(env, "maxBatch: wanted must be a positive integer");
  return Napi::Number::New(env, static_cast<double>(model->max_batch(r, extra, static_cast<int64_t>(wanted))));
}

}  // namespace vitmsn_binding
