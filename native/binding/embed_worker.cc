// ModelWrap::embed(pixels, [B, H, W, 3], { interpolatePosEncoding, preprocess }, { pooling, normalize,
// probabilities }): the embed path (Model::embed) on resized uint8 RGB levels (preprocess with
// { uint8: true }), normalized inside the backend's patchify with the preprocessor config's
// rescale/normalize; only the pooled [B, D] rows and/or the logits come back, so neither a float32
// pixel tensor nor the hidden states ever exist in the JS heap.
#include <cmath>
#include <cstring>
#include <string>

#include "common/error.h"
#include "convert.h"
#include "engine/model/pooling.h"
#include "model_wrap.h"
#include "outputs.h"
#include "preprocess_binding.h"
#include "promise_worker.h"

namespace vitmsn_binding {
namespace {

// The embeddings and probabilities go into arrays made on the main thread (outputs.h), filled
// here on the worker: settling copies nothing. The pixels are the library's own array, read in
// place (kept alive by the worker).
class EmbedWorker : public PromiseWorker {
 public:
  EmbedWorker(Napi::Env env, std::shared_ptr<const vitmsn::Model> model, vitmsn::EmbedRequest request,
              Napi::Object outputs, float* probs_out)
      : PromiseWorker(env, "vitmsn:embed"),
        model_(std::move(model)),
        request_(request),
        outputs_(Napi::Persistent(outputs)),
        probs_out_(probs_out) {}

 protected:
  void run() override {
    if (request_.logits && model_->num_labels() <= 0) {
      throw vitmsn::Error(vitmsn::codes::kNoClassifier, "this checkpoint has no classifier (no classifier.* weights)");
    }
    vitmsn::EmbedResult r = model_->embed(request_);
    model_.reset();
    if (request_.logits && probs_out_) {
      const std::vector<float> p = vitmsn::softmax_rows(r.logits, r.B, r.num_labels);
      std::memcpy(probs_out_, p.data(), p.size() * sizeof(float));
    }
  }
  Napi::Value result(Napi::Env) override { return outputs_.Value(); }

 private:
  std::shared_ptr<const vitmsn::Model> model_;
  vitmsn::EmbedRequest request_;
  Napi::ObjectReference outputs_;  // { B, D, numLabels, embeddings, probabilities }
  float* probs_out_;
};

}  // namespace

Napi::Value ModelWrap::embed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<const vitmsn::Model> model = live(env);
  vitmsn::EmbedRequest req;
  if (!info[1].IsArray() || info[1].As<Napi::Array>().Length() != 4) throw_invalid(env, "shape must be [B, H, W, 3]");
  int64_t dims[4];
  for (uint32_t i = 0; i < 4; ++i) {
    Napi::Value d = info[1].As<Napi::Array>().Get(i);
    const double x = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= 1 && x <= 1e9 && x == std::floor(x))) throw_invalid(env, "shape entries must be positive integers");
    dims[i] = static_cast<int64_t>(x);
  }
  if (dims[3] != 3) throw_invalid(env, "embed takes RGB pixels: shape must be [B, H, W, 3]");
  req.B = dims[0], req.H = dims[1], req.W = dims[2];
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw_invalid(env, "embed pixels must be a Uint8Array");
  const TypedBytes px = typed_bytes(env, info[0].As<Napi::TypedArray>(), "pixels");
  req.pixels = px.data, req.pixel_bytes = px.size;
  if (!info[2].IsObject()) throw_invalid(env, "embed: options must be an object");
  Napi::Object fo = info[2].As<Napi::Object>();
  req.interpolate_pos_encoding = get_bool(fo, "interpolatePosEncoding");
  req.norm = to_preprocess_config(env, fo.Get("preprocess")).pixel_norm();
  if (!info[3].IsObject()) throw_invalid(env, "embed options must be an object");
  Napi::Object o = info[3].As<Napi::Object>();
  Napi::Value p = o.Get("pooling");
  if (p.IsString()) {
    const std::string s = p.As<Napi::String>().Utf8Value();
    req.pool = true;
    if (s == "cls")
      req.pooling = vitmsn::Pooling::Cls;
    else if (s == "cls-prenorm")
      req.pooling = vitmsn::Pooling::ClsPrenorm;
    else if (s == "mean")
      req.pooling = vitmsn::Pooling::Mean;
    else
      throw_invalid(env, "pooling must be 'cls', 'cls-prenorm' or 'mean'");
  } else if (!p.IsUndefined() && !p.IsNull()) {
    throw_invalid(env, "pooling must be a string");
  }
  req.normalize = get_bool(o, "normalize");
  const bool probabilities = get_bool(o, "probabilities");
  if (!req.pool && !probabilities) throw_invalid(env, "embed: ask for a pooling or probabilities");
  // { B, D, numLabels, embeddings: [B, D] | null, probabilities: [B, numLabels] | null }
  const int64_t D = model->config().hidden_size, labels = model->num_labels() > 0 ? model->num_labels() : 0;
  req.logits = probabilities && labels > 0;
  Napi::Object outputs = Napi::Object::New(env);
  float* probs_out = nullptr;
  try {
    outputs.Set("B", Napi::Number::New(env, static_cast<double>(req.B)));
    outputs.Set("D", Napi::Number::New(env, static_cast<double>(D)));
    outputs.Set("numLabels", Napi::Number::New(env, static_cast<double>(labels)));
    if (probabilities && labels == 0) {
      throw vitmsn::Error(vitmsn::codes::kNoClassifier, "this checkpoint has no classifier (no classifier.* weights)");
    }
    model->check_embed(req);  // never size a buffer from a bad request
    Napi::Value embeddings = env.Null(), probs = env.Null();
    if (req.pool) {
      Napi::Float32Array a = output_array(env, static_cast<size_t>(req.B * D), "embeddings");
      req.pooled_out = a.Data();
      embeddings = a;
    }
    if (req.logits) {
      Napi::Float32Array a = output_array(env, static_cast<size_t>(req.B * labels), "probabilities");
      probs_out = a.Data();
      probs = a;
    }
    outputs.Set("embeddings", embeddings);
    outputs.Set("probabilities", probs);
  } catch (const vitmsn::Error& e) {
    return rejected(env, e.code(), e.what());
  }
  auto* worker = new EmbedWorker(env, std::move(model), req, outputs, probs_out);
  worker->keep_alive(info[0]);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace vitmsn_binding
