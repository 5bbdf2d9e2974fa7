#include "convert.h"

#include <cmath>
#include <cstring>

#include "common/error.h"
#include "promise_worker.h"

namespace vitmsn_binding {
namespace {

int64_t get_int(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw_invalid(env, std::string("config.") + key + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.0e15) {
    throw_invalid(env, std::string("config.") + key + " must be an integer");
  }
  return static_cast<int64_t>(d);
}

template <typename T>
std::vector<T> copy_typed(Napi::Env env, const Napi::Value& v, napi_typedarray_type type, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
    throw_invalid(env, std::string(what) + " has the wrong array type");
  }
  TypedBytes b = typed_bytes(env, v.As<Napi::TypedArray>(), what);
  std::vector<T> out(b.size / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), b.data, out.size() * sizeof(T));
  return out;
}

}  // namespace

bool get_bool(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  return v.IsBoolean() && v.As<Napi::Boolean>().Value();
}

void throw_invalid(Napi::Env env, const std::string& message) {
  throw make_error(env, vitmsn::codes::kInvalidArgument, message);
}

TypedBytes typed_bytes(Napi::Env env, const Napi::TypedArray& a, const std::string& what) {
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void* data = nullptr;
  napi_value buffer;
  // The data pointer N-API gives is the view's first element, whatever kind of buffer is behind it.
  if (napi_get_typedarray_info(env, a, &type, &length, &data, &buffer, &offset) != napi_ok) {
    throw_invalid(env, what + " is not a readable typed array");
  }
  if (length == 0) {  // a detached buffer reads as empty: say so rather than report a size mismatch
    bool detached = false;
    if (napi_is_detached_arraybuffer(env, buffer, &detached) == napi_ok && detached) {
      throw_invalid(env, what + "'s ArrayBuffer has been detached (transferred); pass a live copy");
    }
    return {};
  }
  return {static_cast<const uint8_t*>(data), a.ByteLength()};
}

vitmsn::ModelConfig to_config(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) throw_invalid(env, "config must be an object");
  Napi::Object o = v.As<Napi::Object>();
  vitmsn::ModelConfig c;
  c.hidden_size = get_int(env, o, "hiddenSize");
  c.num_layers = get_int(env, o, "numHiddenLayers");
  c.num_heads = get_int(env, o, "numAttentionHeads");
  c.intermediate_size = get_int(env, o, "intermediateSize");
  c.image_height = get_int(env, o, "imageHeight");
  c.image_width = get_int(env, o, "imageWidth");
  c.patch_size = get_int(env, o, "patchSize");
  c.num_channels = get_int(env, o, "numChannels");
  c.num_labels = get_int(env, o, "numLabels");
  Napi::Value eps = o.Get("layerNormEps");
  if (!eps.IsNumber()) throw_invalid(env, "config.layerNormEps must be a number");
  c.layer_norm_eps = eps.As<Napi::Number>().DoubleValue();
  c.qkv_bias = get_bool(o, "qkvBias");
  return c;
}

vitmsn::ForwardRequest to_request(Napi::Env env, const Napi::Value& pixels, const Napi::Value& shape,
                                  const Napi::Value& options) {
  vitmsn::ForwardRequest r;
  if (!shape.IsArray() || shape.As<Napi::Array>().Length() != 4) throw_invalid(env, "shape must be [B, C, H, W]");
  Napi::Array s = shape.As<Napi::Array>();
  int64_t dims[4];
  for (uint32_t i = 0; i < 4; ++i) {
    Napi::Value d = s.Get(i);
    double x = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= 1 && x <= 1e9 && x == std::floor(x))) throw_invalid(env, "shape entries must be positive integers");
    dims[i] = static_cast<int64_t>(x);
  }
  r.B = dims[0], r.C = dims[1], r.H = dims[2], r.W = dims[3];
  if (options.IsObject() && get_bool(options.As<Napi::Object>(), "borrowPixels")) {
    // The library's own array (never shared, never handed out): read in place by the worker, which
    // holds a reference to it (see keep_alive in promise_worker.h).
    if (!pixels.IsTypedArray() || pixels.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      throw_invalid(env, "pixelValues has the wrong array type");
    }
    const TypedBytes b = typed_bytes(env, pixels.As<Napi::TypedArray>(), "pixelValues");
    r.pixels_view = reinterpret_cast<const float*>(b.data);
    r.pixels_view_count = b.size / sizeof(float);
  } else {
    r.pixels = copy_typed<float>(env, pixels, napi_float32_array, "pixelValues");
  }
  if (options.IsObject()) {
    Napi::Object o = options.As<Napi::Object>();
    r.output_hidden_states = get_bool(o, "outputHiddenStates");
    r.output_attentions = get_bool(o, "outputAttentions");
    r.interpolate_pos_encoding = get_bool(o, "interpolatePosEncoding");
    Napi::Value hm = o.Get("headMask");
    if (!hm.IsUndefined() && !hm.IsNull()) r.head_mask = copy_typed<float>(env, hm, napi_float32_array, "headMask");
    Napi::Value bm = o.Get("boolMaskedPos");
    if (!bm.IsUndefined() && !bm.IsNull()) {
      r.bool_masked_pos = copy_typed<uint8_t>(env, bm, napi_uint8_array, "boolMaskedPos");
    }
  }
  return r;
}

}  // namespace vitmsn_binding
