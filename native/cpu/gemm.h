// GEMM with fused epilogue, the CPU backend's hot loop.
//
//   C[m, n] = epilogue(Σ_k A[m, k] · W[n, k] + bias[n]) + residual[m, n]
//   A: M×K, row stride lda ≥ K.  W: N×K dense (PyTorch Linear [out, in]).  bias: [N] or null.
//   residual: M×N dense or null, may alias C.  C: M×N dense.  epilogue: none or exact erf GELU.
// Accumulates in float32.
#pragma once
#include "backend/backend.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace cpu {

void gemm(const GemmArgs& a, ThreadPool& pool);

}  // namespace cpu
}  // namespace vitmsn
