// AVX-512 attention rows (math in attention.h; task split and Kᵀ in attention.cc).
//
// For a group of up to 8 query rows of one (b, h):
//   scores: S[r, j] = (q_r · k_j) · scale, 16 keys per zmm from Kᵀ [Dh][Tp] (Tp = T rounded up to
//           16, zero padded), 8 rows × 32 keys of accumulators: each pair of loaded key vectors
//           feeds 16 FMAs with q broadcast straight from the qkv rows.
//   softmax per row over the T real keys: vector max, exp_ps (Cephes, ~1 ulp), sum, then
//           P = e · (head_scale / sum); padded keys are set to −∞ first so they add nothing.
//   P·V:    4 rows × 64 output columns = 16 accumulators; per key, 4 V vectors and 4 broadcasts.
// Only an 8 × Tp score block exists per thread (T×T only when probs is requested).
#include <immintrin.h>

#include <cstdint>

#include "cpu/attention_kernels.h"
#include "cpu/isa_target.h"

VITMSN_TARGET_BEGIN(VITMSN_ISA_AVX512)

namespace vitmsn {
namespace cpu {
namespace {

#include "cpu/vecmath_avx512.inc"

constexpr int QR = 8;

static inline __mmask16 tail_mask(int64_t n) {
  return n >= 16 ? 0xffff : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1);
}

// Σ_j p[r][j] · v_j[d0 .. d0 + 64) for rows r < rows (≤ 4) of the group starting at p.
static void pv4(const float* p, int64_t Tp, const float* v, int64_t v_stride, int64_t T, int64_t dn, int rows,
                float* const* out) {
  const __mmask16 m0 = tail_mask(dn), m1 = tail_mask(dn - 16), m2 = tail_mask(dn - 32), m3 = tail_mask(dn - 48);
  __m512 c[4][4];
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r)
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) c[r][u] = _mm512_setzero_ps();
  for (int64_t j = 0; j < T; ++j) {
    const float* vr = v + j * v_stride;
    const __m512 v0 = _mm512_maskz_loadu_ps(m0, vr), v1 = _mm512_maskz_loadu_ps(m1, vr + 16),
                 v2 = _mm512_maskz_loadu_ps(m2, vr + 32), v3 = _mm512_maskz_loadu_ps(m3, vr + 48);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __m512 pj = _mm512_set1_ps(p[r * Tp + j]);
      c[r][0] = _mm512_fmadd_ps(pj, v0, c[r][0]);
      c[r][1] = _mm512_fmadd_ps(pj, v1, c[r][1]);
      c[r][2] = _mm512_fmadd_ps(pj, v2, c[r][2]);
      c[r][3] = _mm512_fmadd_ps(pj, v3, c[r][3]);
    }
  }
  // Constant indices (unrolled, rows tested inside) keep c in registers.
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r) {
    if (r >= rows) break;
    _mm512_mask_storeu_ps(out[r], m0, c[r][0]);
    _mm512_mask_storeu_ps(out[r] + 16, m1, c[r][1]);
    _mm512_mask_storeu_ps(out[r] + 32, m2, c[r][2]);
    _mm512_mask_storeu_ps(out[r] + 48, m3, c[r][3]);
  }
}

}  // namespace

void attention_build_kt_avx512(const float* kbase, int64_t stride, int64_t T, int64_t Dh, int64_t Tp, float* kt) {
  for (int64_t d0 = 0; d0 < Dh; d0 += 16) {
    const __mmask16 dm = tail_mask(Dh - d0);
    for (int64_t j0 = 0; j0 < Tp; j0 += 16) {
      __m512 r[16], c[16];
#pragma GCC unroll 16
      for (int u = 0; u < 16; ++u) {
        r[u] = j0 + u < T ? _mm512_maskz_loadu_ps(dm, kbase + (j0 + u) * stride + d0) : _mm512_setzero_ps();
      }
      transpose16(r, c);
#pragma GCC unroll 16
      for (int u = 0; u < 16; ++u) {
        if (d0 + u < Dh) _mm512_store_ps(kt + (d0 + u) * Tp + j0, c[u]);
      }
    }
  }
}

void attention_rows_avx512(const AttentionRows& t) {
  const AttentionArgs& a = *t.args;
  const int64_t T = a.T, H = a.H, Dh = a.Dh, HD = H * Dh, stride = 3 * HD, Tp = t.Tp;
  const float* base = a.qkv + t.b * T * stride;
  const float* v = t.v;
  const float hs = a.head_scale ? a.head_scale[t.h] : 1.0f;
  float* s = t.scores;  // [QR][Tp]
  for (int64_t i0 = t.i0; i0 < t.i1; i0 += QR) {
    const int rows = static_cast<int>(t.i1 - i0 < QR ? t.i1 - i0 : QR);
    // q rows are broadcast straight from qkv; rows past the group repeat the last real row (finite
    // values whose scores are never used).
    const float* qp[QR];
    for (int r = 0; r < QR; ++r) qp[r] = base + (i0 + (r < rows ? r : rows - 1)) * stride + t.h * Dh;
    const __m512 scale = _mm512_set1_ps(a.scale);
    // Two key vectors per pass: 16 accumulators, 2 loads + 8 broadcasts per 16 FMAs.
    int64_t j0 = 0;
    for (; j0 + 32 <= Tp; j0 += 32) {
      __m512 c[QR], e[QR];
#pragma GCC unroll 8
      for (int r = 0; r < QR; ++r) c[r] = e[r] = _mm512_setzero_ps();
      const float* kt = t.kt + j0;
      for (int64_t d = 0; d < Dh; ++d) {
        const __m512 k0 = _mm512_load_ps(kt + d * Tp), k1 = _mm512_load_ps(kt + d * Tp + 16);
#pragma GCC unroll 8
        for (int r = 0; r < QR; ++r) {
          const __m512 q = _mm512_set1_ps(qp[r][d]);
          c[r] = _mm512_fmadd_ps(q, k0, c[r]);
          e[r] = _mm512_fmadd_ps(q, k1, e[r]);
        }
      }
#pragma GCC unroll 8
      for (int r = 0; r < QR; ++r) {
        _mm512_store_ps(s + r * Tp + j0, _mm512_mul_ps(c[r], scale));
        _mm512_store_ps(s + r * Tp + j0 + 16, _mm512_mul_ps(e[r], scale));
      }
    }
    for (; j0 < Tp; j0 += 16) {
      __m512 c[QR];
#pragma GCC unroll 8
      for (int r = 0; r < QR; ++r) c[r] = _mm512_setzero_ps();
      const float* kt = t.kt + j0;
      for (int64_t d = 0; d < Dh; ++d) {
        const __m512 kv = _mm512_load_ps(kt + d * Tp);
#pragma GCC unroll 8
        for (int r = 0; r < QR; ++r) c[r] = _mm512_fmadd_ps(_mm512_set1_ps(qp[r][d]), kv, c[r]);
      }
#pragma GCC unroll 8
      for (int r = 0; r < QR; ++r) _mm512_store_ps(s + r * Tp + j0, _mm512_mul_ps(c[r], scale));
    }
    for (int r = 0; r < rows; ++r) {
      float* sr = s + r * Tp;
      for (int64_t j = T; j < Tp; ++j) sr[j] = -__builtin_inff();
      __m512 mx = _mm512_set1_ps(-__builtin_inff());
      for (int64_t j = 0; j < Tp; j += 16) mx = _mm512_max_ps(mx, _mm512_load_ps(sr + j));
      const __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
      __m512 sum = _mm512_setzero_ps();
      for (int64_t j = 0; j < Tp; j += 16) {
        const __m512 e = _mm512_maskz_mov_ps(tail_mask(T - j), exp_ps(_mm512_sub_ps(_mm512_load_ps(sr + j), vmax)));
        _mm512_store_ps(sr + j, e);
        sum = _mm512_add_ps(sum, e);
      }
      const __m512 f = _mm512_set1_ps(hs / _mm512_reduce_add_ps(sum));  // sum ≥ 1: the max term is exp(0)
      for (int64_t j = 0; j < Tp; j += 16) _mm512_store_ps(sr + j, _mm512_mul_ps(_mm512_load_ps(sr + j), f));
      if (a.probs) {
        float* pr = a.probs + ((t.b * H + t.h) * T + i0 + r) * T;
        for (int64_t j = 0; j < T; j += 16) _mm512_mask_storeu_ps(pr + j, tail_mask(T - j), _mm512_load_ps(sr + j));
      }
    }
    for (int r0 = 0; r0 < rows; r0 += 4) {
      const int n = rows - r0 < 4 ? rows - r0 : 4;
      for (int64_t d0 = 0; d0 < Dh; d0 += 64) {
        float* out[4];
        for (int r = 0; r < 4; ++r) out[r] = a.out + (t.b * T + i0 + r0 + r) * HD + t.h * Dh + d0;
        pv4(s + r0 * Tp, Tp, v + d0, Dh, T, Dh - d0, n, out);
      }
    }
  }
}

}  // namespace cpu
}  // namespace vitmsn

VITMSN_TARGET_END
