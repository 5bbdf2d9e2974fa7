// A loaded ViT-MSN model: weights resident on one backend, and the forward pass written once
// against the Backend interface (docs/model.md, "Forward pass").
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/device_array.h"
#include "backend/pixel_norm.h"
#include "engine/model/config.h"

namespace vitmsn {

struct ForwardRequest {
  std::vector<float> pixels;  // [B, C, H, W]
  // Or borrowed: the caller keeps these floats alive and unchanged until forward() returns (the
  // addon borrows arrays that only the library holds, instead of copying them).
  const float* pixels_view = nullptr;
  size_t pixels_view_count = 0;
  const float* pixel_data() const { return pixels_view ? pixels_view : pixels.data(); }
  size_t pixel_count() const { return pixels_view ? pixels_view_count : pixels.size(); }
  int64_t B = 0, C = 0, H = 0, W = 0;
  bool output_hidden_states = false;
  bool output_attentions = false;
  bool interpolate_pos_encoding = false;
  std::vector<float> head_mask;          // empty, [H] (every layer) or [L, H]
  std::vector<uint8_t> bool_masked_pos;  // empty or [B, N] of 0/1
  // Where last_hidden_state goes ([B, T, D] floats), when the caller has a buffer for it (the addon
  // passes the JS array it will return, so no copy happens on the event loop); then
  // ForwardResult::last_hidden_state stays empty.
  float* last_hidden_out = nullptr;
  // Likewise for the taps, when asked: hidden_states_out holds num_layers + 1 buffers of [B, T, D]
  // floats, attentions_out num_layers of [B, H, T, T]; each tap is downloaded straight into its
  // buffer and the matching ForwardResult vector stays empty. Empty: ForwardResult holds them.
  std::vector<float*> hidden_states_out;
  std::vector<float*> attentions_out;
};

// How encode() turns the token sequence into one vector per image.
enum class Pooling {
  Cls,         // last_hidden_state[:, 0]: what HF users take
  ClsPrenorm,  // hidden_states[-1][:, 0]: the CLS before the final LayerNorm (MSN's own evaluation)
  Mean,        // mean of last_hidden_state[:, 1:]: the patch tokens, CLS excluded
};

// Model::embed: resized uint8 RGB images in, pooled vectors and/or logits out (encode() and
// classify()). The same results as forward() then pool() on the host (bit for bit on the CPU),
// without the float32 pixel tensor, the [B, T, D] download or the hidden states.
struct EmbedRequest {
  const uint8_t* pixels = nullptr;  // [B, H, W, 3] levels, borrowed until embed() returns
  size_t pixel_bytes = 0;
  // Or B JPEG files to decode and resize to H × W on the device (opt-in GPU decoding; the backend's
  // decode_jpegs), borrowed likewise; pixels is then null.
  const Backend::JpegFiles* jpegs = nullptr;
  int64_t B = 0, H = 0, W = 0;
  PixelNorm norm;  // the preprocessor's rescale/normalize, applied inside the patchify
  bool interpolate_pos_encoding = false;
  bool pool = false;  // pooled [B, D] wanted
  Pooling pooling = Pooling::Cls;
  bool normalize = false;  // L2-normalise each pooled row (max(‖row‖₂, 1e-12))
  bool logits = false;     // [B, num_labels] wanted (needs a classifier)
  // Where the outputs go when the caller has buffers (else EmbedResult holds them).
  float* pooled_out = nullptr;
  float* logits_out = nullptr;
};

struct EmbedResult {
  int64_t B = 0, D = 0, num_labels = 0;
  // With jpegs: the files the device decoder did not take (index, why). Then nothing ran: the
  // caller decodes those on the CPU and asks again without them.
  std::vector<std::pair<int64_t, std::string>> rejected;
  std::vector<float> pooled;  // [B, D] when asked and no pooled_out was given
  std::vector<float> logits;  // [B, num_labels] likewise
};

// How many floats each output of a request has (see Model::checked_output_sizes).
struct OutputSizes {
  size_t last_hidden = 0;   // [B, T, D]
  size_t hidden_state = 0;  // each of the num_layers + 1 hidden_states, [B, T, D]; 0 when not asked
  size_t attention = 0;     // each of the num_layers attentions, [B, H, T, T]; 0 when not asked
  size_t logits = 0;        // [B, num_labels]; 0 without a classifier
};

struct ForwardResult {
  int64_t B = 0, T = 0, D = 0, H = 0;
  std::vector<float> last_hidden_state;           // [B, T, D]
  std::vector<std::vector<float>> hidden_states;  // L + 1 × [B, T, D] when asked
  std::vector<std::vector<float>> attentions;     // L × [B, H, T, T] when asked
  std::vector<float> logits;                      // [B, num_labels] when the checkpoint has a classifier
  int64_t num_labels = 0;
};

// Bytes a forward pass would allocate: on the backend (activations, float32 at most) and on the
// host (what comes back). On the CPU both are host memory.
struct MemoryNeed {
  double device_bytes = 0, host_bytes = 0;
};

// Linear weights are prepared by the backend at load (packed panels on the CPU, possibly bf16);
// the loaded float32 copy is released as soon as each one is prepared.
using Linear = std::unique_ptr<PreparedLinear>;

struct LayerWeights {
  DeviceArray ln1_g, ln1_b;
  Linear qkv_w;       // [3D, D]: query, key, value stacked
  DeviceArray qkv_b;  // [3D] (zero when qkv_bias is false)
  Linear out_w;       // [D, D]
  DeviceArray out_b;  // [D]
  DeviceArray ln2_g, ln2_b;
  Linear fc1_w;       // [I, D]
  DeviceArray fc1_b;  // [I]
  Linear fc2_w;       // [D, I]
  DeviceArray fc2_b;  // [D]
};

struct ModelWeights {
  Linear patch_w;                // [D, C·p·p] (the conv kernel flattened)
  DeviceArray patch_b;           // [D]
  DeviceArray cls;               // [D]
  std::vector<float> pos_table;  // [1 + N0, D], host copy: interpolated per input grid
  DeviceArray pos;               // [1 + N0, D] on the device, for the trained grid
  DeviceArray mask_token;        // [D] or empty
  std::vector<LayerWeights> layers;
  DeviceArray final_g, final_b;
  Linear classifier_w;       // [num_labels, D] or null
  DeviceArray classifier_b;  // [num_labels] or empty
  int64_t num_labels = 0;
};

class Model {
 public:
  // Reads the checkpoint in `dir`, checks every tensor against the config, uploads to the backend.
  // dtype: storage of the Linear weights (kBFloat16: bf16 GEMMs, ~1e-2 relative error; kInt8: int8
  // GEMMs for the encoder's Linears, the patch embedding in bf16 — see model_loader.cc).
  static std::unique_ptr<Model> load(const ModelConfig& config, const std::string& dir,
                                     std::shared_ptr<Backend> backend, WeightDtype dtype = WeightDtype::kFloat32);

  // Safe to call from several threads at once: activations are per call, weights read-only.
  ForwardResult forward(const ForwardRequest& request) const;
  // The embed path (EmbedRequest). Thread-safe like forward().
  EmbedResult embed(const EmbedRequest& request) const;
  // GPU decoding alone, for measuring it against the CPU path: the B files decoded and resized to
  // H × W on this model's device into pixels ([B, H, W, 3] levels; resized when fewer are there),
  // or the files the device decoder did not take (then pixels is empty).
  std::vector<std::pair<int64_t, std::string>> decode_jpegs(const Backend::JpegFiles& files, int64_t H, int64_t W,
                                                            std::vector<uint8_t>* pixels) const;
  // embed()'s checks (shapes, options, memory; throws vitmsn::Error).
  void check_embed(const EmbedRequest& request) const;
  // max_batch for embed requests of this image shape (host_bytes_per_image as there).
  int64_t max_embed_batch(EmbedRequest request, double host_bytes_per_image, int64_t wanted) const;
  // The checks forward() starts with (shapes, options, memory; throws vitmsn::Error), and the
  // sizes of the outputs of a request that passes them (so a caller can allocate them beforehand).
  OutputSizes checked_output_sizes(const ForwardRequest& request) const;
  // The largest batch (at most `wanted`) of `request`'s image shape and options that fits in the
  // memory left now, counting host_bytes_per_image more per image (the caller's own buffers); 0
  // when none does. Gives back the backend's cached buffers when they are in the way.
  int64_t max_batch(ForwardRequest request, double host_bytes_per_image, int64_t wanted) const;

  const ModelConfig& config() const { return config_; }
  bool has_mask_token() const { return static_cast<bool>(weights_.mask_token); }
  int64_t num_labels() const { return weights_.num_labels; }
  const Backend& backend() const { return *backend_; }
  // Names this model in its backend's recordings (Backend::RecordKey::owner); never reused.
  uint64_t id() const { return id_; }

  // What the backend recorded for this model (CUDA graphs) goes with it, before its weights.
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

 private:
  Model(const ModelConfig& config, std::shared_ptr<Backend> backend);
  void check_request(const ForwardRequest& r) const;
  MemoryNeed memory_need(const ForwardRequest& r) const;
  MemoryNeed memory_need(const EmbedRequest& r) const;
  // What forward and embed share: the activation-size guard of an input grid, and max_batch.
  void check_activations(int64_t B, int64_t H, int64_t W, bool attentions) const;
  int64_t fitting_batch(MemoryNeed one, double host_bytes_per_image, int64_t wanted) const;
  // Throws ERR_OUT_OF_MEMORY when `need` does not fit in what the backend and the host have left.
  void check_fits(const MemoryNeed& need) const;
  // The device part of forward: pixels (backend memory, [B, C, H, W]) → out (backend memory,
  // [B·T·D] last_hidden_state then [B·num_labels] logits). taps, when set, receives the hidden
  // states and attentions as they are computed (downloads: never inside a recorded replay).
  void encode(const ForwardRequest& r, DevicePtr pixels, DevicePtr out, ForwardResult* taps) const;
  // forward's eager path for a plain request on a backend that pipelines transfers
  // (Backend::pipelined_io): parts of `per` images, each through encode(). False (nothing done)
  // when the backend offers no session.
  bool forward_pipelined(const ForwardRequest& r, int64_t per, float* hidden, float* logits) const;
  // The stages both paths share. tokens: patches [B·N, C·p·p] → x [B·T, D] (patch embedding, CLS,
  // mask tokens, position embeddings, resized for the grid when asked; patches is freed after its
  // GEMM). layers: the encoder
  // layers on x in place; with r set, its head mask applies and its taps are taken into `taps`.
  DeviceArray tokens(DeviceArray patches, int64_t B, int64_t H, int64_t W, bool interpolate, const uint8_t* mask) const;
  void layers(DevicePtr x, int64_t B, int64_t T, const ForwardRequest* r, ForwardResult* taps) const;
  // layers() splits a batch into image groups (Backend::layer_rows); layers_run runs one group.
  void layers_run(DevicePtr x, int64_t B, int64_t T, const ForwardRequest* r, ForwardResult* taps) const;
  // Whether a request's device work depends on its shape alone (so a backend may record and replay it).
  bool replayable(const ForwardRequest& r) const;
  // Whether tokens() resizes the position table for this grid (host work: never in a recording).
  bool pos_table_resized(int64_t H, int64_t W, bool interpolate) const;
  // The device part of embed: uint8 pixels (host memory, or already in backend memory when
  // device_pixels is set) → out (backend memory: [B, D] pooled when asked, then [B, num_labels]
  // logits when asked).
  void embed_on_device(const EmbedRequest& r, DevicePtr device_pixels, DevicePtr out) const;

  ModelConfig config_;
  std::shared_ptr<Backend> backend_;  // declared before weights_: destroyed after them
  uint64_t id_;                       // this model's owner id in the backend's recordings
  ModelWeights weights_;
};

}  // namespace vitmsn
