// Attention (math and shapes in attention.h): the dispatcher, and the explicit kernel.
//
// The explicit kernel runs when the probabilities are requested (the flash kernel, used
// otherwise, is in attention_flash.cc). Work is split into tasks of (b, h, block of kQB query
// rows). A task needs all T keys of its head; it copies them once, transposed to Kᵀ [Dh][T], so
// that the scores of a query row are built from contiguous runs of keys (a vectorisable
// multiply-add per d) instead of T short dot products. Per query row a scratch row of T scores
// holds S, then P; it is never T×T. Consecutive tasks of one chunk share (b, h) most of the time
// and reuse the transposed keys.
#include "cpu/attention.h"

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <memory>
#include <new>
#include <string>

#include "common/error.h"
#include "cpu/attention_amx.h"
#include "cpu/attention_kernels.h"
#include "cpu/gemm.h"
#include "cpu/isa_target.h"
#include "cpu/scratch.h"

namespace vitmsn {
namespace cpu {
namespace {

// Query rows per task: enough to amortise the Kᵀ copy (T·Dh floats) over many rows, few enough
// that B·H·ceil(T / kQB) tasks keep every thread busy for B = 1.
constexpr int64_t kQB = 16;
// Keys per register block when forming scores: 16 floats = 4 SSE accumulators.
constexpr int64_t kJB = 16;
// Output columns per register block when forming P·v.
constexpr int64_t kDB = 16;

// s[j] = (q · kt[:, j]) · scale for j < T, kt laid out [Dh][T].
void scores_row(const float* __restrict q, const float* __restrict kt, int64_t T, int64_t Dh, float scale,
                float* __restrict s) {
  int64_t j0 = 0;
  for (; j0 + kJB <= T; j0 += kJB) {
    float acc[kJB] = {};
    for (int64_t d = 0; d < Dh; ++d) {
      const float qd = q[d];
      const float* __restrict kr = kt + d * T + j0;
      for (int64_t u = 0; u < kJB; ++u) acc[u] += qd * kr[u];
    }
    for (int64_t u = 0; u < kJB; ++u) s[j0 + u] = acc[u] * scale;
  }
  if (j0 < T) {
    const int64_t rem = T - j0;
    float acc[kJB] = {};
    for (int64_t d = 0; d < Dh; ++d) {
      const float qd = q[d];
      const float* kr = kt + d * T + j0;
      for (int64_t u = 0; u < rem; ++u) acc[u] += qd * kr[u];
    }
    for (int64_t u = 0; u < rem; ++u) s[j0 + u] = acc[u] * scale;
  }
}

// o[d] = Σ_j p[j] · v_j[d], with v_j = v + j·v_stride, for d < Dh.
void pv_row(const float* __restrict p, const float* __restrict v, int64_t v_stride, int64_t T, int64_t Dh,
            float* __restrict o) {
  int64_t d0 = 0;
  for (; d0 + kDB <= Dh; d0 += kDB) {
    float acc[kDB] = {};
    for (int64_t j = 0; j < T; ++j) {
      const float pj = p[j];
      const float* __restrict vr = v + j * v_stride + d0;
      for (int64_t u = 0; u < kDB; ++u) acc[u] += pj * vr[u];
    }
    for (int64_t u = 0; u < kDB; ++u) o[d0 + u] = acc[u];
  }
  if (d0 < Dh) {
    const int64_t rem = Dh - d0;
    float acc[kDB] = {};
    for (int64_t j = 0; j < T; ++j) {
      const float pj = p[j];
      const float* vr = v + j * v_stride + d0;
      for (int64_t u = 0; u < rem; ++u) acc[u] += pj * vr[u];
    }
    for (int64_t u = 0; u < rem; ++u) o[d0 + u] = acc[u];
  }
}

}  // namespace

int64_t attention_work(const AttentionArgs& a) { return 4 * a.B * a.H * a.T * a.T * a.Dh; }

namespace {

#if VITMSN_X86_KERNELS  // its kernels are attention_avx512.cc's (isa_target.h)
// The AVX-512 path: tasks of (b, h, kQB512 query rows), Kᵀ padded to whole 16-key vectors.
constexpr int64_t kQB512 = 32;

void attention_avx512(const AttentionArgs& a, ThreadPool& pool) {
  const int64_t B = a.B, T = a.T, H = a.H, Dh = a.Dh, HD = H * Dh, stride = 3 * HD;
  const int64_t Tp = (T + 15) / 16 * 16;
  const int64_t q_blocks = (T + kQB512 - 1) / kQB512;
  const int64_t tasks = B * H * q_blocks;
  auto body = [&](int64_t t_begin, int64_t t_end) {
    // One scratch: Kᵀ [Dh][Tp], scores [8][Tp], qt [Dh][8], V [T][Dh], each 64-byte aligned.
    const size_t n_kt = static_cast<size_t>(Dh * Tp), n_s = static_cast<size_t>(8 * Tp),
                 n_q = static_cast<size_t>((8 * Dh + 15) / 16 * 16), n_v = static_cast<size_t>(T * Dh);
    std::unique_ptr<float[]> mem = alloc_scratch(n_kt + n_s + n_q + n_v + 16, "attention");
    float* kt = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(mem.get()) + 63) & ~uintptr_t(63));
    float* vbuf = kt + n_kt + n_s + n_q;
    AttentionRows rows;
    rows.args = &a, rows.kt = kt, rows.Tp = Tp, rows.scores = kt + n_kt, rows.qt = kt + n_kt + n_s, rows.v = vbuf;
    int64_t have_bh = -1;
    for (int64_t t = t_begin; t < t_end; ++t) {
      const int64_t bh = t / q_blocks, qb = t % q_blocks;
      const int64_t b = bh / H, h = bh % H;
      if (bh != have_bh) {
        attention_build_kt_avx512(a.qkv + b * T * stride + HD + h * Dh, stride, T, Dh, Tp, kt);
        const float* vsrc = a.qkv + b * T * stride + 2 * HD + h * Dh;
        for (int64_t j = 0; j < T; ++j) std::copy(vsrc + j * stride, vsrc + j * stride + Dh, vbuf + j * Dh);
        have_bh = bh;
      }
      rows.b = b, rows.h = h, rows.i0 = qb * kQB512, rows.i1 = std::min(T, (qb + 1) * kQB512);
      attention_rows_avx512(rows);
    }
  };
  pool.parallel_for(tasks, body, attention_work(a));
}

#else
void attention_avx512(const AttentionArgs&, ThreadPool&) {}  // never called: no AVX-512 here
#endif

}  // namespace

void attention(const AttentionArgs& a, ThreadPool& pool) { attention(a, pool, default_isa()); }

AttentionKernel attention_auto_kernel(const AttentionArgs& a, Isa isa, AttentionPrecision precision) {
  if (a.probs) return AttentionKernel::kExplicit;
  if (precision == AttentionPrecision::kBf16 && attention_amx_usable(isa, a)) return AttentionKernel::kAmxBf16;
  return AttentionKernel::kFlash;
}

void attention(const AttentionArgs& a, ThreadPool& pool, Isa isa, AttentionKernel kernel,
               AttentionPrecision precision) {
  if (a.B < 0 || a.T < 0 || a.H < 0 || a.Dh < 0) throw Error(codes::kInternal, "attention: negative dimension");
  if (a.B == 0 || a.T == 0 || a.H == 0 || a.Dh == 0) return;
  if (!a.qkv || !a.out) throw Error(codes::kInternal, "attention: null operand");
  if (kernel == AttentionKernel::kFlash && a.probs) {
    throw Error(codes::kInternal, "attention: the flash kernel cannot return probabilities");
  }
  if (kernel == AttentionKernel::kAmxBf16 && !attention_amx_usable(isa, a)) {
    throw Error(codes::kInternal,
                "attention: the AMX bf16 kernel cannot run these arguments here (it needs the avx512 path with AMX "
                "enabled, no probabilities, Dh a multiple of 32 and T <= 2048)");
  }
  if (kernel == AttentionKernel::kAuto) kernel = attention_auto_kernel(a, isa, precision);
  if (kernel == AttentionKernel::kAmxBf16) {
    attention_amx(a, pool);
    return;
  }
  if (kernel == AttentionKernel::kFlash) {
    attention_flash(a, pool, isa);
    return;
  }
  // The explicit kernel: below.
  const int64_t B = a.B, T = a.T, H = a.H, Dh = a.Dh;
  const int64_t HD = H * Dh, stride = 3 * HD;
  const int64_t q_blocks = (T + kQB - 1) / kQB;
  const int64_t tasks = B * H * q_blocks;

  if constexpr (kX86Kernels) {
    if (isa == Isa::kAvx512) {
      attention_avx512(a, pool);
      return;
    }
  }
  auto body = [&](int64_t t_begin, int64_t t_end) {
    std::unique_ptr<float[]> kt = alloc_scratch(static_cast<size_t>(Dh * T), "attention");
    std::unique_ptr<float[]> s = alloc_scratch(static_cast<size_t>(T), "attention");
    int64_t have_bh = -1;  // which (b, h) kt holds
    for (int64_t t = t_begin; t < t_end; ++t) {
      const int64_t bh = t / q_blocks, qb = t % q_blocks;
      const int64_t b = bh / H, h = bh % H;
      const float* base = a.qkv + b * T * stride;
      if (bh != have_bh) {
        for (int64_t j = 0; j < T; ++j) {
          const float* k = base + j * stride + HD + h * Dh;
          for (int64_t d = 0; d < Dh; ++d) kt[d * T + j] = k[d];
        }
        have_bh = bh;
      }
      const float hs = a.head_scale ? a.head_scale[h] : 1.0f;
      const float* v = base + 2 * HD + h * Dh;
      const int64_t i_end = std::min(T, (qb + 1) * kQB);
      for (int64_t i = qb * kQB; i < i_end; ++i) {
        scores_row(base + i * stride + h * Dh, kt.get(), T, Dh, a.scale, s.get());
        float mx = s[0];
        for (int64_t j = 1; j < T; ++j) mx = std::max(mx, s[j]);
        float sum = 0.0f;
        for (int64_t j = 0; j < T; ++j) {
          s[j] = std::exp(s[j] - mx);
          sum += s[j];
        }
        const float inv = 1.0f / sum;  // sum ≥ 1: the max term contributes exp(0)
        for (int64_t j = 0; j < T; ++j) s[j] = s[j] * inv * hs;
        if (a.probs) std::copy(s.get(), s.get() + T, a.probs + ((b * H + h) * T + i) * T);
        pv_row(s.get(), v, stride, T, Dh, a.out + (b * T + i) * HD + h * Dh);
      }
    }
  };
  pool.parallel_for(tasks, body, attention_work(a));
}

}  // namespace cpu
}  // namespace vitmsn
