// Multi-head self-attention core (no mask), from a fused QKV projection.
//
//   qkv: [B, T, 3·H·Dh] — per token: q heads, then k heads, then v heads, each H×Dh head-major
//   S[b, h, i, j] = (Σ_d q[b, i, h, d] · k[b, j, h, d]) · scale
//   P[b, h, i, :] = softmax_j(S[b, h, i, :]) · head_scale[h]   (head_scale optional)
//   out[b, i, h·Dh + d] = Σ_j P[b, h, i, j] · v[b, j, h, d]     out: [B, T, H·Dh]
//   probs: [B, H, T, T] receives P when non-null.
// Softmax in float32 with max subtraction. No T×T buffer exists unless probs is requested.
#pragma once
#include "backend/backend.h"
#include "cpu/cpu_features.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace cpu {

void attention(const AttentionArgs& a, ThreadPool& pool);  // default_isa()
// A specific path (avx512 has its own kernel; the others share the portable one).
void attention(const AttentionArgs& a, ThreadPool& pool, Isa isa);

}  // namespace cpu
}  // namespace vitmsn
