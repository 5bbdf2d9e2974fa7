// AVX-512 projection of one (image, head) for the fused qkv + attention op (contract in
// qkv_attention_kernels.h): the GEMM's 14×32 register tile (gemm_avx512_tile.inc) over the
// head's 3·Dh/32 weight panels and the image's row tiles, with stores that write the flash
// kernel's layouts directly — q and v as rows, k transposed into [block][Dh][32] Kᵀ blocks — so
// attention reads them from this core's L2 without a packing pass. Each panel is read once, while
// its tile calls prefetch the next panel.
#include <immintrin.h>

#include <cstdint>

#include "cpu/attention_flash_kernels.h"
#include "cpu/gemm_kernels.h"
#include "cpu/isa_target.h"
#include "cpu/qkv_attention_kernels.h"

VITMSN_TARGET_BEGIN(VITMSN_ISA_AVX512_BMI2)

namespace vitmsn {
namespace cpu {
namespace {

#include "cpu/vecmath_avx512.inc"

#include "cpu/gemm_avx512_tile.inc"

constexpr int64_t KB = kFlashKB;

// Rows m .. m + R of 32 columns (+ bias) at dst + row·ld.
template <int R>
static inline void store_rows(float* dst, int64_t ld, int64_t m, const float* bias, __m512 (&c0)[R], __m512 (&c1)[R]) {
  const __m512 b0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
  const __m512 b1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i) {
    _mm512_storeu_ps(dst + (m + i) * ld, _mm512_add_ps(c0[i], b0));
    _mm512_storeu_ps(dst + (m + i) * ld + 16, _mm512_add_ps(c1[i], b1));
  }
}

// Tokens m .. m + R (+ bias) of head dims d0 .. d0 + 31 into Kᵀ blocks kt[token / 32][d][token % 32]:
// transposed in registers, each dim's R tokens stored with one masked store, or two where they
// cross into the next block (the second compressed to the block's start).
template <int R>
static inline void store_kt(float* kt, int64_t Dh, int64_t m, int64_t d0, const float* bias, __m512 (&c0)[R],
                            __m512 (&c1)[R]) {
  const __m512 b0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
  const __m512 b1 = bias ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
  __m512 lo[16], hi[16], t[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) {
    lo[i] = i < R ? _mm512_add_ps(c0[i], b0) : _mm512_setzero_ps();
    hi[i] = i < R ? _mm512_add_ps(c1[i], b1) : _mm512_setzero_ps();
  }
  const int64_t kb = m / KB, first = m % KB;
  const int n_first = static_cast<int>(KB - first < R ? KB - first : R);
  const __mmask16 m_first = static_cast<__mmask16>((1u << n_first) - 1);
  const __mmask16 m_rest = static_cast<__mmask16>(((1u << R) - 1) & ~((1u << n_first) - 1));
  float* blk = kt + kb * Dh * KB;
  for (int half = 0; half < 2; ++half) {
    transpose16(half ? hi : lo, t);
    for (int j = 0; j < 16; ++j) {
      const int64_t d = d0 + 16 * half + j;
      _mm512_mask_storeu_ps(blk + d * KB + first, m_first, t[j]);
      if (m_rest) _mm512_mask_compressstoreu_ps(blk + Dh * KB + d * KB, m_rest, t[j]);
    }
  }
}

}  // namespace

void qkv_head_avx512(const QkvHead& a) {
  const PackedLinear& W = *a.W;
  const int64_t K = W.K, HD = a.H * a.Dh, per_part = a.Dh / kPanel, panels = 3 * per_part;
  const int64_t tiles = (a.T + MR - 1) / MR;
  const int64_t slice_bytes = (K >> 2) * 64, panel_bytes = K * kPanel * static_cast<int64_t>(sizeof(float));
  auto panel_of = [&](int64_t i) { return ((i / per_part) * HD + a.h * a.Dh) / kPanel + i % per_part; };
  for (int64_t i = 0; i < panels; ++i) {
    const int64_t p = panel_of(i), part = i / per_part, d0 = (i % per_part) * kPanel;
    const float* bp = W.f32() + p * K * kPanel;
    const float* bias = a.bias ? a.bias + p * kPanel : nullptr;
    const char* next = i + 1 < panels ? reinterpret_cast<const char*>(W.f32() + panel_of(i + 1) * K * kPanel) : nullptr;
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t m = t * MR, off = t * slice_bytes;
      const float* ap = a.a_tiles + t * a.tile_stride;
      const char* pf = next && off < panel_bytes ? next + off : nullptr;
      with_rows(static_cast<int>(a.T - m < MR ? a.T - m : MR), [&](auto r) {
        constexpr int R = decltype(r)::value;
        __m512 c0[R], c1[R];
#pragma GCC unroll 16
        for (int k = 0; k < R; ++k) c0[k] = c1[k] = _mm512_setzero_ps();
        accumulate<R>(c0, c1, ap, bp, K, pf, 2);
        if (part == 0) {
          store_rows<R>(a.q + d0, a.Dh, m, bias, c0, c1);
        } else if (part == 1) {
          store_kt<R>(a.kt, a.Dh, m, d0, bias, c0, c1);
        } else {
          store_rows<R>(a.v + d0, a.Dh, m, bias, c0, c1);
        }
      });
    }
  }
}

}  // namespace cpu
}  // namespace vitmsn

VITMSN_TARGET_END
