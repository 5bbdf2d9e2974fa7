// Launchers of the CUDA kernels, callable from host C++ (cuda_backend.cc). Each is defined in its own
// .cu file, whose header comment states the math; T is float, __half or __nv_bfloat16 (storage
// only: arithmetic is float32). All enqueue on `stream` and return without synchronising; launch
// errors surface through cudaGetLastError, which the backend checks after every op.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace vitmsn {
namespace cuda {

template <typename T> void convert_from_f32(const float* src, T* dst, int64_t n, cudaStream_t s);
template <typename T> void convert_to_f32(const T* src, float* dst, int64_t n, cudaStream_t s);

template <typename T>
void patchify(const T* x, T* patches, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p, cudaStream_t s);

template <typename T>
void embed_tokens(const T* patch_emb, const T* cls, const T* pos, const T* mask_token, const uint8_t* d_mask,
                  T* tokens, int64_t B, int64_t N, int64_t D, cudaStream_t s);

template <typename T>
void layernorm(const T* x, const T* gamma, const T* beta, T* y, int64_t rows, int64_t D, float eps, cudaStream_t s);

template <typename T> void gelu_inplace(T* x, int64_t n, cudaStream_t s);

// Flash-style attention (online softmax, no T×T matrix). Head dims up to 128.
template <typename T>
void attention_flash(const T* qkv, T* out, const T* head_scale, int64_t B, int64_t Tn, int64_t H, int64_t Dh,
                     float scale, cudaStream_t s);
// Explicit path, only when the probabilities are requested: probs [B,H,T,T], then out = P·v.
template <typename T>
void attention_with_probs(const T* qkv, T* out, T* probs, const T* head_scale, int64_t B, int64_t Tn, int64_t H,
                          int64_t Dh, float scale, cudaStream_t s);

inline constexpr int64_t kFlashMaxHeadDim = 128;

}  // namespace cuda
}  // namespace vitmsn
