// y[r, :] = (x[r, :] − mean) / sqrt(biased_var + eps) · gamma + beta, statistics in float32, two
// passes over the row (mean, then the centred variance: no cancellation). One warp per row; y may
// alias x (each lane writes only the elements it read).
// Rows of up to 1024 elements whose size is a multiple of 16 bytes (every ViT) take the fast kernel:
// the row is read once with 16-byte loads and kept in registers for both passes and the output.
// Anything else takes the plain kernel, which reads the row three times.
#include <cstdint>

#include "cuda/dtype.cuh"
#include "cuda/kernels.h"

namespace vitmsn {
namespace cuda {
namespace {

constexpr int kRowsPerBlock = 4;
constexpr int kMaxRegisterRow = 1024;

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
  for (int64_t d = lane; d < D; d += 32)
    yr[d] = from_f<T>((to_f(xr[d]) - mean) * rstd * to_f(gamma[d]) + to_f(beta[d]));
}

template <typename T>
__global__ void layernorm_row_in_registers(const T* x, const T* gamma, const T* beta, T* y, int64_t rows, int D,
                                           float eps) {
  constexpr int kVec = 16 / sizeof(T);                     // elements per 16-byte load
  constexpr int kMaxVecs = kMaxRegisterRow / (32 * kVec);  // loads per lane at most
  const int64_t r = blockIdx.x * (int64_t)kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const int nv = D / kVec;
  const uint4* xr = reinterpret_cast<const uint4*>(x + r * D);
  float v[kMaxVecs][kVec];
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < kMaxVecs; ++i) {
    if (lane + 32 * i < nv) {
      const uint4 u = xr[lane + 32 * i];
      const T* e = reinterpret_cast<const T*>(&u);
#pragma unroll
      for (int j = 0; j < kVec; ++j) v[i][j] = to_f(e[j]), sum += v[i][j];
    }
  }
  const float mean = warp_sum(sum) / static_cast<float>(D);
  float sq = 0.f;
#pragma unroll
  for (int i = 0; i < kMaxVecs; ++i) {
    if (lane + 32 * i < nv) {
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        const float c = v[i][j] - mean;
        sq += c * c;
      }
    }
  }
  const float rstd = rsqrtf(warp_sum(sq) / static_cast<float>(D) + eps);
  uint4* yr = reinterpret_cast<uint4*>(y + r * D);
  const uint4* gr = reinterpret_cast<const uint4*>(gamma);
  const uint4* br = reinterpret_cast<const uint4*>(beta);
#pragma unroll
  for (int i = 0; i < kMaxVecs; ++i) {
    const int k = lane + 32 * i;
    if (k < nv) {
      const uint4 gu = gr[k], bu = br[k];
      const T* ge = reinterpret_cast<const T*>(&gu);
      const T* be = reinterpret_cast<const T*>(&bu);
      uint4 out;
      T* oe = reinterpret_cast<T*>(&out);
#pragma unroll
      for (int j = 0; j < kVec; ++j) oe[j] = from_f<T>((v[i][j] - mean) * rstd * to_f(ge[j]) + to_f(be[j]));
      yr[k] = out;
    }
  }
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

template <typename T>
void layernorm(const T* x, const T* gamma, const T* beta, T* y, int64_t rows, int64_t D, float eps, cudaStream_t s) {
  if (rows <= 0) return;
  const unsigned blocks = blocks_for(rows, kRowsPerBlock);
  constexpr int kVec = 16 / sizeof(T);
  if (D % kVec == 0 && D <= kMaxRegisterRow && aligned16(x) && aligned16(y) && aligned16(gamma) && aligned16(beta)) {
    layernorm_row_in_registers<T>
        <<<blocks, 32 * kRowsPerBlock, 0, s>>>(x, gamma, beta, y, rows, static_cast<int>(D), eps);
  } else {
    layernorm_kernel<T><<<blocks, 32 * kRowsPerBlock, 0, s>>>(x, gamma, beta, y, rows, D, eps);
  }
}

#define INSTANTIATE(T) \
  template void layernorm<T>(const T*, const T*, const T*, T*, int64_t, int64_t, float, cudaStream_t);
VITMSN_CUDA_FOR_EACH_DTYPE(INSTANTIATE)

}  // namespace cuda
}  // namespace vitmsn
