// GEMM driver: C = epilogue(A·Wᵀ + bias) + residual (shapes in gemm.h), over a weight prepared
// once at load (PackedLinear: 32-column panels, float32 or bfloat16) or, for an unprepared W,
// packed on the spot.
//
// The work is a grid of blocks, each (rows [m0, m1)) × (panels [p0, p1)); the per-ISA block
// function (gemm_kernels.h) packs MR rows of A at a time and sweeps them across the block's
// panels. Blocks are ordered panel-block-major, so the contiguous chunk of blocks a thread takes
// from the pool mostly shares one set of panels, which then stays in its core's L2.
#include "cpu/gemm.h"

#include <algorithm>
#include <memory>
#include <string>

#include "cpu/gemm_kernels.h"
#include "cpu/scratch.h"
#include "engine/error.h"

namespace vitmsn {
namespace cpu {
namespace {

void check(const GemmArgs& a) {
  if (a.M < 0 || a.N < 0 || a.K < 0) throw Error(codes::kInternal, "gemm: negative dimension");
  if (a.M == 0 || a.N == 0) return;
  if (a.lda < a.K) throw Error(codes::kInternal, "gemm: lda " + std::to_string(a.lda) + " < K " + std::to_string(a.K));
  if (!a.C || (a.K > 0 && (!a.A || (!a.W && !a.Wp)))) throw Error(codes::kInternal, "gemm: null operand");
  if (a.Wp && (a.Wp->N != a.N || a.Wp->K != a.K)) throw Error(codes::kInternal, "gemm: prepared weight shape mismatch");
}

using BlockFn = void (*)(const GemmBlock&);

BlockFn block_fn(Isa isa, WeightDtype dtype, int* mr) {
  switch (isa) {
    case Isa::kAvx512:
      if (dtype == WeightDtype::kFloat32 || (cpu_features().avx512_bf16 && gemm_avx512_has_bf16_kernel())) {
        *mr = kMrAvx512;
        return gemm_block_avx512;
      }
      *mr = kMrAvx2;  // bf16 weights without avx512_bf16: widen to fp32 in the AVX2 kernel
      return gemm_block_avx2;
    case Isa::kAvx2: *mr = kMrAvx2; return gemm_block_avx2;
    case Isa::kNeon: *mr = kMrNeon; return gemm_block_neon;
    default: *mr = kMrScalar; return gemm_block_scalar;
  }
}

}  // namespace

Isa default_isa() {
  static const Isa isa = select_isa();
  return isa;
}

void gemm(const GemmArgs& a, ThreadPool& pool) { gemm(a, pool, default_isa()); }

void gemm(const GemmArgs& a, ThreadPool& pool, Isa isa) {
  check(a);
  const int64_t M = a.M, N = a.N, K = a.K;
  if (M == 0 || N == 0) return;
  if (K == 0) {  // nothing to multiply: C = epilogue(bias) + residual
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        float v = a.bias ? a.bias[n] : 0.0f;
        if (a.epilogue == Epilogue::kGelu) v = gelu_exact(v);
        if (a.residual) v += a.residual[m * N + n];
        a.C[m * N + n] = v;
      }
    return;
  }
  std::unique_ptr<PackedLinear> own;
  const PackedLinear* W = static_cast<const PackedLinear*>(a.Wp);
  if (!W) {
    own = PackedLinear::pack(a.W, N, K, WeightDtype::kFloat32);
    W = own.get();
  }
  int mr = 1;
  const BlockFn fn = block_fn(isa, W->dtype, &mr);

  // Block grid: 4 register tiles of rows × 4 panels (128 columns) — big enough that the A tile
  // packing (MR·K per tile, reused over 4 panels) and the per-block call are noise, small enough
  // that ViT-S at batch 1 (197 rows) still gives ~36 blocks for the threads to balance.
  const int64_t panels = W->panels;
  int64_t pb = std::min<int64_t>(4, panels);
  int64_t mb = 4 * mr;
  const int64_t threads = pool.size();
  while (((M + mb - 1) / mb) * ((panels + pb - 1) / pb) < 4 * threads && mb > mr) mb -= mr;
  while (((M + mb - 1) / mb) * ((panels + pb - 1) / pb) < 4 * threads && pb > 1) --pb;
  const int64_t m_blocks = (M + mb - 1) / mb, p_blocks = (panels + pb - 1) / pb;
  const int64_t tasks = m_blocks * p_blocks;

  auto body = [&](int64_t t0, int64_t t1) {
    std::unique_ptr<float[]> scratch = alloc_scratch(static_cast<size_t>(kMaxMR * (K + 2) + 16), "gemm");
    GemmBlock blk;
    blk.A = a.A, blk.lda = a.lda, blk.W = W, blk.bias = a.bias, blk.residual = a.residual, blk.C = a.C;
    blk.gelu = a.epilogue == Epilogue::kGelu;
    // 64-byte aligned view of the scratch.
    blk.a_pack = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch.get()) + 63) & ~uintptr_t(63));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t pbi = t / m_blocks, mbi = t % m_blocks;
      blk.m0 = mbi * mb, blk.m1 = std::min(M, blk.m0 + mb);
      blk.p0 = pbi * pb, blk.p1 = std::min(panels, blk.p0 + pb);
      fn(blk);
    }
  };
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (tasks == 1 || flops < 4e5) {
    body(0, tasks);
  } else {
    pool.parallel_for(tasks, body);
  }
}

}  // namespace cpu
}  // namespace vitmsn
