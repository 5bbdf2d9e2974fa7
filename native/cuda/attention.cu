// Multi-head attention over qkv [B, T, 3·H·Dh] (q heads, then k heads, then v heads per token):
//   P[b,h] = softmax_keys(q·kᵀ · scale) · head_scale[h];  out[b, t, h·Dh + d] = Σ_j P[b,h,t,j] · v[b,j,h,d]
//
// attention_flash: one warp per query row, keys and values staged through shared memory in tiles of
// 32; online softmax (running max m, running sum l, rescaled accumulator), so no T×T matrix ever
// exists. Each lane owns one key of the tile for the scores and Dh/32 output columns for P·v.
// attention_with_probs: the explicit path for outputAttentions: scores → softmax written to probs,
// then out = P·v. All arithmetic in float32.
#include <cmath>

#include "cuda/dtype.cuh"
#include "cuda/kernels.h"

namespace vitmsn {
namespace cuda {
namespace {

constexpr int kWarps = 4;  // query rows per block
constexpr int kTile = 32;  // keys per shared-memory tile (one per lane)

template <typename T, int NC>  // NC = ceil(Dh / 32) output columns per lane
__global__ void flash_kernel(const T* qkv, T* out, const T* head_scale, int64_t Tn, int H, int Dh, float scale) {
  extern __shared__ float smem[];
  const int ldk = Dh + 1;  // +1: lanes reading different keys hit different banks
  float* Ks = smem;
  float* Vs = Ks + kTile * ldk;
  float* Qs = Vs + kTile * ldk;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int h = blockIdx.y;
  const int64_t b = blockIdx.z;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  const int64_t stride = 3LL * H * Dh;
  const T* base = qkv + b * Tn * stride;
  const bool active = row < Tn;
  float* q = Qs + warp * Dh;
  if (active)
    for (int d = lane; d < Dh; d += 32) q[d] = to_f(base[row * stride + h * Dh + d]);

  float m = -INFINITY, l = 0.f, acc[NC];
  for (int c = 0; c < NC; ++c) acc[c] = 0.f;
  for (int64_t j0 = 0; j0 < Tn; j0 += kTile) {
    __syncthreads();  // the previous tile is consumed (and q is visible)
    for (int idx = threadIdx.x; idx < kTile * Dh; idx += blockDim.x) {
      const int jj = idx / Dh, d = idx % Dh;
      const int64_t j = j0 + jj;
      float kv = 0.f, vv = 0.f;
      if (j < Tn) {
        kv = to_f(base[j * stride + (int64_t)H * Dh + h * Dh + d]);
        vv = to_f(base[j * stride + 2LL * H * Dh + h * Dh + d]);
      }
      Ks[jj * ldk + d] = kv;
      Vs[jj * ldk + d] = vv;
    }
    __syncthreads();
    if (!active) continue;
    const int64_t j = j0 + lane;
    float s = -INFINITY;
    if (j < Tn) {
      float dot = 0.f;
      for (int d = 0; d < Dh; ++d) dot += q[d] * Ks[lane * ldk + d];
      s = dot * scale;
    }
    const float m_new = fmaxf(m, warp_max(s));
    const float p = j < Tn ? expf(s - m_new) : 0.f;
    const float corr = m == -INFINITY ? 0.f : expf(m - m_new);
    l = l * corr + warp_sum(p);
    for (int c = 0; c < NC; ++c) acc[c] *= corr;
    const int nk = Tn - j0 < kTile ? static_cast<int>(Tn - j0) : kTile;
    for (int jj = 0; jj < nk; ++jj) {
      const float pj = __shfl_sync(0xffffffffu, p, jj);
      for (int c = 0; c < NC; ++c) {
        const int d = lane + 32 * c;
        if (d < Dh) acc[c] += pj * Vs[jj * ldk + d];
      }
    }
    m = m_new;
  }
  if (!active) return;
  const float inv = (head_scale ? to_f(head_scale[h]) : 1.f) / l;
  T* o = out + (b * Tn + row) * ((int64_t)H * Dh) + (int64_t)h * Dh;
  for (int c = 0; c < NC; ++c) {
    const int d = lane + 32 * c;
    if (d < Dh) o[d] = from_f<T>(acc[c] * inv);
  }
}

// One warp per (b, h, row): max, sum and normalised probabilities in three passes over the keys.
template <typename T>
__global__ void probs_kernel(const T* qkv, T* probs, const T* head_scale, int64_t Tn, int H, int Dh, float scale,
                             int64_t rows) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;  // r = (b·H + h)·T + t
  const int64_t t = r % Tn, h = (r / Tn) % H, b = r / (Tn * H);
  const int64_t stride = 3LL * H * Dh;
  const T* q = qkv + (b * Tn + t) * stride + h * Dh;
  const T* k0 = qkv + b * Tn * stride + (int64_t)H * Dh + h * Dh;
  auto score = [&](int64_t j) {
    const T* k = k0 + j * stride;
    float dot = 0.f;
    for (int d = 0; d < Dh; ++d) dot += to_f(q[d]) * to_f(k[d]);
    return dot * scale;
  };
  float mx = -INFINITY;
  for (int64_t j = lane; j < Tn; j += 32) mx = fmaxf(mx, score(j));
  mx = warp_max(mx);
  float sum = 0.f;
  for (int64_t j = lane; j < Tn; j += 32) sum += expf(score(j) - mx);
  sum = warp_sum(sum);
  const float f = (head_scale ? to_f(head_scale[h]) : 1.f) / sum;
  T* pr = probs + r * Tn;
  for (int64_t j = lane; j < Tn; j += 32) pr[j] = from_f<T>(expf(score(j) - mx) * f);
}

// out[b, t, h·Dh + d] = Σ_j probs[b, h, t, j] · v[b, j, h, d]; one warp per (b, h, t).
template <typename T>
__global__ void pv_kernel(const T* qkv, const T* probs, T* out, int64_t Tn, int H, int Dh, int64_t rows) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const int64_t t = r % Tn, h = (r / Tn) % H, b = r / (Tn * H);
  const int64_t stride = 3LL * H * Dh;
  const T* v0 = qkv + b * Tn * stride + 2LL * H * Dh + h * Dh;
  const T* pr = probs + r * Tn;
  T* o = out + (b * Tn + t) * ((int64_t)H * Dh) + h * Dh;
  for (int d = lane; d < Dh; d += 32) {
    float acc = 0.f;
    for (int64_t j = 0; j < Tn; ++j) acc += to_f(pr[j]) * to_f(v0[j * stride + d]);
    o[d] = from_f<T>(acc);
  }
}

template <typename T, int NC>
void launch_flash(const T* qkv, T* out, const T* hs, int64_t B, int64_t Tn, int64_t H, int64_t Dh, float scale,
                  cudaStream_t s) {
  const size_t smem = (2 * kTile * (Dh + 1) + kWarps * Dh) * sizeof(float);
  dim3 grid(blocks_for(Tn, kWarps), static_cast<unsigned>(H), static_cast<unsigned>(B));
  flash_kernel<T, NC><<<grid, 32 * kWarps, smem, s>>>(qkv, out, hs, Tn, (int)H, (int)Dh, scale);
}

}  // namespace

template <typename T>
void attention_flash(const T* qkv, T* out, const T* head_scale, int64_t B, int64_t Tn, int64_t H, int64_t Dh,
                     float scale, const AttentionCaps& caps, cudaStream_t s) {
  if (B <= 0 || Tn <= 0) return;
  if (caps.tensor_cores && attention_flash_tc<T>(qkv, out, head_scale, B, Tn, H, Dh, scale, caps, s)) return;
  switch ((Dh + 31) / 32) {
    case 1:
      launch_flash<T, 1>(qkv, out, head_scale, B, Tn, H, Dh, scale, s);
      break;
    case 2:
      launch_flash<T, 2>(qkv, out, head_scale, B, Tn, H, Dh, scale, s);
      break;
    case 3:
      launch_flash<T, 3>(qkv, out, head_scale, B, Tn, H, Dh, scale, s);
      break;
    default:
      launch_flash<T, 4>(qkv, out, head_scale, B, Tn, H, Dh, scale, s);
      break;  // Dh ≤ 128 (checked by caller)
  }
}

template <typename T>
void attention_with_probs(const T* qkv, T* out, T* probs, const T* head_scale, int64_t B, int64_t Tn, int64_t H,
                          int64_t Dh, float scale, cudaStream_t s) {
  const int64_t rows = B * H * Tn;
  if (rows <= 0) return;
  probs_kernel<T>
      <<<blocks_for(rows, kWarps), 32 * kWarps, 0, s>>>(qkv, probs, head_scale, Tn, (int)H, (int)Dh, scale, rows);
  pv_kernel<T><<<blocks_for(rows, kWarps), 32 * kWarps, 0, s>>>(qkv, probs, out, Tn, (int)H, (int)Dh, rows);
}

#define INSTANTIATE(T)                                                                                         \
  template void attention_flash<T>(const T*, T*, const T*, int64_t, int64_t, int64_t, int64_t, float,          \
                                   const AttentionCaps&, cudaStream_t);                                        \
  template void attention_with_probs<T>(const T*, T*, T*, const T*, int64_t, int64_t, int64_t, int64_t, float, \
                                        cudaStream_t);
VITMSN_CUDA_FOR_EACH_DTYPE(INSTANTIATE)

}  // namespace cuda
}  // namespace vitmsn
