// The ops' arguments and their math, written once over the pointer type:
//   In, Out = DevicePtr             at the Backend interface (backend.h): a backend's own memory;
//   In, Out = const float*, float*  for host kernels on float32 arrays (the CPU kernels and the
//                                   scalar references: cpu/op_args.h names those cpu::GemmArgs, …).
// All tensors are row-major and densely packed unless a leading dimension is given; their elements
// are the backend's storage type (float32 on the host). Each struct's map(f) gives the same
// arguments with every pointer passed through f (a backend turning its DevicePtrs into addresses).
// Scratch space an implementation needs (a non-fusing one's intermediate results) is its own
// business: no op takes any.
#pragma once
#include <cstdint>

#include "backend/pixel_norm.h"

namespace vitmsn {

enum class Epilogue { kNone, kGelu };  // kGelu = exact erf GELU: 0.5·x·(1 + erf(x/√2))

// Storage of a prepared Linear weight. kBFloat16 rounds W to bfloat16 (round to nearest even) and
// lets the backend round A too; accumulation stays float32 (about 1e-2 relative error overall).
// kInt8 (CPU only): W symmetric int8 per output channel, A quantised per row to uint8 on every call,
// int32 accumulation, dequantised in the epilogue (cpu/gemm_int8.h has the exact scheme).
enum class WeightDtype { kFloat32, kBFloat16, kInt8 };

// A Linear weight W [N, K] prepared once at load into whatever layout and dtype the backend's GEMM
// reads fastest (the CPU packs column panels; a GPU converts dtype). Opaque to the engine; owned
// by whoever holds it, and only valid with the backend that made it.
class PreparedLinear {
 public:
  virtual ~PreparedLinear() = default;
  int64_t N = 0, K = 0;
  WeightDtype dtype = WeightDtype::kFloat32;
};

template <class In, class Out>
struct GemmArgsOf {
  // C[m, n] = epilogue(sum_k A[m, k] · W[n, k] + bias[n]) + residual[m, n]
  // A: M×K with row stride lda (≥ K). W: N×K dense (PyTorch Linear layout [out, in]).
  // bias: [N] or null. residual: M×N dense or null; it MAY alias C (in-place residual add).
  // C: M×N dense. The GELU epilogue applies before the residual add.
  // Wp, when set, replaces W: a weight from this backend's prepare_linear (N and K must match).
  In A{};
  int64_t lda = 0;
  In W{};
  const PreparedLinear* Wp = nullptr;
  In bias{};
  In residual{};
  Out C{};
  int64_t M = 0, N = 0, K = 0;
  Epilogue epilogue = Epilogue::kNone;

  template <class I2, class O2 = I2, class F>
  GemmArgsOf<I2, O2> map(F f) const {
    return {f(A), lda, f(W), Wp, f(bias), f(residual), f(C), M, N, K, epilogue};
  }
};

template <class In, class Out>
struct LayerNormArgsOf {
  // y[r, :] = (x[r, :] − mean) / sqrt(biased_var + eps) · gamma + beta, for r < rows.
  In x{};
  In gamma{};
  In beta{};
  Out y{};  // may alias x
  int64_t rows = 0, D = 0;
  float eps = 1e-6f;

  template <class I2, class O2 = I2, class F>
  LayerNormArgsOf<I2, O2> map(F f) const {
    return {f(x), f(gamma), f(beta), f(y), rows, D, eps};
  }
};

// A LayerNorm in front of an op (LayerNormArgs math on the op's input rows): with gamma set the op
// reads LN(a) instead of a. The transformer layer's LN1 and LN2, which a backend may fuse into the
// projection that follows.
template <class In>
struct LayerNormPrologueOf {
  In gamma{};  // null: no LayerNorm
  In beta{};
  float eps = 1e-6f;

  explicit operator bool() const { return static_cast<bool>(gamma); }
  template <class I2, class F>
  LayerNormPrologueOf<I2> map(F f) const {
    return {f(gamma), f(beta), eps};
  }
};

template <class In, class Out>
struct MlpArgsOf {
  // The transformer MLP with its residual, in place:
  //   out[m, :] += W2·gelu(W1·x[m, :] + b1) + b2,   x = ln ? LN(a) : a
  // a: M×D dense; W1: prepared [I, D]; W2: prepared [D, I]; b1 [I], b2 [D] or null; out: M×D dense.
  In a{};
  LayerNormPrologueOf<In> ln;
  const PreparedLinear* W1 = nullptr;
  In b1{};
  const PreparedLinear* W2 = nullptr;
  In b2{};
  Out out{};
  int64_t M = 0, D = 0, I = 0;

  template <class I2, class O2 = I2, class F>
  MlpArgsOf<I2, O2> map(F f) const {
    return {f(a), ln.template map<I2>(f), W1, f(b1), W2, f(b2), f(out), M, D, I};
  }
};

template <class In, class Out>
struct AttentionArgsOf {
  // qkv: [B, T, 3·H·Dh]; per token the q heads, then k heads, then v heads (each H×Dh, head-major).
  // out: [B, T, H·Dh], heads concatenated in order.
  // P = softmax_over_keys(q·kᵀ · scale) (computed in float32 with max subtraction), then
  // P[b, h] *= head_scale[h] when head_scale is non-null, out = P·v.
  // probs: [B, H, T, T] receives P (after head_scale) when non-null; otherwise no T×T matrix
  // need ever exist.
  In qkv{};
  Out out{};
  In head_scale{};
  Out probs{};
  int64_t B = 0, T = 0, H = 0, Dh = 0;
  float scale = 1.0f;

  template <class I2, class O2 = I2, class F>
  AttentionArgsOf<I2, O2> map(F f) const {
    return {f(qkv), f(out), f(head_scale), f(probs), B, T, H, Dh, scale};
  }
};

template <class In, class Out>
struct QkvAttentionArgsOf {
  // The attention half of a transformer layer up to the output projection:
  //   qkv = x·Wqkvᵀ + bqkv,   x = ln ? LN(a) : a   (a: M×D with M = B·T, Wqkv prepared [3·H·Dh, D],
  //                                                  bqkv [3·H·Dh] or null)
  //   out = attention(qkv)  (AttentionArgs: head_scale, probs and scale as there)
  In a{};
  LayerNormPrologueOf<In> ln;
  const PreparedLinear* W = nullptr;
  In bias{};
  Out out{};
  In head_scale{};
  Out probs{};
  int64_t B = 0, T = 0, H = 0, Dh = 0, D = 0;
  float scale = 1.0f;

  template <class I2, class O2 = I2, class F>
  QkvAttentionArgsOf<I2, O2> map(F f) const {
    return {f(a), ln.template map<I2>(f), W, f(bias), f(out), f(head_scale), f(probs), B, T, H, Dh, D, scale};
  }
};

template <class In, class Out>
struct PatchifyArgsOf {
  // x: [B, C, Himg, Wimg] images. patches: [B·gh·gw, C·p·p] with gh = Himg / p, gw = Wimg / p
  // (leftover rows/columns dropped), rows in (b, py, px) order, columns in (c, ky, kx) order — the
  // layout that turns the p×p stride-p convolution into one GEMM against W reshaped [D, C·p·p].
  In x{};
  Out patches{};
  int64_t B = 0, C = 0, Himg = 0, Wimg = 0, p = 0;

  template <class I2, class O2 = I2, class F>
  PatchifyArgsOf<I2, O2> map(F f) const {
    return {f(x), f(patches), B, C, Himg, Wimg, p};
  }
};

template <class In, class Out>
struct EmbedTokensArgsOf {
  // tokens[b, 0, :] = cls[:] + pos[0, :]
  // tokens[b, 1 + i, :] = (mask[b, i] ? mask_token[:] : patch_emb[b, i, :]) + pos[1 + i, :]
  // patch_emb: [B, N, D]; pos: [N + 1, D]; mask: [B, N] bytes or null; tokens: [B, N + 1, D].
  In patch_emb{};
  In cls{};
  In pos{};
  In mask_token{};
  const uint8_t* mask = nullptr;  // host memory (tiny); null = no masking
  Out tokens{};
  int64_t B = 0, N = 0, D = 0;

  template <class I2, class O2 = I2, class F>
  EmbedTokensArgsOf<I2, O2> map(F f) const {
    return {f(patch_emb), f(cls), f(pos), f(mask_token), mask, f(tokens), B, N, D};
  }
};

template <class In, class Out>
struct PatchifyPixelsArgsOf {
  // Patchify (PatchifyArgs, C = 3) of uint8 RGB images with the rescale/normalize fused in:
  //   patches[(b·gh + py)·gw + px, (c·p + ky)·p + kx] = pixel_value(pixels[b, py·p + ky, px·p + kx, c], c, norm)
  // pixels: [B, Himg, Wimg, 3] levels in host memory (a device backend copies the bytes over: a
  // quarter of the float32 tensor), or, when device_pixels is set, the same bytes already in the
  // backend's memory (a recorded embed: the recording's own copy); pixel_value (pixel_norm.h) is the
  // float32 preprocessing's own arithmetic, so the values are bit-identical to patchify of
  // preprocessed float32 pixels.
  const uint8_t* pixels = nullptr;
  Out patches{};
  int64_t B = 0, Himg = 0, Wimg = 0, p = 0;
  PixelNorm norm;
  In device_pixels{};

  template <class I2, class O2 = I2, class F>
  PatchifyPixelsArgsOf<I2, O2> map(F f) const {
    return {pixels, f(patches), B, Himg, Wimg, p, norm, f(device_pixels)};
  }
};

template <class In, class Out>
struct PoolRowsArgsOf {
  // One vector per image from rows t0 .. t0 + n − 1 of its T rows (x: [B, T, D], out: [B, D]):
  //   out[b, d] = float32(Σ_t x[b, t, d] / n)   summed in double in order of t (n = 1: the row itself)
  //   then, with normalize: out[b, :] = float32(out[b, :] · 1 / max(‖out[b, :]‖₂, 1e-12)), the norm
  //   summed in double in order of d — engine/model/pooling.cc's host math, so the CPU is bit-identical.
  In x{};
  Out out{};
  int64_t B = 0, T = 0, D = 0, t0 = 0, n = 1;
  bool normalize = false;

  template <class I2, class O2 = I2, class F>
  PoolRowsArgsOf<I2, O2> map(F f) const {
    return {f(x), f(out), B, T, D, t0, n, normalize};
  }
};

}  // namespace vitmsn
