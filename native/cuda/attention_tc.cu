// Flash-style attention on tensor cores (WMMA 16×16×16, fp16/bf16 in, float32 accumulate), for head
// dims that are multiples of 16 on sm_80+. Same math and layout as attention.cu:
//   qkv [B, T, 3·H·Dh] → out[b, t, h·Dh + d] = head_scale[h] · Σ_j softmax_j(q_t·k_j · scale) · v[j, d]
// A block takes 64 queries of one (b, h) — 16 per warp — and walks the keys in tiles of 64:
//   S = Q·Kᵀ (tensor cores) → shared memory; online softmax per row (running max m and sum l, two
//   lanes per row) writes P in the storage type; the float32 output rows, kept in shared memory, are
//   rescaled by exp(m_old − m_new) and then O += P·V (tensor cores). No T×T matrix exists; keys past T
//   are zero-filled and masked out of the softmax, query rows past T are computed and never written.
// Rounding P to fp16/bf16 before P·V is what PyTorch's flash/sdpa kernels do too.
#include <mma.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cuda/dtype.cuh"
#include "cuda/kernels.h"

namespace vitmsn {
namespace cuda {
namespace {

constexpr int kBQ = 64;     // queries per block
constexpr int kBK = 64;     // keys per tile
constexpr int kWarpsTc = kBQ / 16;

// Shared-memory layout. Row pitches are padded (against bank conflicts) so that every WMMA fragment
// base stays 32-byte aligned and every row 16-byte aligned (uint4 copies).
template <int DH> struct TcLayout {
  static constexpr int LDQ = DH + 8;   // Q, K, V rows (16-bit elements)
  static constexpr int LDS = kBK + 4;  // S rows (float)
  static constexpr int LDP = kBK + 8;  // P rows (16-bit elements)
  static constexpr int LDO = DH + 4;   // O rows (float)
  static constexpr size_t q_bytes = size_t{kBQ} * LDQ * 2, kv_bytes = size_t{kBK} * LDQ * 2;
  static constexpr size_t s_bytes = size_t{kWarpsTc} * 16 * LDS * 4, p_bytes = size_t{kWarpsTc} * 16 * LDP * 2;
  static constexpr size_t o_bytes = size_t{kWarpsTc} * 16 * LDO * 4;
  static constexpr size_t bytes = q_bytes + 2 * kv_bytes + s_bytes + p_bytes + o_bytes;
};

// rows × DH elements from global rows `stride` apart into shared rows LDQ apart, zeros past `valid`.
template <typename T, int DH>
__device__ __forceinline__ void load_rows(T* dst, const T* src, int64_t stride, int valid, int rows) {
  constexpr int kVec = DH / 8;  // 16-byte vectors per row
  for (int i = threadIdx.x; i < rows * kVec; i += blockDim.x) {
    const int r = i / kVec, c = (i % kVec) * 8;
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (r < valid) v = *reinterpret_cast<const uint4*>(src + r * stride + c);
    *reinterpret_cast<uint4*>(dst + r * TcLayout<DH>::LDQ + c) = v;
  }
}

template <typename T, int DH>
__global__ void __launch_bounds__(kWarpsTc * 32)
    tc_flash_kernel(const T* qkv, T* out, const T* head_scale, int Tn, int H, float scale_log2) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using namespace nvcuda;
  using L = TcLayout<DH>;
  extern __shared__ __align__(128) unsigned char smem[];
  T* Qs = reinterpret_cast<T*>(smem);
  T* Ks = reinterpret_cast<T*>(smem + L::q_bytes);
  T* Vs = reinterpret_cast<T*>(smem + L::q_bytes + L::kv_bytes);
  float* Ss = reinterpret_cast<float*>(smem + L::q_bytes + 2 * L::kv_bytes);
  T* Ps = reinterpret_cast<T*>(smem + L::q_bytes + 2 * L::kv_bytes + L::s_bytes);
  float* Os = reinterpret_cast<float*>(smem + L::q_bytes + 2 * L::kv_bytes + L::s_bytes + L::p_bytes);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int h = blockIdx.y;
  const int64_t b = blockIdx.z;
  const int q0 = blockIdx.x * kBQ;
  const int64_t stride = 3LL * H * DH;
  const T* base = qkv + b * Tn * stride + static_cast<int64_t>(h) * DH;
  load_rows<T, DH>(Qs, base + static_cast<int64_t>(q0) * stride, stride, min(kBQ, Tn - q0), kBQ);

  float* Sw = Ss + warp * 16 * L::LDS;
  T* Pw = Ps + warp * 16 * L::LDP;
  float* Ow = Os + warp * 16 * L::LDO;
  for (int i = lane; i < 16 * L::LDO; i += 32) Ow[i] = 0.f;
  const int row = lane >> 1, half = lane & 1;  // two lanes per query row, 32 keys / DH/2 columns each
  float m_run = -INFINITY, l_run = 0.f;

  for (int j0 = 0; j0 < Tn; j0 += kBK) {
    const int nvalid = min(kBK, Tn - j0);
    __syncthreads();  // the previous K/V tile is consumed by every warp (and Q is loaded)
    load_rows<T, DH>(Ks, base + static_cast<int64_t>(j0) * stride + static_cast<int64_t>(H) * DH, stride, nvalid, kBK);
    load_rows<T, DH>(Vs, base + static_cast<int64_t>(j0) * stride + 2LL * H * DH, stride, nvalid, kBK);
    __syncthreads();

    // S (16 × 64) = Q_warp (16 × DH) · K_tileᵀ; K rows stored [key][d] read as a column-major B.
#pragma unroll
    for (int n = 0; n < kBK / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
#pragma unroll
      for (int k = 0; k < DH / 16; ++k) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> qa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> kb;
        wmma::load_matrix_sync(qa, Qs + warp * 16 * L::LDQ + k * 16, L::LDQ);
        wmma::load_matrix_sync(kb, Ks + n * 16 * L::LDQ + k * 16, L::LDQ);
        wmma::mma_sync(acc, qa, kb, acc);
      }
      wmma::store_matrix_sync(Sw + n * 16, acc, L::LDS, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax in the log2 domain (scale_log2 = scale · log2 e; scale > 0 keeps the argmax).
    const float* srow = Sw + row * L::LDS + half * 32;
    float mx = -INFINITY;
#pragma unroll 8
    for (int c = 0; c < 32; ++c)
      if (half * 32 + c < nvalid) mx = fmaxf(mx, srow[c]);
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    const float m_new = fmaxf(m_run, mx * scale_log2);  // finite: every tile has ≥ 1 valid key
    const float corr = exp2f(m_run - m_new);              // 0 on the first tile (m_run = −∞)
    float sum = 0.f;
    T* prow = Pw + row * L::LDP + half * 32;
#pragma unroll 8
    for (int c = 0; c < 32; ++c) {
      const float p = half * 32 + c < nvalid ? exp2f(srow[c] * scale_log2 - m_new) : 0.f;
      prow[c] = from_f<T>(p);
      sum += p;
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l_run = l_run * corr + sum;
    m_run = m_new;
    float* orow = Ow + row * L::LDO + half * (DH / 2);
#pragma unroll 8
    for (int d = 0; d < DH / 2; ++d) orow[d] *= corr;
    __syncwarp();

    // O (16 × DH) += P (16 × 64) · V_tile (64 × DH).
#pragma unroll
    for (int n = 0; n < DH / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> o;
      wmma::load_matrix_sync(o, Ow + n * 16, L::LDO, wmma::mem_row_major);
#pragma unroll
      for (int k = 0; k < kBK / 16; ++k) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> pa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> vb;
        wmma::load_matrix_sync(pa, Pw + k * 16, L::LDP);
        wmma::load_matrix_sync(vb, Vs + k * 16 * L::LDQ + n * 16, L::LDQ);
        wmma::mma_sync(o, pa, vb, o);
      }
      wmma::store_matrix_sync(Ow + n * 16, o, L::LDO, wmma::mem_row_major);
    }
    __syncwarp();
  }

  const int t = q0 + warp * 16 + row;
  if (t < Tn) {
    const float f = (head_scale ? to_f(head_scale[h]) : 1.f) / l_run;
    T* o = out + (b * Tn + t) * (static_cast<int64_t>(H) * DH) + static_cast<int64_t>(h) * DH + half * (DH / 2);
    const float* orow = Ow + row * L::LDO + half * (DH / 2);
    for (int d = 0; d < DH / 2; ++d) o[d] = from_f<T>(orow[d] * f);
  }
#endif
}

template <typename T, int DH>
bool launch_tc(const T* qkv, T* out, const T* hs, int64_t B, int64_t Tn, int64_t H, float scale,
               const AttentionCaps& caps, cudaStream_t s) {
  using L = TcLayout<DH>;
  if (L::bytes > static_cast<size_t>(caps.max_smem)) return false;
  dim3 grid(blocks_for(Tn, kBQ), static_cast<unsigned>(H), static_cast<unsigned>(B));
  tc_flash_kernel<T, DH><<<grid, kWarpsTc * 32, L::bytes, s>>>(qkv, out, hs, static_cast<int>(Tn), static_cast<int>(H),
                                                                 scale * 1.4426950408889634f);
  return true;
}

template <typename T, int DH> bool raise_smem(const AttentionCaps& caps) {
  const size_t bytes = TcLayout<DH>::bytes;
  if (bytes <= 48 * 1024 || bytes > static_cast<size_t>(caps.max_smem)) return true;  // default suffices / never launched
  return cudaFuncSetAttribute(tc_flash_kernel<T, DH>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(bytes)) == cudaSuccess;
}

}  // namespace

template <typename T>
bool attention_flash_tc(const T* qkv, T* out, const T* head_scale, int64_t B, int64_t Tn, int64_t H, int64_t Dh,
                        float scale, const AttentionCaps& caps, cudaStream_t s) {
  if constexpr (std::is_same_v<T, float>) {
    return false;
  } else {
    if (!caps.tensor_cores || Dh % 16 != 0 || Dh < 16 || Dh > 128) return false;
    if (reinterpret_cast<uintptr_t>(qkv) % 16 != 0 || Tn > (int64_t{1} << 30) || B > 65535 || H > 65535) return false;
    switch (Dh / 16) {
      case 1: return launch_tc<T, 16>(qkv, out, head_scale, B, Tn, H, scale, caps, s);
      case 2: return launch_tc<T, 32>(qkv, out, head_scale, B, Tn, H, scale, caps, s);
      case 3: return launch_tc<T, 48>(qkv, out, head_scale, B, Tn, H, scale, caps, s);
      case 4: return launch_tc<T, 64>(qkv, out, head_scale, B, Tn, H, scale, caps, s);
      case 5: return launch_tc<T, 80>(qkv, out, head_scale, B, Tn, H, scale, caps, s);
      case 6: return launch_tc<T, 96>(qkv, out, head_scale, B, Tn, H, scale, caps, s);
      case 7: return launch_tc<T, 112>(qkv, out, head_scale, B, Tn, H, scale, caps, s);
      default: return launch_tc<T, 128>(qkv, out, head_scale, B, Tn, H, scale, caps, s);
    }
  }
}

template <typename T> bool prepare_attention(const AttentionCaps& caps) {
  if constexpr (std::is_same_v<T, float>) {
    return true;
  } else {
    if (!caps.tensor_cores) return true;
    return raise_smem<T, 16>(caps) && raise_smem<T, 32>(caps) && raise_smem<T, 48>(caps) && raise_smem<T, 64>(caps) &&
           raise_smem<T, 80>(caps) && raise_smem<T, 96>(caps) && raise_smem<T, 112>(caps) && raise_smem<T, 128>(caps);
  }
}

#define INSTANTIATE(T)                                                                                            \
  template bool attention_flash_tc<T>(const T*, T*, const T*, int64_t, int64_t, int64_t, int64_t, float,          \
                                      const AttentionCaps&, cudaStream_t);                                       \
  template bool prepare_attention<T>(const AttentionCaps&);
VITMSN_CUDA_FOR_EACH_DTYPE(INSTANTIATE)

}  // namespace cuda
}  // namespace vitmsn
