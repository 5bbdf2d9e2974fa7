// Output arrays made on the main thread for a worker to fill, so that no result is ever copied on
// the event loop: allocating is cheap (fresh pages, first touched by the worker), copying hundreds
// of MB is not. Each array stays referenced by its worker until the promise settles with it.
#pragma once
#include <napi.h>

#include <cstddef>

#include "engine/model/model.h"

namespace vitmsn_binding {

// A Float32Array of n floats in the JS heap (no external buffers: Electron ≥ 21 forbids them).
// Throws vitmsn::Error ERR_OUT_OF_MEMORY when V8 refuses one this large; a Napi::Error when the
// environment is shutting down.
Napi::Float32Array output_array(Napi::Env env, size_t n, const char* what);

// The same for n bytes (the embed path's uint8 pixels).
Napi::Uint8Array output_bytes(Napi::Env env, size_t n, const char* what);

// forward()'s result object ({ B, T, D, H, lastHiddenState, hiddenStates, attentions, numLabels,
// logits }) with every output allocated, and where the worker writes them: request's
// last_hidden_out, hidden_states_out, attentions_out, and *logits_out (null without a classifier).
Napi::Object forward_outputs(Napi::Env env, const vitmsn::Model& model, vitmsn::ForwardRequest& request,
                             const vitmsn::OutputSizes& sizes, float** logits_out);

}  // namespace vitmsn_binding
