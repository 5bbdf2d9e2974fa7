// dst[i] = T(src[i]) (round to nearest even) and dst[i] = float(src[i]): host float32 tensors in
// and out of the backend's storage type.
#include <algorithm>

#include "cuda/dtype.cuh"
#include "cuda/kernels.h"

namespace vitmsn {
namespace cuda {
namespace {

template <typename T>
__global__ void from_f32_kernel(const float* src, T* dst, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = from_f<T>(src[i]);
}
template <typename T>
__global__ void to_f32_kernel(const T* src, float* dst, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = to_f<T>(src[i]);
}

unsigned grid(int64_t n) { return n <= 0 ? 1 : std::min<unsigned>(blocks_for(n, 256), 65535u * 16); }

}  // namespace

template <typename T>
void convert_from_f32(const float* src, T* dst, int64_t n, cudaStream_t s) {
  if (n > 0) from_f32_kernel<T><<<grid(n), 256, 0, s>>>(src, dst, n);
}
template <typename T>
void convert_to_f32(const T* src, float* dst, int64_t n, cudaStream_t s) {
  if (n > 0) to_f32_kernel<T><<<grid(n), 256, 0, s>>>(src, dst, n);
}

#define INSTANTIATE(T)                                                        \
  template void convert_from_f32<T>(const float*, T*, int64_t, cudaStream_t); \
  template void convert_to_f32<T>(const T*, float*, int64_t, cudaStream_t);
VITMSN_CUDA_FOR_EACH_DTYPE(INSTANTIATE)

}  // namespace cuda
}  // namespace vitmsn
