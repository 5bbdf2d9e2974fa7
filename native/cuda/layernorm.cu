// y[r, :] = (x[r, :] − mean) / sqrt(biased_var + eps) · gamma + beta, statistics in float32, two
// passes (mean, then the centred variance: no cancellation). One warp per row; y may alias x
// (each lane writes only the elements it read).
#include "cuda/dtype.cuh"
#include "cuda/kernels.h"

namespace vitmsn {
namespace cuda {
namespace {

constexpr int kRowsPerBlock = 4;

template <typename T>
__global__ void layernorm_kernel(const T* x, const T* gamma, const T* beta, T* y, int64_t rows, int64_t D, float eps) {
  const int64_t r = blockIdx.x * (int64_t)kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const T* xr = x + r * D;
  float sum = 0.f;
  for (int64_t d = lane; d < D; d += 32) sum += to_f(xr[d]);
  const float mean = warp_sum(sum) / static_cast<float>(D);
  float sq = 0.f;
  for (int64_t d = lane; d < D; d += 32) {
    const float c = to_f(xr[d]) - mean;
    sq += c * c;
  }
  const float rstd = rsqrtf(warp_sum(sq) / static_cast<float>(D) + eps);
  T* yr = y + r * D;
  for (int64_t d = lane; d < D; d += 32) yr[d] = from_f<T>((to_f(xr[d]) - mean) * rstd * to_f(gamma[d]) + to_f(beta[d]));
}

}  // namespace

template <typename T>
void layernorm(const T* x, const T* gamma, const T* beta, T* y, int64_t rows, int64_t D, float eps, cudaStream_t s) {
  if (rows > 0) layernorm_kernel<T><<<blocks_for(rows, kRowsPerBlock), 32 * kRowsPerBlock, 0, s>>>(x, gamma, beta, y, rows, D, eps);
}

#define INSTANTIATE(T) \
  template void layernorm<T>(const T*, const T*, const T*, T*, int64_t, int64_t, float, cudaStream_t);
VITMSN_CUDA_FOR_EACH_DTYPE(INSTANTIATE)

}  // namespace cuda
}  // namespace vitmsn
