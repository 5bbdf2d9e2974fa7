// The per-ISA halves of the GEMM (gemm.cc is the driver that splits the work into blocks):
//
//   C[m, n] = epilogue(Σ_k A[m, k] · W[n, k] + bias[n]) + residual[m, n]
//   for m in [m0, m1) and n in panels [p0, p1) of a PackedLinear (n < N).
//
// A is packed first, once per GEMM, by the same path's pack function: tiles of MR rows, each
// transposed to [K][MR] (or to bf16 pairs [K2][MR] on the avx512 bf16 path), so a microkernel's
// broadcasts read consecutive addresses. Each block function then runs its MR×32 register
// microkernel for every row tile × panel of the block with the whole K in registers, so each C element is finished in
// registers, epilogue included, and written exactly once by one thread: that makes residual == C safe. Every path
// computes the same math; the bf16 weight paths round A to bf16 as well, so products are exact in float32 and paths
// differ only in summation order.
//
// Each ISA lives in its own .cc, compiled for that ISA in the frame of isa_target.h (the same in
// the CMake and gyp builds, and only on its architecture) and called only when cpu_features() says
// the CPU can run it. Those files use intrinsics and their own static functions only — no std::
// templates, whose instances compiled for AVX-512 could be merged by the linker into code that
// runs on older CPUs.
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
  float* a_tiles = nullptr;  // packed A: tile t (rows t·MR ..) at a_tiles + t · tile_stride
  int64_t tile_stride = 0;   // floats per tile: MR · (K + 1), a multiple of 16
  // > 0: run the block's panels in groups of this many — every row tile of one group, then the
  // next — and prefetch the next group's weights toward L2 while computing this one. For batch 1,
  // where each weight is read by one core once per forward and arrives from memory (only the
  // AVX-512 float32 kernel implements it; the driver sets it only for that path).
  int64_t panel_group = 0;
  // > 0, with panel_group: K in chunks of this many, the partial sums kept in k_partial (M × N)
  // between chunks and the epilogue applied after the last, so that only M × k_chunk of the packed
  // A has to stay in L2 (batch-1 fc2: A is M × 3072).
  int64_t k_chunk = 0;
  float* k_partial = nullptr;
  // Set: the finished tiles (bias and GELU applied; no residual) go into the packed A layout of a
  // following GEMM instead of C — the fused MLP's hidden activations, which never exist row-major.
  // Only the AVX-512 float32 tile implements it (mlp_avx512.cc is its one user).
  float* c_tiles = nullptr;
  int64_t c_tile_stride = 0;
  int64_t c_n0 = 0;  // the column c_tiles starts at (its k = 0 for the following GEMM)
};

constexpr int kMaxMR = 16;
// Floats per packed A tile of `mr` rows (room for the bf16 pair layout too), 64-byte multiple.
inline int64_t a_tile_stride(int mr, int64_t K) { return (mr * (K + 1) + 15) / 16 * 16; }

// Rows per register tile of each path (the driver sizes row blocks as multiples of it).
constexpr int kMrScalar = 4, kMrAvx2 = 6, kMrAvx512 = 14, kMrNeon = 4;

// Block functions: rows [m0, m1) (m0 a multiple of MR) × panels [p0, p1).
constexpr int64_t kPanelGroupAvx512 = 2;  // panels per group (measured best of 1–3 and 96–384 KiB)
void gemm_block_scalar(const GemmBlock& b);
void gemm_block_avx2(const GemmBlock& b);
void gemm_block_avx512(const GemmBlock& b);  // bf16 weights need avx512_bf16, else the driver uses avx2
void gemm_block_neon(const GemmBlock& b);
// Pack functions: row tiles [t0, t1) of A into b.a_tiles, in the layout that path's blocks read.
void gemm_pack_a_scalar(const GemmBlock& b, int64_t t0, int64_t t1);
void gemm_pack_a_avx2(const GemmBlock& b, int64_t t0, int64_t t1);
void gemm_pack_a_avx512(const GemmBlock& b, int64_t t0, int64_t t1);
void gemm_pack_a_neon(const GemmBlock& b, int64_t t0, int64_t t1);
// The generic [K][mr] float layout (bf16 weights: A rounded to bf16 values), shared by the
// scalar, AVX2 and NEON paths.
void pack_a_generic(const GemmBlock& b, int mr, int64_t t0, int64_t t1);
bool gemm_avx512_has_bf16_kernel();  // compiled with a compiler that knows avx512bf16
// AMX (bf16 weights, K a multiple of 32): row tiles of 32 rows of A as bf16 row-major [32][K];
// each block computes 32×32 outputs in four 16×16 fp32 accumulator tiles.
constexpr int kMrAmx = 32;
void gemm_block_amx(const GemmBlock& b);
void gemm_pack_a_amx(const GemmBlock& b, int64_t t0, int64_t t1);

// Fused MLP rows (mlp.h): fc1 (A, lda, W1, bias, gelu, m0 = 0, m1 = rows ≤ kMlpTilesAvx512·MR,
// a_tiles for A's packing, c_tiles for the hidden tiles) then fc2 (W2, bias, C and residual at the
// block's first row, a_tiles = fc1's c_tiles). AVX-512, float32 weights only.
constexpr int64_t kMlpTilesAvx512 = 4;
void mlp_rows_avx512(const GemmBlock& fc1, const GemmBlock& fc2);
// Fused MLP, one slice of hidden columns [c0, c1) for all rows (batch 1, mlp.h): fc1 (a_tiles
// already packed, W1, bias, gelu, m0 = 0, m1 = M, panels p0 .. p1 = the slice, c_tiles / c_n0 = c0
// for the slice's hidden tiles) then fc2's partial sums over the slice's k into fc2.k_partial
// (M × D rows; fc2: W2, a_tiles = fc1's c_tiles, m0 = 0, m1 = M). AVX-512, float32 weights only.
void mlp_slice_avx512(const GemmBlock& fc1, const GemmBlock& fc2, int64_t c0, int64_t c1);

// The exact GELU the epilogues use in scalar code: 0.5·x·(1 + erf(x/√2)) with std::erf.
float gelu_exact(float x);

}  // namespace cpu
}  // namespace vitmsn
