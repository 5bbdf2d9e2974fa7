// AVX-512 fused MLP rows (driver and contract in mlp.h): for one block of ≤ kMlpTilesAvx512 row
// tiles, fc1 runs panel by panel over the block's tiles and leaves gelu(W1·a + b1) in the packed A
// layout of fc2 (GemmBlock::c_tiles), then fc2 runs over those tiles into the output rows, adding
// bias and residual. The hidden tiles (≤ 56 rows × I) stay in this core's L2, so the M×I
// activations never travel to memory and fc2 packs no A.
//
// Every weight panel is read once per block, for all of its row tiles; meanwhile those tile calls
// prefetch the next panel (the next of W1, then of W2, then W1's first for the next block) toward
// L2 a slice each, as the batch-1 panel groups in gemm_avx512.cc do.
#include <immintrin.h>

#include <cstdint>

#include "cpu/gemm_kernels.h"
#include "cpu/isa_target.h"

VITMSN_TARGET_BEGIN(VITMSN_ISA_AVX512_BMI2)

namespace vitmsn {
namespace cpu {
namespace {

#include "cpu/vecmath_avx512.inc"

#include "cpu/gemm_avx512_tile.inc"

// Panel p of `g`'s weight for every row tile of the block; tile call i prefetches slice i of
// [pf, pf + pf_bytes), each slice (K >> pf_shift) lines.
static void panel_over_tiles(const GemmBlock& g, int64_t p, const char* pf, int64_t pf_bytes, int pf_shift) {
  const PackedLinear& W = *g.W;
  const int64_t K = W.K, slice_bytes = (K >> pf_shift) * 64;
  const float* bp = W.f32() + p * K * kPanel;
  int64_t slice = 0;
  for (int64_t m = g.m0; m < g.m1; m += MR, ++slice) {
    const int rows = static_cast<int>(g.m1 - m < MR ? g.m1 - m : MR);
    const float* ap = g.a_tiles + (m / MR) * g.tile_stride;
    const int64_t off = slice * slice_bytes;
    const char* pfs = off < pf_bytes ? pf + off : nullptr;
    with_rows(rows, [&](auto r) { tile_f32<decltype(r)::value>(g, ap, bp, K, m, p * kPanel, pfs, pf_shift); });
  }
}

}  // namespace

void mlp_rows_avx512(const GemmBlock& fc1, const GemmBlock& fc2) {
  const PackedLinear &W1 = *fc1.W, &W2 = *fc2.W;
  const int64_t tiles = (fc1.m1 + MR - 1) / MR;
  gemm_pack_a_avx512(fc1, 0, tiles);
  // Lines per k-step to prefetch so that the block's tile calls cover one panel (K·32 floats =
  // 2K lines): every k-step with 2 tiles or fewer, every other one with 4.
  const int pf_shift = tiles >= 4 ? 1 : 0;
  const int64_t p1 = W1.panels, p2 = W2.panels;
  auto panel_bytes = [](const PackedLinear& W) { return W.K * kPanel * static_cast<int64_t>(sizeof(float)); };
  for (int64_t p = 0; p < p1; ++p) {
    const bool last = p + 1 == p1;
    const char* next = reinterpret_cast<const char*>(last ? W2.f32() : W1.f32() + (p + 1) * W1.K * kPanel);
    panel_over_tiles(fc1, p, next, panel_bytes(last ? W2 : W1), pf_shift);
  }
  for (int64_t p = 0; p < p2; ++p) {
    const bool last = p + 1 == p2;
    const char* next = reinterpret_cast<const char*>(last ? W1.f32() : W2.f32() + (p + 1) * W2.K * kPanel);
    panel_over_tiles(fc2, p, next, panel_bytes(last ? W1 : W2), pf_shift);
  }
}

void mlp_slice_avx512(const GemmBlock& fc1, const GemmBlock& fc2, int64_t c0, int64_t c1) {
  const PackedLinear &W1 = *fc1.W, &W2 = *fc2.W;
  const int64_t tiles = (fc1.m1 + MR - 1) / MR, K1 = W1.K, K2 = W2.K, klen = c1 - c0;
  // fc1: the slice's panels, each over all row tiles (≈15 at batch 1: their prefetch slices of
  // K/4 lines each cover the next panel's 2K lines).
  for (int64_t p = fc1.p0; p < fc1.p1; ++p) {
    const bool last = p + 1 == fc1.p1;
    const char* next = reinterpret_cast<const char*>(last ? W2.f32() + c0 * kPanel : W1.f32() + (p + 1) * K1 * kPanel);
    const int64_t next_bytes = (last ? klen : K1) * kPanel * static_cast<int64_t>(sizeof(float));
    panel_over_tiles(fc1, p, next, next_bytes, 2);
  }
  // fc2: every output panel over the slice's k range, raw sums into k_partial.
  const int64_t slice_bytes = (klen >> 2) * 64, piece_bytes = klen * kPanel * static_cast<int64_t>(sizeof(float));
  for (int64_t q = 0; q < W2.panels; ++q) {
    const float* bp = W2.f32() + q * K2 * kPanel + c0 * kPanel;
    const char* next = q + 1 < W2.panels ? reinterpret_cast<const char*>(bp + K2 * kPanel) : nullptr;
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t m = t * MR, off = t * slice_bytes;
      const int rows = static_cast<int>(fc2.m1 - m < MR ? fc2.m1 - m : MR);
      const float* ap = fc2.a_tiles + t * fc2.tile_stride;
      const char* pf = next && off < piece_bytes ? next + off : nullptr;
      with_rows(rows,
                [&](auto r) { tile_f32_part<decltype(r)::value>(fc2, ap, bp, klen, m, q * kPanel, pf, true, false); });
    }
  }
}

}  // namespace cpu
}  // namespace vitmsn

VITMSN_TARGET_END
