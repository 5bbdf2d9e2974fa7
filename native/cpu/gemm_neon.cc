// NEON GEMM block (aarch64; math and contract in gemm_kernels.h). Microkernel: 4 rows × 16
// columns = 16 q-register accumulators (half a panel at a time), fused multiply-add by lane.
// bf16 weights are widened to fp32 on load. Compiled for arm64 only (isa_target.h).
#include <arm_neon.h>

#include "cpu/gemm_kernels.h"

namespace vitmsn {
namespace cpu {
namespace {

constexpr int MR = 4;

template <int R>
void tile(const GemmBlock& b, const float* ap, int64_t p, int half, int64_t m) {
  const PackedLinear& W = *b.W;
  const int64_t K = W.K;
  const bool bf16 = W.dtype == WeightDtype::kBFloat16;
  float32x4_t c[R][4];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < 4; ++j) c[i][j] = vdupq_n_f32(0.0f);
  for (int64_t k = 0; k < K; ++k) {
    float32x4_t w[4];
    if (!bf16) {
      const float* f = W.f32() + p * K * kPanel + k * kPanel + half * 16;
      for (int j = 0; j < 4; ++j) w[j] = vld1q_f32(f + 4 * j);
    } else {
      const uint16_t* h = W.bf16() + p * W.K2 * 2 * kPanel + (k / 2) * 2 * kPanel + half * 32 + (k & 1);
      for (int j = 0; j < 4; ++j) {
        float t[4];
        for (int u = 0; u < 4; ++u) t[u] = from_bf16(h[2 * (4 * j + u)]);
        w[j] = vld1q_f32(t);
      }
    }
    for (int i = 0; i < R; ++i) {
      const float32x4_t a = vdupq_n_f32(ap[k * MR + i]);
      for (int j = 0; j < 4; ++j) c[i][j] = vfmaq_f32(c[i][j], a, w[j]);
    }
  }
  const int64_t N = W.N;
  for (int i = 0; i < R; ++i) {
    float t[16];
    for (int j = 0; j < 4; ++j) vst1q_f32(t + 4 * j, c[i][j]);
    const int64_t n0 = p * kPanel + half * 16;
    float* crow = b.C + (m + i) * N;
    const float* r = b.residual ? b.residual + (m + i) * N : nullptr;
    for (int j = 0; j < 16 && n0 + j < N; ++j) {
      float v = t[j];
      if (b.bias) v += b.bias[n0 + j];
      if (b.gelu) v = gelu_exact(v);
      if (r) v += r[n0 + j];
      crow[n0 + j] = v;
    }
  }
}

}  // namespace

void gemm_pack_a_neon(const GemmBlock& b, int64_t t0, int64_t t1) { pack_a_generic(b, MR, t0, t1); }

void gemm_block_neon(const GemmBlock& b) {
  for (int64_t m = b.m0; m < b.m1; m += MR) {
    const int rows = static_cast<int>(b.m1 - m < MR ? b.m1 - m : MR);
    const float* ap = b.a_tiles + (m / MR) * b.tile_stride;
    for (int64_t p = b.p0; p < b.p1; ++p)
      for (int half = 0; half < 2; ++half) {
        if (p * kPanel + half * 16 >= b.W->N) break;
        switch (rows) {
          case 4:
            tile<4>(b, ap, p, half, m);
            break;
          case 3:
            tile<3>(b, ap, p, half, m);
            break;
          case 2:
            tile<2>(b, ap, p, half, m);
            break;
          default:
            tile<1>(b, ap, p, half, m);
            break;
        }
      }
  }
}

}  // namespace cpu
}  // namespace vitmsn
