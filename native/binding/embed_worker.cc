// ModelWrap::embed(pixels, shape, forwardOptions, { pooling, normalize, probabilities }):
// a forward pass reduced to what encode() and classify() return ([B, D] vectors and/or softmax
// probabilities), so the full hidden states never cross into the JS heap.
#include <cstring>
#include <string>

#include "common/error.h"
#include "convert.h"
#include "engine/model/pooling.h"
#include "model_wrap.h"
#include "outputs.h"
#include "promise_worker.h"

namespace vitmsn_binding {
namespace {

// The embeddings and probabilities go into arrays made on the main thread (outputs.h), filled
// here on the worker: settling copies nothing.
class EmbedWorker : public PromiseWorker {
 public:
  EmbedWorker(Napi::Env env, std::shared_ptr<const vitmsn::Model> model, vitmsn::ForwardRequest request, bool pool,
              vitmsn::Pooling pooling, bool normalize, bool probabilities, Napi::Object outputs, float* embeddings_out,
              float* probs_out)
      : PromiseWorker(env, "vitmsn:embed"),
        model_(std::move(model)),
        request_(std::move(request)),
        pool_(pool),
        pooling_(pooling),
        normalize_(normalize),
        probabilities_(probabilities),
        outputs_(Napi::Persistent(outputs)),
        embeddings_out_(embeddings_out),
        probs_out_(probs_out) {}

 protected:
  void run() override {
    if (probabilities_ && model_->num_labels() <= 0) {
      throw vitmsn::Error(vitmsn::codes::kNoClassifier, "this checkpoint has no classifier (no classifier.* weights)");
    }
    vitmsn::ForwardResult r = model_->forward(request_);
    request_ = vitmsn::ForwardRequest();
    model_.reset();
    auto put = [](float* dst, const std::vector<float>& v) {
      if (dst && !v.empty()) std::memcpy(dst, v.data(), v.size() * sizeof(float));
    };
    if (pool_) put(embeddings_out_, vitmsn::pool(r, pooling_, normalize_));
    if (probabilities_) put(probs_out_, vitmsn::softmax_rows(r.logits, r.B, r.num_labels));
  }
  Napi::Value result(Napi::Env) override { return outputs_.Value(); }

 private:
  std::shared_ptr<const vitmsn::Model> model_;
  vitmsn::ForwardRequest request_;
  bool pool_;
  vitmsn::Pooling pooling_;
  bool normalize_, probabilities_;
  Napi::ObjectReference outputs_;  // { B, D, numLabels, embeddings, probabilities }
  float* embeddings_out_;
  float* probs_out_;
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
    if (s == "cls")
      pooling = vitmsn::Pooling::Cls;
    else if (s == "cls-prenorm")
      pooling = vitmsn::Pooling::ClsPrenorm;
    else if (s == "mean")
      pooling = vitmsn::Pooling::Mean;
    else
      throw_invalid(env, "pooling must be 'cls', 'cls-prenorm' or 'mean'");
  } else if (!p.IsUndefined() && !p.IsNull()) {
    throw_invalid(env, "pooling must be a string");
  }
  req.output_attentions = false;
  req.output_hidden_states = pool && pooling == vitmsn::Pooling::ClsPrenorm;
  const bool normalize = o.Get("normalize").IsBoolean() && o.Get("normalize").As<Napi::Boolean>().Value();
  const bool probabilities = o.Get("probabilities").IsBoolean() && o.Get("probabilities").As<Napi::Boolean>().Value();
  // { B, D, numLabels, embeddings: [B, D] | null, probabilities: [B, numLabels] | null }
  const int64_t D = model->config().hidden_size, labels = model->num_labels() > 0 ? model->num_labels() : 0;
  Napi::Object outputs = Napi::Object::New(env);
  float* embeddings_out = nullptr;
  float* probs_out = nullptr;
  try {
    outputs.Set("B", Napi::Number::New(env, static_cast<double>(req.B)));
    outputs.Set("D", Napi::Number::New(env, static_cast<double>(D)));
    outputs.Set("numLabels", Napi::Number::New(env, static_cast<double>(labels)));
    model->checked_output_sizes(req);  // never size a buffer from a bad request
    Napi::Value embeddings = env.Null(), probs = env.Null();
    if (pool) {
      Napi::Float32Array a = output_array(env, static_cast<size_t>(req.B * D), "embeddings");
      embeddings_out = a.Data();
      embeddings = a;
    }
    if (probabilities && labels > 0) {
      Napi::Float32Array a = output_array(env, static_cast<size_t>(req.B * labels), "probabilities");
      probs_out = a.Data();
      probs = a;
    }
    outputs.Set("embeddings", embeddings);
    outputs.Set("probabilities", probs);
  } catch (const vitmsn::Error& e) {
    return rejected(env, e.code(), e.what());
  }
  auto* worker = new EmbedWorker(env, std::move(model), std::move(req), pool, pooling, normalize, probabilities,
                                 outputs, embeddings_out, probs_out);
  worker->keep_alive(info[0]);
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace vitmsn_binding
