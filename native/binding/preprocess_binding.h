// preprocess(images, config) → Promise<{ data: Float32Array, shape: [N, 3, H, W] }>: HF's PIL
// image processor on already-decoded 8-bit pixels, run on libuv's pool (engine/image/preprocess.h).
#pragma once
#include <napi.h>

namespace vitmsn_binding {

Napi::Value preprocess(const Napi::CallbackInfo& info);

}  // namespace vitmsn_binding
