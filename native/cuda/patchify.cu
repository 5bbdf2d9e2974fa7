// im2col of the p×p stride-p patch convolution (same layout as native/cpu/patchify.h):
//   patches[(b·gh + py)·gw + px, (c·p + ky)·p + kx] = x[b, c, py·p + ky, px·p + kx]
// gh = H / p, gw = W / p; leftover rows/columns are dropped. One thread per output element.
#include "cuda/dtype.cuh"
#include "cuda/kernels.h"

namespace vitmsn {
namespace cuda {
namespace {

template <typename T>
__global__ void patchify_kernel(const T* x, T* out, int64_t C, int64_t H, int64_t W, int64_t p, int64_t gh,
                                int64_t gw, int64_t total) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int64_t K0 = C * p * p;
  const int64_t col = i % K0, row = i / K0;
  const int64_t kx = col % p, ky = (col / p) % p, c = col / (p * p);
  const int64_t px = row % gw, py = (row / gw) % gh, b = row / (gw * gh);
  out[i] = x[((b * C + c) * H + py * p + ky) * W + px * p + kx];
}

}  // namespace

template <typename T>
void patchify(const T* x, T* patches, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p, cudaStream_t s) {
  const int64_t gh = H / p, gw = W / p, total = B * gh * gw * C * p * p;
  if (total > 0) patchify_kernel<T><<<blocks_for(total, 256), 256, 0, s>>>(x, patches, C, H, W, p, gh, gw, total);
}

#define INSTANTIATE(T) \
  template void patchify<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, cudaStream_t);
VITMSN_CUDA_FOR_EACH_DTYPE(INSTANTIATE)

}  // namespace cuda
}  // namespace vitmsn
