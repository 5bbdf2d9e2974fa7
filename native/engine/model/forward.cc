// Model::forward — the ViT-MSN forward pass (docs/model.md, "Forward pass"), written once against
// the Backend interface:
//   patches = patchify(x); E = patches·Wpeᵀ + bpe                      (conv p×p stride p as a GEMM)
//   X0 = [cls; mask ? mask_token : E] + pos                              (pos bicubic-resized on request)
//   per layer: X += O·attn(LN1(X)) + bo ;  X += W2·gelu(W1·LN2(X) + b1) + b2
//   (the backend's qkv_attention and mlp ops take LN1 / LN2 as their input step)
//   last_hidden_state = LN(X_L); logits = classifier(last_hidden_state[:, 0])
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <string>

#include "common/error.h"
#include "common/host_memory.h"
#include "engine/model/model.h"
#include "engine/model/pos_embed.h"

namespace vitmsn {
namespace {

std::string gib(double bytes) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f GiB", bytes / (1 << 30));
  return s;
}

// Requests below this are not checked against the memory left (reading it costs a few syscalls,
// and a small request is not what gets a process killed).
constexpr double kCheckFromBytes = 64.0 * (1 << 20);
// Part of the memory left that one request may plan on (the rest: allocator slack, other threads),
// and the smaller part max_batch() plans a batch size on: a caller that batches by it also holds
// garbage the JS heap has not collected yet and the next batch being prepared.
constexpr double kUsableShare = 0.9;
constexpr double kBatchShare = 0.7;

// Largest single activation we agree to allocate, in floats (16 GiB): beyond it the input is a
// mistake (a huge image with interpolation, attentions of thousands of tokens) — fail cleanly.
constexpr double kMaxActivationFloats = 4.0 * 1024 * 1024 * 1024;

// Owner ids for Backend::RecordKey: a counter, not an address, so a model loaded after another was
// freed can never inherit its recordings.
std::atomic<uint64_t> next_model_id{1};

}  // namespace

Model::Model(const ModelConfig& config, std::shared_ptr<Backend> backend)
    : config_(config), backend_(std::move(backend)), id_(next_model_id.fetch_add(1)) {}

Model::~Model() { backend_->forget_recorded(id_); }

void Model::check_request(const ForwardRequest& r) const {
  // lib/check.ts and lib/validate.ts refuse wrong arguments with the caller's words before a call
  // gets here; these are the engine's own asserts. Only the memory guards are real answers.
  const ModelConfig& c = config_;
  internal_check(r.B >= 1 && r.C == c.num_channels && r.H >= c.patch_size && r.W >= c.patch_size, "pixel_values shape");
  internal_check(static_cast<double>(r.pixel_count()) == static_cast<double>(r.B) * r.C * r.H * r.W,
                 "pixel_values length");
  internal_check(r.interpolate_pos_encoding || (r.H == c.image_height && r.W == c.image_width), "image size");
  const int64_t N = (r.H / c.patch_size) * (r.W / c.patch_size);
  check_activations(r.B, r.H, r.W, r.output_attentions);
  check_fits(memory_need(r));
  const size_t hm = r.head_mask.size();
  internal_check(
      hm == 0 || hm == static_cast<size_t>(c.num_heads) || hm == static_cast<size_t>(c.num_layers * c.num_heads),
      "head_mask length");
  if (!r.bool_masked_pos.empty()) {
    internal_check(has_mask_token(), "bool_masked_pos without mask_token");
    internal_check(static_cast<int64_t>(r.bool_masked_pos.size()) == r.B * N, "bool_masked_pos length");
    for (uint8_t v : r.bool_masked_pos) internal_check(v <= 1, "bool_masked_pos values");
  }
}

void Model::check_activations(int64_t B, int64_t H, int64_t W, bool attentions) const {
  const ModelConfig& c = config_;
  const int64_t T = (H / c.patch_size) * (W / c.patch_size) + 1;
  const double biggest =
      std::max<double>({static_cast<double>(B) * T * std::max(3 * c.hidden_size, c.intermediate_size),
                        attentions ? static_cast<double>(B) * c.num_heads * T * T : 0.0});
  if (biggest > kMaxActivationFloats) {
    throw Error(codes::kOutOfMemory,
                "this input needs an activation of " + gib(biggest * 4) + "; use smaller batches or images");
  }
}

void Model::check_embed(const EmbedRequest& r) const {
  const ModelConfig& c = config_;
  internal_check(c.num_channels == 3, "the embed path takes RGB images (num_channels 3)");
  internal_check(r.B >= 1 && r.H >= c.patch_size && r.W >= c.patch_size, "pixels shape");
  if (r.jpegs) {
    internal_check(!r.pixels && r.jpegs->data.size() == static_cast<size_t>(r.B) &&
                       r.jpegs->sizes.size() == static_cast<size_t>(r.B) && r.jpegs->taps,
                   "JPEG files");
  } else {
    internal_check(
        r.pixels != nullptr && static_cast<double>(r.pixel_bytes) == static_cast<double>(r.B) * r.H * r.W * 3,
        "pixels length");
  }
  internal_check(r.interpolate_pos_encoding || (r.H == c.image_height && r.W == c.image_width), "image size");
  internal_check(r.pool || r.logits, "embed without outputs");
  internal_check(!r.logits || weights_.classifier_w, "logits without a classifier");
  internal_check(!r.pool || r.pooling != Pooling::Mean || (r.H / c.patch_size) * (r.W / c.patch_size) >= 1,
                 "mean pooling needs patch tokens");
  check_activations(r.B, r.H, r.W, false);
  check_fits(memory_need(r));
}

MemoryNeed Model::memory_need(const EmbedRequest& r) const {
  const ModelConfig& c = config_;
  const double B = static_cast<double>(r.B), D = static_cast<double>(c.hidden_size),
               I = static_cast<double>(c.intermediate_size);
  const double N = static_cast<double>((r.H / c.patch_size) * (r.W / c.patch_size)), T = N + 1, M = B * T;
  const double K0 = static_cast<double>(c.num_channels * c.patch_size * c.patch_size);
  const double logits = r.logits ? B * static_cast<double>(weights_.num_labels) : 0;
  MemoryNeed need;
  // As forward's (below), without the float32 pixels: the uint8 pixels a device backend copies
  // over (a quarter of a float each), patches + patch embeddings, the layers' buffers, then the
  // CLS rows, the pooled rows and the logits. (The CPU reads the caller's pixels in place.)
  const double u8 = backend_->uses_host_memory() ? 0 : B * static_cast<double>(r.H) * static_cast<double>(r.W) * 3 / 4;
  need.device_bytes = 4 * (u8 + B * N * (K0 + D) + M * D * 7 + M * I + 2 * B * D + logits);
  // What comes back: the pooled rows and the logits.
  need.host_bytes = 4 * ((r.pool ? B * D : 0) + logits);
  return need;
}

MemoryNeed Model::memory_need(const ForwardRequest& r) const {
  const ModelConfig& c = config_;
  const double B = static_cast<double>(r.B), D = static_cast<double>(c.hidden_size),
               Hh = static_cast<double>(c.num_heads), L = static_cast<double>(c.num_layers),
               I = static_cast<double>(c.intermediate_size);
  const double N = static_cast<double>((r.H / c.patch_size) * (r.W / c.patch_size)), T = N + 1, M = B * T;
  const double K0 = static_cast<double>(c.num_channels * c.patch_size * c.patch_size);
  const double n_in = B * static_cast<double>(r.C) * static_cast<double>(r.H) * static_cast<double>(r.W);
  const double probs = B * Hh * T * T,
               logits = weights_.classifier_w ? B * static_cast<double>(weights_.num_labels) : 0;
  MemoryNeed need;
  // encode()'s buffers (all float32 at most): pixels, patches + patch embeddings, x, attention out,
  // output, the probabilities when asked for, and what a backend that does not fuse the layer's ops
  // allocates inside them (LayerNorm out, qkv (3), MLP hidden: counted as if all at once).
  need.device_bytes = 4 * (n_in + B * N * (K0 + D) + M * D * 7 + M * I + logits + (r.output_attentions ? probs : 0));
  // What comes back: last_hidden_state, logits, and the hidden states / attentions when asked for.
  need.host_bytes =
      4 * (M * D + logits + (r.output_hidden_states ? (L + 1) * M * D : 0) + (r.output_attentions ? L * probs : 0));
  return need;
}

namespace {

// How many times `one` fits into what the backend and the host have left (the whole of it when
// the backend's memory is the host's).
double times_it_fits(const Backend& be, const MemoryNeed& one, double share = kUsableShare) {
  const double host = share * static_cast<double>(host_available_bytes());
  if (be.uses_host_memory()) return host / std::max(1.0, one.device_bytes + one.host_bytes);
  const double device = share * static_cast<double>(be.available_bytes());
  return std::min(device / std::max(1.0, one.device_bytes), host / std::max(1.0, one.host_bytes));
}

}  // namespace

void Model::check_fits(const MemoryNeed& need) const {
  Backend& be = *backend_;
  if (need.device_bytes + need.host_bytes < kCheckFromBytes) return;
  if (times_it_fits(be, need) >= 1) return;
  if (be.cached_bytes() > 0) {  // buffers kept for reuse go back first
    be.release_cached();
    if (times_it_fits(be, need) >= 1) return;
  }
  const double host = static_cast<double>(host_available_bytes());
  const std::string advice = "; use smaller batches or images, or fewer outputs";
  if (be.uses_host_memory()) {
    throw Error(codes::kOutOfMemory, "this forward needs about " + gib(need.device_bytes + need.host_bytes) +
                                         " (activations " + gib(need.device_bytes) + ", outputs " +
                                         gib(need.host_bytes) + ") but this process can have " + gib(host) +
                                         " more (available memory and container limit)" + advice);
  }
  const double device = static_cast<double>(be.available_bytes());
  if (need.device_bytes > kUsableShare * device) {
    throw Error(codes::kOutOfMemory, "this forward needs about " + gib(need.device_bytes) + " on " + be.name() +
                                         ", which has " + gib(device) + " free" + advice);
  }
  throw Error(codes::kOutOfMemory, "this forward returns about " + gib(need.host_bytes) +
                                       " but this process can have " + gib(host) +
                                       " more (available memory and container limit)" + advice);
}

int64_t Model::max_batch(ForwardRequest r, double host_bytes_per_image, int64_t wanted) const {
  r.B = 1;
  return fitting_batch(memory_need(r), host_bytes_per_image, wanted);
}

int64_t Model::max_embed_batch(EmbedRequest r, double host_bytes_per_image, int64_t wanted) const {
  r.B = 1;
  return fitting_batch(memory_need(r), host_bytes_per_image, wanted);
}

int64_t Model::fitting_batch(MemoryNeed one, double host_bytes_per_image, int64_t wanted) const {
  one.host_bytes += host_bytes_per_image;
  Backend& be = *backend_;
  double fit = times_it_fits(be, one, kBatchShare);
  if (fit < static_cast<double>(wanted) && be.cached_bytes() > 0) {
    be.release_cached();
    fit = times_it_fits(be, one, kBatchShare);
  }
  return static_cast<int64_t>(std::min(fit, static_cast<double>(wanted)));
}

bool Model::pos_table_resized(int64_t H, int64_t W, bool interpolate) const {
  const int64_t p = config_.patch_size, N = (H / p) * (W / p);
  return interpolate && !(N == config_.num_patches() && H == W);
}

bool Model::replayable(const ForwardRequest& r) const {
  // Host data other than the pixels (head mask, token mask, a resized position table) and
  // intermediate downloads would have to be re-staged on every replay: those go eagerly.
  return !r.output_hidden_states && !r.output_attentions && r.head_mask.empty() && r.bool_masked_pos.empty() &&
         !pos_table_resized(r.H, r.W, r.interpolate_pos_encoding);
}

OutputSizes Model::checked_output_sizes(const ForwardRequest& r) const {
  check_request(r);
  const int64_t p = config_.patch_size, T = (r.H / p) * (r.W / p) + 1;
  OutputSizes s;
  s.last_hidden = static_cast<size_t>(r.B * T * config_.hidden_size);
  s.hidden_state = r.output_hidden_states ? s.last_hidden : 0;
  s.attention = r.output_attentions ? static_cast<size_t>(r.B * config_.num_heads * T * T) : 0;
  s.logits = weights_.classifier_w ? static_cast<size_t>(r.B * weights_.num_labels) : 0;
  return s;
}

ForwardResult Model::forward(const ForwardRequest& r) const {
  check_request(r);
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  const int64_t p = c.patch_size, D = c.hidden_size, T = (r.H / p) * (r.W / p) + 1, M = r.B * T;
  const int64_t nl = weights_.classifier_w ? weights_.num_labels : 0;
  const size_t n_in = r.pixel_count(), n_hidden = static_cast<size_t>(M * D), n_logits = static_cast<size_t>(r.B * nl);
  const size_t n_out = n_hidden + n_logits;

  ForwardResult out;
  out.B = r.B, out.T = T, out.D = D, out.H = c.num_heads;
  float* hidden = r.last_hidden_out;
  if (!hidden) {
    out.last_hidden_state.resize(n_hidden);
    hidden = out.last_hidden_state.data();
  }
  out.logits.resize(n_logits);
  // Everything a recording of this request depends on besides the weights (named by id_): input
  // shape, position table, outputs. replayable() has ruled out every other option.
  const Backend::RecordKey key{id_, "forward " + std::to_string(r.B) + "x" + std::to_string(r.C) + "x" +
                                        std::to_string(r.H) + "x" + std::to_string(r.W) +
                                        (r.interpolate_pos_encoding ? " interpolated" : "") + " out " +
                                        std::to_string(n_hidden) + "+" + std::to_string(n_logits)};
  // A plain request runs in parts with pipelined transfers where the backend offers that for its
  // size (large batches, never recorded), else replays a recording where the backend has one.
  const bool plain = replayable(r);
  const int64_t per = plain ? be.pipeline_part_images(r.B) : 0;
  bool done = per > 0 && per < r.B && forward_pipelined(r, per, hidden, out.logits.data());
  if (!done && plain) {
    // A replay writes hidden states and logits as one block: straight into `hidden` for a backbone,
    // through a joined buffer when there are logits too.
    std::vector<float> joined(nl ? n_out : 0);
    float* host_out = nl ? joined.data() : hidden;
    done = be.run_recorded(key, {r.pixel_data(), n_in, true}, host_out, n_out,
                           [&](DevicePtr in, DevicePtr o) { encode(r, in, o, nullptr); });
    if (done && nl) {
      std::copy(joined.begin(), joined.begin() + n_hidden, hidden);
      std::copy(joined.begin() + n_hidden, joined.end(), out.logits.begin());
    }
  }
  if (!done) {
    DeviceArray pixels(be, n_in), dev_out(be, n_out);
    be.upload(pixels.get(), r.pixel_data(), n_in);
    encode(r, pixels.get(), dev_out.get(), &out);
    be.download(hidden, dev_out.get(), n_hidden);
    if (n_logits) be.download(out.logits.data(), dev_out.get() + static_cast<int64_t>(n_hidden), n_logits);
  }
  if (nl) out.num_labels = nl;
  return out;
}

bool Model::forward_pipelined(const ForwardRequest& r, int64_t per, float* hidden, float* logits) const {
  Backend& be = *backend_;
  const int64_t p = config_.patch_size, D = config_.hidden_size, T = (r.H / p) * (r.W / p) + 1;
  const int64_t nl = weights_.classifier_w ? weights_.num_labels : 0;
  const int64_t img_in = r.C * r.H * r.W, img_out = T * D + nl, parts = (r.B + per - 1) / per;
  auto images = [&](int64_t part) { return std::min(per, r.B - part * per); };
  // Every part's input buffer exists before the session begins (the backend's copies write them
  // beside the compute); outputs are made part by part.
  std::vector<DeviceArray> in(static_cast<size_t>(parts));
  for (int64_t q = 0; q < parts; ++q) in[q] = DeviceArray(be, images(q) * img_in);
  std::unique_ptr<Backend::PipelinedIo> io =
      be.pipelined_io(static_cast<size_t>(per * img_in), static_cast<size_t>(per * img_out));
  if (!io) return false;
  std::vector<DeviceArray> out(static_cast<size_t>(parts));
  auto fetch = [&](int64_t q) {
    const int64_t b0 = q * per, bq = images(q);
    io->download(q, 0, hidden + b0 * T * D, static_cast<size_t>(bq * T * D));
    if (nl) io->download(q, static_cast<size_t>(bq * T * D), logits + b0 * nl, static_cast<size_t>(bq * nl));
    out[q] = DeviceArray();
  };
  for (int64_t q = 0; q < parts; ++q) {
    const int64_t bq = images(q);
    io->upload(q, in[q].get(), r.pixel_data() + q * per * img_in, static_cast<size_t>(bq * img_in));
    ForwardRequest part;  // the shapes and options encode() reads (replayable(r): no masks or taps)
    part.B = bq, part.C = r.C, part.H = r.H, part.W = r.W, part.interpolate_pos_encoding = r.interpolate_pos_encoding;
    out[q] = DeviceArray(be, bq * img_out);
    encode(part, in[q].get(), out[q].get(), nullptr);
    io->finish(q, out[q].get(), static_cast<size_t>(bq * img_out));
    in[q] = DeviceArray();
    if (q > 0) fetch(q - 1);
  }
  fetch(parts - 1);
  return true;
}

void Model::encode(const ForwardRequest& r, DevicePtr pixels, DevicePtr final_out, ForwardResult* taps) const {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  const ModelWeights& w = weights_;
  const int64_t B = r.B, p = c.patch_size, D = c.hidden_size, N = (r.H / p) * (r.W / p), T = N + 1, M = B * T;
  const int64_t K0 = c.num_channels * p * p;
  // 1. Patch embedding as one GEMM over im2col'd patches; 2–3. tokens.
  DeviceArray x;
  {
    DeviceArray patches(be, B * N * K0);
    be.patchify({pixels, patches.get(), B, c.num_channels, r.H, r.W, p});
    x = tokens(std::move(patches), B, r.H, r.W, r.interpolate_pos_encoding,
               r.bool_masked_pos.empty() ? nullptr : r.bool_masked_pos.data());
  }
  // 4–5. Encoder layers.
  layers(x.get(), B, T, &r, taps);
  // 6. Final LayerNorm straight into the output; 9. classifier on the CLS row of each image (row
  // stride T·D), its logits after the hidden states.
  const float eps = static_cast<float>(c.layer_norm_eps);
  be.layernorm({x.get(), w.final_g.get(), w.final_b.get(), final_out, M, D, eps});
  if (w.classifier_w) {
    GemmArgs g;
    g.A = final_out, g.lda = T * D, g.Wp = w.classifier_w.get(), g.bias = w.classifier_b.get(), g.C = final_out + M * D;
    g.M = B, g.N = w.num_labels, g.K = D;
    be.gemm(g);
  }
}

DeviceArray Model::tokens(DeviceArray patches, int64_t B, int64_t H, int64_t W, bool interpolate,
                          const uint8_t* mask) const {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  const ModelWeights& w = weights_;
  const int64_t p = c.patch_size, D = c.hidden_size, gh = H / p, gw = W / p, N = gh * gw, T = N + 1;
  const int64_t K0 = c.num_channels * p * p;
  DeviceArray patch_emb(be, B * N * D);
  GemmArgs g;
  g.A = patches.get(), g.lda = K0, g.Wp = w.patch_w.get(), g.bias = w.patch_b.get(), g.C = patch_emb.get();
  g.M = B * N, g.N = D, g.K = K0;
  be.gemm(g);
  patches = DeviceArray();
  // CLS, mask tokens, position embeddings (resized when the grid differs or is not square).
  DeviceArray pos_resized;
  DevicePtr pos = w.pos.get();
  const int64_t N0 = c.num_patches();
  if (pos_table_resized(H, W, interpolate)) {
    pos_resized = DeviceArray(be, T * D);
    std::vector<float> table = interpolate_pos_table(w.pos_table, N0, D, gh, gw);
    be.upload(pos_resized.get(), table.data(), table.size());
    pos = pos_resized.get();
  }
  DeviceArray x(be, B * T * D);
  be.embed_tokens({patch_emb.get(), w.cls.get(), pos, w.mask_token.get(), mask, x.get(), B, N, D});
  return x;
}

void Model::layers(DevicePtr x, int64_t B, int64_t T, const ForwardRequest* r, ForwardResult* taps) const {
  // In image groups when the backend asks for it (Backend::layer_rows), except when every layer's
  // output is tapped for the whole batch.
  const bool tapped = taps && r && (r->output_hidden_states || r->output_attentions);
  const int64_t rows = backend_->layer_rows(weights_.layers.empty() ? WeightDtype::kFloat32
                                                                    : weights_.layers[0].fc1_w->dtype),
                sub = rows > 0 ? std::max<int64_t>(1, rows / T) : B;
  if (!tapped && B > sub) {
    for (int64_t b0 = 0; b0 < B; b0 += sub)
      layers_run(x + b0 * T * config_.hidden_size, std::min(sub, B - b0), T, r, nullptr);
    return;
  }
  layers_run(x, B, T, r, taps);
}

void Model::layers_run(DevicePtr x, int64_t B, int64_t T, const ForwardRequest* r, ForwardResult* taps) const {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  const ModelWeights& w = weights_;
  const int64_t D = c.hidden_size, Hh = c.num_heads, Dh = c.head_dim(), I = c.intermediate_size, L = c.num_layers;
  const int64_t M = B * T;
  const bool tap_hidden = taps && r && r->output_hidden_states, tap_attn = taps && r && r->output_attentions;
  // A tap goes straight into the caller's k-th buffer when it gave them (no copy afterwards), else
  // into a new vector of ForwardResult.
  size_t hidden_taps = 0, attention_taps = 0;
  auto tap = [&](DevicePtr a, size_t n, const std::vector<float*>& outs, size_t& k,
                 std::vector<std::vector<float>>& own) {
    float* dst = nullptr;
    if (!outs.empty()) {
      if (k >= outs.size()) throw Error(codes::kInternal, "fewer tap buffers than the model has taps");
      dst = outs[k];
    } else {
      dst = own.emplace_back(n).data();
    }
    ++k;
    be.download(dst, a, n);
  };
  if (tap_hidden) tap(x, M * D, r->hidden_states_out, hidden_taps, taps->hidden_states);

  // The ops' intermediate buffers are the backend's (Backend::qkv_attention, mlp).
  DeviceArray ctx(be, M * D);
  DeviceArray probs = tap_attn ? DeviceArray(be, B * Hh * T * T) : DeviceArray();
  DeviceArray head_scale;
  if (r && !r->head_mask.empty()) {
    std::vector<float> hm(L * Hh);  // [H] applies to every layer
    for (int64_t i = 0; i < L * Hh; ++i) hm[i] = r->head_mask[i % r->head_mask.size()];
    head_scale = DeviceArray(be, hm.size());
    be.upload(head_scale.get(), hm.data(), hm.size());
  }
  const float eps = static_cast<float>(c.layer_norm_eps);
  for (int64_t l = 0; l < L; ++l) {
    const LayerWeights& lw = w.layers[l];
    QkvAttentionArgs at;  // LN1 inside: a backend may fuse it into the projection
    at.a = x, at.ln = {lw.ln1_g.get(), lw.ln1_b.get(), eps};
    at.W = lw.qkv_w.get(), at.bias = lw.qkv_b.get(), at.out = ctx.get();
    at.probs = probs.get(), at.head_scale = head_scale ? head_scale.get() + l * Hh : nullptr;
    at.B = B, at.T = T, at.H = Hh, at.Dh = Dh, at.D = D, at.scale = 1.0f / std::sqrt(static_cast<float>(Dh));
    be.qkv_attention(at);
    if (tap_attn) tap(probs.get(), B * Hh * T * T, r->attentions_out, attention_taps, taps->attentions);
    GemmArgs g;  // output projection with the residual, in place
    g.A = ctx.get(), g.lda = D, g.Wp = lw.out_w.get(), g.bias = lw.out_b.get(), g.C = x, g.residual = x;
    g.M = M, g.N = D, g.K = D;
    be.gemm(g);
    MlpArgs ma;  // LN2 inside, likewise
    ma.a = x, ma.ln = {lw.ln2_g.get(), lw.ln2_b.get(), eps};
    ma.W1 = lw.fc1_w.get(), ma.b1 = lw.fc1_b.get(), ma.W2 = lw.fc2_w.get(), ma.b2 = lw.fc2_b.get();
    ma.out = x, ma.M = M, ma.D = D, ma.I = I;
    be.mlp(ma);
    if (tap_hidden) tap(x, M * D, r->hidden_states_out, hidden_taps, taps->hidden_states);
  }
}

namespace {

// Embed requests this small are recorded and replayed where the backend can (CUDA graphs): their
// ops are launch-bound. Larger ones run eagerly (their kernels hide the launches, and a recording
// would pin their activation memory for the model's lifetime).
constexpr int64_t kMaxRecordedEmbedBatch = 16;

// The recording key of an embed request: everything its device work depends on besides the weights
// (the model is the key's owner) — shapes, outputs, and the rescale/normalize constants, which the
// recorded patchify holds as arguments (as exact hex floats).
std::string embed_record_key(const EmbedRequest& r, int64_t num_labels) {
  static const char* const kPoolings[] = {"cls", "cls-prenorm", "mean"};
  char norm[200];
  std::snprintf(norm, sizeof norm, " rescale %d %a normalize %d mean %a %a %a std %a %a %a", r.norm.do_rescale,
                r.norm.rescale_factor, r.norm.do_normalize, static_cast<double>(r.norm.mean[0]),
                static_cast<double>(r.norm.mean[1]), static_cast<double>(r.norm.mean[2]),
                static_cast<double>(r.norm.std[0]), static_cast<double>(r.norm.std[1]),
                static_cast<double>(r.norm.std[2]));
  return "embed " + std::to_string(r.B) + "x" + std::to_string(r.H) + "x" + std::to_string(r.W) + "x3" +
         (r.interpolate_pos_encoding ? " interpolated" : "") + " pool " +
         (r.pool ? std::string(kPoolings[static_cast<int>(r.pooling)]) + (r.normalize ? " normalized" : "") : "none") +
         " logits " + std::to_string(num_labels) + norm;
}

}  // namespace

EmbedResult Model::embed(const EmbedRequest& r) const {
  check_embed(r);
  Backend& be = *backend_;
  const int64_t B = r.B, D = config_.hidden_size, nl = r.logits ? weights_.num_labels : 0;
  EmbedResult out;
  out.B = B, out.D = D, out.num_labels = nl;
  float* pooled_host = r.pooled_out;
  float* logits_host = r.logits_out;
  if (r.pool && !pooled_host) out.pooled.resize(static_cast<size_t>(B * D)), pooled_host = out.pooled.data();
  if (nl && !logits_host) out.logits.resize(static_cast<size_t>(B * nl)), logits_host = out.logits.data();
  const size_t n_pooled = r.pool ? static_cast<size_t>(B * D) : 0, n_logits = static_cast<size_t>(B * nl);
  const size_t n_out = n_pooled + n_logits;
  if (n_out == 0) return out;

  if (r.jpegs) {
    // Decoded on the device into a buffer of the backend's (elements of its storage type hold the
    // bytes); eager, as batches for GPU decoding are large.
    const size_t bytes = static_cast<size_t>(B * r.H * r.W * 3);
    DeviceArray o(be, n_out);
    const size_t per = storage_bytes(o.get().type());
    DeviceArray pixels(be, (bytes + per - 1) / per);
    out.rejected = be.decode_jpegs(*r.jpegs, r.H, r.W, pixels.get());
    if (!out.rejected.empty()) return out;
    embed_on_device(r, pixels.get(), o.get());
    if (n_pooled) be.download(pooled_host, o.get(), n_pooled);
    if (n_logits) be.download(logits_host, o.get() + static_cast<int64_t>(n_pooled), n_logits);
    return out;
  }
  if (B <= kMaxRecordedEmbedBatch && !pos_table_resized(r.H, r.W, r.interpolate_pos_encoding)) {
    const size_t bytes = static_cast<size_t>(B * r.H * r.W * 3);
    std::vector<float> joined(n_out);
    if (be.run_recorded({id_, embed_record_key(r, nl)}, {r.pixels, bytes, false}, joined.data(), n_out,
                        [&](DevicePtr in, DevicePtr o) { embed_on_device(r, in, o); })) {
      std::copy(joined.begin(), joined.begin() + static_cast<std::ptrdiff_t>(n_pooled), pooled_host);
      std::copy(joined.begin() + static_cast<std::ptrdiff_t>(n_pooled), joined.end(), logits_host);
      return out;
    }
  }
  DeviceArray o(be, n_out);
  embed_on_device(r, nullptr, o.get());
  if (n_pooled) be.download(pooled_host, o.get(), n_pooled);
  if (n_logits) be.download(logits_host, o.get() + static_cast<int64_t>(n_pooled), n_logits);
  return out;
}

std::vector<std::pair<int64_t, std::string>> Model::decode_jpegs(const Backend::JpegFiles& files, int64_t H, int64_t W,
                                                                 std::vector<uint8_t>* pixels) const {
  internal_check(files.data.size() == files.sizes.size() && files.taps && H >= 1 && W >= 1, "decode_jpegs arguments");
  Backend& be = *backend_;
  const size_t bytes = files.data.size() * static_cast<size_t>(H * W * 3);
  if (bytes > be.available_bytes() / 2) throw Error(codes::kOutOfMemory, "decode_jpegs: not enough device memory");
  DeviceArray probe(be, 1);
  const size_t per = storage_bytes(probe.get().type());
  DeviceArray d(be, (bytes + per - 1) / per);
  auto rejected = be.decode_jpegs(files, H, W, d.get());
  pixels->clear();
  if (rejected.empty()) {
    pixels->resize(bytes);
    be.download_bytes(pixels->data(), d.get(), bytes);
  }
  return rejected;
}

void Model::embed_on_device(const EmbedRequest& r, DevicePtr device_pixels, DevicePtr o) const {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  const ModelWeights& w = weights_;
  const int64_t B = r.B, p = c.patch_size, D = c.hidden_size, N = (r.H / p) * (r.W / p), T = N + 1, M = B * T;
  const int64_t K0 = 3 * p * p, nl = r.logits ? w.num_labels : 0;
  const float eps = static_cast<float>(c.layer_norm_eps);

  // 1–3. uint8 pixels → normalized patches (one op) → tokens.
  DeviceArray x;
  {
    DeviceArray patches(be, B * N * K0);
    PatchifyPixelsArgs pa;
    pa.pixels = r.pixels, pa.device_pixels = device_pixels, pa.patches = patches.get();
    pa.B = B, pa.Himg = r.H, pa.Wimg = r.W, pa.p = p, pa.norm = r.norm;
    be.patchify_pixels(pa);
    x = tokens(std::move(patches), B, r.H, r.W, r.interpolate_pos_encoding, nullptr);
  }
  // 4–5. The encoder layers, as forward() runs them.
  layers(x.get(), B, T, nullptr, nullptr);

  // 6–9. Only the rows that pooling and the classifier read. The CLS rows (stride T·D) → cls [B, D]:
  // pooled as they are for cls-prenorm, then LayerNorm'd (row by row, the same kernel as forward's
  // final LayerNorm) for cls pooling and the classifier.
  const DevicePtr pooled = o, logits = o + (r.pool ? B * D : 0);
  auto pool = [&](DevicePtr src, int64_t rows, int64_t t0, int64_t n) {
    PoolRowsArgs pr;
    pr.x = src, pr.out = pooled, pr.B = B, pr.T = rows, pr.D = D, pr.t0 = t0, pr.n = n;
    pr.normalize = r.normalize;
    be.pool_rows(pr);
  };
  const bool mean = r.pool && r.pooling == Pooling::Mean;
  if (nl || (r.pool && !mean)) {
    DeviceArray cls(be, B * D);
    be.copy_rows(cls.get(), D, x.get(), T * D, B, D);
    if (r.pool && r.pooling == Pooling::ClsPrenorm) pool(cls.get(), 1, 0, 1);
    be.layernorm({cls.get(), w.final_g.get(), w.final_b.get(), cls.get(), B, D, eps});
    if (r.pool && r.pooling == Pooling::Cls) pool(cls.get(), 1, 0, 1);
    if (nl) {
      GemmArgs g;
      g.A = cls.get(), g.lda = D, g.Wp = w.classifier_w.get(), g.bias = w.classifier_b.get(), g.C = logits;
      g.M = B, g.N = nl, g.K = D;
      be.gemm(g);
    }
  }
  if (mean) {
    // The final LayerNorm in place on the rows from image 0's first patch on (the CLS rows of images
    // 1..B−1 come along: B − 1 of B·T rows), then the mean of each image's patch rows.
    be.layernorm({x.get() + D, w.final_g.get(), w.final_b.get(), x.get() + D, M - 1, D, eps});
    pool(x.get(), T, 1, N);
  }
}

}  // namespace vitmsn
