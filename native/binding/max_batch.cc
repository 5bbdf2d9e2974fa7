// ModelWrap::maxBatch([C, H, W], forwardOptions, hostBytesPerImage, wanted): how many images of that
// shape (at most `wanted`) one forward may take with the memory this process has left now (encode()
// bounds its batches by it). forwardOptions.embed: the embed path's needs (Model::embed: uint8
// pixels, pooled rows and logits out) instead of forward()'s. Synchronous and cheap: a few reads of /proc and the
// cgroup files.
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
  bool embed = false;
  if (info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    r.output_hidden_states = get_bool(o, "outputHiddenStates");
    r.output_attentions = get_bool(o, "outputAttentions");
    r.interpolate_pos_encoding = get_bool(o, "interpolatePosEncoding");
    embed = get_bool(o, "embed");
  }
  const double extra = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 0;
  if (!(extra >= 0 && std::isfinite(extra)))
    throw_invalid(env, "maxBatch: hostBytesPerImage must be a non-negative number");
  const double wanted = info[3].IsNumber() ? info[3].As<Napi::Number>().DoubleValue() : -1;
  if (!(wanted >= 1 && wanted <= 1e9 && wanted == std::floor(wanted)))
    throw_invalid(env, "maxBatch: wanted must be a positive integer");
  if (embed) {
    vitmsn::EmbedRequest e;
    e.B = 1, e.H = r.H, e.W = r.W, e.interpolate_pos_encoding = r.interpolate_pos_encoding;
    e.pool = true, e.logits = model->num_labels() > 0;  // the larger of encode()'s and classify()'s needs
    return Napi::Number::New(env, static_cast<double>(model->max_embed_batch(e, extra, static_cast<int64_t>(wanted))));
  }
  return Napi::Number::New(env, static_cast<double>(model->max_batch(r, extra, static_cast<int64_t>(wanted))));
}

}  // namespace vitmsn_binding
