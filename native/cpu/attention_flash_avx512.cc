// AVX-512 flash attention tile (algorithm in attention_flash_kernels.h, packing in attention_flash.cc).
//
// The task's query rows go in groups of up to 14 (rows split evenly between groups), each packed
// once per task, times the softmax scale, as [Dh][14] — the A-tile layout of the GEMM — so the
// two products run the GEMM's 14×32 register microkernel shape:
//   scores: 14 rows × 32 keys in 28 accumulators; per d, 2 Kᵀ vectors + 14 broadcasts of q;
//   softmax: x = S − m, one compare against kFlashTau decides whether the row needs a new m
//            (rare after the first block); p = exp_ps(x) (Cephes, ~1 ulp) into p [14][32]; l keeps
//            16 partial sums per row, reduced once at the end;
//   P·V:     per 32 columns of O, 14 rows × 32 columns = 28 accumulators loaded from and stored back
//            to O (in L1); per key 2 V vectors and 14 broadcasts of p.
// Against the former 8-row groups (16 accumulators, q broadcast from 8 rows in place) this keeps
// more FMAs in flight per load: a hot 28-row tile ran ~25% faster (bench_attention shows the op).
// Zero padding (keys past T, columns past Dh) lets every load be a whole aligned vector; padded
// keys get x = −∞ and p = 0 so they add nothing.
#include <immintrin.h>

#include <cstdint>

#include "cpu/attention_flash_kernels.h"
#include "cpu/isa_target.h"

VITMSN_TARGET_BEGIN(VITMSN_ISA_AVX512)

namespace vitmsn {
namespace cpu {
namespace {

#include "cpu/vecmath_avx512.inc"

constexpr int GR = kFlashGroupAvx512;  // most query rows per group
constexpr int64_t KB = kFlashKB;
static_assert(KB == 32, "a key block is two 16-key vectors");
static_assert(GR <= 16, "pack_q transposes 16 rows at a time");

static inline __mmask16 tail_mask(int64_t n) {
  return n >= 16 ? 0xffff : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1);
}

// The group's `rows` q rows times scale into qp[d·GR + i] (lanes i ≥ rows zero), 16 d at a time
// through a register transpose.
static void pack_q(const float* q, int64_t ldq, int rows, int64_t Dh, float scale, float* qp) {
  const __m512 sc = _mm512_set1_ps(scale);
  const __mmask16 lanes = static_cast<__mmask16>((1u << GR) - 1);
  for (int64_t d0 = 0; d0 < Dh; d0 += 16) {
    const __mmask16 dm = tail_mask(Dh - d0);
    __m512 r[16], c[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) {
      r[i] = i < rows ? _mm512_mul_ps(_mm512_maskz_loadu_ps(dm, q + i * ldq + d0), sc) : _mm512_setzero_ps();
    }
    transpose16(r, c);
    const int64_t n = Dh - d0 < 16 ? Dh - d0 : 16;
    for (int64_t k = 0; k < n; ++k) _mm512_mask_storeu_ps(qp + (d0 + k) * GR, lanes, c[k]);
  }
}

// A row saw a score above m + τ: m ← the block's max score (z: the scores, −∞ outside the key
// mask), O's row and l rescaled by e^(m_old − m_new). Nothing to rescale on a row's first block
// (m_old = −∞: O and l are still 0). Out of line: it runs about once per row.
static __attribute__((noinline)) float raise_m(__m512 z0, __m512 z1, float m_old, float* o, int64_t Dhp, float* l) {
  const float m_new = _mm512_reduce_max_ps(_mm512_max_ps(z0, z1));
  if (m_old != -__builtin_inff()) {
    const __m512 alpha = exp_ps(_mm512_set1_ps(m_old - m_new));
    for (int64_t d = 0; d < Dhp; d += 16) _mm512_store_ps(o + d, _mm512_mul_ps(_mm512_load_ps(o + d), alpha));
    _mm512_store_ps(l, _mm512_mul_ps(_mm512_load_ps(l), alpha));
  }
  return m_new;
}

// Scores of the group's R rows × one key block (NV vectors of 16 keys: 1 when the block's real
// keys fit in 16, which spares the padded half of the last block), then the softmax step: p of the
// rows into p [R][KB], l and m updated (and O rescaled where m rises).
template <int R, int NV>
static inline void scores_softmax(const float* qp, int64_t Dh, const float* kt, __mmask16 vm0, __mmask16 vm1, float* m,
                                  float* l, float* o, int64_t Dhp, float* p) {
  __m512 c0[R], c1[R];
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int64_t d = 0; d < Dh; ++d) {
    const __m512 k0 = _mm512_load_ps(kt + d * KB);
    const __m512 k1 = NV == 2 ? _mm512_load_ps(kt + d * KB + 16) : k0;
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      const __m512 a = _mm512_set1_ps(qp[d * GR + i]);
      c0[i] = _mm512_fmadd_ps(a, k0, c0[i]);
      if (NV == 2) c1[i] = _mm512_fmadd_ps(a, k1, c1[i]);
    }
  }
  const __m512 ninf = _mm512_set1_ps(-__builtin_inff()), tau = _mm512_set1_ps(kFlashTau);
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i) {
    __m512 mi = _mm512_set1_ps(m[i]);
    __m512 x0 = _mm512_mask_sub_ps(ninf, vm0, c0[i], mi);
    __m512 x1 = NV == 2 ? _mm512_mask_sub_ps(ninf, vm1, c1[i], mi) : ninf;
    if (_mm512_cmp_ps_mask(_mm512_max_ps(x0, x1), tau, _CMP_GT_OQ)) {
      m[i] = raise_m(_mm512_mask_mov_ps(ninf, vm0, c0[i]), NV == 2 ? _mm512_mask_mov_ps(ninf, vm1, c1[i]) : ninf, m[i],
                     o + i * Dhp, Dhp, l + i * 16);
      mi = _mm512_set1_ps(m[i]);
      x0 = _mm512_mask_sub_ps(ninf, vm0, c0[i], mi);
      if (NV == 2) x1 = _mm512_mask_sub_ps(ninf, vm1, c1[i], mi);
    }
    const __m512 p0 = _mm512_maskz_mov_ps(vm0, exp_ps(x0));
    __m512 sum = _mm512_add_ps(_mm512_load_ps(l + i * 16), p0);
    _mm512_store_ps(p + i * KB, p0);
    if (NV == 2) {
      const __m512 p1 = _mm512_maskz_mov_ps(vm1, exp_ps(x1));
      _mm512_store_ps(p + i * KB + 16, p1);
      sum = _mm512_add_ps(sum, p1);
    }
    _mm512_store_ps(l + i * 16, sum);
  }
}

// O[i][0 .. 16·NV) += Σ_j p[i][j] · v[j][0 ..] for the group's R rows (O row stride Dhp), keys
// j < nkeys.
template <int R, int NV>
static inline void pv(const float* p, const float* v, int64_t Dhp, int64_t nkeys, float* o) {
  __m512 acc[R][NV];
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
    for (int u = 0; u < NV; ++u) acc[i][u] = _mm512_load_ps(o + i * Dhp + 16 * u);
  for (int64_t j = 0; j < nkeys; ++j) {
    __m512 vv[NV];
#pragma GCC unroll 2
    for (int u = 0; u < NV; ++u) vv[u] = _mm512_load_ps(v + j * Dhp + 16 * u);
#pragma GCC unroll 14
    for (int i = 0; i < R; ++i) {
      const __m512 pj = _mm512_set1_ps(p[i * KB + j]);
#pragma GCC unroll 2
      for (int u = 0; u < NV; ++u) acc[i][u] = _mm512_fmadd_ps(pj, vv[u], acc[i][u]);
    }
  }
#pragma GCC unroll 14
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
    for (int u = 0; u < NV; ++u) _mm512_store_ps(o + i * Dhp + 16 * u, acc[i][u]);
}

// One group of R rows × one key block: scores and softmax, then P·V 32 columns at a time.
template <int R>
static void group_block(const float* qp, const FlashTile& t, const float* kt, const float* v, int64_t valid, float* m,
                        float* l, float* o) {
  const __mmask16 vm0 = tail_mask(valid), vm1 = tail_mask(valid - 16);
  if (valid > 16) {
    scores_softmax<R, 2>(qp, t.Dh, kt, vm0, vm1, m, l, o, t.Dhp, t.p);
  } else {
    scores_softmax<R, 1>(qp, t.Dh, kt, vm0, vm1, m, l, o, t.Dhp, t.p);
  }
  int64_t c = 0;
  for (; c + 32 <= t.Dhp; c += 32) pv<R, 2>(t.p, v + c, t.Dhp, valid, o + c);
  if (c < t.Dhp) pv<R, 1>(t.p, v + c, t.Dhp, valid, o + c);
}

#include "cpu/with_rows.inc"
static_assert(GR == kWithRowsMax, "with_rows covers 1..GR rows");

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
  const int groups = (t.rows + GR - 1) / GR;
  // Groups of near-equal size (a 25-row task: 13 + 12, not 14 + 11), each packed once.
  constexpr int kMaxGroups = (kFlashQB + GR - 1) / GR;
  int first[kMaxGroups], count[kMaxGroups];
  for (int g = 0, r0 = 0; g < groups; ++g) {
    first[g] = r0, count[g] = (t.rows - r0) / (groups - g);
    pack_q(t.q + r0 * t.ldq, t.ldq, count[g], Dh, t.scale, t.qp + g * Dh * GR);
    r0 += count[g];
  }
  const __m512 zero = _mm512_setzero_ps();
  for (int r = 0; r < t.rows; ++r) {
    for (int64_t d = 0; d < Dhp; d += 16) _mm512_store_ps(t.o + r * Dhp + d, zero);
    _mm512_store_ps(t.l + r * 16, zero);
    t.m[r] = -__builtin_inff();
  }
  for (int64_t kb = 0; kb < t.nkb; ++kb) {
    const float* kt = t.kt + kb * Dh * KB;
    const float* v = t.v + kb * KB * Dhp;
    const int64_t valid = T - kb * KB < KB ? T - kb * KB : KB;
    for (int g = 0; g < groups; ++g) {
      const int r0 = first[g];
      with_rows(count[g], [&](auto rc) {
        group_block<decltype(rc)::value>(t.qp + g * Dh * GR, t, kt, v, valid, t.m + r0, t.l + r0 * 16, t.o + r0 * Dhp);
      });
    }
  }
  for (int r = 0; r < t.rows; ++r) {
    // l ≥ 1: the key that set m contributes e^0.
    const __m512 f = _mm512_set1_ps(t.head_scale / _mm512_reduce_add_ps(_mm512_load_ps(t.l + r * 16)));
    for (int64_t d = 0; d < Dh; d += 16) {
      _mm512_mask_storeu_ps(t.out + r * t.ldo + d, tail_mask(Dh - d),
                            _mm512_mul_ps(_mm512_load_ps(t.o + r * Dhp + d), f));
    }
  }
}

}  // namespace cpu
}  // namespace vitmsn

VITMSN_TARGET_END
