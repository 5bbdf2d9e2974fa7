// ModelWrap::embed(pixels, shape, forwardOptions, { pooling, normalize, probabilities }):
// a forward pass reduced to what encode() and classify() return ([B, D] vectors and/or softmax
// probabilities), so the full hidden states never cross into the JS heap.
#include <cstring>
#include <string>

#include "convert.h"
#include "engine/error.h"
#include "engine/pooling.h"
#include "model_wrap.h"
#include "promise_worker.h"

namespace vitmsn_binding {
namespace {

class EmbedWorker : public PromiseWorker {
 public:
  EmbedWorker(Napi::Env env, std::shared_ptr<const vitmsn::Model> model, vitmsn::ForwardRequest request,
              bool pool, vitmsn::Pooling pooling, bool normalize, bool probabilities)
      : PromiseWorker(env, "vitmsn:embed"), model_(std::move(model)), request_(std::move(request)), pool_(pool),
        pooling_(pooling), normalize_(normalize), probabilities_(probabilities) {}

 protected:
  void run() override {
    if (probabilities_ && model_->num_labels() <= 0) {
      throw vitmsn::Error(vitmsn::codes::kNoClassifier, "this checkpoint has no classifier (no classifier.* weights)");
    }
    vitmsn::ForwardResult r = model_->forward(request_);
    request_ = vitmsn::ForwardRequest();
    model_.reset();
    B_ = r.B, D_ = r.D, n_ = r.num_labels;
    if (pool_) embeddings_ = vitmsn::pool(r, pooling_, normalize_);
    if (probabilities_) probs_ = vitmsn::softmax_rows(r.logits, r.B, r.num_labels);
  }
  Napi::Value result(Napi::Env env) override {
    auto f32 = [&](const std::vector<float>& v) -> Napi::Value {
      if (v.empty()) return env.Null();
      Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
      std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
      return a;
    };
    Napi::Object o = Napi::Object::New(env);
    o.Set("B", Napi::Number::New(env, static_cast<double>(B_)));
    o.Set("D", Napi::Number::New(env, static_cast<double>(D_)));
    o.Set("numLabels", Napi::Number::New(env, static_cast<double>(n_)));
    o.Set("embeddings", f32(embeddings_));
    o.Set("probabilities", f32(probs_));
    return o;
  }

 private:
  std::shared_ptr<const vitmsn::Model> model_;
  vitmsn::ForwardRequest request_;
  bool pool_;
  vitmsn::Pooling pooling_;
  bool normalize_, probabilities_;
  int64_t B_ = 0, D_ = 0, n_ = 0;
  std::vector<float> embeddings_, probs_;
};

}  // namespace

Napi::Value ModelWrap::embed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<const vitmsn::Model> model = live(env);
  vitmsn::ForwardRequest req = to_request(env, info[0], info[1], info[2]);
  if (!info[3].IsObject()) throw_invalid(env, "embed options must be an object");
  Napi::Object o = info[3].As<Napi::Object>();
  bool pool = false;
  vitmsn::Pooling pooling = vitmsn::Pooling::Cls;
  Napi::Value p = o.Get("pooling");
  if (p.IsString()) {
    const std::string s = p.As<Napi::String>().Utf8Value();
    pool = true;
    if (s == "cls") pooling = vitmsn::Pooling::Cls;
    else if (s == "cls-prenorm") pooling = vitmsn::Pooling::ClsPrenorm;
    else if (s == "mean") pooling = vitmsn::Pooling::Mean;
    else throw_invalid(env, "pooling must be 'cls', 'cls-prenorm' or 'mean'");
  } else if (!p.IsUndefined() && !p.IsNull()) {
    throw_invalid(env, "pooling must be a string");
  }
  req.output_attentions = false;
  req.output_hidden_states = pool && pooling == vitmsn::Pooling::ClsPrenorm;
  const bool normalize = o.Get("normalize").IsBoolean() && o.Get("normalize").As<Napi::Boolean>().Value();
  const bool probabilities = o.Get("probabilities").IsBoolean() && o.Get("probabilities").As<Napi::Boolean>().Value();
  auto* worker = new EmbedWorker(env, std::move(model), std::move(req), pool, pooling, normalize, probabilities);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace vitmsn_binding
