// Portable GEMM block (math in gemm_kernels.h): plain C++ over the packed panels, MR = 4 rows ×
// 32 columns of accumulators, written so the compiler's auto-vectoriser can use whatever the
// baseline ISA offers. This is the path for CPUs without AVX2 and the reference-shaped fallback
// for bf16 weights on CPUs without avx512_bf16 (W and A rounded to bf16, products exact in fp32).
#include <cmath>

#include "cpu/gemm_kernels.h"

namespace vitmsn {
namespace cpu {
namespace {

constexpr int MR = kMrScalar;

void store_tile(const GemmBlock& b, int rows, int64_t m, int64_t n0, const float (&acc)[MR][kPanel]) {
  const int64_t N = b.W->N;
  for (int i = 0; i < rows; ++i) {
    float* c = b.C + (m + i) * N;
    const float* r = b.residual ? b.residual + (m + i) * N : nullptr;
    for (int j = 0; j < kPanel && n0 + j < N; ++j) {
      float v = acc[i][j];
      if (b.bias) v += b.bias[n0 + j];
      if (b.gelu) v = gelu_exact(v);
      if (r) v += r[n0 + j];
      c[n0 + j] = v;
    }
  }
}

}  // namespace

float gelu_exact(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }

void pack_a_generic(const GemmBlock& b, int mr, int64_t t0, int64_t t1) {
  const int64_t K = b.W->K, M = b.m1;
  const bool bf16 = b.W->dtype == WeightDtype::kBFloat16;
  for (int64_t t = t0; t < t1; ++t) {
    float* ap = b.a_tiles + t * b.tile_stride;
    for (int i = 0; i < mr; ++i) {
      const int64_t m = t * mr + i;
      if (m >= M) {
        for (int64_t k = 0; k < K; ++k) ap[k * mr + i] = 0.0f;
        continue;
      }
      const float* a = b.A + m * b.lda;
      if (bf16) {
        for (int64_t k = 0; k < K; ++k) ap[k * mr + i] = from_bf16(to_bf16(a[k]));
      } else {
        for (int64_t k = 0; k < K; ++k) ap[k * mr + i] = a[k];
      }
    }
  }
}

void gemm_pack_a_scalar(const GemmBlock& b, int64_t t0, int64_t t1) { pack_a_generic(b, MR, t0, t1); }

void gemm_block_scalar(const GemmBlock& b) {
  const PackedLinear& W = *b.W;
  const int64_t K = W.K;
  const bool bf16 = W.dtype == WeightDtype::kBFloat16;
  for (int64_t m = b.m0; m < b.m1; m += MR) {
    const int rows = static_cast<int>(b.m1 - m < MR ? b.m1 - m : MR);
    const float* ap = b.a_tiles + (m / MR) * b.tile_stride;
    for (int64_t p = b.p0; p < b.p1; ++p) {
      float acc[MR][kPanel] = {};
      if (!bf16) {
        const float* bp = W.f32() + p * K * kPanel;
        for (int64_t k = 0; k < K; ++k)
          for (int i = 0; i < MR; ++i) {
            const float a = ap[k * MR + i];
            for (int j = 0; j < kPanel; ++j) acc[i][j] += a * bp[k * kPanel + j];
          }
      } else {
        const uint16_t* bp = W.bf16() + p * W.K2 * 2 * kPanel;
        for (int64_t k = 0; k < K; ++k) {
          const uint16_t* row = bp + (k / 2) * 2 * kPanel + (k & 1);
          float w[kPanel];
          for (int j = 0; j < kPanel; ++j) w[j] = from_bf16(row[2 * j]);
          for (int i = 0; i < MR; ++i) {
            const float a = ap[k * MR + i];
            for (int j = 0; j < kPanel; ++j) acc[i][j] += a * w[j];
          }
        }
      }
      store_tile(b, rows, m, p * kPanel, acc);
    }
  }
}

}  // namespace cpu
}  // namespace vitmsn
