#include "preprocess_binding.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "cpu/thread_pool.h"
#include "convert.h"
#include "engine/image/preprocess.h"
#include "outputs.h"
#include "promise_worker.h"

namespace vitmsn_binding {
namespace {

struct OwnedImage {
  // Copied out of the JS heap (the caller may reuse its buffer at once). uint16 storage keeps the
  // 16-bit grey samples aligned; 8-bit formats use it as bytes.
  std::vector<uint16_t> data;
  size_t bytes = 0;
  int64_t width = 0, height = 0;
  int channels = 0;
  vitmsn::PixelFormat format = vitmsn::PixelFormat::U8;
};

double number_field(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw_invalid(env, what + "." + key + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) throw_invalid(env, what + "." + key + " must be finite");
  return d;
}

int64_t int_field(Napi::Env env, const Napi::Object& o, const char* key, const std::string& what, int64_t lo,
                  int64_t hi) {
  double d = number_field(env, o, key, what);
  if (d != std::floor(d) || d < static_cast<double>(lo) || d > static_cast<double>(hi)) {
    throw make_error(env, vitmsn::codes::kImageInvalid,
                     what + "." + key + " must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi) +
                         ", got " + std::to_string(d));
  }
  return static_cast<int64_t>(d);
}

OwnedImage to_image(Napi::Env env, const Napi::Value& v, uint32_t index) {
  const std::string what = "images[" + std::to_string(index) + "]";
  if (!v.IsObject()) throw_invalid(env, what + " must be { data, width, height, channels }");
  Napi::Object o = v.As<Napi::Object>();
  OwnedImage im;
  im.width = int_field(env, o, "width", what, 1, int64_t{1} << 30);
  im.height = int_field(env, o, "height", what, 1, int64_t{1} << 30);
  im.channels = static_cast<int>(int_field(env, o, "channels", what, 1, 4));
  // format: absent = 8-bit L/LA/RGB/RGBA; "CMYK" = 8-bit CMYK; "I;16" = 16-bit grey (Uint16Array).
  Napi::Value f = o.Get("format");
  if (!f.IsUndefined()) {
    const std::string fs = f.IsString() ? f.As<Napi::String>().Utf8Value() : std::string();
    if (fs == "CMYK" && im.channels == 4) {
      im.format = vitmsn::PixelFormat::CMYK;
    } else if (fs == "I;16" && im.channels <= 2) {
      im.format = vitmsn::PixelFormat::I16;
    } else {
      throw_invalid(env, what + ".format must be \"CMYK\" (4 channels) or \"I;16\" (1 or 2 channels) when given");
    }
  }
  const bool wide = im.format == vitmsn::PixelFormat::I16;
  Napi::Value d = o.Get("data");
  if (!d.IsTypedArray() || d.As<Napi::TypedArray>().TypedArrayType() != (wide ? napi_uint16_array : napi_uint8_array)) {
    throw_invalid(env, what + (wide ? ".data must be a Uint16Array of 16-bit pixels"
                                    : ".data must be a Uint8Array (or Buffer) of 8-bit pixels"));
  }
  TypedBytes a = typed_bytes(env, d.As<Napi::TypedArray>(), what + ".data");
  const uint64_t want =
      static_cast<uint64_t>(im.width) * static_cast<uint64_t>(im.height) * im.channels * (wide ? 2 : 1);
  if (a.size != want) {
    throw make_error(env, vitmsn::codes::kImageInvalid,
                     what + ".data has " + std::to_string(a.size) + " bytes; " + std::to_string(im.width) + "x" +
                         std::to_string(im.height) + "x" + std::to_string(im.channels) + " needs " +
                         std::to_string(want));
  }
  im.data.resize((want + 1) / 2);
  im.bytes = want;
  std::memcpy(im.data.data(), a.data, want);
  return im;
}

// The pool that spreads a batch's images over every core (preprocess with { parallel: true }): the
// CPU kernels' ThreadPool, one per process, started on first use and never torn down (a worker
// thread may still be in a job when the process exits). Jobs from several calls run one after another.
vitmsn::cpu::ThreadPool& image_pool() {
  static auto* pool = new vitmsn::cpu::ThreadPool(std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
  return *pool;
}

// The pixel values go into an array made on the main thread (outputs.h) and filled here on the
// worker: settling copies nothing.
class PreprocessWorker : public PromiseWorker {
 public:
  PreprocessWorker(Napi::Env env, std::vector<OwnedImage> images, vitmsn::PreprocessConfig config, bool u8,
                   bool parallel)
      : PromiseWorker(env, "vitmsn:preprocess"),
        images_(std::move(images)),
        config_(config),
        u8_(u8),
        parallel_(parallel) {}

  // { data: Float32Array [N, 3, H, W], shape } (uint8: { data: Uint8Array [N, H, W, 3], shape }),
  // sized from image 0 (run() refuses the others if they differ). Main thread, before Queue().
  Napi::Object make_outputs(Napi::Env env) {
    auto [H, W] = vitmsn::preprocessed_size(view(0), config_);
    H_ = H, W_ = W;
    const size_t n = static_cast<size_t>(3 * H * W) * images_.size();
    Napi::Object o = Napi::Object::New(env);
    if (u8_) {
      Napi::Uint8Array data = output_bytes(env, n, "pixels");
      out_u8_ = data.Data();
      o.Set("data", data);
    } else {
      Napi::Float32Array data = output_array(env, n, "pixel values");
      out_ = data.Data();
      o.Set("data", data);
    }
    const double dims[4] = {static_cast<double>(images_.size()), u8_ ? static_cast<double>(H) : 3,
                            static_cast<double>(u8_ ? W : H), u8_ ? 3 : static_cast<double>(W)};
    Napi::Array shape = Napi::Array::New(env, 4);
    for (uint32_t i = 0; i < 4; ++i) shape.Set(i, Napi::Number::New(env, dims[i]));
    o.Set("shape", shape);
    outputs_ = Napi::Persistent(o);
    return o;
  }

 protected:
  void run() override {
    const size_t per = static_cast<size_t>(3 * H_ * W_);
    for (size_t i = 0; i < images_.size(); ++i) {
      auto [h, w] = vitmsn::preprocessed_size(view(i), config_);
      if (h != H_ || w != W_) {
        throw vitmsn::Error(
            vitmsn::codes::kShape,
            "images of different sizes cannot be batched without resizing (do_resize is false): image " +
                std::to_string(i) + " is " + std::to_string(w) + "x" + std::to_string(h) + ", image 0 is " +
                std::to_string(W_) + "x" + std::to_string(H_));
      }
    }
    auto body = [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const vitmsn::ImageView im = view(static_cast<size_t>(i));
        if (u8_)
          vitmsn::preprocess_image_u8(im, config_, out_u8_ + i * per);
        else
          vitmsn::preprocess_image(im, config_, out_ + i * per);
        images_[static_cast<size_t>(i)].data = std::vector<uint16_t>();  // free each source once done
      }
    };
    // A one-thread pool runs the body on this thread (the CPU model's case: its forward has the cores).
    static auto* here = new vitmsn::cpu::ThreadPool(1);
    const int64_t n = static_cast<int64_t>(images_.size());
    (parallel_ ? image_pool() : *here).parallel_for(n, body, n * static_cast<int64_t>(per) * 16);
  }
  Napi::Value result(Napi::Env) override { return outputs_.Value(); }

 private:
  vitmsn::ImageView view(size_t i) const {
    const OwnedImage& im = images_[i];
    vitmsn::ImageView v;
    v.data = reinterpret_cast<const uint8_t*>(im.data.data());
    v.width = im.width;
    v.height = im.height;
    v.channels = im.channels;
    v.bytes = im.bytes;
    v.format = im.format;
    return v;
  }

  std::vector<OwnedImage> images_;
  vitmsn::PreprocessConfig config_;
  Napi::ObjectReference outputs_;
  bool u8_, parallel_ = false;
  float* out_ = nullptr;       // outputs_.data's floats
  uint8_t* out_u8_ = nullptr;  // or its bytes
  int64_t H_ = 0, W_ = 0;
};

}  // namespace

vitmsn::PreprocessConfig to_preprocess_config(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) throw_invalid(env, "preprocess config must be an object");
  Napi::Object o = v.As<Napi::Object>();
  vitmsn::PreprocessConfig c;
  auto flag = [&](const char* key) {
    Napi::Value b = o.Get(key);
    if (!b.IsBoolean()) throw_invalid(env, std::string("preprocess config.") + key + " must be a boolean");
    return b.As<Napi::Boolean>().Value();
  };
  c.do_resize = flag("doResize");
  c.do_rescale = flag("doRescale");
  c.do_normalize = flag("doNormalize");
  auto positive = [&](const char* key) {
    double d = number_field(env, o, key, "preprocess config");
    if (!(d >= 1 && d <= 65536 && d == std::floor(d)))
      throw_invalid(env, std::string("config.") + key + " out of range");
    return static_cast<int64_t>(d);
  };
  c.height = positive("height");
  c.width = positive("width");
  double r = number_field(env, o, "resample", "preprocess config");
  if (r != std::floor(r) || !vitmsn::is_supported_filter(static_cast<int>(r))) {
    throw_invalid(env, "preprocess config.resample must be a PIL filter from 1 to 5");
  }
  c.resample = static_cast<vitmsn::ResampleFilter>(static_cast<int>(r));
  c.rescale_factor = number_field(env, o, "rescaleFactor", "preprocess config");
  for (const char* key : {"imageMean", "imageStd"}) {
    Napi::Value a = o.Get(key);
    if (!a.IsArray() || a.As<Napi::Array>().Length() != 3)
      throw_invalid(env, std::string(key) + " must hold 3 numbers");
    for (uint32_t i = 0; i < 3; ++i) {
      Napi::Value x = a.As<Napi::Array>().Get(i);
      if (!x.IsNumber()) throw_invalid(env, std::string(key) + " must hold 3 numbers");
      // HF builds np.array(mean, dtype=float32): the float64 value rounded once to float32.
      float f = static_cast<float>(x.As<Napi::Number>().DoubleValue());
      (key[5] == 'M' ? c.mean : c.std)[i] = f;
    }
  }
  return c;
}

Napi::Value preprocess(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray() || info[0].As<Napi::Array>().Length() == 0) {
    throw_invalid(env, "images must be a non-empty array");
  }
  Napi::Array arr = info[0].As<Napi::Array>();
  vitmsn::PreprocessConfig config = to_preprocess_config(env, info[1]);
  std::vector<OwnedImage> images;
  images.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); ++i) images.push_back(to_image(env, arr.Get(i), i));
  bool u8 = false, parallel = false;
  if (info[2].IsObject()) {
    u8 = get_bool(info[2].As<Napi::Object>(), "uint8");
    parallel = get_bool(info[2].As<Napi::Object>(), "parallel");
  }
  auto* worker = new PreprocessWorker(env, std::move(images), config, u8, parallel);
  try {
    worker->make_outputs(env);
  } catch (const vitmsn::Error& e) {
    delete worker;  // never queued
    return rejected(env, e.code(), e.what());
  } catch (...) {
    delete worker;
    throw;
  }
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

}  // namespace vitmsn_binding
