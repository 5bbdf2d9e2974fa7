// ModelWrap::embed(pixels, [B, H, W, 3], { interpolatePosEncoding, preprocess }, { pooling, normalize,
// probabilities }): the embed path (Model::embed) on resized uint8 RGB levels (preprocess with
// { uint8: true }), normalized inside the backend's patchify with the preprocessor config's
// rescale/normalize; only the pooled [B, D] rows and/or the logits come back, so neither a float32
// pixel tensor nor the hidden states ever exist in the JS heap. With an array of B JPEG files in
// place of the pixels: decoded and resized to H × W on the device (opt-in GPU decoding), or, when
// the device decoder refuses some, nothing runs and the answer's `rejected` lists them.
#include <cmath>
#include <algorithm>
#include <cstring>
#include <string>

#include "common/error.h"
#include "convert.h"
#include "engine/image/resample.h"
#include "engine/model/pooling.h"
#include "model_wrap.h"
#include "outputs.h"
#include "preprocess_binding.h"
#include "promise_worker.h"

namespace vitmsn_binding {
namespace {

bool is_bytes(const Napi::Value& v) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
}

// An array of JPEG files (Uint8Arrays, read in place) with the preprocessor's resize tables.
vitmsn::Backend::JpegFiles jpeg_files(Napi::Env env, const Napi::Array& files, const vitmsn::PreprocessConfig& pre) {
  vitmsn::Backend::JpegFiles jpegs;
  for (uint32_t i = 0; i < files.Length(); ++i) {
    Napi::Value f = files.Get(i);
    if (!is_bytes(f)) throw_invalid(env, "JPEG files must be Uint8Arrays");
    const TypedBytes b = typed_bytes(env, f.As<Napi::TypedArray>(), "JPEG file");
    jpegs.data.push_back(b.data), jpegs.sizes.push_back(b.size);
  }
  const vitmsn::ResampleFilter filter = pre.resample;
  jpegs.taps = [filter](int64_t in, int64_t out) { return vitmsn::resize_taps(in, out, filter); };
  return jpegs;
}

Napi::Array rejected_list(Napi::Env env, const std::vector<std::pair<int64_t, std::string>>& rejected) {
  Napi::Array list = Napi::Array::New(env, rejected.size());
  for (size_t i = 0; i < rejected.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", Napi::Number::New(env, static_cast<double>(rejected[i].first)));
    o.Set("reason", Napi::String::New(env, rejected[i].second));
    list.Set(static_cast<uint32_t>(i), o);
  }
  return list;
}

// The embeddings and probabilities go into arrays made on the main thread (outputs.h), filled
// here on the worker: settling copies nothing. The pixels are the library's own array, read in
// place (kept alive by the worker).
class EmbedWorker : public PromiseWorker {
 public:
  EmbedWorker(Napi::Env env, std::shared_ptr<const vitmsn::Model> model, vitmsn::EmbedRequest request,
              vitmsn::Backend::JpegFiles jpegs, Napi::Object outputs, float* probs_out)
      : PromiseWorker(env, "vitmsn:embed"),
        model_(std::move(model)),
        request_(request),
        jpegs_(std::move(jpegs)),
        outputs_(Napi::Persistent(outputs)),
        probs_out_(probs_out) {
    if (request_.jpegs) request_.jpegs = &jpegs_;
  }

 protected:
  void run() override {
    if (request_.logits && model_->num_labels() <= 0) {
      throw vitmsn::Error(vitmsn::codes::kNoClassifier, "this checkpoint has no classifier (no classifier.* weights)");
    }
    vitmsn::EmbedResult r = model_->embed(request_);
    model_.reset();
    rejected_ = std::move(r.rejected);
    if (!rejected_.empty()) return;
    if (request_.logits && probs_out_) {
      const std::vector<float> p = vitmsn::softmax_rows(r.logits, r.B, r.num_labels);
      std::memcpy(probs_out_, p.data(), p.size() * sizeof(float));
    }
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = outputs_.Value();
    if (!rejected_.empty()) out.Set("rejected", rejected_list(env, rejected_));
    return out;
  }

 private:
  std::shared_ptr<const vitmsn::Model> model_;
  vitmsn::EmbedRequest request_;
  vitmsn::Backend::JpegFiles jpegs_;
  std::vector<std::pair<int64_t, std::string>> rejected_;
  Napi::ObjectReference outputs_;  // { B, D, numLabels, embeddings, probabilities }
  float* probs_out_;
};

// decodeJpegs: GPU decoding alone (Model::decode_jpegs), for measuring it against the CPU path. A
// measuring tool, not a hot path: its pixels are copied into a fresh array when it settles.
class DecodeJpegsWorker : public PromiseWorker {
 public:
  DecodeJpegsWorker(Napi::Env env, std::shared_ptr<const vitmsn::Model> model, vitmsn::Backend::JpegFiles jpegs,
                    int64_t H, int64_t W)
      : PromiseWorker(env, "vitmsn:decodeJpegs"), model_(std::move(model)), jpegs_(std::move(jpegs)), H_(H), W_(W) {}

 protected:
  void run() override {
    rejected_ = model_->decode_jpegs(jpegs_, H_, W_, &pixels_);
    model_.reset();
  }
  Napi::Value result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    if (!rejected_.empty()) {
      out.Set("rejected", rejected_list(env, rejected_));
      return out;
    }
    Napi::Uint8Array px = Napi::Uint8Array::New(env, pixels_.size());
    std::copy(pixels_.begin(), pixels_.end(), px.Data());
    Napi::Array shape = Napi::Array::New(env, 4);
    const double dims[4] = {static_cast<double>(jpegs_.data.size()), static_cast<double>(H_), static_cast<double>(W_),
                            3};
    for (uint32_t i = 0; i < 4; ++i) shape.Set(i, Napi::Number::New(env, dims[i]));
    out.Set("data", px);
    out.Set("shape", shape);
    return out;
  }

 private:
  std::shared_ptr<const vitmsn::Model> model_;
  vitmsn::Backend::JpegFiles jpegs_;
  int64_t H_, W_;
  std::vector<uint8_t> pixels_;
  std::vector<std::pair<int64_t, std::string>> rejected_;
};

}  // namespace

Napi::Value ModelWrap::decode_jpegs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<const vitmsn::Model> model = live(env);
  if (!info[0].IsArray() || info[0].As<Napi::Array>().Length() == 0)
    throw_invalid(env, "decodeJpegs: files must be a non-empty array");
  const vitmsn::PreprocessConfig pre = to_preprocess_config(env, info[1]);
  if (!pre.do_resize) throw_invalid(env, "decodeJpegs: the preprocessor must resize");
  vitmsn::Backend::JpegFiles jpegs = jpeg_files(env, info[0].As<Napi::Array>(), pre);
  auto* worker = new DecodeJpegsWorker(env, std::move(model), std::move(jpegs), pre.height, pre.width);
  worker->keep_alive(info[0]);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

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
  if (!info[2].IsObject()) throw_invalid(env, "embed: options must be an object");
  Napi::Object fo = info[2].As<Napi::Object>();
  req.interpolate_pos_encoding = get_bool(fo, "interpolatePosEncoding");
  const vitmsn::PreprocessConfig pre = to_preprocess_config(env, fo.Get("preprocess"));
  req.norm = pre.pixel_norm();
  vitmsn::Backend::JpegFiles jpegs;
  if (info[0].IsArray()) {
    Napi::Array files = info[0].As<Napi::Array>();
    if (files.Length() != static_cast<uint32_t>(req.B)) throw_invalid(env, "embed: one JPEG file per image");
    if (!pre.do_resize || pre.height != req.H || pre.width != req.W)
      throw_invalid(env, "embed: JPEG files need a preprocessor that resizes to the shape's H x W");
    jpegs = jpeg_files(env, files, pre);
    req.jpegs = &jpegs;  // the worker points it at its own copy
  } else {
    if (!is_bytes(info[0])) throw_invalid(env, "embed pixels must be a Uint8Array");
    const TypedBytes px = typed_bytes(env, info[0].As<Napi::TypedArray>(), "pixels");
    req.pixels = px.data, req.pixel_bytes = px.size;
  }
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
  auto* worker = new EmbedWorker(env, std::move(model), req, std::move(jpegs), outputs, probs_out);
  worker->keep_alive(info[0]);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace vitmsn_binding
