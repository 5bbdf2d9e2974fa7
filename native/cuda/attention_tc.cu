// Flash-style attention on tensor cores (mma.sync m16n8k16, fp16/bf16 in, float32 accumulate), for
// head dims that are multiples of 16 (≤ 128) on sm_80+. Same math and layout as attention.cu:
//   qkv [B, T, 3·H·Dh] → out[b, t, h·Dh + d] = head_scale[h] · Σ_j softmax_j(q_t·k_j · scale) · v[j, d]
// Each warp owns 16 query rows of one (b, h); a block holds 1, 4 or 8 warps (more share each K/V
// tile load when the grid is large; fewer spread the work over more SMs, as at batch 1). Keys and values stream through
// shared memory in tiles of 64, double buffered with cp.async so the next tile loads while this one is computed; K
// fragments are read as aligned 32-bit pairs, V fragments with ldmatrix.trans (V stays row-major). Scores,
// probabilities and the output accumulator stay in registers, in the mma fragment layout (lane = 4·g + t holds rows g
// and g + 8, columns 2t and 2t + 1 of every 8-wide tile), so row reductions are 2 shuffles within a quad, and a score
// tile converts in place into the A operand of P·V (FlashAttention-2's layout trick). Online softmax: running max m and
// sum l per row, accumulator rescaled by exp(m_old − m_new). No T×T matrix exists; keys past T are zero-filled and
// masked to −∞, and the 8-key tiles wholly past T are skipped, as are warps whose 16 rows all lie past T. P is rounded
// to fp16/bf16 for P·V, as PyTorch's flash kernels do. The whole-head kernel (attention_tc_head.cu) runs instead
// where the shape allows it and the grid is large (VITMSN_CUDA_ATTENTION forces one for measuring).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda/dtype.cuh"
#include "cuda/kernels.h"
#include "cuda/mma_fragments.cuh"

namespace vitmsn {
namespace cuda {

namespace {
using namespace tc_detail;

constexpr int kBK = 64;  // keys per tile

template <int DH>
struct TcLayout {
  // Q, K and V rows [token][d], pitch DH + 8 elements: rows stay 16-byte aligned (cp.async,
  // ldmatrix) and 8 consecutive rows start in 8 distinct 4-bank groups (conflict-free fragment reads).
  static constexpr int LD = DH + 8;
  static constexpr int tile = kBK * LD;  // elements of one K or V tile
  static size_t bytes(int warps) { return (size_t(warps) * 16 * LD + 4 * size_t{tile}) * 2; }  // Q, 2 × (K, V)
};

template <typename T, int DH>
__global__ void __launch_bounds__(256)
    tc_flash_kernel(const T* qkv, T* out, const T* head_scale, int Tn, int H, float scale_log2) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using L = TcLayout<DH>;
  constexpr int KS = DH / 16;  // k-steps of Q·Kᵀ
  constexpr int ND = DH / 8;   // 8-wide output tiles
  extern __shared__ __align__(16) unsigned char smem[];
  const int warps = blockDim.x / 32;
  T* Qs = reinterpret_cast<T*>(smem);
  T* KV = Qs + warps * 16 * L::LD;  // stage s: K at KV + 2s·tile, V at KV + (2s + 1)·tile

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const int h = blockIdx.y;
  const int64_t b = blockIdx.z;
  const int q0 = blockIdx.x * warps * 16;
  const int64_t stride = 3LL * H * DH;
  const T* base = qkv + b * Tn * stride + static_cast<int64_t>(h) * DH;
  constexpr int kVec = DH / 8;              // 16-byte vectors per row
  const bool active = q0 + warp * 16 < Tn;  // a warp whose rows all lie past T only helps load

  // Q rows of the block, then K/V tile 0, as two cp.async groups.
  for (int i = threadIdx.x; i < warps * 16 * kVec; i += blockDim.x) {
    const int r = i / kVec, c = (i % kVec) * 8;
    const bool ok = q0 + r < Tn;
    cp_async16(Qs + r * L::LD + c, ok ? base + static_cast<int64_t>(q0 + r) * stride + c : base, ok);
  }
  cp_async_commit();
  auto load_tile = [&](int j0, int stage) {
    T* Kd = KV + 2 * stage * L::tile;
    T* Vd = Kd + L::tile;
    for (int i = threadIdx.x; i < kBK * kVec; i += blockDim.x) {
      const int r = i / kVec, c = (i % kVec) * 8;
      const bool ok = j0 + r < Tn;
      const T* row = ok ? base + static_cast<int64_t>(j0 + r) * stride + c : base;
      cp_async16(Kd + r * L::LD + c, ok ? row + static_cast<int64_t>(H) * DH : base, ok);
      cp_async16(Vd + r * L::LD + c, ok ? row + 2LL * H * DH : base, ok);
    }
    cp_async_commit();
  };
  load_tile(0, 0);
  cp_async_wait<1>();  // Q is in
  __syncthreads();
  uint32_t qa[KS][4];
  {
    const T* q = Qs + warp * 16 * L::LD;
#pragma unroll
    for (int k = 0; k < KS; ++k) {
      qa[k][0] = ld32(q + g * L::LD + 16 * k + 2 * t);
      qa[k][1] = ld32(q + (g + 8) * L::LD + 16 * k + 2 * t);
      qa[k][2] = ld32(q + g * L::LD + 16 * k + 2 * t + 8);
      qa[k][3] = ld32(q + (g + 8) * L::LD + 16 * k + 2 * t + 8);
    }
  }

  float o[ND][4];
#pragma unroll
  for (int n = 0; n < ND; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;  // rows g and g + 8

  for (int j0 = 0, stage = 0; j0 < Tn; j0 += kBK, stage ^= 1) {
    const int nvalid = min(kBK, Tn - j0);
    if (j0 + kBK < Tn) {
      load_tile(j0 + kBK, stage ^ 1);  // its buffer was released by the barrier ending the last tile
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();  // tile j0 is visible to every warp
    const T* Kt = KV + 2 * stage * L::tile;
    const T* Vs = Kt + L::tile;
    if (active) {
      const int n8 = (nvalid + 7) / 8, k16 = (nvalid + 15) / 16;  // key tiles holding any valid key

      // S (16 × 64) = Q·Kᵀ: B operand of tile n = keys 8n..8n+7, b regs = K[8n + g][pairs].
      float s[kBK / 8][4];
#pragma unroll
      for (int n = 0; n < kBK / 8; ++n) {
        s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
        if (n < n8) {
          const T* krow = Kt + (8 * n + g) * L::LD + 2 * t;
#pragma unroll
          for (int k = 0; k < KS; ++k) mma16816<T>(s[n], qa[k], ld32(krow + 16 * k), ld32(krow + 16 * k + 8));
        }
      }

      // Online softmax (log2 domain; scale > 0 keeps the argmax). Masked keys → −∞ → p = 0.
      float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
      for (int n = 0; n < kBK / 8; ++n) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const bool valid = 8 * n + 2 * t + e < nvalid;
          s[n][e] = valid ? s[n][e] * scale_log2 : -INFINITY;
          s[n][2 + e] = valid ? s[n][2 + e] * scale_log2 : -INFINITY;
          mx0 = fmaxf(mx0, s[n][e]);
          mx1 = fmaxf(mx1, s[n][2 + e]);
        }
      }
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
      const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);  // finite: every tile has ≥ 1 valid key
      const float c0 = exp2f(m0 - mn0), c1 = exp2f(m1 - mn1);  // 0 on the first tile
      float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
      for (int n = 0; n < kBK / 8; ++n) {
        s[n][0] = exp2f(s[n][0] - mn0), s[n][1] = exp2f(s[n][1] - mn0);
        s[n][2] = exp2f(s[n][2] - mn1), s[n][3] = exp2f(s[n][3] - mn1);
        sum0 += s[n][0] + s[n][1];
        sum1 += s[n][2] + s[n][3];
      }
      sum0 += __shfl_xor_sync(0xffffffffu, sum0, 1);
      sum0 += __shfl_xor_sync(0xffffffffu, sum0, 2);
      sum1 += __shfl_xor_sync(0xffffffffu, sum1, 1);
      sum1 += __shfl_xor_sync(0xffffffffu, sum1, 2);
      l0 = l0 * c0 + sum0, l1 = l1 * c1 + sum1;
      m0 = mn0, m1 = mn1;
#pragma unroll
      for (int n = 0; n < ND; ++n) o[n][0] *= c0, o[n][1] *= c0, o[n][2] *= c1, o[n][3] *= c1;

      // O (16 × DH) += P (16 × 64) · V: the A operand of key step kk is score tiles 2kk and 2kk + 1;
      // ldmatrix.trans gives the B operands of output tiles nd and nd + 1 (keys 16kk.., 16kk + 8..).
      const int mi = lane >> 3, ri = lane & 7;  // this lane's ldmatrix row: matrix mi, row ri
#pragma unroll
      for (int kk = 0; kk < kBK / 16; ++kk) {
        if (kk < k16) {
          const uint32_t pa[4] = {Pack<T>::two(s[2 * kk][0], s[2 * kk][1]), Pack<T>::two(s[2 * kk][2], s[2 * kk][3]),
                                  Pack<T>::two(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                  Pack<T>::two(s[2 * kk + 1][2], s[2 * kk + 1][3])};
          const T* vrow = Vs + (16 * kk + (mi & 1) * 8 + ri) * L::LD + (mi >> 1) * 8;
#pragma unroll
          for (int nd = 0; nd < ND; nd += 2) {
            uint32_t vb[4];
            ldsm_x4_trans(vb, vrow + 8 * nd);
            mma16816<T>(o[nd], pa, vb[0], vb[1]);
            mma16816<T>(o[nd + 1], pa, vb[2], vb[3]);
          }
        }
      }
    }
    __syncthreads();  // every warp is done with this stage before it is refilled
  }
  if (!active) return;

  // out rows g and g + 8 of this warp; each lane writes column pairs 8nd + 2t.
  const float hs = head_scale ? to_f(head_scale[h]) : 1.f;
  const float f0 = hs / l0, f1 = hs / l1;
  const int r0 = q0 + warp * 16 + g, r1 = r0 + 8;
  const int64_t ld_out = static_cast<int64_t>(H) * DH;
  T* out0 = out + (b * Tn + r0) * ld_out + static_cast<int64_t>(h) * DH + 2 * t;
  T* out1 = out0 + 8 * ld_out;
#pragma unroll
  for (int nd = 0; nd < ND; ++nd) {
    if (r0 < Tn) *reinterpret_cast<uint32_t*>(out0 + 8 * nd) = Pack<T>::two(o[nd][0] * f0, o[nd][1] * f0);
    if (r1 < Tn) *reinterpret_cast<uint32_t*>(out1 + 8 * nd) = Pack<T>::two(o[nd][2] * f1, o[nd][3] * f1);
  }
#endif
}

template <typename T, int DH>
bool launch_tc(const T* qkv, T* out, const T* hs, int64_t B, int64_t Tn, int64_t H, float scale,
               const AttentionCaps& caps, cudaStream_t s) {
  // 8 warps (128 queries) per block halve the K/V traffic of 4 when there are blocks enough to fill
  // the GPU several times over; with too few blocks (small batches), 1 warp per block spreads the
  // work over more SMs.
  const int64_t heads = H * B;
  int warps = 4;
  if (blocks_for(Tn, 128) * heads >= 4LL * caps.sm_count)
    warps = 8;
  else if (blocks_for(Tn, 64) * heads < 2LL * caps.sm_count)
    warps = 1;
  if (caps.warps == 1 || caps.warps == 4 || caps.warps == 8) warps = caps.warps;
  const size_t bytes = TcLayout<DH>::bytes(warps);
  if (bytes > static_cast<size_t>(caps.max_smem)) return false;
  dim3 grid(blocks_for(Tn, 16 * warps), static_cast<unsigned>(H), static_cast<unsigned>(B));
  tc_flash_kernel<T, DH><<<grid, 32 * warps, bytes, s>>>(qkv, out, hs, static_cast<int>(Tn), static_cast<int>(H),
                                                         scale * 1.4426950408889634f);
  return true;
}

template <typename T, int DH>
bool raise_smem(const AttentionCaps& caps) {
  const size_t bytes = std::min(TcLayout<DH>::bytes(8), static_cast<size_t>(caps.max_smem));
  if (bytes > 48 * 1024 && cudaFuncSetAttribute(tc_flash_kernel<T, DH>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                static_cast<int>(bytes)) != cudaSuccess)
    return false;  // (the default limit suffices below 48 KiB)
  return true;
}

}  // namespace

template <typename T>
bool attention_flash_tc(const T* qkv, T* out, const T* head_scale, int64_t B, int64_t Tn, int64_t H, int64_t Dh,
                        float scale, const AttentionCaps& caps, cudaStream_t s) {
  if constexpr (std::is_same_v<T, float>) {
    return false;
  } else {
    if (!caps.tensor_cores || Dh % 16 != 0 || Dh < 16 || Dh > 128) return false;
    if (reinterpret_cast<uintptr_t>(qkv) % 16 != 0 || reinterpret_cast<uintptr_t>(out) % 4 != 0) return false;
    if (Tn > (int64_t{1} << 30) || B > 65535 || H > 65535) return false;
    if (attention_head_tc<T>(qkv, out, head_scale, B, Tn, H, Dh, scale, caps, s)) return true;
    return with_head_dim<128>(
        Dh, [&](auto dh) { return launch_tc<T, decltype(dh)::value>(qkv, out, head_scale, B, Tn, H, scale, caps, s); });
  }
}

template <typename T>
bool prepare_attention(const AttentionCaps& caps) {
  if constexpr (std::is_same_v<T, float>) {
    return true;
  } else {
    if (!caps.tensor_cores) return true;
    return for_each_head_dim<128>([&](auto dh) { return raise_smem<T, decltype(dh)::value>(caps); }) &&
           prepare_head_attention<T>(caps);
  }
}

#define INSTANTIATE(T)                                                                                   \
  template bool attention_flash_tc<T>(const T*, T*, const T*, int64_t, int64_t, int64_t, int64_t, float, \
                                      const AttentionCaps&, cudaStream_t);                               \
  template bool prepare_attention<T>(const AttentionCaps&);
VITMSN_CUDA_FOR_EACH_DTYPE(INSTANTIATE)

}  // namespace cuda
}  // namespace vitmsn
