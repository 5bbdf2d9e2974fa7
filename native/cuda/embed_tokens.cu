// tokens[b, 0, :] = cls + pos[0];  tokens[b, 1 + i, :] = (mask[b, i] ? mask_token : patch_emb[b, i]) + pos[1 + i]
// (native/backend/backend.h EmbedTokensArgs). The sum is formed in float32 and rounded once.
#include "cuda/dtype.cuh"
#include "cuda/kernels.h"

namespace vitmsn {
namespace cuda {
namespace {

template <typename T>
__global__ void embed_kernel(const T* patch_emb, const T* cls, const T* pos, const T* mask_token,
                             const uint8_t* mask, T* tokens, int64_t N, int64_t D, int64_t total) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t d = i % D, t = (i / D) % (N + 1), b = i / (D * (N + 1));
  float v;
  if (t == 0) {
    v = to_f(cls[d]);
  } else {
    const int64_t patch = b * N + (t - 1);
    v = (mask && mask[patch]) ? to_f(mask_token[d]) : to_f(patch_emb[patch * D + d]);
  }
  tokens[i] = from_f<T>(v + to_f(pos[t * D + d]));
}

}  // namespace

template <typename T>
void embed_tokens(const T* patch_emb, const T* cls, const T* pos, const T* mask_token, const uint8_t* d_mask,
                  T* tokens, int64_t B, int64_t N, int64_t D, cudaStream_t s) {
  const int64_t total = B * (N + 1) * D;
  if (total > 0)
    embed_kernel<T><<<blocks_for(total, 256), 256, 0, s>>>(patch_emb, cls, pos, mask_token, d_mask, tokens, N, D, total);
}

#define INSTANTIATE(T)                                                                                  \
  template void embed_tokens<T>(const T*, const T*, const T*, const T*, const uint8_t*, T*, int64_t, int64_t, \
                                int64_t, cudaStream_t);
VITMSN_CUDA_FOR_EACH_DTYPE(INSTANTIATE)

}  // namespace cuda
}  // namespace vitmsn
