// The qkv + attention op's driver (see qkv_attention.h): picks fused or unfused; for the fused
// path packs every image's rows as GEMM A tiles (once, in parallel), then runs one task per
// (image, head): the head's projection (qkv_attention_avx512.cc) into per-thread q / Kᵀ / V
// buffers, then the flash tile kernel over the head's query rows.
#include "cpu/qkv_attention.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "common/error.h"
#include "cpu/attention.h"
#include "cpu/attention_flash_kernels.h"
#include "cpu/gemm.h"
#include "cpu/gemm_kernels.h"
#include "cpu/isa_target.h"
#include "cpu/layernorm.h"
#include "cpu/qkv_attention_kernels.h"
#include "cpu/scratch.h"
#include "common/knobs.h"

namespace vitmsn {
namespace cpu {
namespace {

struct PackedRowsTag;
struct HeadBuffersTag;
struct LnRowsTag;

// Above this many tokens the per-task q / Kᵀ / V (3·T·Dh floats) would crowd out the core's L2;
// such inputs (images of ~1400 px and more at patch 16) take the unfused path.
constexpr int64_t kMaxFusedTokens = 2048;
// Packed rows kept per calling thread between calls (batch 1–8 of ViT-B fit); more is allocated
// per call.
constexpr size_t kKeepFloats = size_t(2) << 20;

void unfused(const QkvAttentionArgs& a, ThreadPool& pool, Isa isa, OpBuffers& buffers) {
  const int64_t M = a.B * a.T, N = 3 * a.H * a.Dh;
  const float* x = a.a;
  if (a.ln) {
    float* ln = buffers.get(static_cast<size_t>(M * a.D));
    layernorm({a.a, a.ln.gamma, a.ln.beta, ln, M, a.D, a.ln.eps}, pool, isa);
    x = ln;
  }
  float* qkv = buffers.get(static_cast<size_t>(M * N));
  GemmArgs g;
  g.A = x, g.lda = a.D, g.Wp = a.W, g.bias = a.bias, g.C = qkv, g.M = M, g.N = N, g.K = a.D;
  gemm(g, pool, isa);
  AttentionArgs at;
  at.qkv = qkv, at.out = a.out, at.head_scale = a.head_scale, at.probs = a.probs;
  at.B = a.B, at.T = a.T, at.H = a.H, at.Dh = a.Dh, at.scale = a.scale;
  // bf16 and int8 weights already carry bf16's error (or more): their attention may round to bf16
  // too and run on AMX tiles (attention.h); float32 weights keep float32 attention.
  const AttentionPrecision precision =
      a.W->dtype == WeightDtype::kFloat32 ? AttentionPrecision::kFloat32 : AttentionPrecision::kBf16;
  attention(at, pool, isa, AttentionKernel::kAuto, precision);
}

#if VITMSN_X86_KERNELS  // its kernels are qkv_attention_avx512.cc's and the flash kernel's (isa_target.h)
void fused(const QkvAttentionArgs& a, ThreadPool& pool) {
  const auto* W = static_cast<const PackedLinear*>(a.W);
  const int64_t B = a.B, T = a.T, H = a.H, Dh = a.Dh, D = a.D, HD = H * Dh;
  constexpr int64_t mr = kMrAvx512, KB = kFlashKB, QB = kFlashQB, GR = kFlashGroupAvx512;
  // 1. Every image's rows as A tiles (an image starts a new tile, so its rows are tiles 0 .. ⌈T/14⌉).
  const int64_t img_tiles = (T + mr - 1) / mr, tile_stride = a_tile_stride(mr, D);
  const size_t packed_floats = static_cast<size_t>(B * img_tiles * tile_stride);
  std::unique_ptr<float[]> packed_temp;
  float* packed =
      packed_floats <= kKeepFloats
          ? thread_scratch<PackedRowsTag>(packed_floats, "qkv_attention")
          : (packed_temp = alloc_scratch(packed_floats + 16, "qkv_attention"),
             reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(packed_temp.get()) + 63) & ~uintptr_t(63)));
  // The LayerNorm in front, when asked, is applied here, tile by tile, on the way into the tiles.
  pool.parallel_for(B * img_tiles, [&](int64_t t0, int64_t t1) {
    float* ln_rows = a.ln ? thread_scratch<LnRowsTag>(static_cast<size_t>(mr * D), "qkv_attention") : nullptr;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / img_tiles, ti = t % img_tiles, m0 = b * T + ti * mr;
      GemmBlock pk;  // one tile: its rows as tile 0 of a block
      pk.m1 = std::min(mr, T - ti * mr);
      pk.A = a.a + m0 * D;
      if (a.ln) {
        layernorm_rows({pk.A, a.ln.gamma, a.ln.beta, ln_rows, pk.m1, D, a.ln.eps}, Isa::kAvx512);
        pk.A = ln_rows;
      }
      pk.lda = D, pk.W = W, pk.a_tiles = packed + (b * img_tiles + ti) * tile_stride, pk.tile_stride = tile_stride;
      gemm_pack_a_avx512(pk, 0, 1);
    }
  });
  // 2. One task per (image, head).
  const int64_t nkb = (T + KB - 1) / KB, Tp = nkb * KB, q_blocks = (T + QB - 1) / QB;
  // Per-thread buffers, each piece a multiple of 16 floats so all stay 64-byte aligned.
  const int64_t n_q = (T * Dh + 15) / 16 * 16, n_kt = nkb * Dh * KB, n_v = Tp * Dh, n_o = QB * Dh, n_l = QB * 16,
                n_m = (QB + 15) / 16 * 16, n_p = QB * KB, n_qp = (QB + GR - 1) / GR * ((Dh * GR + 15) / 16 * 16);
  const size_t per_thread = static_cast<size_t>(n_q + n_kt + n_v + n_o + n_l + n_m + n_p + n_qp);
  pool.parallel_for(B * H, [&](int64_t t0, int64_t t1) {
    float* q = thread_scratch<HeadBuffersTag>(per_thread, "qkv_attention");
    float* kt = q + n_q;
    float* v = kt + n_kt;
    FlashTile tile;
    tile.kt = kt, tile.v = v, tile.T = T, tile.Dh = Dh, tile.Dhp = Dh, tile.nkb = nkb;
    tile.o = v + n_v, tile.l = tile.o + n_o, tile.m = tile.l + n_l, tile.p = tile.m + n_m, tile.qp = tile.p + n_p;
    tile.scale = a.scale, tile.q = q, tile.ldq = Dh, tile.ldo = HD;
    // Padding the projection does not write: the last Kᵀ block's keys past T and V's rows past T.
    std::memset(kt + (nkb - 1) * Dh * KB, 0, static_cast<size_t>(Dh * KB) * sizeof(float));
    std::memset(v + T * Dh, 0, static_cast<size_t>((Tp - T) * Dh) * sizeof(float));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / H, h = t % H;
      QkvHead head;
      head.a_tiles = packed + b * img_tiles * tile_stride, head.tile_stride = tile_stride, head.T = T;
      head.W = W, head.bias = a.bias, head.H = H, head.h = h, head.Dh = Dh, head.q = q, head.kt = kt, head.v = v;
      qkv_head_avx512(head);
      tile.head_scale = a.head_scale ? a.head_scale[h] : 1.0f;
      for (int64_t qb = 0; qb < q_blocks; ++qb) {
        const int64_t i0 = qb * T / q_blocks, i1 = (qb + 1) * T / q_blocks;
        tile.q = q + i0 * Dh, tile.rows = static_cast<int>(i1 - i0);
        tile.out = a.out + (b * T + i0) * HD + h * Dh;
        flash_tile_avx512(tile);
      }
    }
  });
}

#else
void fused(const QkvAttentionArgs&, ThreadPool&) {}  // never called: no fused op here
#endif

}  // namespace

QkvAttentionMode qkv_attention_mode_from_env() {
  const std::string v = knobs::choice(knobs::Knob::kCpuQkvAttention);
  if (v == "unfused") return QkvAttentionMode::kUnfused;
  if (v == "fused") return QkvAttentionMode::kFused;
  return QkvAttentionMode::kAuto;
}

bool qkv_attention_fusable(Isa isa, const QkvAttentionArgs& a) {
  return kX86Kernels && isa == Isa::kAvx512 && a.W && a.W->dtype == WeightDtype::kFloat32 && a.Dh > 0 &&
         a.Dh % kPanel == 0 && !a.probs && a.T >= 1 && a.T <= kMaxFusedTokens;
}

void qkv_attention(const QkvAttentionArgs& a, ThreadPool& pool, Isa isa, QkvAttentionMode mode, OpBuffers* buffers) {
  if (a.B < 0 || a.T < 0 || a.H < 1 || a.Dh < 1 || a.D < 1)
    throw Error(codes::kInternal, "qkv_attention: bad dimensions");
  if (!a.W || a.W->N != 3 * a.H * a.Dh || a.W->K != a.D) {
    throw Error(codes::kInternal, "qkv_attention: weight shape does not match 3·H·Dh × D");
  }
  if (a.B == 0 || a.T == 0) return;
  if (!a.a || !a.out) throw Error(codes::kInternal, "qkv_attention: null operand");
  bool fuse = false;
  switch (mode) {
    case QkvAttentionMode::kUnfused:
      break;
    case QkvAttentionMode::kFused:
      if (!qkv_attention_fusable(isa, a)) throw Error(codes::kInternal, "qkv_attention: this path has no fused op");
      fuse = true;
      break;
    case QkvAttentionMode::kAuto:
      fuse = qkv_attention_fusable(isa, a) && a.B * a.H >= pool.size();
      break;
  }
  if constexpr (kX86Kernels) {
    if (fuse) {
      fused(a, pool);
      return;
    }
  }
  HeapBuffers own;
  unfused(a, pool, isa, buffers ? *buffers : own);
}

}  // namespace cpu
}  // namespace vitmsn
