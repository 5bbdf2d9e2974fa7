// Flash attention on the CPU (math in attention.h, the per-tile algorithm in
// attention_flash_kernels.h): the driver, and the portable tile kernel.
//
// Work is split into tasks of (b, h, up to kFlashQB query rows; a head's rows split evenly), like
// the explicit kernel. The first task of a (b, h) in a thread's chunk packs that head's keys into
// Kᵀ blocks [Dh][kFlashKB] and its values into dense zero-padded rows [T][Dhp]: in qkv a token's k
// and v sit 3·H·Dh floats after the previous token's (a page or more apart), where the hardware
// prefetchers do not follow, and zero padding lets every kernel read whole vectors without masks.
// A task then runs the ISA's tile kernel on its query rows (read from qkv in place), which visits
// each key block once for all the task's rows, so a block comes from L2 once per task instead of
// once per group of rows. Meanwhile the next task's rows (its q rows; k and v too when it starts
// another head) are prefetched toward L2: ~5% off the op inside a forward, where qkv has just
// been written by the GEMM and sits in L3.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>

#include "common/error.h"
#include "cpu/attention.h"
#include "cpu/attention_flash_kernels.h"
#include "cpu/attention_kernels.h"
#include "cpu/isa_target.h"
#include "cpu/scratch.h"

namespace vitmsn {
namespace cpu {
namespace {

constexpr int64_t KB = kFlashKB, QB = kFlashQB;

// kt[kb][d][jj] = k_(kb·KB + jj)[d], 0 past T. k_j = kbase + j·stride.
void pack_kt_portable(const float* kbase, int64_t stride, int64_t T, int64_t Dh, int64_t nkb, float* kt) {
  std::fill(kt, kt + nkb * Dh * KB, 0.0f);
  for (int64_t j = 0; j < T; ++j) {
    const float* k = kbase + j * stride;
    float* dst = kt + (j / KB) * Dh * KB + j % KB;
    for (int64_t d = 0; d < Dh; ++d) dst[d * KB] = k[d];
  }
}

// See flash_pack_rows_avx512.
void pack_rows_portable(const float* src, int64_t stride, int64_t rows, int64_t n, int64_t ld, int64_t total_rows,
                        float* dst) {
  for (int64_t r = 0; r < total_rows; ++r) {
    float* d = dst + r * ld;
    if (r < rows) std::memcpy(d, src + r * stride, static_cast<size_t>(n) * sizeof(float));
    std::fill(d + (r < rows ? n : 0), d + ld, 0.0f);
  }
}

// The same layout with 16×16 register transposes (the Kᵀ builder of the explicit AVX-512 kernel
// writes one block at a time when told that the padded length is KB).
#if VITMSN_X86_KERNELS  // attention_avx512.cc's (isa_target.h)
void pack_kt_avx512(const float* kbase, int64_t stride, int64_t T, int64_t Dh, int64_t nkb, float* kt) {
  for (int64_t kb = 0; kb < nkb; ++kb) {
    const int64_t j0 = kb * KB;
    attention_build_kt_avx512(kbase + j0 * stride, stride, std::min(KB, T - j0), Dh, KB, kt + kb * Dh * KB);
  }
}
#else
void pack_kt_avx512(const float*, int64_t, int64_t, int64_t, int64_t, float*) {}  // never called: no AVX-512
#endif

// The packing and tile functions of a path.
struct Kernels {
  void (*pack_kt)(const float*, int64_t, int64_t, int64_t, int64_t, float*);
  void (*pack_rows)(const float*, int64_t, int64_t, int64_t, int64_t, int64_t, float*);
  void (*tile)(const FlashTile&);
};

}  // namespace

// ---- portable tile kernel ---------------------------------------------------------------------
// One query row at a time over a key block; the inner loops run over 32 keys or Dhp columns, which
// the compiler vectorises for whatever the baseline ISA is (SSE2 on x86-64, NEON on arm64).
void flash_tile_scalar(const FlashTile& t) {
  const int64_t Dh = t.Dh, Dhp = t.Dhp, T = t.T;
  std::fill(t.o, t.o + t.rows * Dhp, 0.0f);
  for (int r = 0; r < t.rows; ++r) {
    t.l[r * 16] = 0.0f;
    t.m[r] = -INFINITY;
  }
  float x[KB];
  for (int64_t kb = 0; kb < t.nkb; ++kb) {
    const float* __restrict kt = t.kt + kb * Dh * KB;
    const float* __restrict v = t.v + kb * KB * Dhp;
    const int64_t valid = std::min(KB, T - kb * KB);
    for (int r = 0; r < t.rows; ++r) {
      const float* __restrict q = t.q + r * t.ldq;
      float s[KB] = {};
      for (int64_t d = 0; d < Dh; ++d) {
        const float qd = q[d];
        for (int64_t j = 0; j < KB; ++j) s[j] += qd * kt[d * KB + j];
      }
      float mx = -INFINITY;
      for (int64_t j = 0; j < valid; ++j) mx = std::max(mx, s[j] * t.scale);
      float& m = t.m[r];
      float* __restrict o = t.o + r * Dhp;
      if (mx > m + kFlashTau) {
        const float alpha = std::exp(m - mx);  // 0 on the first block (m = −∞), where O and l are 0
        for (int64_t d = 0; d < Dhp; ++d) o[d] *= alpha;
        t.l[r * 16] *= alpha;
        m = mx;
      }
      float sum = 0.0f;
      for (int64_t j = 0; j < KB; ++j) {
        x[j] = j < valid ? std::exp(s[j] * t.scale - m) : 0.0f;
        sum += x[j];
      }
      t.l[r * 16] += sum;
      for (int64_t j = 0; j < valid; ++j) {
        const float pj = x[j];
        const float* __restrict vr = v + j * Dhp;
        for (int64_t d = 0; d < Dhp; ++d) o[d] += pj * vr[d];
      }
    }
  }
  for (int r = 0; r < t.rows; ++r) {
    const float f = t.head_scale / t.l[r * 16];  // l ≥ 1: the key that set m contributes e^0
    for (int64_t d = 0; d < Dh; ++d) t.out[r * t.ldo + d] = t.o[r * Dhp + d] * f;
  }
}

// ---- driver -------------------------------------------------------------------------------------

namespace {

Kernels kernels_for(Isa isa) {
  if constexpr (kX86Kernels) {
    if (isa == Isa::kAvx512) return {pack_kt_avx512, flash_pack_rows_avx512, flash_tile_avx512};
    if (isa == Isa::kAvx2) return {pack_kt_portable, pack_rows_portable, flash_tile_avx2};
  }
  return {pack_kt_portable, pack_rows_portable, flash_tile_scalar};
}

}  // namespace

void attention_flash(const AttentionArgs& a, ThreadPool& pool, Isa isa) {
  const int64_t B = a.B, T = a.T, H = a.H, Dh = a.Dh, HD = H * Dh, stride = 3 * HD;
  const int64_t Dhp = (Dh + 15) / 16 * 16, nkb = (T + KB - 1) / KB, Tp = nkb * KB;
  const int64_t q_blocks = (T + QB - 1) / QB;
  const int64_t tasks = B * H * q_blocks;
  const Kernels k = kernels_for(isa);
  auto body = [&](int64_t t_begin, int64_t t_end) {
    // Every piece is a multiple of 16 floats, so each starts 64-byte aligned after the first.
    constexpr int64_t GR = kFlashGroupAvx512;
    const int64_t n_kt = nkb * Dh * KB, n_v = Tp * Dhp, n_o = QB * Dhp, n_l = QB * 16, n_m = (QB + 15) / 16 * 16,
                  n_p = QB * KB, n_qp = (QB + GR - 1) / GR * ((Dh * GR + 15) / 16 * 16);
    std::unique_ptr<float[]> mem =
        alloc_scratch(static_cast<size_t>(n_kt + n_v + n_o + n_l + n_m + n_p + n_qp + 16), "attention");
    float* kt = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(mem.get()) + 63) & ~uintptr_t(63));
    float* v = kt + n_kt;
    FlashTile tile;
    tile.kt = kt, tile.v = v, tile.T = T, tile.Dh = Dh, tile.Dhp = Dhp, tile.nkb = nkb;
    tile.o = v + n_v, tile.l = tile.o + n_o, tile.m = tile.l + n_l, tile.p = tile.m + n_m, tile.qp = tile.p + n_p;
    tile.scale = a.scale, tile.ldq = stride, tile.ldo = HD;
    int64_t have_bh = -1;
    // Query blocks of near-equal size (197 rows at most 40 each: 39 or 40, not 4 × 40 + 37).
    auto first_row = [&](int64_t qb) { return qb * T / q_blocks; };
    for (int64_t t = t_begin; t < t_end; ++t) {
      const int64_t bh = t / q_blocks, qb = t % q_blocks;
      const int64_t b = bh / H, h = bh % H;
      const float* base = a.qkv + b * T * stride;
      if (t + 1 < t_end) {
        const int64_t nbh = (t + 1) / q_blocks, nqb = (t + 1) % q_blocks;
        const float* nbase = a.qkv + (nbh / H) * T * stride + (nbh % H) * Dh;
        if (nbh != bh) {
          prefetch_rows(nbase + HD, stride, T, Dh);
          prefetch_rows(nbase + 2 * HD, stride, T, Dh);
        }
        prefetch_rows(nbase + first_row(nqb) * stride, stride, first_row(nqb + 1) - first_row(nqb), Dh);
      }
      if (bh != have_bh) {
        k.pack_kt(base + HD + h * Dh, stride, T, Dh, nkb, kt);
        k.pack_rows(base + 2 * HD + h * Dh, stride, T, Dh, Dhp, Tp, v);
        have_bh = bh;
      }
      const int64_t i0 = first_row(qb), rows = first_row(qb + 1) - i0;
      tile.q = base + i0 * stride + h * Dh;
      tile.rows = static_cast<int>(rows);
      tile.head_scale = a.head_scale ? a.head_scale[h] : 1.0f;
      tile.out = a.out + (b * T + i0) * HD + h * Dh;
      k.tile(tile);
    }
  };
  pool.parallel_for(tasks, body, attention_work(a));
}

}  // namespace cpu
}  // namespace vitmsn
