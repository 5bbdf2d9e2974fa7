// im2col of the p×p stride-p patch convolution (same layout as native/cpu/patchify.h):
//   patches[(b·gh + py)·gw + px, (c·p + ky)·p + kx] = x[b, c, py·p + ky, px·p + kx]
// gh = H / p, gw = W / p; leftover rows/columns are dropped. One block per patch (its position is
// decoded once), threads across the patch's C·p·p values with 32-bit index arithmetic: per-element
// 64-bit divisions made this kernel ten times slower than its memory traffic.
//
// patchify_pixels: the same layout from uint8 RGB images [B, H, W, 3], each value computed as
// backend/pixel_norm.h's pixel_value with round-to-nearest intrinsics (__dmul_rn, __double2float_rn,
// __fsub_rn, __fdiv_rn: no contraction, IEEE division), so it equals the host's float32 bit for bit.
#include "cuda/dtype.cuh"
#include "cuda/kernels.h"

namespace vitmsn {
namespace cuda {
namespace {

template <typename T>
__global__ void patchify_kernel(const T* x, T* out, int64_t C, int64_t H, int64_t W, int p, int64_t gh, int64_t gw) {
  const int64_t row = blockIdx.x;  // patch (b, py, px)
  const int64_t px = row % gw, py = (row / gw) % gh, b = row / (gw * gh);
  const int pp = p * p, K0 = static_cast<int>(C) * pp;
  const T* src = x + b * C * H * W + (py * p) * W + px * p;
  T* dst = out + row * K0;
  for (int col = threadIdx.x; col < K0; col += blockDim.x) {
    const int c = col / pp, rem = col - c * pp, ky = rem / p, kx = rem - ky * p;
    dst[col] = src[(c * H + ky) * W + kx];
  }
}

__device__ __forceinline__ float pixel_value_rn(unsigned level, int c, const PixelNorm& n) {
  float x = static_cast<float>(level);
  if (n.do_rescale) x = __double2float_rn(__dmul_rn(static_cast<double>(level), n.rescale_factor));
  if (n.do_normalize) x = __fdiv_rn(__fsub_rn(x, n.mean[c]), n.std[c]);
  return x;
}

template <typename T>
__global__ void patchify_pixels_kernel(const uint8_t* px8, T* out, int64_t H, int64_t W, int p, int64_t gh, int64_t gw,
                                       PixelNorm norm) {
  const int64_t row = blockIdx.x;  // patch (b, py, px)
  const int64_t px = row % gw, py = (row / gw) % gh, b = row / (gw * gh);
  const int pp = p * p, K0 = 3 * pp;
  const uint8_t* src = px8 + ((b * H + py * p) * W + px * p) * 3;
  T* dst = out + row * K0;
  for (int col = threadIdx.x; col < K0; col += blockDim.x) {
    const int c = col / pp, rem = col - c * pp, ky = rem / p, kx = rem - ky * p;
    dst[col] = from_f<T>(pixel_value_rn(src[(ky * W + kx) * 3 + c], c, norm));
  }
}

}  // namespace

template <typename T>
void patchify_pixels(const uint8_t* pixels, T* patches, int64_t B, int64_t H, int64_t W, int64_t p,
                     const PixelNorm& norm, cudaStream_t s) {
  const int64_t gh = H / p, gw = W / p, rows = B * gh * gw;
  if (rows > 0 && p > 0) {
    patchify_pixels_kernel<T>
        <<<static_cast<unsigned>(rows), 256, 0, s>>>(pixels, patches, H, W, static_cast<int>(p), gh, gw, norm);
  }
}

template <typename T>
void patchify(const T* x, T* patches, int64_t B, int64_t C, int64_t H, int64_t W, int64_t p, cudaStream_t s) {
  const int64_t gh = H / p, gw = W / p, rows = B * gh * gw;
  if (rows > 0 && C * p * p > 0) {
    patchify_kernel<T><<<static_cast<unsigned>(rows), 256, 0, s>>>(x, patches, C, H, W, static_cast<int>(p), gh, gw);
  }
}

#define INSTANTIATE(T)                                                                                       \
  template void patchify<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, cudaStream_t);        \
  template void patchify_pixels<T>(const uint8_t*, T*, int64_t, int64_t, int64_t, int64_t, const PixelNorm&, \
                                   cudaStream_t);
VITMSN_CUDA_FOR_EACH_DTYPE(INSTANTIATE)

}  // namespace cuda
}  // namespace vitmsn
