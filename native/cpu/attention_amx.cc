// AMX bf16 attention (attention_amx.h): the driver, and the scalar reference of its math.
//
// Work is split into tasks of (b, h, block of at most kAmxQB query rows; a head's rows split
// evenly: 197 rows as 7 blocks of 28–29), which at batch 1 gives 6–12 heads × 7 blocks, enough to
// keep every thread busy. The first task of a (b, h) in a thread's chunk converts that head's keys
// and values to bf16 in their B-tile layouts (once per head and thread; attention_amx_avx512.cc).
#include "cpu/attention_amx.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cpu/attention.h"
#include "cpu/attention_kernels.h"
#include "cpu/isa_target.h"
#include "cpu/packed_linear.h"
#include "cpu/scratch.h"

namespace vitmsn {
namespace cpu {
namespace {
struct AmxAttentionScratchTag;
}  // namespace

bool attention_amx_usable(Isa isa, const AttentionArgs& a) {
  if constexpr (kX86Kernels) {
    return isa == Isa::kAvx512 && amx_enabled() && cpu_features().avx512_bf16 && attention_amx_compiled() && !a.probs &&
           a.Dh >= 32 && a.Dh % 32 == 0 && a.T >= 1 && a.T <= kAmxMaxT;
  }
  return false;
}

void attention_amx(const AttentionArgs& a, ThreadPool& pool) {
  if constexpr (kX86Kernels) {
    const int64_t B = a.B, T = a.T, H = a.H, Dh = a.Dh, HD = H * Dh, stride = 3 * HD;
    const int64_t Tk = (T + 31) / 32 * 32, q_blocks = (T + kAmxQB - 1) / kAmxQB;
    const int64_t tasks = B * H * q_blocks;
    auto body = [&](int64_t t_begin, int64_t t_end) {
      // One buffer in floats; every piece is a multiple of 16 floats, so each stays 64-byte aligned.
      constexpr int64_t QB = kAmxQB;
      const int64_t n_kp = Tk * Dh / 2, n_vp = Tk * Dh / 2, n_qb = QB * Dh / 2, n_s = QB * Tk, n_p = QB * Tk / 2,
                    n_o = QB * Dh, n_l = QB;
      float* mem = thread_scratch<AmxAttentionScratchTag>(
          static_cast<size_t>(n_kp + n_vp + n_qb + n_s + n_p + n_o + n_l), "attention");
      uint16_t* kp = reinterpret_cast<uint16_t*>(mem);
      uint16_t* vp = reinterpret_cast<uint16_t*>(mem + n_kp);
      AmxAttentionTile tile;
      tile.kp = kp, tile.vp = vp, tile.T = T, tile.Tk = Tk, tile.Dh = Dh, tile.ldq = stride, tile.ldo = HD;
      tile.qb = reinterpret_cast<uint16_t*>(mem + n_kp + n_vp);
      tile.s = mem + n_kp + n_vp + n_qb;
      tile.p = reinterpret_cast<uint16_t*>(tile.s + n_s);
      tile.o = tile.s + n_s + n_p;
      tile.l = tile.o + n_o;
      tile.scale = a.scale;
      int64_t have_bh = -1;
      auto first_row = [&](int64_t qb) { return qb * T / q_blocks; };
      attention_amx_begin();
      for (int64_t t = t_begin; t < t_end; ++t) {
        const int64_t bh = t / q_blocks, qb = t % q_blocks;
        const int64_t b = bh / H, h = bh % H;
        const float* base = a.qkv + b * T * stride;
        // Toward L2 meanwhile: the next task's q rows and (for writing) its output rows, and a
        // 1/q_blocks share of the next head's keys and values per task of this head (all at once
        // would overflow the prefetch queues).
        if (t + 1 < t_end) {
          const int64_t nbh = (t + 1) / q_blocks, nqb = (t + 1) % q_blocks, nb = nbh / H, nh = nbh % H;
          const int64_t n0 = first_row(nqb), n = first_row(nqb + 1) - n0;
          prefetch_rows(a.qkv + (nb * T + n0) * stride + nh * Dh, stride, n, Dh);
          prefetch_rows_for_write(a.out + (nb * T + n0) * HD + nh * Dh, HD, n, Dh);
        }
        if ((bh + 1) * q_blocks < t_end && bh + 1 < B * H) {
          const float* nbase = a.qkv + ((bh + 1) / H) * T * stride + ((bh + 1) % H) * Dh + first_row(qb) * stride;
          const int64_t n = first_row(qb + 1) - first_row(qb);
          prefetch_rows(nbase + HD, stride, n, Dh);
          prefetch_rows(nbase + 2 * HD, stride, n, Dh);
        }
        if (bh != have_bh) {
          attention_amx_pack_kv(base + HD + h * Dh, base + 2 * HD + h * Dh, stride, T, Tk, Dh, kp, vp);
          have_bh = bh;
        }
        const int64_t i0 = first_row(qb), i1 = first_row(qb + 1);
        tile.q = base + i0 * stride + h * Dh;
        tile.rows = static_cast<int>(i1 - i0);
        tile.head_scale = a.head_scale ? a.head_scale[h] : 1.0f;
        tile.out = a.out + (b * T + i0) * HD + h * Dh;
        attention_amx_tile(tile);
      }
      attention_amx_end();
    };
    pool.parallel_for(tasks, body, attention_work(a));
  }
}

// ---- scalar reference -----------------------------------------------------------------------------

void ref_attention_bf16(const AttentionArgs& a) {
  const int64_t B = a.B, T = a.T, H = a.H, Dh = a.Dh, HD = H * Dh, stride = 3 * HD;
  auto bf = [](float x) { return from_bf16(to_bf16(x)); };
  std::vector<float> k(static_cast<size_t>(T * Dh)), v(k.size()), q(static_cast<size_t>(Dh)), s(static_cast<size_t>(T)),
      o(static_cast<size_t>(Dh));
  for (int64_t b = 0; b < B; ++b) {
    const float* base = a.qkv + b * T * stride;
    for (int64_t h = 0; h < H; ++h) {
      for (int64_t j = 0; j < T; ++j) {
        for (int64_t d = 0; d < Dh; ++d) {
          k[j * Dh + d] = bf(base[j * stride + HD + h * Dh + d]);
          v[j * Dh + d] = bf(base[j * stride + 2 * HD + h * Dh + d]);
        }
      }
      const float hs = a.head_scale ? a.head_scale[h] : 1.0f;
      for (int64_t i = 0; i < T; ++i) {
        for (int64_t d = 0; d < Dh; ++d) q[d] = bf(base[i * stride + h * Dh + d] * a.scale);
        float m = -INFINITY;
        for (int64_t j = 0; j < T; ++j) {
          float acc = 0.0f;
          for (int64_t d = 0; d < Dh; ++d) acc += q[d] * k[j * Dh + d];
          s[j] = acc;
          m = std::max(m, acc);
        }
        float l = 0.0f;
        for (int64_t j = 0; j < T; ++j) {
          const float p = std::exp(s[j] - m);
          l += p;
          s[j] = bf(p);
        }
        std::fill(o.begin(), o.end(), 0.0f);
        for (int64_t j = 0; j < T; ++j)
          for (int64_t d = 0; d < Dh; ++d) o[d] += s[j] * v[j * Dh + d];
        const float f = hs / l;
        for (int64_t d = 0; d < Dh; ++d) a.out[(b * T + i) * HD + h * Dh + d] = o[d] * f;
      }
    }
  }
}

}  // namespace cpu
}  // namespace vitmsn
