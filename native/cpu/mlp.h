// The transformer MLP block with its residual, as one CPU op (Backend::mlp):
//
//   out[m, :] += W2·gelu(W1·a[m, :] + b1) + b2        (a: M×D, W1 [I, D], W2 [D, I], out: M×D)
//
// Fused on the AVX-512 path with float32 weights, two ways (mlp_avx512.cc); the hidden
// activations (M × I: 1.2–19 MB for ViT-S/B at batch 1–8) never go to memory, and fc2 packs no A:
//  - row blocks (≥ 4 blocks per thread: batch ≳ 4): rows go in blocks of kMlpTilesAvx512 register
//    tiles, one block per task, each running fc1 into packed hidden tiles in its core's L2 and fc2
//    from them;
//  - hidden slices (fewer rows: batch 1): W1's panels are cut into 2 slices per thread; a task
//    runs fc1 for its slice over all rows into its own hidden tiles, then fc2's partial sums over
//    that slice of k; the partials are added up (in slice order: deterministic) with b2 into out.
//    Every weight is still read once in all, as in the column-split GEMMs.
// Elsewhere: two GEMMs through a hidden M×I buffer from `buffers` (and an M×D one for the LayerNorm
// in front; null: allocated for the call).
#pragma once
#include "cpu/cpu_features.h"
#include "cpu/op_args.h"
#include "cpu/scratch.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace cpu {

enum class MlpMode {
  kAuto,         // fused where it pays (above)
  kFused,        // fused in row blocks whenever the path has it (tests); throws ERR_INTERNAL where it does not
  kFusedSlices,  // fused in hidden slices, likewise
  kUnfused,      // two GEMMs
};

// VITMSN_CPU_MLP=unfused|fused|slices → kUnfused|kFused|kFusedSlices (for measuring), else kAuto.
MlpMode mlp_mode_from_env();
// Whether `isa` has a fused MLP for these weights.
bool mlp_fusable(Isa isa, const MlpArgs& a);
void mlp(const MlpArgs& a, ThreadPool& pool, Isa isa, MlpMode mode = MlpMode::kAuto, OpBuffers* buffers = nullptr);

}  // namespace cpu
}  // namespace vitmsn
