// The int8 GEMM (dtype 'int8'): C = epilogue(A·Wᵀ + bias) + residual as gemm.h, with
//
//   W: symmetric int8 per output channel, quantised once at load (PackedLinear, kInt8):
//      s_w[n] = max_k |W[n, k]| / 127, Wq[n, k] = clamp(rint(W[n, k] / s_w[n]), −127, 127)
//   A: asymmetric uint8 per row, quantised on every call (dynamic, per token):
//      lo = min(0, min_k A[m, k]), hi = max(0, max_k A[m, k]), s_a[m] = (hi − lo) / 255 (1 for a zero row),
//      z[m] = clamp(rint(−lo / s_a[m]), 0, 255), Aq[m, k] = clamp(rint(A[m, k] · (1 / s_a[m])) + z[m], 0, 255)
//   acc[m, n] = Σ_k Aq[m, k] · Wq[n, k]   in int32 (u8 × s8: AMX TDPBUSD, AVX512-VNNI VPDPBUSD)
//   C[m, n] = epilogue(s_a[m] · s_w[n] · (acc[m, n] − z[m] · colsum_w[n]) + bias[n]) + residual[m, n]
//
// NaN or ±Inf in A are not propagated as in float32: such a row's results are finite but unspecified
// (the paths' min/max treat NaN differently). |acc| ≤ 255 · 127 · K stays below 2³¹ for K < 66 000. rint is
// round-half-even everywhere (the scalar and vector quantisers agree bit for bit). Three paths, picked at run time: AMX
// (amx_int8), AVX512-VNNI, and the scalar one (every other CPU, AVX2 included); all compute the same int32 acc, and
// differ in the float epilogue only (vector erf in GELU, summation of the float terms).
#pragma once
#include <cmath>
#include <cstdint>

#include "cpu/cpu_features.h"
#include "cpu/op_args.h"
#include "cpu/packed_linear.h"
#include "cpu/thread_pool.h"

namespace vitmsn {
namespace cpu {

enum class Int8Path { kScalar, kVnni, kAmx };
const char* int8_path_name(Int8Path p);
// The path gemm() takes for int8 weights under `isa`: AMX where amx_int8 is usable and enabled
// (VITMSN_CPU_AMX), else VNNI where avx512_vnni is, on the avx512 path; else scalar.
Int8Path int8_path_for(Isa isa);
bool int8_path_supported(Int8Path p);

// C = … as above (a.Wp an int8 PackedLinear), over `pool`, on path p (the caller checked it is supported).
void gemm_int8(const GemmArgs& a, ThreadPool& pool, Int8Path p);
// The integer part alone, for tests: acc (M × N int32, dense) of A quantised as above.
void gemm_int8_acc(const float* A, int64_t lda, int64_t M, const PackedLinear& W, int32_t* acc, ThreadPool& pool,
                   Int8Path p);

// ---- the quantisers (shared by the kernels, the packing and the scalar reference) ----------------
inline float int8_weight_scale(float absmax) { return absmax > 0.0f ? absmax / 127.0f : 1.0f; }
inline int8_t int8_weight(float w, float scale) {
  float q = std::nearbyint(w / scale);
  q = q < -127.0f ? -127.0f : (q > 127.0f ? 127.0f : q);
  return static_cast<int8_t>(q);
}
struct RowQuant {
  float scale = 1.0f, inv = 1.0f;
  int32_t zp = 0;
};
inline RowQuant uint8_row_params(float lo, float hi) {
  lo = lo < 0.0f ? lo : 0.0f;
  hi = hi > 0.0f ? hi : 0.0f;
  RowQuant q;
  q.scale = (hi - lo) / 255.0f;
  if (!(q.scale > 0.0f) || !std::isfinite(q.scale)) q.scale = 1.0f;
  q.inv = 1.0f / q.scale;
  float z = std::nearbyint(-lo / q.scale);
  z = z < 0.0f ? 0.0f : (z > 255.0f ? 255.0f : z);
  q.zp = static_cast<int32_t>(z);
  return q;
}
inline uint8_t uint8_act(float x, const RowQuant& q) {
  float v = std::nearbyint(x * q.inv) + static_cast<float>(q.zp);
  v = !(v > 0.0f) ? 0.0f : (v > 255.0f ? 255.0f : v);  // NaN → 0, as the vector quantiser does
  return static_cast<uint8_t>(v);
}

// ---- kernels (gemm_int8.cc: scalar; gemm_int8_avx512.cc: VNNI, AMX, vector quantiser) -------------
// One GEMM's operands after A's quantisation. Aq: Mp × Kp bytes (Mp = M rounded up to 32, Kp =
// W.Kp), rows past M zero. Blocks cover rows [m0, m1) (m0 a multiple of 32) × column pairs
// [c0, c1) (columns 32·c .. 32·c + 31 of W's 16-column blocks 2c and 2c + 1).
struct Int8Gemm {
  const uint8_t* Aq = nullptr;
  const float* a_scale = nullptr;
  const int32_t* a_zp = nullptr;
  const PackedLinear* W = nullptr;
  const float* bias = nullptr;
  const float* residual = nullptr;  // may alias C
  float* C = nullptr;               // ldc = N
  int32_t* acc = nullptr;           // set: the raw int32 sums go here (ld N) instead of the epilogue
  int64_t M = 0, N = 0;
  bool gelu = false;
};
void int8_block_scalar(const Int8Gemm& g, int64_t m0, int64_t m1, int64_t c0, int64_t c1);
void int8_block_vnni(const Int8Gemm& g, int64_t m0, int64_t m1, int64_t c0, int64_t c1);
void int8_block_amx(const Int8Gemm& g, int64_t m0, int64_t m1, int64_t c0, int64_t c1);
// Rows [m0, m1) of A (K values each) into Aq rows of Kp bytes (zero past K) with their params.
void int8_quantize_rows_avx512(const float* A, int64_t lda, int64_t K, int64_t Kp, int64_t m0, int64_t m1, uint8_t* Aq,
                               float* scale, int32_t* zp);
bool int8_kernels_compiled();  // the compiler knew avx512vnni and amx-int8

}  // namespace cpu
}  // namespace vitmsn
