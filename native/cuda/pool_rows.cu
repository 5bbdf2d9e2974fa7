// Pooling of the embed path (backend/op_args.h, PoolRowsArgs):
//   out[b, d] = float32(Σ_{t=t0}^{t0+n−1} x[b, t, d] / n)   (double sum in order of t)
//   with normalize: out[b, :] = float32(out[b, :] / max(‖out[b, :]‖₂, 1e-12))   (norm in double)
// One block per image; each thread owns columns d (so every column's sum keeps the host's order),
// the pooled row is kept in shared memory as float32, and the norm is a block reduction in double
// (its order differs from the host's sequential sum: results agree to float32 rounding, not bit for
// bit; the values then round to T).
#include <cstdint>

#include "cuda/dtype.cuh"
#include "cuda/kernels.h"

namespace vitmsn {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void pool_rows_kernel(const T* x, T* out, int64_t Tn, int64_t D, int64_t t0, int64_t n, bool normalize) {
  extern __shared__ float row[];  // [D]
  __shared__ double partial[kThreads];
  const int64_t b = blockIdx.x;
  const T* xb = x + (b * Tn + t0) * D;
  double ss = 0.0;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    double s = 0.0;
    for (int64_t t = 0; t < n; ++t) s = __dadd_rn(s, static_cast<double>(to_f(xb[t * D + d])));
    const float y = __double2float_rn(__ddiv_rn(s, static_cast<double>(n)));
    row[d] = y;
    ss = __dadd_rn(ss, __dmul_rn(static_cast<double>(y), static_cast<double>(y)));
  }
  double inv = 1.0;
  if (normalize) {
    partial[threadIdx.x] = ss;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
      if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
      __syncthreads();
    }
    inv = 1.0 / fmax(sqrt(partial[0]), 1e-12);
  }
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
    const float y = normalize ? __double2float_rn(__dmul_rn(static_cast<double>(row[d]), inv)) : row[d];
    out[b * D + d] = from_f<T>(y);
  }
}

}  // namespace

template <typename T>
void pool_rows(const T* x, T* out, int64_t B, int64_t T_, int64_t D, int64_t t0, int64_t n, bool normalize,
               cudaStream_t s) {
  if (B <= 0 || D <= 0) return;
  pool_rows_kernel<T><<<static_cast<unsigned>(B), kThreads, static_cast<size_t>(D) * sizeof(float), s>>>(
      x, out, T_, D, t0, n, normalize);
}

#define INSTANTIATE(T) \
  template void pool_rows<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, bool, cudaStream_t);
VITMSN_CUDA_FOR_EACH_DTYPE(INSTANTIATE)

}  // namespace cuda
}  // namespace vitmsn
