// GEMM driver: C = epilogue(A·Wᵀ + bias) + residual (shapes in gemm.h), over a weight prepared
// once at load (PackedLinear: 32-column panels, float32 or bfloat16) or, for an unprepared W,
// packed on the spot.
//
// Two parallel steps: (1) A is packed into row tiles of MR rows by the path's pack function
// (gemm_kernels.h) — once per GEMM, not once per column block, since re-packing A per block cost
// about a third of the multiply time at K = 384; (2) a grid of blocks, each (rows [m0, m1)) ×
// (panels [p0, p1)), runs the path's microkernel over its tiles. Blocks are ordered
// panel-block-major, so the contiguous chunk of blocks a thread takes from the pool mostly shares
// one set of panels, which then stays in its core's L2 while A tiles stream past.
#include "cpu/gemm.h"

#include <algorithm>
#include <memory>
#include <string>

#include "common/error.h"
#include "cpu/gemm_int8.h"
#include "cpu/gemm_kernels.h"
#include "cpu/isa_target.h"
#include "cpu/scratch.h"

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

struct Path {
  void (*block)(const GemmBlock&);
  void (*pack)(const GemmBlock&, int64_t, int64_t);
  int mr;
  int64_t panel_group = 0;  // > 0 where the block function runs panel groups (GemmBlock::panel_group)
};

Path path_for(Isa isa, WeightDtype dtype, int64_t K) {
  if constexpr (kX86Kernels) {
    if (isa == Isa::kAvx512) {
      if (dtype == WeightDtype::kBFloat16 && K % 32 == 0 && amx_enabled() && gemm_avx512_has_bf16_kernel()) {
        return {gemm_block_amx, gemm_pack_a_amx, kMrAmx};
      }
      if (dtype == WeightDtype::kFloat32) return {gemm_block_avx512, gemm_pack_a_avx512, kMrAvx512, kPanelGroupAvx512};
      if (cpu_features().avx512_bf16 && gemm_avx512_has_bf16_kernel()) {
        return {gemm_block_avx512, gemm_pack_a_avx512, kMrAvx512};
      }
      // bf16 weights without avx512_bf16: widened to fp32 in the AVX2 kernel.
      return {gemm_block_avx2, gemm_pack_a_avx2, kMrAvx2};
    }
    if (isa == Isa::kAvx2) return {gemm_block_avx2, gemm_pack_a_avx2, kMrAvx2};
  }
  if constexpr (kArm64Kernels) {
    if (isa == Isa::kNeon) return {gemm_block_neon, gemm_pack_a_neon, kMrNeon};
  }
  return {gemm_block_scalar, gemm_pack_a_scalar, kMrScalar};
}

// The packed copy of A, per calling thread (each forward runs on its own thread), kept between
// calls up to kKeepFloats (4 MiB: batch-1 ViT-B fits), sparing a fresh mmap and its page faults
// per GEMM; bigger ones (large batches) are allocated per call so no thread keeps tens of MB.
constexpr size_t kKeepFloats = size_t(1) << 20;
// Most bytes of packed A a K chunk of the batch-1 path keeps in L2 (GemmBlock::k_chunk).
constexpr int64_t kKChunkBytes = int64_t(768) << 10;

struct PackedATag;
struct PartialSumsTag;

float* packed_a_buffer(size_t floats, std::unique_ptr<float[]>& temp) {
  if (floats > kKeepFloats) {
    temp = alloc_scratch(floats + 16, "gemm");
    return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(temp.get()) + 63) & ~uintptr_t(63));
  }
  return thread_scratch<PackedATag>(floats, "gemm");
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
  if (W->dtype == WeightDtype::kInt8) return gemm_int8(a, pool, int8_path_for(isa));
  const Path path = path_for(isa, W->dtype, K);
  const int mr = path.mr;

  // Block grid: 4 register tiles of rows × pb panels — big enough that the per-block call is
  // noise; shrunk below (rows first, then panels) until there are ≥ 4 blocks per thread.
  const int64_t panels = W->panels;
  // Panels per block: as many as fit in ~1 MiB (half a core's L2) up to 16, at least 4. Every
  // block re-reads its rows' A tiles, so wider blocks mean fewer passes of A through the caches:
  // at batch 8 (A ≈ 2.4–9.7 MB, out of L2) going from 4 to up to 16 panels saved ~10%.
  int64_t pb =
      std::min<int64_t>(std::max<int64_t>(4, std::min<int64_t>(16, (int64_t(1) << 20) / (K * kPanel * 4))), panels);
  int64_t mb = 4 * mr;
  int64_t group = 0;
  const int64_t threads = pool.size();
  if (N > M && path.panel_group > 0) {
    // Fewer rows than columns (batch 1): every weight is read by one core, once, from memory. About
    // two blocks per thread, each all rows × a run of panels, computed in panel groups whose next
    // group is prefetched meanwhile (GemmBlock::panel_group): ~8% off a ViT-B/16 batch-1 forward
    // against the layout below, which re-reads up to 1 MiB of panels from L2 per row tile.
    mb = (M + mr - 1) / mr * mr;
    pb = (panels + 2 * threads - 1) / (2 * threads);
    group = path.panel_group;
  } else {
    if (N > M) {
      // Fewer rows than columns (batch 1): the weights, not A, are what streams from memory. Each
      // block takes all rows and a slice of panels, so every panel is read from L3 by one core once
      // and reused from its L2 over all row tiles, while the (small) A is shared by both.
      mb = (M + mr - 1) / mr * mr;
      pb = std::max<int64_t>(1, std::min<int64_t>(pb, panels / (4 * threads)));
    }
    while (((M + mb - 1) / mb) * ((panels + pb - 1) / pb) < 4 * threads && mb > mr) mb -= mr;
    while (((M + mb - 1) / mb) * ((panels + pb - 1) / pb) < 4 * threads && pb > 1) --pb;
  }
  const int64_t m_blocks = (M + mb - 1) / mb, p_blocks = (panels + pb - 1) / pb;
  const int64_t tasks = m_blocks * p_blocks;

  const int64_t tiles = (M + mr - 1) / mr;
  GemmBlock blk;
  blk.A = a.A, blk.lda = a.lda, blk.W = W, blk.bias = a.bias, blk.residual = a.residual, blk.C = a.C;
  blk.gelu = a.epilogue == Epilogue::kGelu;
  blk.panel_group = group;
  // Batch-1 panel groups re-read all of packed A for every group: past ~1 MiB (fc2's M × 3072)
  // that comes from L3, so K goes in chunks whose slice of A stays in L2 (kKChunkBytes), the
  // partial sums in a per-thread M × N buffer.
  if (group > 0 && M * K * 4 > kKChunkBytes && M <= kKChunkBytes / (4 * 256)) {
    blk.k_chunk = std::max<int64_t>(256, kKChunkBytes / (M * 4) / 16 * 16);
    blk.k_partial = thread_scratch<PartialSumsTag>(static_cast<size_t>(M * N), "gemm");
  }
  blk.tile_stride = a_tile_stride(mr, K);
  std::unique_ptr<float[]> a_temp;
  blk.a_tiles = packed_a_buffer(static_cast<size_t>(tiles * blk.tile_stride), a_temp);
  GemmBlock pk = blk;
  pk.m0 = 0, pk.m1 = M;  // the pack functions take M from m1
  // Packing reads and writes each float of A once.
  pool.parallel_for(
      tiles, [&](int64_t t0, int64_t t1) { path.pack(pk, t0, t1); }, 2 * M * K);

  auto body = [&](int64_t t0, int64_t t1) {
    GemmBlock b = blk;
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t pbi = t / m_blocks, mbi = t % m_blocks;
      b.m0 = mbi * mb, b.m1 = std::min(M, b.m0 + mb);
      b.p0 = pbi * pb, b.p1 = std::min(panels, b.p0 + pb);
      path.block(b);
    }
  };
  pool.parallel_for(tasks, body, 2 * M * N * K);
}

}  // namespace cpu
}  // namespace vitmsn
