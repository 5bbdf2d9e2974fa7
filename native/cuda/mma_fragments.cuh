// The fragment-level helpers both tensor-core attention kernels use (attention_tc.cu, the 16-row
// kernel; attention_tc_head.cu, the whole-head kernel): mma.sync m16n8k16 with float32 accumulation,
// cp.async, ldmatrix, packing two floats into a 16-bit pair. On the host and on sm < 80 their bodies
// compile away (the kernels are never launched there).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>
#include <utility>

namespace vitmsn {
namespace cuda {
namespace tc_detail {  // named: the host and sm_75 passes compile the kernel body away, leaving these unused

template <typename T>
struct Pack;
template <>
struct Pack<__half> {
  static __device__ __forceinline__ uint32_t two(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
};
template <>
struct Pack<__nv_bfloat16> {
  static __device__ __forceinline__ uint32_t two(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
};

// D = A·B + D for one 16×8×16 tile. a: 4 regs (rows g/g+8, k pairs 2t/2t+8), b: 2 regs (k pairs 2t/2t+8, column g).
template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
#endif
}

__device__ __forceinline__ uint32_t ld32(const void* p) { return *reinterpret_cast<const uint32_t*>(p); }

// 16 bytes global → shared without a register round trip; valid = false writes zeros (reads nothing).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem), "r"(valid ? 16 : 0));
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}
// Waits until at most n (0–7) of this thread's cp.async groups are pending (wait_group takes an immediate).
__device__ __forceinline__ void cp_async_wait_upto(int n) {
  switch (n) {
    case 7:
      cp_async_wait<7>();
      break;
    case 6:
      cp_async_wait<6>();
      break;
    case 5:
      cp_async_wait<5>();
      break;
    case 4:
      cp_async_wait<4>();
      break;
    case 3:
      cp_async_wait<3>();
      break;
    case 2:
      cp_async_wait<2>();
      break;
    case 1:
      cp_async_wait<1>();
      break;
    default:
      cp_async_wait<0>();
      break;
  }
}
// Four 8×8 b16 matrices, transposed on the way: lane 8m + i gives the address of row i of matrix m;
// register m of lane 4g + t holds elements (rows 2t, 2t + 1; column g) of matrix m.
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void* row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
#endif
}

// The same without the transpose: register m of lane 4g + t holds elements (row g; columns 2t, 2t + 1)
// of matrix m — with rows = keys and columns = head dims, the B operand of Q·Kᵀ.
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
#endif
}

// Two matrices (addresses from lanes 0–15), as ldsm_x4.
__device__ __forceinline__ void ldsm_x2(uint32_t (&r)[2], const void* row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
#endif
}

// The kernels are compiled per head dim (a multiple of 16): with_head_dim calls
// f(std::integral_constant<int, Dh>{}) for the given Dh (MaxDh for anything larger), and
// for_each_head_dim is f(16) && f(32) && … && f(MaxDh).
template <int DH, int MaxDh, class F>
auto with_head_dim_from(int64_t Dh, F& f) {
  if constexpr (DH >= MaxDh) {
    return f(std::integral_constant<int, MaxDh>{});
  } else {
    if (Dh <= DH) return f(std::integral_constant<int, DH>{});
    return with_head_dim_from<DH + 16, MaxDh>(Dh, f);
  }
}
template <int MaxDh, class F>
auto with_head_dim(int64_t Dh, F f) {
  return with_head_dim_from<16, MaxDh>(Dh, f);
}
template <int MaxDh, int DH = 16, class F>
bool for_each_head_dim(F f) {
  if constexpr (DH > MaxDh) {
    return true;
  } else {
    return f(std::integral_constant<int, DH>{}) && for_each_head_dim<MaxDh, DH + 16>(f);
  }
}

}  // namespace tc_detail
}  // namespace cuda
}  // namespace vitmsn
