// The interface the engine's forward pass is written against. A backend owns device memory and
// implements one entry per fused op the model needs; the engine never touches device memory
// directly. Device memory is handed out as DevicePtr (device_ptr.h): an address typed by the
// backend's storage type (float32 on the CPU; float32, float16 or bfloat16 on a GPU); host data
// crosses as float32 through upload/download. The ops' arguments and math are in op_args.h.
//
// Thread-safety: every method may be called concurrently from several threads (several forwards
// on one model run at once); a backend serialises internally where it must.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/device_ptr.h"
#include "backend/op_args.h"
#include "backend/resize_pass.h"

namespace vitmsn {

using GemmArgs = GemmArgsOf<DevicePtr, DevicePtr>;
using LayerNormArgs = LayerNormArgsOf<DevicePtr, DevicePtr>;
using LayerNormPrologue = LayerNormPrologueOf<DevicePtr>;
using MlpArgs = MlpArgsOf<DevicePtr, DevicePtr>;
using AttentionArgs = AttentionArgsOf<DevicePtr, DevicePtr>;
using QkvAttentionArgs = QkvAttentionArgsOf<DevicePtr, DevicePtr>;
using PatchifyArgs = PatchifyArgsOf<DevicePtr, DevicePtr>;
using EmbedTokensArgs = EmbedTokensArgsOf<DevicePtr, DevicePtr>;
using PatchifyPixelsArgs = PatchifyPixelsArgsOf<DevicePtr, DevicePtr>;
using PoolRowsArgs = PoolRowsArgsOf<DevicePtr, DevicePtr>;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Memory. alloc throws vitmsn::Error(ERR_OUT_OF_MEMORY) on failure; n counts elements (of the
  // storage type, which every buffer of a backend shares).
  virtual DevicePtr alloc(size_t n) = 0;
  // Bytes this backend can still allocate (SIZE_MAX when unknown), and whether they are the host's
  // memory (then outputs and activations draw from the same pool). Forward passes are refused up
  // front when they would not fit.
  virtual size_t available_bytes() const = 0;
  virtual bool uses_host_memory() const = 0;
  // Memory kept for reuse by freed buffers (not counted in available_bytes), and a way to give it
  // back when a request would not fit otherwise.
  virtual size_t cached_bytes() const { return 0; }
  virtual void release_cached() noexcept {}
  virtual void release(DevicePtr p) noexcept = 0;
  // n float32 values in, converted to the storage type, and back.
  virtual void upload(DevicePtr dst, const float* host_src, size_t n) = 0;
  virtual void download(float* host_dst, DevicePtr src, size_t n) = 0;
  // `bytes` raw bytes in, as they are (uint8 pixels); dst must hold them (elements × storage size).
  virtual void upload_bytes(DevicePtr dst, const void* host_src, size_t bytes) = 0;
  // And back, once the work queued so far has run (GPU-decoded pixels, for measuring them).
  virtual void download_bytes(void* host_dst, DevicePtr src, size_t bytes) = 0;
  // Copies n elements of rows with strides (both in elements): dst[r*dst_ld + i] = src[r*src_ld + i].
  virtual void copy_rows(DevicePtr dst, int64_t dst_ld, DevicePtr src, int64_t src_ld, int64_t rows, int64_t n) = 0;

  // Prepares W [N, K] (host memory, PyTorch Linear layout) for gemm's Wp. The result does not
  // reference host_w, so the caller may free it right away (a streamed load keeps one tensor).
  virtual std::unique_ptr<PreparedLinear> prepare_linear(const float* host_w, int64_t N, int64_t K,
                                                         WeightDtype dtype) = 0;

  // Ops (see the argument structs for the math).
  virtual void gemm(const GemmArgs& a) = 0;
  virtual void layernorm(const LayerNormArgs& a) = 0;
  virtual void attention(const AttentionArgs& a) = 0;
  virtual void patchify(const PatchifyArgs& a) = 0;
  virtual void embed_tokens(const EmbedTokensArgs& a) = 0;
  // The embed path (Model::embed): uint8 pixels straight into normalized patches, and pooling on
  // the device so only [B, D] comes back.
  virtual void patchify_pixels(const PatchifyPixelsArgs& a) = 0;
  virtual void pool_rows(const PoolRowsArgs& a) = 0;
  // Optional, opt-in GPU decoding: JPEG files (host memory) decoded and resized to H × W on the device
  // into dst, B · H · W · 3 uint8 levels (dst holds them: elements × storage size), for
  // patchify_pixels' device_pixels. Pillow's resize with the tables of `taps` (resize_taps of the
  // preprocessor's filter), so only the decoder differs from the CPU path. Returns the files it did
  // not take (index, why: grey, CMYK, or refused by the decoder); then dst is incomplete. Throws
  // ERR_DEVICE_UNAVAILABLE where there is no JPEG decoder (the default).
  struct JpegFiles {
    std::vector<const uint8_t*> data;
    std::vector<size_t> sizes;
    std::function<ResizeTaps(int64_t in_size, int64_t out_size)> taps;
  };
  virtual std::vector<std::pair<int64_t, std::string>> decode_jpegs(const JpegFiles& files, int64_t H, int64_t W,
                                                                    DevicePtr dst);
  // The LayerNorm, the projection and attention, through buffers of this backend, unless the
  // backend has something better.
  virtual void qkv_attention(const QkvAttentionArgs& a);
  // The LayerNorm and two GEMMs through buffers of this backend, unless it has something better.
  virtual void mlp(const MlpArgs& a);
  // How many rows (images × tokens) the encoder layers of a model with `dtype` Linears should take
  // at a time: a batch of more images runs its layers image group by image group, each group
  // through all layers, so that its activations stay in cache. Only where the ops' results do not
  // depend on the row count. 0: the whole batch at once.
  virtual int64_t layer_rows(WeightDtype dtype) const {
    (void)dtype;
    return 0;
  }

  // Optional: a large forward in parts with the transfers beside the compute (a device with its own
  // copy engines): part p+1's input crosses while part p computes, and part p−1's output comes back
  // meanwhile. pipeline_part_images says how many images a part of a B-image forward should hold (0:
  // not offered, run it whole). A session (pipelined_io) is begun after the caller has allocated
  // every part's input buffer; per part, in this order: upload its input, queue its ops, finish(its
  // output block); download a part's output only after finishing the next part (or at the end).
  // Parts alternate between two sets of the session's buffers (by part % 2).
  class PipelinedIo {
   public:
    virtual ~PipelinedIo() = default;
    // n float32 values → dst (backend memory allocated before the session began).
    virtual void upload(int64_t part, DevicePtr dst, const float* host, size_t n) = 0;
    // The part's output block (n elements at src) is complete once the ops queued so far have run.
    virtual void finish(int64_t part, DevicePtr src, size_t n) = 0;
    // Waits for finish(part)'s block and copies its elements [offset, offset + n) to host (float32).
    virtual void download(int64_t part, size_t offset, float* host, size_t n) = 0;
  };
  virtual int64_t pipeline_part_images(int64_t B) const {
    (void)B;
    return 0;
  }
  // For parts of at most max_in input and max_out output elements; null when not offered.
  virtual std::unique_ptr<PipelinedIo> pipelined_io(size_t max_in, size_t max_out) {
    (void)max_in, (void)max_out;
    return nullptr;
  }

  // Optional replay of a whole forward (CUDA graphs: at small batches every op is launch-bound).
  // body(in, out) must enqueue only device ops of this backend, reading `in` (the backend's copy of
  // the input: float32 values in the storage type, or raw bytes) and writing `out` (n_out elements,
  // copied to host_out as float32). A backend that
  // records runs body once per key, then replays it for every later call with the same key, so the
  // key must name everything the recorded work depends on: the owner (one model's weights and
  // outputs: a backend is shared by every model on its device) and the request's shapes and
  // outputs. Returns false (having done nothing) when it cannot record; the caller then runs the
  // ops eagerly.
  struct RecordKey {
    uint64_t owner = 0;  // unique per model for the process's lifetime (never reused)
    std::string what;    // shapes, options and outputs of the request
  };
  struct RecordedInput {
    const void* host = nullptr;
    size_t n = 0;         // float32 values, or bytes
    bool float32 = true;  // float32: `in` holds them in the storage type; else the bytes as they are
    size_t bytes() const { return float32 ? n * sizeof(float) : n; }
  };
  using RecordedBody = std::function<void(DevicePtr in, DevicePtr out)>;
  virtual bool run_recorded(const RecordKey& key, const RecordedInput& in, float* host_out, size_t n_out,
                            const RecordedBody& body) {
    (void)key, (void)in, (void)host_out, (void)n_out, (void)body;
    return false;
  }
  // Drops everything recorded for `owner` (its graphs, their device memory and pinned buffers).
  // Called when the model goes, before its weights are freed.
  virtual void forget_recorded(uint64_t owner) noexcept { (void)owner; }
};

}  // namespace vitmsn
