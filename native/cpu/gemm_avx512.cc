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

#include "cpu/amx_tiles.h"
#include "cpu/gemm_kernels.h"
#include "cpu/isa_target.h"

// The bf16 dot product (vdpbf16ps) needs a compiler that knows avx512bf16.
#if (defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10) || (defined(__clang__) && __clang_major__ >= 11)
#define VITMSN_HAVE_BF16_KERNEL 1
VITMSN_TARGET_BEGIN(VITMSN_ISA_AVX512_BF16)
#else
VITMSN_TARGET_BEGIN(VITMSN_ISA_AVX512_BMI2)
#endif

namespace vitmsn {
namespace cpu {
namespace {

#include "cpu/vecmath_avx512.inc"

#include "cpu/gemm_avx512_tile.inc"

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
    // 16 k at a time: load 14 rows (2 zero rows), transpose, store 16 rows of 14 (masked).
    int64_t k0 = 0;
    for (; k0 + 16 <= K; k0 += 16) {
      __m512 r[16], c[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_loadu_ps(b.A + (m + i) * b.lda + k0) : _mm512_setzero_ps();
      transpose16(r, c);
#pragma GCC unroll 16
      for (int k = 0; k < 16; ++k)
        _mm512_mask_storeu_ps(dst + (k0 + k) * MR, static_cast<__mmask16>((1u << MR) - 1), c[k]);
    }
    for (int i = 0; i < rows; ++i) {
      const float* a = b.A + (m + i) * b.lda;
      for (int64_t k = k0; k < K; ++k) dst[k * MR + i] = a[k];
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

#ifdef VITMSN_HAVE_BF16_KERNEL
// ---- AMX ---------------------------------------------------------------------------------------
// Tile registers: 0–3 accumulate C (2×2 tiles of 16×16 fp32), 4–5 hold A (16 rows × 32 bf16 of k),
// 6–7 hold B (16 k-pairs × 16 columns × 2 bf16). A PackedLinear bf16 panel row (one k-pair, 32
// columns × 2) is 128 bytes, so B tiles are panel rows read with a 128-byte stride, the right half
// of the panel 64 bytes in. tdpbf16ps multiplies the bf16 pairs exactly and accumulates in fp32,
// like vdpbf16ps, so the AMX and AVX-512 bf16 paths compute the same products. A last row tile of
// ≤ 16 rows uses tiles 0–1 and one A tile.
#define VITMSN_AMX_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,avx2,bmi2,amx-tile,amx-bf16")))

VITMSN_AMX_TARGET static void amx_configure() { amx_load_config(amx_tiles_16x64()); }

// A finished block's float32 sums (32 × 32, row stride 32) waiting for their epilogue, row by row.
struct PendingRows {
  const float* sums = nullptr;
  int64_t m = 0, n0 = 0;
  int rows = 0, done = 0;
};

static inline void finish_rows(const GemmBlock& b, PendingRows& p, int upto) {
  for (; p.done < upto && p.done < p.rows; ++p.done)
    store_row(b, p.m + p.done, p.n0, _mm512_load_ps(p.sums + p.done * 32), _mm512_load_ps(p.sums + p.done * 32 + 16));
}
#endif

}  // namespace

#ifdef VITMSN_HAVE_BF16_KERNEL
void gemm_pack_a_amx(const GemmBlock& b, int64_t t0, int64_t t1) {
  const int64_t K = b.W->K, M = b.m1;
  for (int64_t t = t0; t < t1; ++t) {
    uint16_t* dst = reinterpret_cast<uint16_t*>(b.a_tiles + t * b.tile_stride);
    for (int i = 0; i < kMrAmx; ++i) {
      const int64_t m = t * kMrAmx + i;
      uint16_t* d = dst + i * K;
      if (m >= M) {  // padding rows: zeros, so their (discarded) outputs stay finite
        for (int64_t k = 0; k < K; k += 32) _mm512_storeu_si512(d + k, _mm512_setzero_si512());
        continue;
      }
      const float* a = b.A + m * b.lda;
      for (int64_t k = 0; k < K; k += 32) {  // K % 32 == 0 on this path
        const __m512i v = (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(a + k + 16), _mm512_loadu_ps(a + k));
        _mm512_storeu_si512(d + k, v);
      }
    }
  }
}

VITMSN_AMX_TARGET void gemm_block_amx(const GemmBlock& b) {
  const PackedLinear& W = *b.W;
  const int64_t K = W.K, K2 = W.K2, steps = (K2 + 15) / 16;
  const int64_t a_stride = K * 2;  // bytes per A row
  // Two sum buffers: while block i's tile instructions run, the epilogue of block i − 1 (from the
  // other buffer) is spread over its k-steps, so the vector units finish rows (bias, GELU,
  // residual) while the AMX unit multiplies, instead of after it.
  alignas(64) float sums[2][32 * 32];
  PendingRows prev;
  int cur = 0;
  amx_configure();
  for (int64_t m = b.m0; m < b.m1; m += kMrAmx) {
    const int rows = static_cast<int>(b.m1 - m < kMrAmx ? b.m1 - m : kMrAmx);
    const bool two = rows > 16;  // a last tile of ≤ 16 rows (197 = 6 · 32 + 5 tokens) needs one A tile
    const uint8_t* ap = reinterpret_cast<const uint8_t*>(b.a_tiles + (m / kMrAmx) * b.tile_stride);
    for (int64_t p = b.p0; p < b.p1; ++p) {
      const uint8_t* bp = reinterpret_cast<const uint8_t*>(W.bf16() + p * K2 * 2 * kPanel);
      const int per_step = static_cast<int>((prev.rows - prev.done + steps - 1) / steps);
      int upto = prev.done;
      _tile_zero(0);
      _tile_zero(1);
      if (two) {
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t q = 0; q < K2; q += 16) {
          _tile_loadd(4, ap + q * 4, a_stride);
          _tile_loadd(5, ap + 16 * a_stride + q * 4, a_stride);
          _tile_loadd(6, bp + q * 128, 128);
          _tile_loadd(7, bp + q * 128 + 64, 128);
          _tile_dpbf16ps(0, 4, 6);
          _tile_dpbf16ps(1, 4, 7);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
          finish_rows(b, prev, upto += per_step);
        }
      } else {
        for (int64_t q = 0; q < K2; q += 16) {
          _tile_loadd(4, ap + q * 4, a_stride);
          _tile_loadd(6, bp + q * 128, 128);
          _tile_loadd(7, bp + q * 128 + 64, 128);
          _tile_dpbf16ps(0, 4, 6);
          _tile_dpbf16ps(1, 4, 7);
          finish_rows(b, prev, upto += per_step);
        }
      }
      finish_rows(b, prev, prev.rows);
      float* c = sums[cur];
      _tile_stored(0, c, 128);
      _tile_stored(1, c + 16, 128);
      if (two) {
        _tile_stored(2, c + 16 * 32, 128);
        _tile_stored(3, c + 16 * 32 + 16, 128);
      }
      prev = PendingRows{c, m, p * kPanel, rows, 0};
      cur ^= 1;
    }
  }
  finish_rows(b, prev, prev.rows);
  _tile_release();
}
#else
void gemm_pack_a_amx(const GemmBlock& b, int64_t t0, int64_t t1) { gemm_pack_a_avx512(b, t0, t1); }
void gemm_block_amx(const GemmBlock& b) { gemm_block_avx512(b); }
#endif

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

// Float32 weights in panel groups (GemmBlock::panel_group): all row tiles of a group, then the next
// group, whose weights the tile calls prefetch slice by slice meanwhile — with K in chunks when
// GemmBlock::k_chunk says so (the whole pass over the groups once per chunk, so only that chunk
// of A has to stay in L2 while the weights stream).
static void block_f32_grouped(const GemmBlock& b) {
  const PackedLinear& W = *b.W;
  const int64_t K = W.K, kc = b.k_chunk > 0 && b.k_chunk < K ? b.k_chunk : K;
  const int64_t panel_stride = K * kPanel * static_cast<int64_t>(sizeof(float));
  const char* w = reinterpret_cast<const char*>(W.f32());
  for (int64_t k0 = 0; k0 < K; k0 += kc) {
    const int64_t klen = K - k0 < kc ? K - k0 : kc;
    const bool first = k0 == 0, last = k0 + klen == K;
    const int64_t slice_bytes = (klen + 3) / 4 * 64;  // what one tile call prefetches
    for (int64_t g0 = b.p0; g0 < b.p1; g0 += b.panel_group) {
      const int64_t g1 = g0 + b.panel_group < b.p1 ? g0 + b.panel_group : b.p1;
      // What comes next: the following group of this chunk, else the first group of the next chunk.
      int64_t np0 = g1, np1 = g1 + b.panel_group < b.p1 ? g1 + b.panel_group : b.p1, nk0 = k0, nklen = klen;
      if (g1 == b.p1) {
        np0 = b.p0, np1 = b.p0 + b.panel_group < b.p1 ? b.p0 + b.panel_group : b.p1;
        nk0 = k0 + kc, nklen = last ? 0 : (K - nk0 < kc ? K - nk0 : kc);
      }
      const int64_t piece_bytes = nklen * kPanel * static_cast<int64_t>(sizeof(float));
      const int64_t per_piece = piece_bytes > 0 ? (piece_bytes + slice_bytes - 1) / slice_bytes : 1;
      // Slice s of the next group: piece (panel) s / per_piece, part s % per_piece of its chunk.
      auto slice_ptr = [&](int64_t s) -> const char* {
        const int64_t piece = s / per_piece;
        if (piece_bytes == 0 || np0 + piece >= np1) return nullptr;
        return w + (np0 + piece) * panel_stride + nk0 * kPanel * static_cast<int64_t>(sizeof(float)) +
               (s % per_piece) * slice_bytes;
      };
      int64_t slice = 0;
      for (int64_t m = b.m0; m < b.m1; m += MR) {
        const int rows = static_cast<int>(b.m1 - m < MR ? b.m1 - m : MR);
        const float* ap = b.a_tiles + (m / MR) * b.tile_stride + k0 * MR;
        with_rows(rows, [&](auto r) {
          constexpr int R = decltype(r)::value;
          for (int64_t p = g0; p < g1; ++p, ++slice) {
            const float* bp = W.f32() + p * K * kPanel + k0 * kPanel;
            if (kc == K) {
              tile_f32<R>(b, ap, bp, K, m, p * kPanel, slice_ptr(slice));
            } else {
              tile_f32_part<R>(b, ap, bp, klen, m, p * kPanel, slice_ptr(slice), first, last);
            }
          }
        });
      }
    }
  }
}

void gemm_block_avx512(const GemmBlock& b) {
  if (b.panel_group > 0 && b.W->dtype == WeightDtype::kFloat32) {
    block_f32_grouped(b);
    return;
  }
  for (int64_t m = b.m0; m < b.m1; m += MR) {
    const int rows = static_cast<int>(b.m1 - m < MR ? b.m1 - m : MR);
    const float* ap = b.a_tiles + (m / MR) * b.tile_stride;
    with_rows(rows, [&](auto r) { run_rows<decltype(r)::value>(b, m, ap); });
  }
}

}  // namespace cpu
}  // namespace vitmsn

VITMSN_TARGET_END
