// The attention half of a layer as one CPU op (Backend::qkv_attention, math in QkvAttentionArgs):
//
//   qkv = a·Wqkvᵀ + bqkv;  out = attention(qkv)
//
// Fused where it pays (the AVX-512 path, float32 weights, head dim a multiple of 32, no attention
// probabilities asked, at least one (image, head) per thread): one task per (image, head) projects
// that head's q, k and v (its 3·Dh/32 weight panels, over the image's packed rows) straight into
// the layouts the flash kernel reads — q rows, Kᵀ blocks, V rows, in this core's L2 — and runs the
// flash attention on them. The M × 3·H·Dh qkv never exists, and nothing is read across cores or
// from memory but the weights. Elsewhere: the GEMM into an M×3·H·Dh buffer from `buffers` (and
// an M×D one for the LayerNorm in front; null: allocated for the call), then attention() — with
// AttentionPrecision::kBf16 when the weights are bf16 or int8 (the AMX bf16 kernel where it runs).
#pragma once
#include "cpu/cpu_features.h"
#include "cpu/op_args.h"
#include "cpu/scratch.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace cpu {

enum class QkvAttentionMode {
  kAuto,     // fused where it pays (above)
  kFused,    // fused whenever the path has it (tests); throws ERR_INTERNAL where it does not
  kUnfused,  // the GEMM, then attention()
};

// VITMSN_CPU_QKV_ATTENTION=fused|unfused (for measuring the fusion), else kAuto.
QkvAttentionMode qkv_attention_mode_from_env();
// Whether `isa` has a fused qkv + attention for these arguments.
bool qkv_attention_fusable(Isa isa, const QkvAttentionArgs& a);
void qkv_attention(const QkvAttentionArgs& a, ThreadPool& pool, Isa isa,
                   QkvAttentionMode mode = QkvAttentionMode::kAuto, OpBuffers* buffers = nullptr);

}  // namespace cpu
}  // namespace vitmsn
