// fitLogRegPaths([{ X: Float64Array, y: Int32Array, N, D, K, Cs: number[], Xtest?, ytest? }, ...],
//                { tol, maxIter, threads })
//   → Promise<Array<Array<{ W, b, objective, iterations, converged, gradMaxAbs, correct? }>>>
// One entry per task, one fit per C (each warm-started from the previous C's). The inputs are
// copied at call time; the fitting runs on a worker (it never blocks the event loop), the tasks
// spread over up to `threads` threads with results identical for any thread count.
#include "logreg_binding.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/error.h"
#include "convert.h"
#include "engine/probe/logreg.h"
#include "promise_worker.h"

namespace vitmsn_binding {
namespace {

double number(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw_invalid(env, what + "." + key + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throw_invalid(env, what + "." + key + " must be finite");
  return d;
}

int64_t positive_int(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  const double d = number(env, o, key, what);
  if (!(d >= 1 && d <= 9.0e15 && d == std::floor(d)))
    throw_invalid(env, what + "." + key + " must be a positive integer");
  return static_cast<int64_t>(d);
}

template <typename T>
std::vector<T> copy_array(Napi::Env env, const Napi::Value& v, napi_typedarray_type type, const std::string& what,
                          const char* type_name, size_t want) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
    throw_invalid(env, what + " must be a " + type_name);
  }
  TypedBytes b = typed_bytes(env, v.As<Napi::TypedArray>(), what);
  if (b.size != want * sizeof(T)) {
    throw make_error(
        env, vitmsn::codes::kShape,
        what + " holds " + std::to_string(b.size / sizeof(T)) + " values, expected " + std::to_string(want));
  }
  std::vector<T> out(want);
  if (want) std::memcpy(out.data(), b.data, want * sizeof(T));
  return out;
}

vitmsn::logreg::Task to_task(Napi::Env env, const Napi::Value& v, uint32_t index) {
  const std::string what = "tasks[" + std::to_string(index) + "]";
  if (!v.IsObject()) throw_invalid(env, what + " must be an object");
  Napi::Object o = v.As<Napi::Object>();
  vitmsn::logreg::Task t;
  t.N = positive_int(env, o, "N", what);
  t.D = positive_int(env, o, "D", what);
  t.K = positive_int(env, o, "K", what);
  if (static_cast<double>(t.N) * static_cast<double>(t.D) > 4.0e9) throw_invalid(env, what + ": N·D too large");
  if (static_cast<double>(t.K) * static_cast<double>(t.D) > 4.0e9) throw_invalid(env, what + ": K·D too large");
  t.X = copy_array<double>(env, o.Get("X"), napi_float64_array, what + ".X", "Float64Array",
                           static_cast<size_t>(t.N * t.D));
  t.y = copy_array<int32_t>(env, o.Get("y"), napi_int32_array, what + ".y", "Int32Array", static_cast<size_t>(t.N));
  Napi::Value cs = o.Get("Cs");
  if (!cs.IsArray() || cs.As<Napi::Array>().Length() == 0) throw_invalid(env, what + ".Cs must be a non-empty array");
  Napi::Array a = cs.As<Napi::Array>();
  for (uint32_t j = 0; j < a.Length(); ++j) {
    Napi::Value c = a.Get(j);
    const double C = c.IsNumber() ? c.As<Napi::Number>().DoubleValue() : NAN;
    if (!(C > 0) || !std::isfinite(C)) throw_invalid(env, what + ".Cs must hold positive numbers");
    t.Cs.push_back(C);
  }
  Napi::Value yt = o.Get("ytest");
  if (!yt.IsUndefined()) {
    if (!yt.IsTypedArray()) throw_invalid(env, what + ".ytest must be an Int32Array");
    const size_t nt = yt.As<Napi::TypedArray>().ElementLength();
    t.ytest = copy_array<int32_t>(env, yt, napi_int32_array, what + ".ytest", "Int32Array", nt);
    t.Xtest = copy_array<double>(env, o.Get("Xtest"), napi_float64_array, what + ".Xtest", "Float64Array",
                                 nt * static_cast<size_t>(t.D));
  } else if (!o.Get("Xtest").IsUndefined()) {
    throw_invalid(env, what + ": Xtest needs ytest");
  }
  return t;
}

class LogRegWorker : public PromiseWorker {
 public:
  LogRegWorker(Napi::Env env, std::vector<vitmsn::logreg::Task> tasks, vitmsn::logreg::Options opts, int threads)
      : PromiseWorker(env, "vitmsn:logreg"), tasks_(std::move(tasks)), opts_(opts), threads_(threads) {}

 protected:
  void run() override {
    results_ = vitmsn::logreg::fit_tasks(tasks_, opts_, threads_);
    tasks_ = std::vector<vitmsn::logreg::Task>();
  }

  Napi::Value result(Napi::Env env) override {
    auto f64 = [&](const std::vector<double>& v) {
      Napi::Float64Array a = Napi::Float64Array::New(env, v.size());
      if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(double));
      return a;
    };
    Napi::Array out = Napi::Array::New(env, results_.size());
    for (size_t t = 0; t < results_.size(); ++t) {
      const vitmsn::logreg::TaskResult& r = results_[t];
      Napi::Array fits = Napi::Array::New(env, r.fits.size());
      for (size_t j = 0; j < r.fits.size(); ++j) {
        const vitmsn::logreg::Fit& f = r.fits[j];
        Napi::Object o = Napi::Object::New(env);
        o.Set("W", f64(f.W));
        o.Set("b", f64(f.b));
        o.Set("objective", f.objective);
        o.Set("iterations", static_cast<double>(f.iterations));
        o.Set("converged", f.converged);
        o.Set("gradMaxAbs", f.grad_max_abs);
        if (j < r.correct.size()) o.Set("correct", static_cast<double>(r.correct[j]));
        fits.Set(static_cast<uint32_t>(j), o);
      }
      out.Set(static_cast<uint32_t>(t), fits);
    }
    return out;
  }

 private:
  std::vector<vitmsn::logreg::Task> tasks_;
  vitmsn::logreg::Options opts_;
  int threads_;
  std::vector<vitmsn::logreg::TaskResult> results_;
};

}  // namespace

Napi::Value fit_logreg_paths(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray() || info[0].As<Napi::Array>().Length() == 0)
    throw_invalid(env, "tasks must be a non-empty array");
  Napi::Array arr = info[0].As<Napi::Array>();
  std::vector<vitmsn::logreg::Task> tasks;
  tasks.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) tasks.push_back(to_task(env, arr.Get(i), i));
  vitmsn::logreg::Options opts;
  int threads = 0;
  if (!info[1].IsUndefined()) {
    if (!info[1].IsObject()) throw_invalid(env, "options must be an object");
    Napi::Object o = info[1].As<Napi::Object>();
    if (!o.Get("tol").IsUndefined()) {
      opts.tol = number(env, o, "tol", "options");
      if (!(opts.tol >= 0)) throw_invalid(env, "options.tol must be non-negative");
    }
    if (!o.Get("maxIter").IsUndefined()) {
      const double m = number(env, o, "maxIter", "options");
      if (!(m >= 0 && m <= 9.0e15 && m == std::floor(m)))
        throw_invalid(env, "options.maxIter must be a non-negative integer");
      opts.max_iter = static_cast<int64_t>(m);
    }
    if (!o.Get("threads").IsUndefined()) {
      const double th = number(env, o, "threads", "options");
      if (!(th >= 0 && th <= 4096 && th == std::floor(th)))
        throw_invalid(env, "options.threads must be a non-negative integer");
      threads = static_cast<int>(th);
    }
  }
  // Labels are checked here too, so a bad one rejects before any work is queued.
  for (size_t t = 0; t < tasks.size(); ++t) {
    for (const std::vector<int32_t>* ys : {&tasks[t].y, &tasks[t].ytest}) {
      for (int32_t c : *ys) {
        if (c < 0 || c >= tasks[t].K) {
          return rejected(env, vitmsn::codes::kInvalidArgument,
                          "tasks[" + std::to_string(t) + "]: label " + std::to_string(c) + " is not in [0, K)");
        }
      }
    }
  }
  auto* worker = new LogRegWorker(env, std::move(tasks), opts, threads);
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

}  // namespace vitmsn_binding
