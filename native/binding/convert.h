// JS values → engine structs. lib/ has validated everything already; these checks exist so that
// calling the addon directly with junk still yields an ERR_INVALID_ARGUMENT error, never a crash.
#pragma once
#include <napi.h>

#include <string>

#include "engine/model/config.h"
#include "engine/model/model.h"

namespace vitmsn_binding {

vitmsn::ModelConfig to_config(Napi::Env env, const Napi::Value& v);
// Copies pixels and masks out of the JS heap (the caller may reuse its buffers immediately), except
// with options.borrowPixels (the library's own arrays): then the request points into `pixels`, and
// the worker must keep_alive() it.
vitmsn::ForwardRequest to_request(Napi::Env env, const Napi::Value& pixels, const Napi::Value& shape,
                                  const Napi::Value& options);

// o[key] === true.
bool get_bool(const Napi::Object& o, const char* key);

[[noreturn]] void throw_invalid(Napi::Env env, const std::string& message);

// The bytes a typed array views, over an ArrayBuffer or a SharedArrayBuffer alike (node-addon-api's
// TypedArray::ArrayBuffer() refuses the latter). Read them at once: the JS side may change them
// later (a SharedArrayBuffer even while we read: the copy then holds a mix, as any reader would
// see). A view over a detached ArrayBuffer (transferred away) is an ERR_INVALID_ARGUMENT.
struct TypedBytes {
  const uint8_t* data = nullptr;
  size_t size = 0;
};
TypedBytes typed_bytes(Napi::Env env, const Napi::TypedArray& a, const std::string& what);

}  // namespace vitmsn_binding
