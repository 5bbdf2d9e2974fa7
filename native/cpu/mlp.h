// The transformer MLP block with its residual, as one CPU op (Backend::mlp):
//
//   out[m, :] += W2·gelu(W1·a[m, :] + b1) + b2        (a: M×D, W1 [I, D], W2 [D, I], out: M×D)
//
// Fused where it pays (the AVX-512 path, float32 weights, at least 4 row blocks per thread — batch 8
// of a ViT, not batch 1): rows go in blocks of kMlpTilesAvx512 register tiles, one block per task,
// and each block runs fc1 into packed hidden tiles held in its core's L2 and fc2 from them
// (mlp_avx512.cc). At batch 8 the M×I hidden activations (10–19 MB) would otherwise be written to
// memory, read back and packed again by fc2. Elsewhere: two GEMMs through a.hidden.
#pragma once
#include "backend/backend.h"
#include "cpu/cpu_features.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace cpu {

enum class MlpMode {
  kAuto,     // fused where it pays (above)
  kFused,    // fused whenever the path has it (tests); throws ERR_INTERNAL where it does not
  kUnfused,  // two GEMMs
};

// VITMSN_CPU_MLP=unfused → kUnfused (for measuring the fusion), else kAuto.
MlpMode mlp_mode_from_env();
// Whether `isa` has a fused MLP for these weights.
bool mlp_fusable(Isa isa, const MlpArgs& a);
void mlp(const MlpArgs& a, ThreadPool& pool, Isa isa, MlpMode mode = MlpMode::kAuto);

}  // namespace cpu
}  // namespace vitmsn
