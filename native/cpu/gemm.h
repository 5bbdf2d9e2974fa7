// GEMM with fused epilogue, the CPU backend's hot loop.
//
//   C[m, n] = epilogue(Σ_k A[m, k] · W[n, k] + bias[n]) + residual[m, n]
//   A: M×K, row stride lda ≥ K.  W: N×K dense (PyTorch Linear [out, in]), or Wp: a PackedLinear.
//   bias: [N] or null.  residual: M×N dense or null, may alias C.  C: M×N dense.
//   epilogue: none or exact erf GELU. Accumulates in float32 (bf16 weights: bf16 products, fp32 sums).
#pragma once
#include "cpu/cpu_features.h"
#include "cpu/op_args.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace cpu {

// The path select_isa() picked for this process (VITMSN_CPU_ISA or the fastest supported).
Isa default_isa();
void gemm(const GemmArgs& a, ThreadPool& pool);
// A specific path; the caller guarantees isa_supported(isa).
void gemm(const GemmArgs& a, ThreadPool& pool, Isa isa);

}  // namespace cpu
}  // namespace vitmsn
