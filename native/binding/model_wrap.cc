#include "model_wrap.h"

#include <cstring>

#include "addon_data.h"
#include "backend/registry.h"
#include "common/error.h"
#include "convert.h"
#include "outputs.h"
#include "promise_worker.h"

namespace vitmsn_binding {
namespace {

struct Handoff {  // passed through an External from wrap() to the constructor
  std::shared_ptr<const vitmsn::Model> model;
  std::string device;
};

class LoadWorker : public PromiseWorker {
 public:
  LoadWorker(Napi::Env env, std::string dir, vitmsn::ModelConfig config, std::string device, int threads,
             std::string dtype)
      : PromiseWorker(env, "vitmsn:load"),
        dir_(std::move(dir)),
        config_(config),
        device_(std::move(device)),
        threads_(threads),
        dtype_name_(std::move(dtype)),
        // bfloat16 / int8 weights on the CPU; a CUDA backend stores everything in its own dtype anyway.
        dtype_(dtype_name_ == "bfloat16" ? vitmsn::WeightDtype::kBFloat16
               : dtype_name_ == "int8"   ? vitmsn::WeightDtype::kInt8
                                         : vitmsn::WeightDtype::kFloat32) {}

 protected:
  void run() override {
    std::shared_ptr<vitmsn::Backend> backend = vitmsn::acquire_backend(device_, threads_, dtype_name_);
    model_ = vitmsn::Model::load(config_, dir_, std::move(backend), dtype_);
  }
  Napi::Value result(Napi::Env env) override { return ModelWrap::wrap(env, std::move(model_), device_); }

 private:
  std::string dir_;
  vitmsn::ModelConfig config_;
  std::string device_;
  int threads_;
  std::string dtype_name_;  // "float32" | "float16" | "bfloat16" | "int8": picks the backend's storage type
  vitmsn::WeightDtype dtype_;
  std::shared_ptr<const vitmsn::Model> model_;
};

// Every output is written by the worker straight into the arrays the promise resolves with
// (outputs.h): they are made here on the main thread and held, in the result object, by a reference
// that nothing else sees until then, so no copy of an output ever runs on the event loop.
class ForwardWorker : public PromiseWorker {
 public:
  ForwardWorker(Napi::Env env, std::shared_ptr<const vitmsn::Model> model, vitmsn::ForwardRequest request,
                Napi::Object outputs, float* logits_out)
      : PromiseWorker(env, "vitmsn:forward"),
        model_(std::move(model)),
        request_(std::move(request)),
        outputs_(Napi::Persistent(outputs)),
        logits_out_(logits_out) {}

 protected:
  void run() override {
    vitmsn::ForwardResult r = model_->forward(request_);
    request_ = vitmsn::ForwardRequest();  // free the input copy early
    model_.reset();                       // a disposed model's weights go as soon as the last forward ends
    // The logits come back in a vector (small: [B, num_labels]); copied here, off the event loop.
    if (logits_out_ && !r.logits.empty()) std::memcpy(logits_out_, r.logits.data(), r.logits.size() * sizeof(float));
  }
  Napi::Value result(Napi::Env) override { return outputs_.Value(); }

 private:
  std::shared_ptr<const vitmsn::Model> model_;
  vitmsn::ForwardRequest request_;
  Napi::ObjectReference outputs_;
  float* logits_out_;
};

}  // namespace

Napi::Function ModelWrap::define(Napi::Env env) {
  return DefineClass(
      env, "NativeModel",
      {InstanceMethod<&ModelWrap::forward>("forward"), InstanceMethod<&ModelWrap::embed>("embed"),
       InstanceMethod<&ModelWrap::decode_jpegs>("decodeJpegs"), InstanceMethod<&ModelWrap::max_batch>("maxBatch"),
       InstanceMethod<&ModelWrap::info>("info"), InstanceMethod<&ModelWrap::dispose>("dispose")});
}

Napi::Object ModelWrap::wrap(Napi::Env env, std::shared_ptr<const vitmsn::Model> model, const std::string& device) {
  Handoff handoff{std::move(model), device};
  return addon_data(env).model_ctor.New({Napi::External<Handoff>::New(env, &handoff)});
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw_invalid(info.Env(), "NativeModel cannot be constructed directly; use loadModel()");
  }
  Handoff* h = info[0].As<Napi::External<Handoff>>().Data();
  model_ = std::move(h->model);
  device_ = h->device;
}

std::shared_ptr<const vitmsn::Model> ModelWrap::live(Napi::Env env) const {
  if (!model_) throw make_error(env, vitmsn::codes::kDisposed, "the model has been disposed");
  return model_;
}

Napi::Value ModelWrap::forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<const vitmsn::Model> model = live(env);
  vitmsn::ForwardRequest req = to_request(env, info[0], info[1], info[2]);
  Napi::Object outputs;
  float* logits_out = nullptr;
  try {
    // Cheap checks first: never size a buffer from a bad request.
    const vitmsn::OutputSizes sizes = model->checked_output_sizes(req);
    outputs = forward_outputs(env, *model, req, sizes, &logits_out);
  } catch (const vitmsn::Error& e) {
    return rejected(env, e.code(), e.what());
  }
  auto* worker = new ForwardWorker(env, std::move(model), std::move(req), outputs, logits_out);
  worker->keep_alive(info[0]);
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

Napi::Value ModelWrap::info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<const vitmsn::Model> model = live(env);
  Napi::Object o = Napi::Object::New(env);
  o.Set("device", device_);
  o.Set("backend", model->backend().name());
  o.Set("hasMaskToken", model->has_mask_token());
  o.Set("numLabels", Napi::Number::New(env, static_cast<double>(model->num_labels())));
  return o;
}

Napi::Value ModelWrap::dispose(const Napi::CallbackInfo& info) {
  model_.reset();
  return info.Env().Undefined();
}

Napi::Value load_model(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw_invalid(env, "dir must be a string");
  vitmsn::ModelConfig config = to_config(env, info[1]);
  std::string device = "cpu";
  std::string dtype = "float32";
  int threads = 0;
  if (info[2].IsObject()) {
    Napi::Object o = info[2].As<Napi::Object>();
    if (o.Get("device").IsString()) device = o.Get("device").As<Napi::String>().Utf8Value();
    Napi::Value t = o.Get("threads");
    if (t.IsNumber()) {
      double d = t.As<Napi::Number>().DoubleValue();
      if (!(d >= 0 && d <= 1024)) throw_invalid(env, "threads must be between 0 and 1024");
      threads = static_cast<int>(d);
    }
    // lib/ has already refused dtypes the device cannot run; acquire_backend re-checks.
    if (o.Get("dtype").IsString()) {
      dtype = o.Get("dtype").As<Napi::String>().Utf8Value();
      if (dtype != "float32" && dtype != "float16" && dtype != "bfloat16" && dtype != "int8") {
        throw_invalid(env, "dtype must be 'float32', 'float16', 'bfloat16' or 'int8'");
      }
    }
  }
  auto* worker = new LoadWorker(env, info[0].As<Napi::String>().Utf8Value(), config, device, threads, dtype);
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

}  // namespace vitmsn_binding
