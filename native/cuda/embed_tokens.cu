// tokens[b, 0, :] = cls + pos[0];  tokens[b, 1 + i, :] = (mask[b, i] ? mask_token : patch_emb[b, i]) + pos[1 + i]
// (native/backend/backend.h EmbedTokensArgs). The sum is formed in float32 and rounded once.
#include "cuda/dtype.cuh"
#include "cuda/kernels.h"

namespace vitmsn {
namespace cuda {
namespace {

// One block per token row (b, t), decoded once; threads across D (no per-element 64-bit division).
template <typename T>
__global__ void embed_kernel(const T* patch_emb, const T* cls, const T* pos, const T* mask_token, const uint8_t* mask,
                             T* tokens, int64_t N, int64_t D) {
  const int64_t r = blockIdx.x, t = r % (N + 1), b = r / (N + 1);
  const int64_t patch = b * N + (t - 1);
  const bool masked = t > 0 && mask && mask[patch];
  const T* src = t == 0 ? cls : masked ? mask_token : patch_emb + patch * D;
  const T* pr = pos + t * D;
  T* dst = tokens + r * D;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) dst[d] = from_f<T>(to_f(src[d]) + to_f(pr[d]));
}

}  // namespace

template <typename T>
void embed_tokens(const T* patch_emb, const T* cls, const T* pos, const T* mask_token, const uint8_t* d_mask, T* tokens,
                  int64_t B, int64_t N, int64_t D, cudaStream_t s) {
  const int64_t rows = B * (N + 1);
  if (rows > 0 && D > 0) {
    embed_kernel<T><<<static_cast<unsigned>(rows), D >= 256 ? 256 : 128, 0, s>>>(patch_emb, cls, pos, mask_token,
                                                                                 d_mask, tokens, N, D);
  }
}

#define INSTANTIATE(T)                                                                                                 \
  template void embed_tokens<T>(const T*, const T*, const T*, const T*, const uint8_t*, T*, int64_t, int64_t, int64_t, \
                                cudaStream_t);
VITMSN_CUDA_FOR_EACH_DTYPE(INSTANTIATE)

}  // namespace cuda
}  // namespace vitmsn
