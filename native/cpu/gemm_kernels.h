// The per-ISA halves of the GEMM (gemm.cc is the driver that splits the work into blocks):
//
//   C[m, n] = epilogue(Σ_k A[m, k] · W[n, k] + bias[n]) + residual[m, n]
//   for m in [m0, m1) and n in panels [p0, p1) of a PackedLinear (n < N).
//
// Each block function packs a tile of MR rows of A (transposed to [K][MR], or to bf16 pairs
// [K2][MR] for a bf16 weight) into `a_pack`, then runs its MR×32 register microkernel over every
// panel of the block with the whole K in registers, so each C element is finished in registers,
// epilogue included, and written exactly once by one thread: that makes residual == C safe.
// Every path computes the same math; the bf16 weight paths round A to bf16 as well, so products
// are exact in float32 and paths differ only in summation order.
//
// Each ISA lives in its own .cc, compiled for that ISA with `#pragma GCC target` (works the same in
// the CMake and gyp builds) and called only when cpu_features() says the CPU can run it. Those
// files use intrinsics and their own static functions only — no std:: templates, whose instances
// compiled for AVX-512 could be merged by the linker into code that runs on older CPUs.
#pragma once
#include <cstdint>

#include "cpu/packed_linear.h"

namespace vitmsn {
namespace cpu {

struct GemmBlock {
  const float* A = nullptr;
  int64_t lda = 0;
  const PackedLinear* W = nullptr;
  const float* bias = nullptr;
  const float* residual = nullptr;  // may alias C
  float* C = nullptr;               // ldc = N
  int64_t m0 = 0, m1 = 0, p0 = 0, p1 = 0;
  bool gelu = false;
  float* a_pack = nullptr;  // scratch of kMaxMR · (K + 2) floats
};

constexpr int kMaxMR = 16;

// Rows per register tile of each path (the driver sizes row blocks as multiples of it).
constexpr int kMrScalar = 4, kMrAvx2 = 6, kMrAvx512 = 14, kMrNeon = 4;

void gemm_block_scalar(const GemmBlock& b);
void gemm_block_avx2(const GemmBlock& b);
void gemm_block_avx512(const GemmBlock& b);    // bf16 weights need avx512_bf16, else the driver uses scalar
void gemm_block_neon(const GemmBlock& b);
bool gemm_avx512_has_bf16_kernel();            // compiled with a compiler that knows avx512bf16

// The exact GELU the epilogues use in scalar code: 0.5·x·(1 + erf(x/√2)) with std::erf.
float gelu_exact(float x);

}  // namespace cpu
}  // namespace vitmsn
