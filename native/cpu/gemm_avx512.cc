// AVX-512 GEMM block (math and contract in gemm_kernels.h).
//
// Microkernel: 14 rows × 32 columns = 28 zmm accumulators; per k, two panel vectors are loaded and
// each row's A value is broadcast straight from the packed A tile (an embedded-broadcast FMA
// operand), so 28 FMAs cost 2 loads + 14 broadcast operands: FMA-bound, not load-bound, on cores
// with two 512-bit FMA ports. The whole K is accumulated in registers, then bias, exact GELU
// (vector erf) and the residual are applied and the tile is stored with column masks.
// bf16 weights: vdpbf16ps multiplies (k, k+1) bf16 pairs of A and W and accumulates in fp32,
// twice the multiplies per instruction of the fp32 FMA.
#include <immintrin.h>

#include <cstdint>

#include "cpu/gemm_kernels.h"

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10
#define VITMSN_HAVE_BF16_KERNEL 1
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,avx2,bmi2")
#elif defined(__clang__) && __clang_major__ >= 11
#define VITMSN_HAVE_BF16_KERNEL 1
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,avx2,bmi2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx2,bmi2")
#endif

namespace vitmsn {
namespace cpu {
namespace {

#include "cpu/vecmath_avx512.inc"

constexpr int MR = kMrAvx512;

// Applies the epilogue to one row's 32 accumulators and stores the valid columns.
static inline void store_row(const GemmBlock& b, int64_t m, int64_t n0, __m512 v0, __m512 v1) {
  const int64_t N = b.W->N;
  const int64_t left = N - n0;
  const __mmask16 k0 = left >= 16 ? 0xffff : static_cast<__mmask16>((1u << left) - 1);
  const __mmask16 k1 = left >= 32 ? 0xffff : left <= 16 ? 0 : static_cast<__mmask16>((1u << (left - 16)) - 1);
  if (b.bias) {
    v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(k0, b.bias + n0));
    v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(k1, b.bias + n0 + 16));
  }
  if (b.gelu) {
    v0 = gelu_ps(v0);
    v1 = gelu_ps(v1);
  }
  float* c = b.C + m * N + n0;
  if (b.residual) {
    const float* r = b.residual + m * N + n0;
    v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(k0, r));
    v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(k1, r + 16));
  }
  _mm512_mask_storeu_ps(c, k0, v0);
  _mm512_mask_storeu_ps(c + 16, k1, v1);
}

template <int R>
static void tile_f32(const GemmBlock& b, const float* __restrict ap, const float* __restrict bp, int64_t K, int64_t m,
                     int64_t n0) {
  __m512 c0[R], c1[R];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m512 a = _mm512_set1_ps(ap[i]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
    ap += MR;
    bp += kPanel;
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) store_row(b, m + i, n0, c0[i], c1[i]);
}

#ifdef VITMSN_HAVE_BF16_KERNEL
template <int R>
static void tile_bf16(const GemmBlock& b, const uint32_t* __restrict ap, const uint16_t* __restrict bp, int64_t K2,
                      int64_t m, int64_t n0) {
  __m512 c0[R], c1[R];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int64_t q = 0; q < K2; ++q) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512(bp), b1 = (__m512bh)_mm512_load_si512(bp + 32);
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(ap[i]));
      c0[i] = _mm512_dpbf16_ps(c0[i], a, b0);
      c1[i] = _mm512_dpbf16_ps(c1[i], a, b1);
    }
    ap += MR;
    bp += 2 * kPanel;
  }
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) store_row(b, m + i, n0, c0[i], c1[i]);
}
#endif

template <int R>
static void run_rows(const GemmBlock& b, int64_t m, const float* a_tile) {
  const PackedLinear& W = *b.W;
  if (W.dtype == WeightDtype::kFloat32) {
    for (int64_t p = b.p0; p < b.p1; ++p) tile_f32<R>(b, a_tile, W.f32() + p * W.K * kPanel, W.K, m, p * kPanel);
  } else {
#ifdef VITMSN_HAVE_BF16_KERNEL
    const uint32_t* ap = reinterpret_cast<const uint32_t*>(a_tile);
    for (int64_t p = b.p0; p < b.p1; ++p) tile_bf16<R>(b, ap, W.bf16() + p * W.K2 * 2 * kPanel, W.K2, m, p * kPanel);
#endif
  }
}

// A rows [m, m + rows) → [K][MR] floats, or [K2][MR] bf16 pairs (low half: even k).
static void pack_a(const GemmBlock& b, int64_t m, int rows, float* dst) {
  const int64_t K = b.W->K;
  if (b.W->dtype == WeightDtype::kFloat32) {
    for (int i = 0; i < rows; ++i) {
      const float* a = b.A + (m + i) * b.lda;
      float* d = dst + i;
      for (int64_t k = 0; k < K; ++k) d[k * MR] = a[k];
    }
    return;
  }
  uint32_t* d32 = reinterpret_cast<uint32_t*>(dst);
  const int64_t K2 = b.W->K2;
  for (int i = 0; i < rows; ++i) {
    const float* a = b.A + (m + i) * b.lda;
    int64_t q = 0;
    for (; q + 16 <= K / 2; q += 16) {
      // 32 floats → 32 bf16 (round to nearest even), pairs already in (even, odd) order.
      const __m512i ab = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(a + 2 * q + 16), _mm512_loadu_ps(a + 2 * q));
      alignas(64) uint32_t tmp[16];
      _mm512_store_si512(tmp, ab);
      for (int u = 0; u < 16; ++u) d32[(q + u) * MR + i] = tmp[u];
    }
    for (; q < K2; ++q) {
      const float lo = a[2 * q], hi = 2 * q + 1 < K ? a[2 * q + 1] : 0.0f;
      d32[q * MR + i] = static_cast<uint32_t>(to_bf16(lo)) | (static_cast<uint32_t>(to_bf16(hi)) << 16);
    }
  }
}

}  // namespace

bool gemm_avx512_has_bf16_kernel() {
#ifdef VITMSN_HAVE_BF16_KERNEL
  return true;
#else
  return false;
#endif
}

void gemm_pack_a_avx512(const GemmBlock& b, int64_t t0, int64_t t1) {
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t m = t * MR;
    const int rows = static_cast<int>(b.m1 - m < MR ? b.m1 - m : MR);
    pack_a(b, m, rows, b.a_tiles + t * b.tile_stride);
  }
}

void gemm_block_avx512(const GemmBlock& b) {
  for (int64_t m = b.m0; m < b.m1; m += MR) {
    const int rows = static_cast<int>(b.m1 - m < MR ? b.m1 - m : MR);
    const float* ap = b.a_tiles + (m / MR) * b.tile_stride;
    switch (rows) {
      case 14: run_rows<14>(b, m, ap); break;
      case 13: run_rows<13>(b, m, ap); break;
      case 12: run_rows<12>(b, m, ap); break;
      case 11: run_rows<11>(b, m, ap); break;
      case 10: run_rows<10>(b, m, ap); break;
      case 9: run_rows<9>(b, m, ap); break;
      case 8: run_rows<8>(b, m, ap); break;
      case 7: run_rows<7>(b, m, ap); break;
      case 6: run_rows<6>(b, m, ap); break;
      case 5: run_rows<5>(b, m, ap); break;
      case 4: run_rows<4>(b, m, ap); break;
      case 3: run_rows<3>(b, m, ap); break;
      case 2: run_rows<2>(b, m, ap); break;
      default: run_rows<1>(b, m, ap); break;
    }
  }
}

}  // namespace cpu
}  // namespace vitmsn

#if defined(__clang__) && __clang_major__ >= 11
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
