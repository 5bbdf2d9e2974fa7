// The int8 GEMM's AVX-512 paths (scheme and contract in gemm_int8.h): AVX512-VNNI and AMX kernels,
// the vector row quantiser, and the shared vector epilogue.
//
// VNNI: 8 rows × 32 columns = 16 zmm int32 accumulators; per 4 k, two weight vectors (one block row
// of each 16-column block) and, per row, its 4 A bytes broadcast: vpdpbusd adds the four u8 × s8
// products of each column. AMX: 32 rows × 32 columns in four 16×16 int32 tiles (0–3); A tiles
// (4–5) are 16 rows × 64 k of the quantised A (stride Kp), B tiles (6–7) 16 block rows (64 k) ×
// 16 columns × 4 of each weight block (stride 64); a last row tile of ≤ 16 rows uses tiles 0–1 and
// one A tile. Both then run the same epilogue on the sums (AMX: the previous block's, interleaved
// with the current block's tile instructions).
#include <immintrin.h>

#include <cstdint>

#include "cpu/amx_tiles.h"
#include "cpu/gemm_int8.h"
#include "cpu/isa_target.h"

#if (defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11) || (defined(__clang__) && __clang_major__ >= 12)
#define VITMSN_HAVE_INT8_KERNELS 1
#endif

#ifdef VITMSN_HAVE_INT8_KERNELS
VITMSN_TARGET_BEGIN("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,avx2,bmi2")

namespace vitmsn {
namespace cpu {
namespace {

#include "cpu/vecmath_avx512.inc"

// Columns [n0, n0 + 16) of row m from their int32 sums: dequantise, bias, GELU, residual; masked
// past N (or the raw sums when g.acc is set).
static inline void finish16(const Int8Gemm& g, int64_t m, int64_t n0, __m512i acc) {
  const int64_t left = g.N - n0;
  if (left <= 0) return;
  const __mmask16 k = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
  if (g.acc) {
    _mm512_mask_storeu_epi32(g.acc + m * g.N + n0, k, acc);
    return;
  }
  const __m512i cs = _mm512_loadu_si512(g.W->i8_colsum() + n0);
  const __m512i corr = _mm512_sub_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32(g.a_zp[m]), cs));
  const __m512 s = _mm512_mul_ps(_mm512_set1_ps(g.a_scale[m]), _mm512_loadu_ps(g.W->i8_scale() + n0));
  __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(corr), s);
  if (g.bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, g.bias + n0));
  if (g.gelu) v = gelu_ps(v);
  if (g.residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, g.residual + m * g.N + n0));
  _mm512_mask_storeu_ps(g.C + m * g.N + n0, k, v);
}

template <int R>
static inline void vnni_tile(const Int8Gemm& g, int64_t m, int64_t c) {
  const int64_t Kp = g.W->Kp, G = Kp / 4;
  const int8_t* b0 = g.W->i8() + 2 * c * Kp * 16;
  const int8_t* b1 = b0 + Kp * 16;
  const uint8_t* a = g.Aq + m * Kp;
  __m512i acc0[R], acc1[R];
  for (int r = 0; r < R; ++r) acc0[r] = _mm512_setzero_si512(), acc1[r] = _mm512_setzero_si512();
  for (int64_t q = 0; q < G; ++q) {
    const __m512i w0 = _mm512_load_si512(b0 + q * 64), w1 = _mm512_load_si512(b1 + q * 64);
    for (int r = 0; r < R; ++r) {
      int32_t v;
      __builtin_memcpy(&v, a + r * Kp + 4 * q, 4);
      const __m512i av = _mm512_set1_epi32(v);
      acc0[r] = _mm512_dpbusd_epi32(acc0[r], av, w0);
      acc1[r] = _mm512_dpbusd_epi32(acc1[r], av, w1);
    }
  }
  for (int r = 0; r < R && m + r < g.M; ++r) {
    finish16(g, m + r, 32 * c, acc0[r]);
    finish16(g, m + r, 32 * c + 16, acc1[r]);
  }
}

}  // namespace

void int8_quantize_rows_avx512(const float* A, int64_t lda, int64_t K, int64_t Kp, int64_t m0, int64_t m1, uint8_t* Aq,
                               float* scale, int32_t* zp) {
  // Bytes in row order from packs/packus's lane-wise interleave: dword 4L + j of the packed vector
  // holds elements 4L .. 4L + 3 of input vector j; it belongs at dword 4j + L.
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  for (int64_t m = m0; m < m1; ++m) {
    const float* a = A + m * lda;
    // Four independent min/max chains (one chain waits 4 cycles per 16 values).
    __m512 lo[4], hi[4];
    for (int i = 0; i < 4; ++i) lo[i] = _mm512_setzero_ps(), hi[i] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 64 <= K; k += 64) {
      for (int i = 0; i < 4; ++i) {
        const __m512 x = _mm512_loadu_ps(a + k + 16 * i);
        lo[i] = _mm512_min_ps(lo[i], x), hi[i] = _mm512_max_ps(hi[i], x);
      }
    }
    for (; k + 16 <= K; k += 16) {
      const __m512 x = _mm512_loadu_ps(a + k);
      lo[0] = _mm512_min_ps(lo[0], x), hi[0] = _mm512_max_ps(hi[0], x);
    }
    if (k < K) {
      const __m512 x = _mm512_maskz_loadu_ps(__mmask16((1u << (K - k)) - 1), a + k);  // zeros: in range
      lo[0] = _mm512_min_ps(lo[0], x), hi[0] = _mm512_max_ps(hi[0], x);
    }
    const __m512 lo_all = _mm512_min_ps(_mm512_min_ps(lo[0], lo[1]), _mm512_min_ps(lo[2], lo[3]));
    const __m512 hi_all = _mm512_max_ps(_mm512_max_ps(hi[0], hi[1]), _mm512_max_ps(hi[2], hi[3]));
    const RowQuant q = uint8_row_params(_mm512_reduce_min_ps(lo_all), _mm512_reduce_max_ps(hi_all));
    const __m512 inv = _mm512_set1_ps(q.inv);
    const __m512i z = _mm512_set1_epi32(q.zp), zero = _mm512_setzero_si512(), top = _mm512_set1_epi32(255);
    uint8_t* d = Aq + m * Kp;
    // rint(x · inv) (round to nearest even, the MXCSR default) + zp, clamped to 0..255: as uint8_act.
    // 64 at a time: the saturating packs clamp (int32 → int16 → uint8; a NaN's INT_MIN becomes 0, as
    // the 16-wide loop's max/min make it).
    for (k = 0; k + 64 <= K; k += 64) {
      __m512i v[4];
      for (int i = 0; i < 4; ++i)
        v[i] = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(a + k + 16 * i), inv)), z);
      const __m512i bytes = _mm512_packus_epi16(_mm512_packs_epi32(v[0], v[1]), _mm512_packs_epi32(v[2], v[3]));
      _mm512_storeu_si512(d + k, _mm512_permutexvar_epi32(order, bytes));
    }
    for (; k < Kp; k += 16) {
      const __mmask16 mk = K - k >= 16 ? __mmask16(0xffff) : K > k ? __mmask16((1u << (K - k)) - 1) : __mmask16(0);
      __m512i v = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, a + k), inv)), z);
      v = _mm512_min_epi32(_mm512_max_epi32(v, zero), top);
      v = _mm512_maskz_mov_epi32(mk, v);  // past K: 0
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d + k), _mm512_cvtepi32_epi8(v));
    }
    scale[m] = q.scale, zp[m] = q.zp;
  }
}

void int8_block_vnni(const Int8Gemm& g, int64_t m0, int64_t m1, int64_t c0, int64_t c1) {
  constexpr int R = 8;
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t m = m0; m < m1; m += R) {
      switch (m1 - m >= R ? R : m1 - m) {
        case 8:
          vnni_tile<8>(g, m, c);
          break;
        case 7:
          vnni_tile<7>(g, m, c);
          break;
        case 6:
          vnni_tile<6>(g, m, c);
          break;
        case 5:
          vnni_tile<5>(g, m, c);
          break;
        case 4:
          vnni_tile<4>(g, m, c);
          break;
        case 3:
          vnni_tile<3>(g, m, c);
          break;
        case 2:
          vnni_tile<2>(g, m, c);
          break;
        default:
          vnni_tile<1>(g, m, c);
          break;
      }
    }
}

}  // namespace cpu
}  // namespace vitmsn
VITMSN_TARGET_END

// ---- AMX ----------------------------------------------------------------------------------------------
#define VITMSN_AMX_INT8_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,avx2,bmi2,amx-tile,amx-int8")))

namespace vitmsn {
namespace cpu {
namespace {

VITMSN_AMX_INT8_TARGET static void amx_configure() { amx_load_config(amx_tiles_16x64()); }

// A finished block's int32 sums waiting for their epilogue (finish16 per row and 16-column half).
struct PendingSums {
  const int32_t* sums = nullptr;  // 32 × 32, row stride 32
  int64_t m = 0, n0 = 0;
  int units = 0, done = 0;  // units = rows × 2 halves
};

// Units [p.done, upto) of a pending block: finish16's arithmetic with what is the same for every row
// of the block (the 32 columns' masks, sums of Wq, scales and bias) loaded once per call rather than
// once per unit, and no reload of g's fields between the stores (which the compiler must otherwise
// assume alias them). The weights' per-column arrays hold panels · 32 entries: both halves' loads are
// in bounds; the bias (N entries) is loaded under the mask.
VITMSN_AMX_INT8_TARGET static inline void finish_units(const Int8Gemm& g, PendingSums& p, int upto) {
  int u = p.done;
  const int end = upto < p.units ? upto : p.units;
  if (u >= end) return;
  const int64_t N = g.N, n0 = p.n0;
  __mmask16 k[2];
  for (int h = 0; h < 2; ++h) {
    const int64_t left = N - n0 - 16 * h;
    k[h] = left >= 16 ? __mmask16(0xffff) : left > 0 ? __mmask16((1u << left) - 1) : __mmask16(0);
  }
  if (g.acc) {
    for (; u < end; ++u) {
      const int i = u >> 1, h = u & 1;
      _mm512_mask_storeu_epi32(g.acc + (p.m + i) * N + n0 + 16 * h, k[h], _mm512_load_si512(p.sums + i * 32 + 16 * h));
    }
    p.done = u;
    return;
  }
  const int32_t* colsum = g.W->i8_colsum() + n0;
  const float* wscale = g.W->i8_scale() + n0;
  const __m512i cs[2] = {_mm512_loadu_si512(colsum), _mm512_loadu_si512(colsum + 16)};
  const __m512 ws[2] = {_mm512_loadu_ps(wscale), _mm512_loadu_ps(wscale + 16)};
  const __m512 bias[2] = {g.bias ? _mm512_maskz_loadu_ps(k[0], g.bias + n0) : _mm512_setzero_ps(),
                          g.bias ? _mm512_maskz_loadu_ps(k[1], g.bias + n0 + 16) : _mm512_setzero_ps()};
  const float* a_scale = g.a_scale;
  const int32_t* a_zp = g.a_zp;
  const float* residual = g.residual;
  float* C = g.C;
  const bool gelu = g.gelu;
  for (; u < end; ++u) {
    const int i = u >> 1, h = u & 1;
    if (!k[h]) continue;
    const int64_t m = p.m + i, at = m * N + n0 + 16 * h;
    const __m512i acc = _mm512_load_si512(p.sums + i * 32 + 16 * h);
    const __m512i corr = _mm512_sub_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32(a_zp[m]), cs[h]));
    __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(corr), _mm512_mul_ps(_mm512_set1_ps(a_scale[m]), ws[h]), bias[h]);
    if (gelu) v = gelu_ps(v);
    if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k[h], residual + at));
    _mm512_mask_storeu_ps(C + at, k[h], v);
  }
  p.done = u;
}

}  // namespace

VITMSN_AMX_INT8_TARGET void int8_block_amx(const Int8Gemm& g, int64_t m0, int64_t m1, int64_t c0, int64_t c1) {
  const int64_t Kp = g.W->Kp, steps = Kp / 64;
  // Two sum buffers: while block i's tile instructions run, the epilogue of block i − 1 (from the
  // other buffer) is spread over its k-steps, so the vector units dequantise (and GELU) while the
  // AMX unit multiplies, instead of after it.
  alignas(64) int32_t sums[2][32 * 32];
  PendingSums prev;
  int cur = 0;
  amx_configure();
  // Row tiles outer: the 32 rows of A (32 · Kp bytes) stay in L1 while the block's column pairs
  // pass (measured 10–30% faster at batch 8 than column pairs outer, one thread).
  for (int64_t m = m0; m < m1; m += 32) {  // Aq has 32-row padding: whole tiles are always readable
    const uint8_t* a = g.Aq + m * Kp;
    const int rows = static_cast<int>(m1 - m < 32 ? m1 - m : 32);
    const bool two = rows > 16;  // a last tile of ≤ 16 rows (197 = 6 · 32 + 5 tokens) needs one A tile
    for (int64_t cp = c0; cp < c1; ++cp) {
      const int8_t* b0 = g.W->i8() + 2 * cp * Kp * 16;
      const int8_t* b1 = b0 + Kp * 16;
      const int per_step = static_cast<int>((prev.units - prev.done + steps - 1) / steps);
      int upto = prev.done;
      _tile_zero(0);
      _tile_zero(1);
      if (two) {
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t k = 0; k < Kp; k += 64) {
          _tile_loadd(4, a + k, Kp);
          _tile_loadd(5, a + 16 * Kp + k, Kp);
          _tile_loadd(6, b0 + k * 16, 64);
          _tile_loadd(7, b1 + k * 16, 64);
          _tile_dpbusd(0, 4, 6);
          _tile_dpbusd(1, 4, 7);
          _tile_dpbusd(2, 5, 6);
          _tile_dpbusd(3, 5, 7);
          finish_units(g, prev, upto += per_step);
        }
      } else {
        for (int64_t k = 0; k < Kp; k += 64) {
          _tile_loadd(4, a + k, Kp);
          _tile_loadd(6, b0 + k * 16, 64);
          _tile_loadd(7, b1 + k * 16, 64);
          _tile_dpbusd(0, 4, 6);
          _tile_dpbusd(1, 4, 7);
          finish_units(g, prev, upto += per_step);
        }
      }
      finish_units(g, prev, prev.units);
      int32_t* c = sums[cur];
      _tile_stored(0, c, 128);
      _tile_stored(1, c + 16, 128);
      if (two) {
        _tile_stored(2, c + 16 * 32, 128);
        _tile_stored(3, c + 16 * 32 + 16, 128);
      }
      prev = PendingSums{c, m, 32 * cp, 2 * rows, 0};
      cur ^= 1;
    }
  }
  finish_units(g, prev, prev.units);
  _tile_release();
}

bool int8_kernels_compiled() { return true; }

}  // namespace cpu
}  // namespace vitmsn

#else  // a compiler without avx512vnni / amx-int8: never called (int8_path_supported says no)
namespace vitmsn {
namespace cpu {
void int8_quantize_rows_avx512(const float*, int64_t, int64_t, int64_t, int64_t, int64_t, uint8_t*, float*, int32_t*) {}
void int8_block_vnni(const Int8Gemm&, int64_t, int64_t, int64_t, int64_t) {}
void int8_block_amx(const Int8Gemm&, int64_t, int64_t, int64_t, int64_t) {}
bool int8_kernels_compiled() { return false; }
}  // namespace cpu
}  // namespace vitmsn
#endif
