// AVX2 + FMA flash attention tile (algorithm in attention_flash_kernels.h, packing in
// attention_flash.cc). The AVX-512 tile's structure with 16 ymm registers instead of 32 zmm:
//   scores: 4 rows × 16 keys in 8 registers, two passes per 32-key block, stored to the p scratch;
//   softmax: per row 4 vectors, x = S·scale − m, compare against kFlashTau, p = exp8(x) in place;
//   P·V:     4 rows × 16 columns = 8 accumulators loaded from and stored back to O.
#include <immintrin.h>

#include <cstdint>

#include "cpu/attention_flash_kernels.h"
#include "cpu/isa_target.h"

VITMSN_TARGET_BEGIN(VITMSN_ISA_AVX2)

namespace vitmsn {
namespace cpu {
namespace {

constexpr int QR = 4;  // query rows per group
constexpr int64_t KB = kFlashKB;
static_assert(KB == 32, "a score row of a block is four 8-key vectors");
static_assert(kFlashQB % QR == 0, "tasks hold whole groups");

// The Cephes expf of vecmath_avx512.inc (same constants, same range reduction, ~1 ulp) with the
// 2^n step done on the exponent bits, as AVX2 has no vscalefps. The upper clamp is 88.0 rather
// than 88.38 so that n ≤ 127 stays a valid exponent; the tile never passes more than kFlashTau.
static inline __m256 exp8(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.3365f));
  x = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline float hmax8(__m256 v) {
  __m128 x = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_max_ps(x, _mm_movehl_ps(x, x));
  x = _mm_max_ss(x, _mm_shuffle_ps(x, x, 1));
  return _mm_cvtss_f32(x);
}

static inline float hsum8(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_shuffle_ps(x, x, 1));
  return _mm_cvtss_f32(x);
}

// See raise_m in attention_flash_avx512.cc: a score passed m + τ, so m becomes the block's max
// and the row's O and l are rescaled by e^(m_old − m_new). s: the row's 32 raw scores.
static __attribute__((noinline)) float raise_m(const float* s, __m256 sc, const __m256* valid, float m_old, float* o,
                                               int64_t Dhp, float* l) {
  const __m256 ninf = _mm256_set1_ps(-__builtin_inff());
  __m256 z = ninf;
  for (int u = 0; u < 4; ++u) {
    z = _mm256_max_ps(z, _mm256_blendv_ps(ninf, _mm256_mul_ps(_mm256_load_ps(s + 8 * u), sc), valid[u]));
  }
  const float m_new = hmax8(z);
  const __m256 alpha = exp8(_mm256_set1_ps(m_old - m_new));  // ≈ 0 when m_old = −∞ (O and l are 0)
  for (int64_t d = 0; d < Dhp; d += 8) _mm256_store_ps(o + d, _mm256_mul_ps(_mm256_load_ps(o + d), alpha));
  _mm256_store_ps(l, _mm256_mul_ps(_mm256_load_ps(l), alpha));
  return m_new;
}

}  // namespace

void flash_tile_avx2(const FlashTile& t) {
  const int64_t Dh = t.Dh, Dhp = t.Dhp, T = t.T;
  const int groups = (t.rows + QR - 1) / QR;
  const __m256 zero = _mm256_setzero_ps();
  for (int r = 0; r < groups * QR; ++r) {
    for (int64_t d = 0; d < Dhp; d += 8) _mm256_store_ps(t.o + r * Dhp + d, zero);
    _mm256_store_ps(t.l + r * 16, zero);
    t.m[r] = -__builtin_inff();
  }
  const __m256 sc = _mm256_set1_ps(t.scale), tau = _mm256_set1_ps(kFlashTau), ninf = _mm256_set1_ps(-__builtin_inff());
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  float* s = t.p;  // [QR][KB]: raw scores, then p in place
  for (int64_t kb = 0; kb < t.nkb; ++kb) {
    const float* kt = t.kt + kb * Dh * KB;
    const float* v = t.v + kb * KB * Dhp;
    const int64_t nv = T - kb * KB < KB ? T - kb * KB : KB;
    __m256 valid[4];  // all-ones lanes for keys < T
    for (int u = 0; u < 4; ++u) {
      valid[u] = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(nv - 8 * u)), iota));
    }
    for (int g = 0; g < groups; ++g) {
      const float* q[QR];
      for (int r = 0; r < QR; ++r) q[r] = t.q + (g * QR + r < t.rows ? g * QR + r : t.rows - 1) * t.ldq;
      float* m = t.m + g * QR;
      float* l = t.l + g * QR * 16;
      float* o = t.o + g * QR * Dhp;
      for (int64_t j0 = 0; j0 < KB; j0 += 16) {
        __m256 c[QR], e[QR];
#pragma GCC unroll 4
        for (int r = 0; r < QR; ++r) c[r] = e[r] = zero;
        for (int64_t d = 0; d < Dh; ++d) {
          const __m256 k0 = _mm256_load_ps(kt + d * KB + j0), k1 = _mm256_load_ps(kt + d * KB + j0 + 8);
#pragma GCC unroll 4
          for (int r = 0; r < QR; ++r) {
            const __m256 qd = _mm256_broadcast_ss(q[r] + d);
            c[r] = _mm256_fmadd_ps(qd, k0, c[r]);
            e[r] = _mm256_fmadd_ps(qd, k1, e[r]);
          }
        }
#pragma GCC unroll 4
        for (int r = 0; r < QR; ++r) {
          _mm256_store_ps(s + r * KB + j0, c[r]);
          _mm256_store_ps(s + r * KB + j0 + 8, e[r]);
        }
      }
      for (int r = 0; r < QR; ++r) {
        float* sr = s + r * KB;
        __m256 mr = _mm256_set1_ps(m[r]), x[4];
        __m256 xmax = ninf;
        for (int u = 0; u < 4; ++u) {
          x[u] = _mm256_blendv_ps(ninf, _mm256_fmsub_ps(_mm256_load_ps(sr + 8 * u), sc, mr), valid[u]);
          xmax = _mm256_max_ps(xmax, x[u]);
        }
        if (_mm256_movemask_ps(_mm256_cmp_ps(xmax, tau, _CMP_GT_OQ))) {
          m[r] = raise_m(sr, sc, valid, m[r], o + r * Dhp, Dhp, l + r * 16);
          mr = _mm256_set1_ps(m[r]);
          for (int u = 0; u < 4; ++u) {
            x[u] = _mm256_blendv_ps(ninf, _mm256_fmsub_ps(_mm256_load_ps(sr + 8 * u), sc, mr), valid[u]);
          }
        }
        __m256 sum = _mm256_load_ps(l + r * 16);
        for (int u = 0; u < 4; ++u) {
          const __m256 p = _mm256_and_ps(exp8(x[u]), valid[u]);
          _mm256_store_ps(sr + 8 * u, p);
          sum = _mm256_add_ps(sum, p);
        }
        _mm256_store_ps(l + r * 16, sum);
      }
      for (int64_t d0 = 0; d0 < Dhp; d0 += 16) {
        __m256 c[QR], e[QR];
#pragma GCC unroll 4
        for (int r = 0; r < QR; ++r) {
          c[r] = _mm256_load_ps(o + r * Dhp + d0);
          e[r] = _mm256_load_ps(o + r * Dhp + d0 + 8);
        }
        for (int64_t j = 0; j < nv; ++j) {
          const __m256 v0 = _mm256_load_ps(v + j * Dhp + d0), v1 = _mm256_load_ps(v + j * Dhp + d0 + 8);
#pragma GCC unroll 4
          for (int r = 0; r < QR; ++r) {
            const __m256 pj = _mm256_broadcast_ss(s + r * KB + j);
            c[r] = _mm256_fmadd_ps(pj, v0, c[r]);
            e[r] = _mm256_fmadd_ps(pj, v1, e[r]);
          }
        }
#pragma GCC unroll 4
        for (int r = 0; r < QR; ++r) {
          _mm256_store_ps(o + r * Dhp + d0, c[r]);
          _mm256_store_ps(o + r * Dhp + d0 + 8, e[r]);
        }
      }
    }
  }
  for (int r = 0; r < t.rows; ++r) {
    // l ≥ 1: the key that set m contributes e^0. l keeps 8 partial sums here (of its 16 slots).
    const float f = t.head_scale / hsum8(_mm256_load_ps(t.l + r * 16));
    const __m256 fv = _mm256_set1_ps(f);
    float* out = t.out + r * t.ldo;
    const float* orow = t.o + r * Dhp;
    int64_t d = 0;
    for (; d + 8 <= Dh; d += 8) _mm256_storeu_ps(out + d, _mm256_mul_ps(_mm256_load_ps(orow + d), fv));
    for (; d < Dh; ++d) out[d] = orow[d] * f;
  }
}

}  // namespace cpu
}  // namespace vitmsn

VITMSN_TARGET_END
