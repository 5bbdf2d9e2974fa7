// The interface the engine's forward pass is written against. A backend owns device memory and
// implements one entry per fused op the model needs; the engine never touches device memory
// directly. All pointers passed to ops are device pointers obtained from alloc(). All tensors are
// float32, row-major, densely packed unless a leading dimension is given.
//
// Thread-safety: every method may be called concurrently from several threads (several forwards
// on one model run at once); a backend serialises internally where it must.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace vitmsn {

enum class Epilogue { kNone, kGelu };  // kGelu = exact erf GELU: 0.5·x·(1 + erf(x/√2))

// Storage of a prepared Linear weight. kBFloat16 rounds W to bfloat16 (round to nearest even) and
// lets the backend round A too; accumulation stays float32 (about 1e-2 relative error overall).
enum class WeightDtype { kFloat32, kBFloat16 };

// A Linear weight W [N, K] prepared once at load into whatever layout and dtype the backend's GEMM
// reads fastest (the CPU packs column panels; a GPU converts dtype). Opaque to the engine; owned
// by whoever holds it, and only valid with the backend that made it.
class PreparedLinear {
 public:
  virtual ~PreparedLinear() = default;
  int64_t N = 0, K = 0;
  WeightDtype dtype = WeightDtype::kFloat32;
};

struct GemmArgs {
  // C[m, n] = epilogue(sum_k A[m, k] · W[n, k] + bias[n]) + residual[m, n]
  // A: M×K with row stride lda (≥ K). W: N×K dense (PyTorch Linear layout [out, in]).
  // bias: [N] or null. residual: M×N dense or null; it MAY alias C (in-place residual add).
  // C: M×N dense. The GELU epilogue applies before the residual add.
  // Wp, when set, replaces W: a weight from this backend's prepare_linear (N and K must match).
  const float* A = nullptr;
  int64_t lda = 0;
  const float* W = nullptr;
  const PreparedLinear* Wp = nullptr;
  const float* bias = nullptr;
  const float* residual = nullptr;
  float* C = nullptr;
  int64_t M = 0, N = 0, K = 0;
  Epilogue epilogue = Epilogue::kNone;
};

struct MlpArgs {
  // The transformer MLP with its residual, in place:
  //   out[m, :] += W2·gelu(W1·a[m, :] + b1) + b2
  // a: M×D dense (the LayerNorm output); W1: prepared [I, D]; W2: prepared [D, I]; b1 [I], b2 [D]
  // or null; out: M×D dense. hidden: M×I scratch for gelu(W1·a + b1) — a backend that fuses the
  // two GEMMs need not touch it.
  const float* a = nullptr;
  const PreparedLinear* W1 = nullptr;
  const float* b1 = nullptr;
  const PreparedLinear* W2 = nullptr;
  const float* b2 = nullptr;
  float* hidden = nullptr;
  float* out = nullptr;
  int64_t M = 0, D = 0, I = 0;  // Optional LayerNorm in front (LayerNormArgs math): with ln_gamma set the op reads LN(a) instead
  // of a. ln_out (M×D) is scratch where an implementation that does not fuse it writes LN(a) first.
  const float* ln_gamma = nullptr;
  const float* ln_beta = nullptr;
  float ln_eps = 1e-6f;
  float* ln_out = nullptr;
};

struct LayerNormArgs {
  // y[r, :] = (x[r, :] − mean) / sqrt(biased_var + eps) · gamma + beta, for r < rows.
  const float* x = nullptr;
  const float* gamma = nullptr;
  const float* beta = nullptr;
  float* y = nullptr;  // may alias x
  int64_t rows = 0, D = 0;
  float eps = 1e-6f;
};

struct AttentionArgs {
  // qkv: [B, T, 3·H·Dh]; per token the q heads, then k heads, then v heads (each H×Dh, head-major).
  // out: [B, T, H·Dh], heads concatenated in order.
  // P = softmax_over_keys(q·kᵀ · scale) (computed in float32 with max subtraction), then
  // P[b, h] *= head_scale[h] when head_scale is non-null, out = P·v.
  // probs: [B, H, T, T] receives P (after head_scale) when non-null; otherwise no T×T matrix
  // need ever exist.
  const float* qkv = nullptr;
  float* out = nullptr;
  const float* head_scale = nullptr;
  float* probs = nullptr;
  int64_t B = 0, T = 0, H = 0, Dh = 0;
  float scale = 1.0f;
};

struct QkvAttentionArgs {
  // The attention half of a transformer layer up to the output projection:
  //   qkv = a·Wqkvᵀ + bqkv  (a: M×D with M = B·T, Wqkv prepared [3·H·Dh, D], bqkv [3·H·Dh] or null)
  //   out = attention(qkv)  (AttentionArgs: head_scale, probs and scale as there)
  // qkv: M×3·H·Dh scratch for the projection — a backend that fuses the two need not touch it.
  const float* a = nullptr;
  const PreparedLinear* W = nullptr;
  const float* bias = nullptr;
  float* qkv = nullptr;
  float* out = nullptr;
  const float* head_scale = nullptr;
  float* probs = nullptr;
  int64_t B = 0, T = 0, H = 0, Dh = 0, D = 0;
  float scale = 1.0f;  // Optional LayerNorm in front (LayerNormArgs math): with ln_gamma set the op reads LN(a) instead
  // of a. ln_out (M×D) is scratch where an implementation that does not fuse it writes LN(a) first.
  const float* ln_gamma = nullptr;
  const float* ln_beta = nullptr;
  float ln_eps = 1e-6f;
  float* ln_out = nullptr;
};

struct PatchifyArgs {
  // x: [B, C, Himg, Wimg] images. patches: [B·gh·gw, C·p·p] with gh = Himg / p, gw = Wimg / p
  // (leftover rows/columns dropped), rows in (b, py, px) order, columns in (c, ky, kx) order — the
  // layout that turns the p×p stride-p convolution into one GEMM against W reshaped [D, C·p·p].
  const float* x = nullptr;
  float* patches = nullptr;
  int64_t B = 0, C = 0, Himg = 0, Wimg = 0, p = 0;
};

struct EmbedTokensArgs {
  // tokens[b, 0, :] = cls[:] + pos[0, :]
  // tokens[b, 1 + i, :] = (mask[b, i] ? mask_token[:] : patch_emb[b, i, :]) + pos[1 + i, :]
  // patch_emb: [B, N, D]; pos: [N + 1, D]; mask: [B, N] bytes or null; tokens: [B, N + 1, D].
  const float* patch_emb = nullptr;
  const float* cls = nullptr;
  const float* pos = nullptr;
  const float* mask_token = nullptr;
  const uint8_t* mask = nullptr;  // host pointer (tiny); null = no masking
  float* tokens = nullptr;
  int64_t B = 0, N = 0, D = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // Memory. alloc throws vitmsn::Error(ERR_OUT_OF_MEMORY) on failure; n counts floats.
  virtual float* alloc(size_t n) = 0;
  // Bytes this backend can still allocate (SIZE_MAX when unknown), and whether they are the host's
  // memory (then outputs and activations draw from the same pool). Forward passes are refused up
  // front when they would not fit.
  virtual size_t available_bytes() const = 0;
  virtual bool uses_host_memory() const = 0;
  // Memory kept for reuse by freed buffers (not counted in available_bytes), and a way to give it
  // back when a request would not fit otherwise.
  virtual size_t cached_bytes() const { return 0; }
  virtual void release_cached() noexcept {}
  virtual void release(float* p) noexcept = 0;
  virtual void upload(float* dst, const float* host_src, size_t n) = 0;
  virtual void download(float* host_dst, const float* src, size_t n) = 0;
  // p advanced by n elements of this backend's storage (a 16-bit GPU backend stores 2-byte
  // elements behind its float* handles, so plain pointer arithmetic on them would be wrong).
  virtual float* offset(float* p, int64_t n) const { return p + n; }
  const float* offset(const float* p, int64_t n) const { return offset(const_cast<float*>(p), n); }
  // Copies n floats of rows with strides (both in floats): dst[r*dst_ld + i] = src[r*src_ld + i].
  virtual void copy_rows(float* dst, int64_t dst_ld, const float* src, int64_t src_ld, int64_t rows,
                         int64_t n) = 0;

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
  // The projection into a.qkv, then attention, unless the backend has something better.
  virtual void qkv_attention(const QkvAttentionArgs& a) {
    const float* x = a.a;
    if (a.ln_gamma) layernorm({a.a, a.ln_gamma, a.ln_beta, a.ln_out, a.B * a.T, a.D, a.ln_eps}), x = a.ln_out;
    GemmArgs g;
    g.A = x, g.lda = a.D, g.Wp = a.W, g.bias = a.bias, g.C = a.qkv, g.M = a.B * a.T, g.N = 3 * a.H * a.Dh, g.K = a.D;
    gemm(g);
    AttentionArgs at;
    at.qkv = a.qkv, at.out = a.out, at.head_scale = a.head_scale, at.probs = a.probs;
    at.B = a.B, at.T = a.T, at.H = a.H, at.Dh = a.Dh, at.scale = a.scale;
    attention(at);
  }
  // Two GEMMs through a.hidden unless the backend has something better.
  virtual void mlp(const MlpArgs& a) {
    const float* x = a.a;
    if (a.ln_gamma) layernorm({a.a, a.ln_gamma, a.ln_beta, a.ln_out, a.M, a.D, a.ln_eps}), x = a.ln_out;
    GemmArgs g;
    g.A = x, g.lda = a.D, g.Wp = a.W1, g.bias = a.b1, g.C = a.hidden, g.M = a.M, g.N = a.I, g.K = a.D;
    g.epilogue = Epilogue::kGelu;
    gemm(g);
    g = GemmArgs();
    g.A = a.hidden, g.lda = a.I, g.Wp = a.W2, g.bias = a.b2, g.C = a.out, g.residual = a.out;
    g.M = a.M, g.N = a.D, g.K = a.I;
    gemm(g);
  }

  // Optional replay of a whole forward (CUDA graphs: at small batches every op is launch-bound).
  // body(in, out) must enqueue only device ops of this backend, reading `in` (n_in floats, the
  // backend's copy of host_in) and writing `out` (n_out floats, copied to host_out). A backend that
  // records runs body once per key, then replays it for every later call with the same key, so the
  // key must name everything the recorded work depends on: the owner (one model's weights and
  // outputs: a backend is shared by every model on its device) and the request's shapes and
  // outputs. Returns false (having done nothing) when it cannot record; the caller then runs the
  // ops eagerly.
  struct RecordKey {
    uint64_t owner = 0;  // unique per model for the process's lifetime (never reused)
    std::string what;    // shapes, options and outputs of the request
  };
  using RecordedBody = std::function<void(const float* in, float* out)>;
  virtual bool run_recorded(const RecordKey& key, const float* host_in, size_t n_in, float* host_out, size_t n_out,
                            const RecordedBody& body) {
    (void)key, (void)host_in, (void)n_in, (void)host_out, (void)n_out, (void)body;
    return false;
  }
  // Drops everything recorded for `owner` (its graphs, their device memory and pinned buffers).
  // Called when the model goes, before its weights are freed.
  virtual void forget_recorded(uint64_t owner) noexcept { (void)owner; }
};

}  // namespace vitmsn
