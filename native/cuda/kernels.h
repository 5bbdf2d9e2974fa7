// Launchers of the CUDA kernels, callable from host C++ (cuda_backend.cc). Each is defined in its own
// .cu file, whose header comment states the math; T is float, __half or __nv_bfloat16 (storage
// only: arithmetic is float32). All enqueue on `stream` and return without synchronising; launch
// errors surface through cudaGetLastError, which the backend checks after every op.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/pixel_norm.h"
#include "backend/resize_pass.h"

namespace vitmsn {
namespace cuda {

template <typename T>
void convert_from_f32(const float* src, T* dst, int64_t n, cudaStream_t s);
template <typename T>
void convert_to_f32(const T* src, float* dst, int64_t n, cudaStream_t s);

template <typename T>
void patchify(const T* x, T* patches, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p, cudaStream_t s);

// pixels: [B, H, W, 3] uint8 on the device; patches as patchify's, values pixel_value(level, c, norm).
template <typename T>
void patchify_pixels(const uint8_t* pixels, T* patches, int64_t B, int64_t H, int64_t W, int64_t p,
                     const PixelNorm& norm, cudaStream_t s);

// PoolRowsArgs (backend/op_args.h): out[b] = mean of x[b, t0 .. t0+n−1] (double sums), then L2-normalised.
// Pillow's resize of one RGB image src [in_h, in_w, 3] → dst [out_h, out_w, 3] (uint8, device memory)
// with the plan and tables of backend/resize_pass.h (h, v: device copies of resize_taps). mid holds
// plan.rows · out_w · 3 bytes when both passes run.
void resize_rgb(const uint8_t* src, int64_t in_w, int64_t in_h, uint8_t* dst, int64_t out_w, int64_t out_h,
                const ResizePlan& plan, const ResizeAxisView& h, const ResizeAxisView& v, uint8_t* mid, cudaStream_t s);

template <typename T>
void pool_rows(const T* x, T* out, int64_t B, int64_t T_, int64_t D, int64_t t0, int64_t n, bool normalize,
               cudaStream_t s);

template <typename T>
void embed_tokens(const T* patch_emb, const T* cls, const T* pos, const T* mask_token, const uint8_t* d_mask, T* tokens,
                  int64_t B, int64_t N, int64_t D, cudaStream_t s);

template <typename T>
void layernorm(const T* x, const T* gamma, const T* beta, T* y, int64_t rows, int64_t D, float eps, cudaStream_t s);

template <typename T>
void gelu_inplace(T* x, int64_t n, cudaStream_t s);

// Which tensor-core attention kernel runs (VITMSN_CUDA_ATTENTION): by shape, or one forced for measuring.
enum class AttentionKernel { kAuto, kTile, kHead };

// What the device allows the attention kernels (set once per backend, outside any graph capture).
struct AttentionCaps {
  bool tensor_cores = false;  // fp16/bf16 on sm_80+: the WMMA kernel of attention_tc.cu
  int max_smem = 48 * 1024;   // opt-in shared memory per block
  int sm_count = 1;           // multiprocessors (how many blocks fill the device)
  int warps = 0;              // warps per block of the tensor-core kernel: 0 = by grid size, else 1/4/8
  // kAuto: the whole-head kernel (one block per image and head, 32 query rows per warp) where the
  // shape allows it and the grid is large, else the 16-row kernel; kTile / kHead force one of them
  // (the head kernel still only where it fits: Dh ≤ 64, T ≤ 256).
  AttentionKernel kernel = AttentionKernel::kAuto;
};

// Flash-style attention (online softmax, no T×T matrix). Head dims up to 128. Picks the
// tensor-core kernel when caps allow it and Dh is a multiple of 16, else the CUDA-core kernel.
template <typename T>
void attention_flash(const T* qkv, T* out, const T* head_scale, int64_t B, int64_t Tn, int64_t H, int64_t Dh,
                     float scale, const AttentionCaps& caps, cudaStream_t s);
// The tensor-core kernel alone (attention_tc.cu); false when it cannot run this shape.
template <typename T>
bool attention_flash_tc(const T* qkv, T* out, const T* head_scale, int64_t B, int64_t Tn, int64_t H, int64_t Dh,
                        float scale, const AttentionCaps& caps, cudaStream_t s);
// The whole-head tensor-core kernel alone (attention_tc_head.cu; called by attention_flash_tc
// after its checks); false when it does not take this shape.
template <typename T>
bool attention_head_tc(const T* qkv, T* out, const T* head_scale, int64_t B, int64_t Tn, int64_t H, int64_t Dh,
                       float scale, const AttentionCaps& caps, cudaStream_t s);
template <typename T>
bool prepare_head_attention(const AttentionCaps& caps);  // its shared-memory limit (prepare_attention calls it)
// Raises the tensor-core kernels' shared-memory limits (call once, before any graph capture);
// false when the device refuses (then run without tensor cores).
template <typename T>
bool prepare_attention(const AttentionCaps& caps);
// Explicit path, only when the probabilities are requested: probs [B,H,T,T], then out = P·v.
template <typename T>
void attention_with_probs(const T* qkv, T* out, T* probs, const T* head_scale, int64_t B, int64_t Tn, int64_t H,
                          int64_t Dh, float scale, cudaStream_t s);

inline constexpr int64_t kFlashMaxHeadDim = 128;

}  // namespace cuda
}  // namespace vitmsn
