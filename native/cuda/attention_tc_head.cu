// The whole-head tensor-core attention kernel (FlashAttention-2's split of the work), beside the
// 16-row kernel of attention_tc.cu: same math, layout, masking and rounding (see that file's header),
// another division of the work. attention_head_tc runs it where it fits and pays (or where
// VITMSN_CUDA_ATTENTION forces it) and returns false otherwise, leaving the shape to the 16-row kernel.
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

// One block per (image, head) with all of that head's K and V in shared memory (T ≤ kHeadMaxT), so
// K/V cross from global memory once per head instead of once per 16·warps queries. Each warp owns
// 32 query rows: two 16-row m-tiles that share every K and V fragment the warp reads from shared
// memory (half the shared-memory traffic per mma of the 16-row kernel), K fragments by
// ldmatrix like V's, and a warp's second m-tile is skipped when it lies wholly past T (the block
// has ceil(T / 32) warps, so no warp is idle otherwise). Keys go in steps of 32 (with two m-tiles
// the scores of a 64-key step would take 64 registers), each step's K/V its own cp.async group, so
// the first step is computed while the later ones load. Same math, masking, rounding of P and
// output as the 16-row kernel.
constexpr int kHeadMaxT = 256;
constexpr int kHeadBK = 32;

template <int DH>
struct HeadLayout {
  static constexpr int LD = DH + 8;  // as the 16-row kernel: 16-byte rows, conflict-free fragment reads
  __host__ __device__ static int tpad(int Tn) { return (Tn + kHeadBK - 1) / kHeadBK * kHeadBK; }
  __host__ __device__ static int warps(int Tn) { return (Tn + 31) / 32; }
  // Q rows (32 per warp), then K and V rows (T rounded up to the key step).
  static size_t bytes(int Tn) { return (size_t(warps(Tn)) * 32 + 2 * size_t(tpad(Tn))) * LD * 2; }
};

template <typename T, int DH>
__global__ void __launch_bounds__(256)
    tc_head_kernel(const T* qkv, T* out, const T* head_scale, int Tn, int H, float scale_log2) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using L = HeadLayout<DH>;
  constexpr int KS = DH / 16;      // k-steps of Q·Kᵀ
  constexpr int ND = DH / 8;       // 8-wide output tiles
  constexpr int NB = kHeadBK / 8;  // 8-key score tiles per step
  extern __shared__ __align__(16) unsigned char smem[];
  const int warps = blockDim.x / 32, tpad = L::tpad(Tn);
  T* Qs = reinterpret_cast<T*>(smem);
  T* Ks = Qs + warps * 32 * L::LD;
  T* Vs = Ks + tpad * L::LD;

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const int h = blockIdx.x;
  const int64_t b = blockIdx.y;
  const int64_t stride = 3LL * H * DH;
  const T* base = qkv + b * Tn * stride + static_cast<int64_t>(h) * DH;
  constexpr int kVec = DH / 8;  // 16-byte vectors per row

  // One cp.async group per key step: Q with the first step's K/V rows, then each later step's. The
  // block computes step j as soon as groups 0..j are in, while the rest still arrive (a block is
  // often alone on its SM: its registers allow one). Rows past T are zero-filled (finite scores,
  // masked below; zero V rows).
  const int steps = tpad / kHeadBK;  // ≤ kHeadMaxT / kHeadBK = 8
  for (int i = threadIdx.x; i < warps * 32 * kVec; i += blockDim.x) {
    const int r = i / kVec, c = (i % kVec) * 8;
    const bool ok = r < Tn;
    cp_async16(Qs + r * L::LD + c, ok ? base + static_cast<int64_t>(r) * stride + c : base, ok);
  }
  for (int j = 0; j < steps; ++j) {
    for (int i = threadIdx.x; i < kHeadBK * kVec; i += blockDim.x) {
      const int r = j * kHeadBK + i / kVec, c = (i % kVec) * 8;
      const bool ok = r < Tn;
      const T* row = base + static_cast<int64_t>(r) * stride + c;
      cp_async16(Ks + r * L::LD + c, ok ? row + H * DH : base, ok);
      cp_async16(Vs + r * L::LD + c, ok ? row + 2 * H * DH : base, ok);
    }
    cp_async_commit();  // every thread commits every group (some empty): the counts agree
  }
  cp_async_wait_upto(steps - 1);  // group 0: Q and the first step's K/V
  __syncthreads();

  const int row0 = warp * 32;          // < T: the block has ceil(T / 32) warps
  const bool second = row0 + 16 < Tn;  // the warp's second m-tile holds a row before T
  uint32_t qa[2][KS][4];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
    const T* q = Qs + (row0 + 16 * mt) * L::LD;
#pragma unroll
    for (int k = 0; k < KS; ++k) {
      qa[mt][k][0] = ld32(q + g * L::LD + 16 * k + 2 * t);
      qa[mt][k][1] = ld32(q + (g + 8) * L::LD + 16 * k + 2 * t);
      qa[mt][k][2] = ld32(q + g * L::LD + 16 * k + 2 * t + 8);
      qa[mt][k][3] = ld32(q + (g + 8) * L::LD + 16 * k + 2 * t + 8);
    }
  }

  float o[2][ND][4];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt)
#pragma unroll
    for (int n = 0; n < ND; ++n) o[mt][n][0] = o[mt][n][1] = o[mt][n][2] = o[mt][n][3] = 0.f;
  float m[2][2] = {{-INFINITY, -INFINITY}, {-INFINITY, -INFINITY}};  // [m-tile][rows g, g + 8]
  float l[2][2] = {{0.f, 0.f}, {0.f, 0.f}};
  const int mi = lane >> 3, ri = lane & 7;  // this lane's ldmatrix row: matrix mi, row ri

  for (int j0 = 0; j0 < Tn; j0 += kHeadBK) {
    const int nvalid = min(kHeadBK, Tn - j0);
    if (j0 > 0) {  // the same steps in every warp: a uniform barrier
      cp_async_wait_upto(steps - 1 - j0 / kHeadBK);
      __syncthreads();
    }

    // S (2 × 16 × 32) = Q·Kᵀ. One ldmatrix.x4 of keys 8n..8n+7 holds the B operands of two k-steps
    // (matrix mi: head dims 16k + 8mi ..), each used by both m-tiles.
    float s[2][NB][4];
#pragma unroll
    for (int n = 0; n < NB; ++n) {
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
      if (8 * n < nvalid) {
        const T* krow = Ks + (j0 + 8 * n + ri) * L::LD + 8 * mi;
#pragma unroll
        for (int k = 0; k < KS; k += 2) {
          if (k + 1 < KS) {
            uint32_t kb[4];
            ldsm_x4(kb, krow + 16 * k);
            mma16816<T>(s[0][n], qa[0][k], kb[0], kb[1]);
            mma16816<T>(s[0][n], qa[0][k + 1], kb[2], kb[3]);
            if (second) {
              mma16816<T>(s[1][n], qa[1][k], kb[0], kb[1]);
              mma16816<T>(s[1][n], qa[1][k + 1], kb[2], kb[3]);
            }
          } else {  // an odd last k-step (Dh = 16, 48): two matrices, head dims 16k .. 16k + 15
            uint32_t kb[2];
            ldsm_x2(kb, krow + 16 * k);
            mma16816<T>(s[0][n], qa[0][k], kb[0], kb[1]);
            if (second) mma16816<T>(s[1][n], qa[1][k], kb[0], kb[1]);
          }
        }
      }
    }

    // Online softmax per m-tile (log2 domain), as in the 16-row kernel.
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
      float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
      for (int n = 0; n < NB; ++n) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const bool valid = 8 * n + 2 * t + e < nvalid;
          s[mt][n][e] = valid ? s[mt][n][e] * scale_log2 : -INFINITY;
          s[mt][n][2 + e] = valid ? s[mt][n][2 + e] * scale_log2 : -INFINITY;
          mx0 = fmaxf(mx0, s[mt][n][e]);
          mx1 = fmaxf(mx1, s[mt][n][2 + e]);
        }
      }
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
      const float mn0 = fmaxf(m[mt][0], mx0), mn1 = fmaxf(m[mt][1], mx1);  // finite: ≥ 1 valid key per step
      const float c0 = exp2f(m[mt][0] - mn0), c1 = exp2f(m[mt][1] - mn1);  // 0 on the first step
      float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
      for (int n = 0; n < NB; ++n) {
        s[mt][n][0] = exp2f(s[mt][n][0] - mn0), s[mt][n][1] = exp2f(s[mt][n][1] - mn0);
        s[mt][n][2] = exp2f(s[mt][n][2] - mn1), s[mt][n][3] = exp2f(s[mt][n][3] - mn1);
        sum0 += s[mt][n][0] + s[mt][n][1];
        sum1 += s[mt][n][2] + s[mt][n][3];
      }
      sum0 += __shfl_xor_sync(0xffffffffu, sum0, 1);
      sum0 += __shfl_xor_sync(0xffffffffu, sum0, 2);
      sum1 += __shfl_xor_sync(0xffffffffu, sum1, 1);
      sum1 += __shfl_xor_sync(0xffffffffu, sum1, 2);
      l[mt][0] = l[mt][0] * c0 + sum0, l[mt][1] = l[mt][1] * c1 + sum1;
      m[mt][0] = mn0, m[mt][1] = mn1;
#pragma unroll
      for (int n = 0; n < ND; ++n) o[mt][n][0] *= c0, o[mt][n][1] *= c0, o[mt][n][2] *= c1, o[mt][n][3] *= c1;
    }

    // O (2 × 16 × DH) += P (16 × 32) · V, per 16-key step: the A operand is score tiles 2kk, 2kk + 1;
    // ldmatrix.trans gives the B operands of output tiles nd and nd + 1, shared by both m-tiles.
#pragma unroll
    for (int kk = 0; kk < kHeadBK / 16; ++kk) {
      if (16 * kk < nvalid) {
        uint32_t pa[2][4];
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
          pa[mt][0] = Pack<T>::two(s[mt][2 * kk][0], s[mt][2 * kk][1]);
          pa[mt][1] = Pack<T>::two(s[mt][2 * kk][2], s[mt][2 * kk][3]);
          pa[mt][2] = Pack<T>::two(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
          pa[mt][3] = Pack<T>::two(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
        }
        const T* vrow = Vs + (j0 + 16 * kk + (mi & 1) * 8 + ri) * L::LD + (mi >> 1) * 8;
#pragma unroll
        for (int nd = 0; nd < ND; nd += 2) {
          uint32_t vb[4];
          ldsm_x4_trans(vb, vrow + 8 * nd);
          mma16816<T>(o[0][nd], pa[0], vb[0], vb[1]);
          mma16816<T>(o[0][nd + 1], pa[0], vb[2], vb[3]);
          if (second) {
            mma16816<T>(o[1][nd], pa[1], vb[0], vb[1]);
            mma16816<T>(o[1][nd + 1], pa[1], vb[2], vb[3]);
          }
        }
      }
    }
  }

  const float hs = head_scale ? to_f(head_scale[h]) : 1.f;
  const int64_t ld_out = static_cast<int64_t>(H) * DH;
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
    if (mt == 1 && !second) break;
    const float f0 = hs / l[mt][0], f1 = hs / l[mt][1];
    const int r0 = row0 + 16 * mt + g, r1 = r0 + 8;
    T* out0 = out + (b * Tn + r0) * ld_out + static_cast<int64_t>(h) * DH + 2 * t;
    T* out1 = out0 + 8 * ld_out;
#pragma unroll
    for (int nd = 0; nd < ND; ++nd) {
      if (r0 < Tn) *reinterpret_cast<uint32_t*>(out0 + 8 * nd) = Pack<T>::two(o[mt][nd][0] * f0, o[mt][nd][1] * f0);
      if (r1 < Tn) *reinterpret_cast<uint32_t*>(out1 + 8 * nd) = Pack<T>::two(o[mt][nd][2] * f1, o[mt][nd][3] * f1);
    }
  }
#endif
}

template <typename T, int DH>
bool launch_head(const T* qkv, T* out, const T* hs, int64_t B, int64_t Tn, int64_t H, float scale,
                 const AttentionCaps& caps, cudaStream_t s) {
  const size_t bytes = HeadLayout<DH>::bytes(static_cast<int>(Tn));
  if (bytes > static_cast<size_t>(caps.max_smem)) return false;
  dim3 grid(static_cast<unsigned>(H), static_cast<unsigned>(B));
  tc_head_kernel<T, DH><<<grid, 32 * HeadLayout<DH>::warps(static_cast<int>(Tn)), bytes, s>>>(
      qkv, out, hs, static_cast<int>(Tn), static_cast<int>(H), scale * 1.4426950408889634f);
  return true;
}

// Whether the whole-head kernel takes this shape: head dims ≤ 64 (two m-tiles' accumulators in
// registers), T ≤ kHeadMaxT, and — unless forced — enough (image, head) blocks to fill the GPU
// twice (at small batches the 16-row kernel's 1-warp blocks spread the work wider).
bool head_kernel_fits(int64_t B, int64_t Tn, int64_t H, int64_t Dh, const AttentionCaps& caps) {
  if (caps.kernel == AttentionKernel::kTile || Dh > 64 || Tn > kHeadMaxT) return false;
  return caps.kernel == AttentionKernel::kHead || B * H >= 2LL * caps.sm_count;
}

template <typename T, int DH>
bool raise_head_smem(const AttentionCaps& caps) {
  const size_t bytes = std::min(HeadLayout<DH>::bytes(kHeadMaxT), static_cast<size_t>(caps.max_smem));
  if (bytes <= 48 * 1024) return true;  // the default limit suffices; launch_head refuses what needs more
  return cudaFuncSetAttribute(tc_head_kernel<T, DH>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(bytes)) == cudaSuccess;
}

}  // namespace

template <typename T>
bool attention_head_tc(const T* qkv, T* out, const T* head_scale, int64_t B, int64_t Tn, int64_t H, int64_t Dh,
                       float scale, const AttentionCaps& caps, cudaStream_t s) {
  if constexpr (std::is_same_v<T, float>) {
    return false;
  } else {
    // (attention_flash_tc has checked the rest: tensor cores, Dh a multiple of 16, alignment, grid limits)
    if (!head_kernel_fits(B, Tn, H, Dh, caps)) return false;
    return with_head_dim<64>(Dh, [&](auto dh) {
      return launch_head<T, decltype(dh)::value>(qkv, out, head_scale, B, Tn, H, scale, caps, s);
    });
  }
}

template <typename T>
bool prepare_head_attention(const AttentionCaps& caps) {
  if constexpr (std::is_same_v<T, float>) {
    return true;
  } else {
    return for_each_head_dim<64>([&](auto dh) { return raise_head_smem<T, decltype(dh)::value>(caps); });
  }
}

#define INSTANTIATE(T)                                                                                  \
  template bool attention_head_tc<T>(const T*, T*, const T*, int64_t, int64_t, int64_t, int64_t, float, \
                                     const AttentionCaps&, cudaStream_t);                               \
  template bool prepare_head_attention<T>(const AttentionCaps&);
VITMSN_CUDA_FOR_EACH_DTYPE(INSTANTIATE)

}  // namespace cuda
}  // namespace vitmsn
