// LayerNorm over the last dimension.
//
//   y[r, :] = (x[r, :] − mean_r) / sqrt(var_r + eps) · gamma + beta,   r < rows
//   mean_r = Σ_i x[r, i] / D,  var_r = Σ_i (x[r, i] − mean_r)² / D  (biased, as PyTorch)
//   x, y: rows×D dense (y may alias x); gamma, beta: [D].
#pragma once
#include "cpu/cpu_features.h"
#include "cpu/op_args.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace cpu {

void layernorm(const LayerNormArgs& a, ThreadPool& pool);  // default_isa()
void layernorm(const LayerNormArgs& a, ThreadPool& pool, Isa isa);
// The same rows on the calling thread only (for ops that normalise their own rows inside a task).
void layernorm_rows(const LayerNormArgs& a, Isa isa);

}  // namespace cpu
}  // namespace vitmsn
