// preprocess(images, config[, { uint8, parallel }]) → Promise<{ data: Float32Array, shape: [N, 3, H, W] }>:
// HF's PIL image processor on already-decoded 8-bit pixels, run on libuv's pool
// (engine/image/preprocess.h). With uint8: the resized RGB levels { data: Uint8Array, shape:
// [N, H, W, 3] } that the embed path (ModelWrap::embed) normalizes inside its patchify. With
// parallel: the images are spread over every core (a process-wide pool) instead of this one thread.
#pragma once
#include <napi.h>

#include "engine/image/preprocess.h"

namespace vitmsn_binding {

Napi::Value preprocess(const Napi::CallbackInfo& info);

// The native form of a preprocessor config object (lib/encode.ts nativePreprocessConfig); throws a
// JS error with the key's name when one is wrong.
vitmsn::PreprocessConfig to_preprocess_config(Napi::Env env, const Napi::Value& v);

}  // namespace vitmsn_binding
