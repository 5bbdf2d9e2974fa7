// Multi-head self-attention core (no mask), from a fused QKV projection.
//
//   qkv: [B, T, 3·H·Dh] — per token: q heads, then k heads, then v heads, each H×Dh head-major
//   S[b, h, i, j] = (Σ_d q[b, i, h, d] · k[b, j, h, d]) · scale
//   P[b, h, i, :] = softmax_j(S[b, h, i, :]) · head_scale[h]   (head_scale optional)
//   out[b, i, h·Dh + d] = Σ_j P[b, h, i, j] · v[b, j, h, d]     out: [B, T, H·Dh]
//   probs: [B, H, T, T] receives P when non-null.
// Softmax in float32 with max subtraction. No T×T buffer exists unless probs is requested.
//
// Two kernels compute it. kExplicit forms each query row's T scores, normalises them to P and
// then takes P·v; it is the one that can hand P out, so it runs whenever probs is requested.
// kFlash (attention_flash.cc) never forms a whole score row: it walks the keys in blocks with an
// online softmax and divides by the sum at the end, so its `out` differs from kExplicit's by
// float rounding only (both are tested against the double reference). kAuto picks kFlash when
// probs is null.
//
// A third, kAmxBf16 (attention_amx.h), rounds q, k, v and P to bfloat16 and runs both products on
// AMX tiles. It is for models whose weights are already bf16 or int8 (their error budget is bf16's
// or larger), so kAuto picks it only when the caller asks for AttentionPrecision::kBf16 and it can
// run (attention_amx_usable: AMX on and enabled, no probs, Dh % 32 == 0, T ≤ 2048); float32
// models keep float32 attention.
#pragma once
#include "cpu/cpu_features.h"
#include "cpu/op_args.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace cpu {

enum class AttentionKernel { kAuto, kExplicit, kFlash, kAmxBf16 };
// What kAuto may trade: kFloat32 keeps float32 arithmetic throughout; kBf16 allows the bf16 AMX
// kernel where it runs (else the float32 ones).
enum class AttentionPrecision { kFloat32, kBf16 };

void attention(const AttentionArgs& a, ThreadPool& pool);  // default_isa(), kAuto
// A specific path. Explicit: avx512 has its own kernel, the others share the portable one. Flash:
// avx512 and avx2 have their own, scalar and neon share the portable one. kFlash with probs set
// is refused (it cannot produce them), and kAmxBf16 where attention_amx_usable says no.
void attention(const AttentionArgs& a, ThreadPool& pool, Isa isa, AttentionKernel kernel = AttentionKernel::kAuto,
               AttentionPrecision precision = AttentionPrecision::kFloat32);
// The kernel kAuto runs for these arguments.
AttentionKernel attention_auto_kernel(const AttentionArgs& a, Isa isa, AttentionPrecision precision);
// The flash kernel alone (attention_flash.cc); called by attention() after its argument checks.
// Both kernels' work for the thread pool (thread_pool.h): 4·B·H·T²·Dh flops (q·kᵀ and P·v).
int64_t attention_work(const AttentionArgs& a);
void attention_flash(const AttentionArgs& a, ThreadPool& pool, Isa isa);

}  // namespace cpu
}  // namespace vitmsn
