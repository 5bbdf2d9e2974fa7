// AVX2 + FMA GEMM block (math and contract in gemm_kernels.h).
//
// Microkernel: 6 rows × 16 columns = 12 ymm accumulators + 2 panel vectors + 1 broadcast, inside
// the 16 registers AVX2 has; a 32-column panel is done as two 16-column halves (stride 32).
// bf16 weights are widened to fp32 on load (AVX2 has no bf16 dot product); A is rounded to bf16
// like the other paths so that every path computes the same products.
#include <immintrin.h>

#include <cstdint>

#include "cpu/gemm_kernels.h"
#include "cpu/isa_target.h"

VITMSN_TARGET_BEGIN(VITMSN_ISA_AVX2)

namespace vitmsn {
namespace cpu {
namespace {

constexpr int MR = kMrAvx2;

// Same rational erf as vecmath_avx512.inc (max abs error 4.2e-7 on |x| ≤ 4, saturated beyond).
static inline __m256 erf8(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-4.0f));
  x = _mm256_min_ps(x, _mm256_set1_ps(4.0f));
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-2.72614225801306e-10f);
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.77068142495902e-08f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-2.10102402082508e-06f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-5.69250639462346e-05f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-7.34990630326855e-04f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-2.95459980854025e-03f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-1.60960333262415e-02f));
  p = _mm256_mul_ps(p, x);
  __m256 q = _mm256_set1_ps(-1.45660718464996e-05f);
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-2.13374055278905e-04f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-1.68282697438203e-03f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-7.37332916720468e-03f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-1.42647390514189e-02f));
  return _mm256_div_ps(p, q);
}

static inline __m256 gelu8(__m256 x) {
  const __m256 e = erf8(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
  return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)), _mm256_add_ps(e, _mm256_set1_ps(1.0f)));
}

// Epilogue for 8 columns starting at n (n < N); partial groups go through a small buffer.
static inline void store8(const GemmBlock& b, int64_t m, int64_t n, __m256 v) {
  const int64_t N = b.W->N;
  const int64_t valid = N - n < 8 ? N - n : 8;
  float* c = b.C + m * N + n;
  const float* r = b.residual ? b.residual + m * N + n : nullptr;
  if (valid == 8) {
    if (b.bias) v = _mm256_add_ps(v, _mm256_loadu_ps(b.bias + n));
    if (b.gelu) v = gelu8(v);
    if (r) v = _mm256_add_ps(v, _mm256_loadu_ps(r));
    _mm256_storeu_ps(c, v);
    return;
  }
  alignas(32) float t[8], bias[8] = {}, res[8] = {};
  for (int64_t j = 0; j < valid; ++j) {
    if (b.bias) bias[j] = b.bias[n + j];
    if (r) res[j] = r[j];
  }
  v = _mm256_add_ps(v, _mm256_load_ps(bias));
  if (b.gelu) v = gelu8(v);
  v = _mm256_add_ps(v, _mm256_load_ps(res));
  _mm256_store_ps(t, v);
  for (int64_t j = 0; j < valid; ++j) c[j] = t[j];
}

// Loads 8 weights of half-panel column group g (0..1 of this half) at k.
template <bool kBf16>
static inline void load_w(const void* bp, int64_t k, __m256& w0, __m256& w1) {
  if (!kBf16) {
    const float* f = static_cast<const float*>(bp) + k * kPanel;
    w0 = _mm256_load_ps(f);
    w1 = _mm256_load_ps(f + 8);
  } else {
    // [K2][32][2]: columns j of this half sit at pair offset 2j + (k & 1).
    const uint16_t* h = static_cast<const uint16_t*>(bp) + (k / 2) * 2 * kPanel + (k & 1);
    const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    // Gather 16-bit values as 32-bit lanes (scale 2 bytes), keep the low half, shift into place.
    __m256i g0 = _mm256_i32gather_epi32(reinterpret_cast<const int*>(h), idx, 2);
    __m256i g1 = _mm256_i32gather_epi32(reinterpret_cast<const int*>(h + 16), idx, 2);
    w0 = _mm256_castsi256_ps(_mm256_slli_epi32(g0, 16));
    w1 = _mm256_castsi256_ps(_mm256_slli_epi32(g1, 16));
  }
}

template <int R, bool kBf16>
static void tile(const GemmBlock& b, const float* __restrict ap, const void* bp, int64_t K, int64_t m, int64_t n0) {
  __m256 c0[R], c1[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m256 w0, w1;
    load_w<kBf16>(bp, k, w0, w1);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m256 a = _mm256_broadcast_ss(ap + k * MR + i);
      c0[i] = _mm256_fmadd_ps(a, w0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, w1, c1[i]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    if (n0 < b.W->N) store8(b, m + i, n0, c0[i]);
    if (n0 + 8 < b.W->N) store8(b, m + i, n0 + 8, c1[i]);
  }
}

template <int R>
static void run_rows(const GemmBlock& b, int64_t m, const float* ap) {
  const PackedLinear& W = *b.W;
  for (int64_t p = b.p0; p < b.p1; ++p) {
    for (int half = 0; half < 2; ++half) {
      const int64_t n0 = p * kPanel + half * 16;
      if (n0 >= W.N) break;
      if (W.dtype == WeightDtype::kFloat32) {
        tile<R, false>(b, ap, W.f32() + p * W.K * kPanel + half * 16, W.K, m, n0);
      } else {
        tile<R, true>(b, ap, W.bf16() + p * W.K2 * 2 * kPanel + half * 32, W.K, m, n0);
      }
    }
  }
}

}  // namespace

void gemm_pack_a_avx2(const GemmBlock& b, int64_t t0, int64_t t1) { pack_a_generic(b, MR, t0, t1); }

void gemm_block_avx2(const GemmBlock& b) {
  for (int64_t m = b.m0; m < b.m1; m += MR) {
    const int rows = static_cast<int>(b.m1 - m < MR ? b.m1 - m : MR);
    const float* ap = b.a_tiles + (m / MR) * b.tile_stride;
    switch (rows) {
      case 6:
        run_rows<6>(b, m, ap);
        break;
      case 5:
        run_rows<5>(b, m, ap);
        break;
      case 4:
        run_rows<4>(b, m, ap);
        break;
      case 3:
        run_rows<3>(b, m, ap);
        break;
      case 2:
        run_rows<2>(b, m, ap);
        break;
      default:
        run_rows<1>(b, m, ap);
        break;
    }
  }
}

}  // namespace cpu
}  // namespace vitmsn

VITMSN_TARGET_END
