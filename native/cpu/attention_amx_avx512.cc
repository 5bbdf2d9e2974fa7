// AMX bf16 attention: the packing and the per-task kernel (math, layouts and padding in
// attention_amx.h; the driver in attention_amx.cc).
//
// Tiles (palette 1, all 16 rows × 64 bytes, amx_tiles.h), as in the bf16 GEMM: 0–3 accumulate
// 2 × 2 blocks of 16 × 16 floats, 4–5 hold A (16 rows × 32 bf16), 6–7 hold B (16 bf16 pairs × 16
// columns).
//   S = q̂·k̂ᵀ: per 32 keys, A = the task's q̂ rows (32 d at a time, two row tiles), B = two 16-key
//            blocks of k̂ (a block's 32 d are 16 contiguous 64-byte rows); S stored as [rows][Tk].
//   softmax:  per real row, in float32 on AVX-512 (max over j < T, exp_ps, sum), p̂ as bf16 [rows][Tk].
//   O = p̂·v̂:  per 32 output columns, A = p̂ (32 keys at a time), B = 16 key pairs × 16 columns of
//            v̂ (rows Dh·4 bytes apart).
// TDPBF16PS adds each bf16 product pair to the float32 accumulator in order, so the sums are those
// of the scalar reference; only exp (exp_ps, ~1 ulp) and the order of l's sum differ from it.
// Tasks with at most 16 rows run one row tile (accumulators 0–1 only).
#include <immintrin.h>

#include <cstdint>

#include "cpu/amx_tiles.h"
#include "cpu/attention_amx.h"
#include "cpu/isa_target.h"

// AMX and avx512bf16 intrinsics: GCC 11, clang 12.
#if (defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11) || (defined(__clang__) && __clang_major__ >= 12)
#define VITMSN_HAVE_AMX_ATTENTION 1
#endif

#ifdef VITMSN_HAVE_AMX_ATTENTION
VITMSN_TARGET_BEGIN(VITMSN_ISA_AVX512_BF16 ",amx-tile,amx-bf16")

namespace vitmsn {
namespace cpu {
namespace {

#include "cpu/vecmath_avx512.inc"

static inline __mmask16 tail_mask(int64_t n) {
  return n >= 16 ? 0xffff : n <= 0 ? 0 : static_cast<__mmask16>((1u << n) - 1);
}

// The tile loads and stores are asm statements without a memory clobber: this orders the plain
// loads and stores around them (q̂ written before its tiles load, S read after its tiles store, …).
static inline void memory_fence() { __asm__ __volatile__("" ::: "memory"); }

// 32 floats (lo: 16, hi: the next 16) → 32 bf16 in order, round to nearest even.
static inline __m512i to_bf16_32(__m512 lo, __m512 hi) { return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); }

// k̂ [Tk/16][Dh/2][16][2]: per 16-key block and 32 d, the 16 keys' (d, d+1) pairs as 16 rows of
// 16 uint32, transposed in registers so that row q holds pair q of every key.
static void pack_k(const float* kbase, int64_t stride, int64_t T, int64_t Tk, int64_t Dh, uint16_t* kp) {
  const int64_t D2 = Dh / 2;
  for (int64_t j0 = 0; j0 < Tk; j0 += 16) {
    uint16_t* blk = kp + (j0 / 16) * D2 * 32;
    for (int64_t c = 0; c < Dh; c += 32) {
      __m512 r[16], t[16];
#pragma GCC unroll 16
      for (int jj = 0; jj < 16; ++jj) {
        const float* k = kbase + (j0 + jj) * stride + c;
        r[jj] = j0 + jj < T ? _mm512_castsi512_ps(to_bf16_32(_mm512_loadu_ps(k), _mm512_loadu_ps(k + 16)))
                            : _mm512_setzero_ps();
      }
      transpose16(r, t);
#pragma GCC unroll 16
      for (int q = 0; q < 16; ++q) _mm512_store_ps(reinterpret_cast<float*>(blk + (c / 2 + q) * 32), t[q]);
    }
  }
}

// v̂ [Tk/2][Dh][2]: per key pair (j, j+1), 16 columns at a time, v_j and v_(j+1) interleaved.
static void pack_v(const float* vbase, int64_t stride, int64_t T, int64_t Tk, int64_t Dh, uint16_t* vp) {
  alignas(64) uint16_t ix[32];
  for (int e = 0; e < 32; ++e) ix[e] = static_cast<uint16_t>(e % 2 ? 16 + e / 2 : e / 2);
  const __m512i idx = _mm512_load_si512(ix);
  for (int64_t j = 0; j < Tk; j += 2) {
    const float* v0 = vbase + j * stride;
    const float* v1 = v0 + stride;
    for (int64_t d = 0; d < Dh; d += 16) {
      const __m512 a = j < T ? _mm512_loadu_ps(v0 + d) : _mm512_setzero_ps();
      const __m512 b = j + 1 < T ? _mm512_loadu_ps(v1 + d) : _mm512_setzero_ps();
      _mm512_store_si512(vp + (j / 2 * Dh + d) * 2, _mm512_permutexvar_epi16(idx, to_bf16_32(a, b)));
    }
  }
}

// S for the 16 q̂ rows from row tile rb × 32 keys from kc: accumulators 0–1, A in 4, B in 6–7.
static inline void s_step(const AmxAttentionTile& t, int rb, int64_t kc) {
  const int64_t Dh = t.Dh, Tk = t.Tk, D2 = Dh / 2;
  const uint16_t* k0 = t.kp + (kc / 16) * D2 * 32;
  const uint16_t* k1 = k0 + D2 * 32;
  const uint16_t* a = t.qb + rb * 16 * Dh;
  _tile_zero(0);
  _tile_zero(1);
  for (int64_t c = 0; c < Dh; c += 32) {
    _tile_loadd(4, a + c, Dh * 2);
    _tile_loadd(6, k0 + c * 16, 64);
    _tile_loadd(7, k1 + c * 16, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
  }
  float* s = t.s + rb * 16 * Tk + kc;
  _tile_stored(0, s, Tk * 4);
  _tile_stored(1, s + 16, Tk * 4);
}

// Step i of O = p̂ · v̂ for the 16 rows of row tile rb: 32 columns (dc) × 32 keys (kc) per step,
// keys innermost; accumulators 2–3 (zeroed at the first key, stored after the last), A in 5, B in 6–7.
static inline void pv_step(const AmxAttentionTile& t, int rb, int64_t i) {
  const int64_t Dh = t.Dh, Tk = t.Tk, nk = Tk / 32;
  const int64_t dc = i / nk * 32, kc = i % nk * 32;
  if (kc == 0) {
    _tile_zero(2);
    _tile_zero(3);
  }
  const uint16_t* v = t.vp + (kc / 2 * Dh + dc) * 2;
  _tile_loadd(5, t.p + rb * 16 * Tk + kc, Tk * 2);
  _tile_loadd(6, v, Dh * 4);
  _tile_loadd(7, v + 32, Dh * 4);
  _tile_dpbf16ps(2, 5, 6);
  _tile_dpbf16ps(3, 5, 7);
  if (kc + 32 == Tk) {
    float* o = t.o + rb * 16 * Dh + dc;
    _tile_stored(2, o, Dh * 4);
    _tile_stored(3, o + 16, Dh * 4);
  }
}

// Row r of S → p̂ row r (keys ≥ T: 0) and l[r].
static inline void softmax_row(const float* s, int64_t T, int64_t Tk, uint16_t* p, float* l) {
  __m512 mx = _mm512_set1_ps(-__builtin_inff());
  int64_t j = 0;
  for (; j + 16 <= T; j += 16) mx = _mm512_max_ps(mx, _mm512_load_ps(s + j));
  if (j < T) mx = _mm512_mask_max_ps(mx, tail_mask(T - j), mx, _mm512_load_ps(s + j));
  const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (j = 0; j < Tk; j += 32) {
    const __m512 p0 = _mm512_maskz_mov_ps(tail_mask(T - j), exp_ps(_mm512_sub_ps(_mm512_load_ps(s + j), m)));
    // (the second half of the last chunk may hold padding keys only: no exp for those)
    const __m512 p1 =
        j + 16 < T ? _mm512_maskz_mov_ps(tail_mask(T - j - 16), exp_ps(_mm512_sub_ps(_mm512_load_ps(s + j + 16), m)))
                   : _mm512_setzero_ps();
    sum = _mm512_add_ps(sum, _mm512_add_ps(p0, p1));
    _mm512_store_si512(p + j, to_bf16_32(p0, p1));
  }
  *l = _mm512_reduce_add_ps(sum);  // ≥ 1: the max key contributes e^0
}

static void run_tile(const AmxAttentionTile& t) {
  const int64_t Dh = t.Dh, Tk = t.Tk, T = t.T;
  const int RB = t.rows > 16 ? 2 : 1, rows = t.rows, rows0 = rows < 16 ? rows : 16;
  const __m512 sc = _mm512_set1_ps(t.scale);
  for (int r = 0; r < RB * 16; ++r) {
    const float* q = t.q + r * t.ldq;
    for (int64_t c = 0; c < Dh; c += 32) {
      const __m512i x = r < rows ? to_bf16_32(_mm512_mul_ps(_mm512_loadu_ps(q + c), sc),
                                              _mm512_mul_ps(_mm512_loadu_ps(q + c + 16), sc))
                                 : _mm512_setzero_si512();
      _mm512_store_si512(t.qb + r * Dh + c, x);
    }
  }
  for (int r = rows; r < RB * 16; ++r) {
    for (int64_t j = 0; j < Tk; j += 32) _mm512_store_si512(t.p + r * Tk + j, _mm512_setzero_si512());
  }
  const int64_t ns = Tk / 32, np = Dh / 32 * ns;  // S steps, P·V steps per row tile
  memory_fence();
  for (int64_t i = 0; i < ns; ++i) s_step(t, 0, i * 32);
  memory_fence();
  // The AMX unit works while the vector units run the softmax: row tile 1's S steps are spread
  // over the softmax of rows 0–15, row tile 0's P·V steps over that of rows 16 .. (the tile
  // instructions wait in the out-of-order window, the rows do not depend on them).
  int64_t si = 0, pi = 0;
  for (int r = 0; r < rows0; ++r) {
    softmax_row(t.s + r * Tk, T, Tk, t.p + r * Tk, t.l + r);
    if (RB == 2) {
      for (const int64_t upto = (r + 1) * ns / rows0; si < upto; ++si) s_step(t, 1, si * 32);
    }
  }
  memory_fence();
  if (RB == 2) {
    for (int r = 16; r < rows; ++r) {
      softmax_row(t.s + r * Tk, T, Tk, t.p + r * Tk, t.l + r);
      for (const int64_t upto = (r - 15) * np / (rows - 16); pi < upto; ++pi) pv_step(t, 0, pi);
    }
    memory_fence();
    for (int64_t i = 0; i < np; ++i) pv_step(t, 1, i);
  } else {
    for (int64_t i = 0; i < np; ++i) pv_step(t, 0, i);
  }
  memory_fence();
  for (int r = 0; r < rows; ++r) {
    const __m512 f = _mm512_set1_ps(t.head_scale / t.l[r]);
    for (int64_t d = 0; d < Dh; d += 16) {
      _mm512_storeu_ps(t.out + r * t.ldo + d, _mm512_mul_ps(_mm512_load_ps(t.o + r * Dh + d), f));
    }
  }
}

}  // namespace

bool attention_amx_compiled() { return true; }

void attention_amx_pack_kv(const float* kbase, const float* vbase, int64_t stride, int64_t T, int64_t Tk, int64_t Dh,
                           uint16_t* kp, uint16_t* vp) {
  pack_k(kbase, stride, T, Tk, Dh, kp);
  pack_v(vbase, stride, T, Tk, Dh, vp);
}

void attention_amx_begin() { amx_load_config(amx_tiles_16x64()); }

void attention_amx_tile(const AmxAttentionTile& t) { run_tile(t); }

void attention_amx_end() { _tile_release(); }

}  // namespace cpu
}  // namespace vitmsn

VITMSN_TARGET_END

#else  // a compiler without amx-bf16: never called (attention_amx_usable says no)

namespace vitmsn {
namespace cpu {
bool attention_amx_compiled() { return false; }
void attention_amx_pack_kv(const float*, const float*, int64_t, int64_t, int64_t, int64_t, uint16_t*, uint16_t*) {}
void attention_amx_begin() {}
void attention_amx_tile(const AmxAttentionTile&) {}
void attention_amx_end() {}
}  // namespace cpu
}  // namespace vitmsn

#endif
