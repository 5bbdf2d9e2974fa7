// x = 0.5·x·(1 + erf(x/√2)), the exact GELU of ViT-MSN, in place (float32 arithmetic). Used after a
// bias-epilogue GEMM because cuBLASLt's GELU epilogue is the tanh approximation (docs/cuda.md, "GELU").
#include <algorithm>

#include "cuda/dtype.cuh"
#include "cuda/kernels.h"

namespace vitmsn {
namespace cuda {
namespace {

template <typename T>
__global__ void gelu_kernel(T* x, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float v = to_f(x[i]);
    x[i] = from_f<T>(0.5f * v * (1.0f + erff(v * 0.70710678118654752f)));
  }
}

}  // namespace

template <typename T>
void gelu_inplace(T* x, int64_t n, cudaStream_t s) {
  if (n > 0) gelu_kernel<T><<<std::min<unsigned>(blocks_for(n, 256), 65535u * 16), 256, 0, s>>>(x, n);
}

#define INSTANTIATE(T) template void gelu_inplace<T>(T*, int64_t, cudaStream_t);
VITMSN_CUDA_FOR_EACH_DTYPE(INSTANTIATE)

}  // namespace cuda
}  // namespace vitmsn
