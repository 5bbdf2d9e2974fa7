// The MLP op's driver (see mlp.h): picks fused or two GEMMs, and for the fused path splits the rows
// into blocks, gives every thread its packing and hidden-tile buffers, and runs the ISA's rows
// function per block.
#include "cpu/mlp.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "cpu/gemm.h"
#include "cpu/gemm_kernels.h"
#include "cpu/scratch.h"
#include "engine/error.h"

namespace vitmsn {
namespace cpu {
namespace {

struct MlpATag;
struct MlpHiddenTag;

void check(const MlpArgs& a) {
  if (a.M < 0 || a.D < 1 || a.I < 1) throw Error(codes::kInternal, "mlp: bad dimensions");
  if (!a.W1 || !a.W2 || a.W1->N != a.I || a.W1->K != a.D || a.W2->N != a.D || a.W2->K != a.I) {
    throw Error(codes::kInternal, "mlp: weight shapes do not match D = " + std::to_string(a.D) +
                                      ", I = " + std::to_string(a.I));
  }
  if (a.M > 0 && (!a.a || !a.out)) throw Error(codes::kInternal, "mlp: null operand");
}

void two_gemms(const MlpArgs& a, ThreadPool& pool, Isa isa) {
  if (!a.hidden) throw Error(codes::kInternal, "mlp: the unfused path needs the hidden buffer");
  GemmArgs g;
  g.A = a.a, g.lda = a.D, g.Wp = a.W1, g.bias = a.b1, g.C = a.hidden, g.M = a.M, g.N = a.I, g.K = a.D;
  g.epilogue = Epilogue::kGelu;
  gemm(g, pool, isa);
  g = GemmArgs();
  g.A = a.hidden, g.lda = a.I, g.Wp = a.W2, g.bias = a.b2, g.C = a.out, g.residual = a.out;
  g.M = a.M, g.N = a.D, g.K = a.I;
  gemm(g, pool, isa);
}

}  // namespace

MlpMode mlp_mode_from_env() {
  const char* v = std::getenv("VITMSN_CPU_MLP");
  if (v && std::string(v) == "unfused") return MlpMode::kUnfused;
  if (v && std::string(v) == "fused") return MlpMode::kFused;
  return MlpMode::kAuto;
}

bool mlp_fusable(Isa isa, const MlpArgs& a) {
  return isa == Isa::kAvx512 && a.W1 && a.W2 && a.W1->dtype == WeightDtype::kFloat32 &&
         a.W2->dtype == WeightDtype::kFloat32;
}

void mlp(const MlpArgs& a, ThreadPool& pool, Isa isa, MlpMode mode) {
  check(a);
  if (a.M == 0) return;
  constexpr int64_t mr = kMrAvx512, rows_per_block = kMlpTilesAvx512 * kMrAvx512;
  const int64_t blocks = (a.M + rows_per_block - 1) / rows_per_block;
  bool fuse = false;
  switch (mode) {
    case MlpMode::kUnfused: break;
    case MlpMode::kFused:
      if (!mlp_fusable(isa, a)) throw Error(codes::kInternal, "mlp: this path has no fused MLP");
      fuse = true;
      break;
    case MlpMode::kAuto:
      // Fewer blocks than that (batch 1): each thread would read every weight for a handful of
      // rows, where the column-split GEMMs read each weight once in all.
      fuse = mlp_fusable(isa, a) && blocks >= 4 * pool.size();
      break;
  }
  if (!fuse) {
    two_gemms(a, pool, isa);
    return;
  }
  const auto* W1 = static_cast<const PackedLinear*>(a.W1);
  const auto* W2 = static_cast<const PackedLinear*>(a.W2);
  const int64_t a_stride = a_tile_stride(mr, a.D), h_stride = a_tile_stride(mr, a.I);
  pool.parallel_for(blocks, [&](int64_t b0, int64_t b1) {
    float* a_tiles = thread_scratch<MlpATag>(static_cast<size_t>(kMlpTilesAvx512 * a_stride), "mlp");
    float* h_tiles = thread_scratch<MlpHiddenTag>(static_cast<size_t>(kMlpTilesAvx512 * h_stride), "mlp");
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t m0 = blk * rows_per_block, rows = std::min(rows_per_block, a.M - m0);
      GemmBlock fc1;
      fc1.A = a.a + m0 * a.D, fc1.lda = a.D, fc1.W = W1, fc1.bias = a.b1, fc1.gelu = true;
      fc1.m0 = 0, fc1.m1 = rows, fc1.a_tiles = a_tiles, fc1.tile_stride = a_stride;
      fc1.c_tiles = h_tiles, fc1.c_tile_stride = h_stride;
      GemmBlock fc2;
      fc2.W = W2, fc2.bias = a.b2, fc2.C = a.out + m0 * a.D, fc2.residual = fc2.C;
      fc2.m0 = 0, fc2.m1 = rows, fc2.a_tiles = h_tiles, fc2.tile_stride = h_stride;
      mlp_rows_avx512(fc1, fc2);
    }
  });
}

}  // namespace cpu
}  // namespace vitmsn
