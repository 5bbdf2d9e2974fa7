// AVX-512 flash attention tile (algorithm in attention_flash_kernels.h, packing in attention_flash.cc).
//
// Per key block (32 keys) and group of 8 query rows:
//   scores: 8 rows × 32 keys in 16 registers, 2 Kᵀ vectors + 8 q broadcasts (straight from the
//           qkv rows) per 16 FMAs;
//   softmax: x = S·scale − m (one fmsub), one compare against kFlashTau decides whether the row
//            needs a new m (rare after the first block); p = exp_ps(x) (Cephes, ~1 ulp);
//            l keeps 16 partial sums per row, reduced once at the end;
//   P·V:     4 rows × 64 columns = 16 accumulators loaded from and stored back to O (O of the task
//            is 32 × Dhp floats, in L1); per key 4 V vectors and 4 broadcasts of p.
// Zero padding (keys past T, columns past Dh) lets every load be a whole aligned vector; padded
// keys get x = −∞ and p = 0 so they add nothing.
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <cstdint>

#include "cpu/attention_flash_kernels.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx2")
#endif

namespace vitmsn {
namespace cpu {
namespace {

#include "cpu/vecmath_avx512.inc"

constexpr int QR = 8;  // query rows per group
constexpr int64_t KB = kFlashKB;
static_assert(KB == 32, "the score block is two 16-key vectors");
static_assert(kFlashQB % QR == 0, "tasks hold whole groups");

static inline __mmask16 tail_mask(int64_t n) {
  return n >= 16 ? 0xffff : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1);
}

// Row r of a group saw a score above m + τ: raise m to the block's max, rescale the row's O and l
// by e^(m_old − m_new), and return the new m.
// Out of line: it runs about once per row, and keeps the hot loop small.
static __attribute__((noinline)) float raise_m(__m512 c, __m512 e, __m512 sc, __mmask16 vm0, __mmask16 vm1,
                                               float m_old, float* o, int64_t Dhp, float* l) {
  const __m512 ninf = _mm512_set1_ps(-__builtin_inff());
  const __m512 z = _mm512_max_ps(_mm512_mask_mov_ps(ninf, vm0, _mm512_mul_ps(c, sc)),
                                 _mm512_mask_mov_ps(ninf, vm1, _mm512_mul_ps(e, sc)));
  const float m_new = _mm512_reduce_max_ps(z);
  if (m_old != -__builtin_inff()) {  // else this is the row's first block: O and l are still 0
    const __m512 alpha = exp_ps(_mm512_set1_ps(m_old - m_new));
    for (int64_t d = 0; d < Dhp; d += 16) _mm512_store_ps(o + d, _mm512_mul_ps(_mm512_load_ps(o + d), alpha));
    _mm512_store_ps(l, _mm512_mul_ps(_mm512_load_ps(l), alpha));
  }
  return m_new;
}

// O[r][d0 .. d0 + 16·ND) += Σ_j p[r][j] · v[j][d0 ..] for the 4 rows r at p (row stride KB) and o
// (row stride Dhp), over keys j < nkeys.
template <int ND>
static inline void pv4(const float* p, const float* v, int64_t Dhp, int64_t nkeys, float* o) {
  __m512 c[4][ND];
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r)
#pragma GCC unroll 4
    for (int u = 0; u < ND; ++u) c[r][u] = _mm512_load_ps(o + r * Dhp + 16 * u);
  for (int64_t j = 0; j < nkeys; ++j) {
    __m512 vv[ND];
#pragma GCC unroll 4
    for (int u = 0; u < ND; ++u) vv[u] = _mm512_load_ps(v + j * Dhp + 16 * u);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __m512 pj = _mm512_set1_ps(p[r * KB + j]);
#pragma GCC unroll 4
      for (int u = 0; u < ND; ++u) c[r][u] = _mm512_fmadd_ps(pj, vv[u], c[r][u]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r)
#pragma GCC unroll 4
    for (int u = 0; u < ND; ++u) _mm512_store_ps(o + r * Dhp + 16 * u, c[r][u]);
}

static void pv_group(const float* p, const float* v, int64_t Dhp, int64_t nkeys, float* o) {
  for (int r0 = 0; r0 < QR; r0 += 4) {
    for (int64_t d0 = 0; d0 < Dhp; d0 += 64) {
      const float* pr = p + r0 * KB;
      float* orow = o + r0 * Dhp + d0;
      switch ((Dhp - d0) >= 64 ? 4 : (Dhp - d0) / 16) {
        case 4: pv4<4>(pr, v + d0, Dhp, nkeys, orow); break;
        case 3: pv4<3>(pr, v + d0, Dhp, nkeys, orow); break;
        case 2: pv4<2>(pr, v + d0, Dhp, nkeys, orow); break;
        default: pv4<1>(pr, v + d0, Dhp, nkeys, orow); break;
      }
    }
  }
}

// Scores of one group × one key block (NV vectors of 16 keys: 1 when the block's real keys fit in
// 16, which spares the padded half of the last block), then the softmax step: p of the group's
// rows into p [QR][KB], l and m updated (and O rescaled where m rises).
template <int NV>
static inline void scores_softmax(const float* const* q, int64_t Dh, const float* kt, __mmask16 vm0, __mmask16 vm1, __m512 sc,
                                  float* m, float* l, float* o, int64_t Dhp, float* p) {
  const __m512 ninf = _mm512_set1_ps(-__builtin_inff()), tau = _mm512_set1_ps(kFlashTau);
  __m512 c[QR], e[QR];
#pragma GCC unroll 8
  for (int r = 0; r < QR; ++r) c[r] = e[r] = _mm512_setzero_ps();
  for (int64_t d = 0; d < Dh; ++d) {
    const __m512 k0 = _mm512_load_ps(kt + d * KB);
    const __m512 k1 = NV == 2 ? _mm512_load_ps(kt + d * KB + 16) : k0;
#pragma GCC unroll 8
    for (int r = 0; r < QR; ++r) {
      const __m512 qd = _mm512_set1_ps(q[r][d]);
      c[r] = _mm512_fmadd_ps(qd, k0, c[r]);
      if (NV == 2) e[r] = _mm512_fmadd_ps(qd, k1, e[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < QR; ++r) {
    __m512 mr = _mm512_set1_ps(m[r]);
    __m512 x0 = _mm512_mask_mov_ps(ninf, vm0, _mm512_fmsub_ps(c[r], sc, mr));
    __m512 x1 = NV == 2 ? _mm512_mask_mov_ps(ninf, vm1, _mm512_fmsub_ps(e[r], sc, mr)) : ninf;
    if (_mm512_cmp_ps_mask(_mm512_max_ps(x0, x1), tau, _CMP_GT_OQ)) {
      m[r] = raise_m(c[r], NV == 2 ? e[r] : c[r], sc, vm0, NV == 2 ? vm1 : 0, m[r], o + r * Dhp, Dhp, l + r * 16);
      mr = _mm512_set1_ps(m[r]);
      x0 = _mm512_mask_mov_ps(ninf, vm0, _mm512_fmsub_ps(c[r], sc, mr));
      if (NV == 2) x1 = _mm512_mask_mov_ps(ninf, vm1, _mm512_fmsub_ps(e[r], sc, mr));
    }
    const __m512 p0 = _mm512_maskz_mov_ps(vm0, exp_ps(x0));
    __m512 sum = _mm512_add_ps(_mm512_load_ps(l + r * 16), p0);
    _mm512_store_ps(p + r * KB, p0);
    if (NV == 2) {
      const __m512 p1 = _mm512_maskz_mov_ps(vm1, exp_ps(x1));
      _mm512_store_ps(p + r * KB + 16, p1);
      sum = _mm512_add_ps(sum, p1);
    }
    _mm512_store_ps(l + r * 16, sum);
  }
}

}  // namespace

void flash_pack_rows_avx512(const float* src, int64_t stride, int64_t rows, int64_t n, int64_t ld, int64_t total_rows,
                            float* dst) {
  for (int64_t r = 0; r < total_rows; ++r) {
    for (int64_t i = 0; i < ld; i += 16) {
      const __m512 x = r < rows ? _mm512_maskz_loadu_ps(tail_mask(n - i), src + r * stride + i) : _mm512_setzero_ps();
      _mm512_mask_storeu_ps(dst + r * ld + i, tail_mask(ld - i), x);
    }
  }
}

void flash_tile_avx512(const FlashTile& t) {
  const int64_t Dh = t.Dh, Dhp = t.Dhp, T = t.T;
  const int groups = (t.rows + QR - 1) / QR;
  const __m512 zero = _mm512_setzero_ps();
  for (int r = 0; r < groups * QR; ++r) {
    for (int64_t d = 0; d < Dhp; d += 16) _mm512_store_ps(t.o + r * Dhp + d, zero);
    _mm512_store_ps(t.l + r * 16, zero);
    t.m[r] = -__builtin_inff();
  }
  const __m512 sc = _mm512_set1_ps(t.scale);
  for (int64_t kb = 0; kb < t.nkb; ++kb) {
    const float* kt = t.kt + kb * Dh * KB;
    const float* v = t.v + kb * KB * Dhp;
    const int64_t valid = T - kb * KB < KB ? T - kb * KB : KB;
    const __mmask16 vm0 = tail_mask(valid), vm1 = tail_mask(valid - 16);
    for (int g = 0; g < groups; ++g) {
      float* o = t.o + g * QR * Dhp;
      const float* q[QR];
      for (int r = 0; r < QR; ++r) q[r] = t.q + (g * QR + r < t.rows ? g * QR + r : t.rows - 1) * t.ldq;
      if (valid > 16) {
        scores_softmax<2>(q, Dh, kt, vm0, vm1, sc, t.m + g * QR, t.l + g * QR * 16, o, Dhp, t.p);
      } else {
        scores_softmax<1>(q, Dh, kt, vm0, vm1, sc, t.m + g * QR, t.l + g * QR * 16, o, Dhp, t.p);
      }
      pv_group(t.p, v, Dhp, valid, o);
    }
  }
  for (int r = 0; r < t.rows; ++r) {
    // l ≥ 1: the key that set m contributes e^0.
    const __m512 f = _mm512_set1_ps(t.head_scale / _mm512_reduce_add_ps(_mm512_load_ps(t.l + r * 16)));
    for (int64_t d = 0; d < Dh; d += 16) {
      _mm512_mask_storeu_ps(t.out + r * t.ldo + d, tail_mask(Dh - d), _mm512_mul_ps(_mm512_load_ps(t.o + r * Dhp + d), f));
    }
  }
}

}  // namespace cpu
}  // namespace vitmsn

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else  // not x86: never selected (isa_supported is false); a link-time stub only

#include "cpu/attention_flash_kernels.h"
#include "engine/error.h"

namespace vitmsn {
namespace cpu {
void flash_tile_avx512(const FlashTile&) { throw Error(codes::kInternal, "attention: no AVX-512 on this architecture"); }
void flash_pack_rows_avx512(const float*, int64_t, int64_t, int64_t, int64_t, int64_t, float*) {
  throw Error(codes::kInternal, "attention: no AVX-512 on this architecture");
}
}  // namespace cpu
}  // namespace vitmsn
#endif
