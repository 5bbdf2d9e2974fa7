// The int8 GEMM's driver and its scalar path (scheme in gemm_int8.h).
//
// Two parallel steps, as gemm.cc: (1) A's rows are quantised to uint8 (per-row scale and zero
// point) into a buffer padded to 32 rows × Kp bytes; (2) a grid of blocks, rows × 32-column pairs,
// each computing its int32 sums in the path's kernel and applying the dequantising epilogue (bias,
// GELU, residual) before it stores C, once per element, by one thread (so residual == C is safe).
#include "cpu/gemm_int8.h"

#include <algorithm>
#include <string>

#include "common/error.h"
#include "cpu/gemm_kernels.h"
#include "cpu/isa_target.h"
#include "cpu/scratch.h"

namespace vitmsn {
namespace cpu {

const char* int8_path_name(Int8Path p) {
  switch (p) {
    case Int8Path::kAmx:
      return "AMX tiles";
    case Int8Path::kVnni:
      return "avx512_vnni";
    default:
      return "scalar";
  }
}

bool int8_path_supported(Int8Path p) {
  if (p == Int8Path::kScalar) return true;
  if constexpr (kX86Kernels) {  // int8_kernels_compiled() exists in x86 builds only
    if (!int8_kernels_compiled() || !isa_supported(Isa::kAvx512)) return false;
    return p == Int8Path::kVnni ? cpu_features().avx512_vnni : cpu_features().amx_int8;
  }
  return false;
}

Int8Path int8_path_for(Isa isa) {
  if (isa == Isa::kAvx512) {
    if (amx_int8_enabled() && int8_path_supported(Int8Path::kAmx)) return Int8Path::kAmx;
    if (int8_path_supported(Int8Path::kVnni)) return Int8Path::kVnni;
  }
  return Int8Path::kScalar;
}

// ---- scalar path -----------------------------------------------------------------------------------
namespace {

void quantize_rows_scalar(const float* A, int64_t lda, int64_t K, int64_t Kp, int64_t m0, int64_t m1, uint8_t* Aq,
                          float* scale, int32_t* zp) {
  for (int64_t m = m0; m < m1; ++m) {
    const float* a = A + m * lda;
    float lo = 0.0f, hi = 0.0f;
    for (int64_t k = 0; k < K; ++k) lo = std::min(lo, a[k]), hi = std::max(hi, a[k]);
    const RowQuant q = uint8_row_params(lo, hi);
    uint8_t* d = Aq + m * Kp;
    for (int64_t k = 0; k < K; ++k) d[k] = uint8_act(a[k], q);
    for (int64_t k = K; k < Kp; ++k) d[k] = 0;
    scale[m] = q.scale, zp[m] = q.zp;
  }
}

// One finished value: dequantise, bias, GELU, residual.
inline float finish(const Int8Gemm& g, int64_t m, int64_t n, int32_t acc) {
  const int32_t corr = acc - g.a_zp[m] * g.W->i8_colsum()[n];
  float v = static_cast<float>(corr) * (g.a_scale[m] * g.W->i8_scale()[n]);
  if (g.bias) v += g.bias[n];
  if (g.gelu) v = gelu_exact(v);
  if (g.residual) v += g.residual[m * g.N + n];
  return v;
}

}  // namespace

void int8_block_scalar(const Int8Gemm& g, int64_t m0, int64_t m1, int64_t c0, int64_t c1) {
  const PackedLinear& W = *g.W;
  const int64_t Kp = W.Kp, G = Kp / 4;
  int32_t acc[32];
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t m = m0; m < m1 && m < g.M; ++m) {
      const uint8_t* a = g.Aq + m * Kp;
      for (int half = 0; half < 2; ++half) {
        const int8_t* w = W.i8() + (2 * c + half) * Kp * 16;
        int32_t* s = acc + 16 * half;
        for (int j = 0; j < 16; ++j) s[j] = 0;
        for (int64_t q = 0; q < G; ++q, w += 64)
          for (int j = 0; j < 16; ++j)
            s[j] += a[4 * q] * w[4 * j] + a[4 * q + 1] * w[4 * j + 1] + a[4 * q + 2] * w[4 * j + 2] +
                    a[4 * q + 3] * w[4 * j + 3];
      }
      for (int j = 0; j < 32; ++j) {
        const int64_t n = 32 * c + j;
        if (n >= g.N) break;
        if (g.acc)
          g.acc[m * g.N + n] = acc[j];
        else
          g.C[m * g.N + n] = finish(g, m, n, acc[j]);
      }
    }
}

// ---- driver ------------------------------------------------------------------------------------------
namespace {

struct Int8ATag;
struct Int8ParamsTag;
constexpr size_t kKeepBytes = size_t(4) << 20;  // per-thread quantised A kept between calls up to this

void run(const GemmArgs& a, const PackedLinear& W, int32_t* acc_out, ThreadPool& pool, Int8Path path) {
  const int64_t M = a.M, N = a.N, K = a.K, Kp = W.Kp;
  const int64_t Mp = (M + 31) / 32 * 32;
  const size_t a_bytes = static_cast<size_t>(Mp * Kp), p_floats = static_cast<size_t>(2 * Mp);
  std::unique_ptr<float[]> a_temp;
  uint8_t* Aq;
  if (a_bytes > kKeepBytes) {
    a_temp = alloc_scratch(a_bytes / 4 + 16, "gemm int8");
    Aq = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(a_temp.get()) + 63) & ~uintptr_t(63));
  } else {
    Aq = reinterpret_cast<uint8_t*>(thread_scratch<Int8ATag>(a_bytes / 4 + 16, "gemm int8"));
  }
  float* params = thread_scratch<Int8ParamsTag>(p_floats, "gemm int8");
  float* a_scale = params;
  int32_t* a_zp = reinterpret_cast<int32_t*>(params + Mp);
  const bool vec = path != Int8Path::kScalar;
  pool.parallel_for(
      Mp,
      [&](int64_t m0, int64_t m1) {
        const int64_t e = std::min(m1, M);
        if (m0 < e) {
          if constexpr (kX86Kernels) {
            if (vec) {
              int8_quantize_rows_avx512(a.A, a.lda, K, Kp, m0, e, Aq, a_scale, a_zp);
            } else {
              quantize_rows_scalar(a.A, a.lda, K, Kp, m0, e, Aq, a_scale, a_zp);
            }
          } else {
            quantize_rows_scalar(a.A, a.lda, K, Kp, m0, e, Aq, a_scale, a_zp);
          }
        }
        for (int64_t m = std::max(m0, M); m < m1; ++m) {  // padding rows: zeros
          std::fill(Aq + m * Kp, Aq + (m + 1) * Kp, uint8_t(0));
          a_scale[m] = 1.0f, a_zp[m] = 0;
        }
      },
      2 * M * K);

  Int8Gemm g;
  g.Aq = Aq, g.a_scale = a_scale, g.a_zp = a_zp, g.W = &W, g.bias = a.bias, g.residual = a.residual, g.C = a.C;
  g.acc = acc_out, g.M = M, g.N = N, g.gelu = a.epilogue == Epilogue::kGelu;
  void (*block)(const Int8Gemm&, int64_t, int64_t, int64_t, int64_t) = int8_block_scalar;
  if constexpr (kX86Kernels) {
    if (path == Int8Path::kVnni) block = int8_block_vnni;
    if (path == Int8Path::kAmx) block = int8_block_amx;
  }
  // Blocks: up to 4 row tiles of 32 × up to 8 column pairs (256 columns; the weights of one block,
  // 256 · Kp bytes, stay in L2 while its row tiles pass), shrunk until there are ≥ 4 per thread.
  const int64_t pairs = (N + 31) / 32, tiles = Mp / 32, threads = pool.size();
  int64_t mb = std::min<int64_t>(4, tiles), cb = std::min<int64_t>(8, pairs);
  while (((tiles + mb - 1) / mb) * ((pairs + cb - 1) / cb) < 4 * threads && mb > 1) --mb;
  while (((tiles + mb - 1) / mb) * ((pairs + cb - 1) / cb) < 4 * threads && cb > 1) --cb;
  const int64_t m_blocks = (tiles + mb - 1) / mb, c_blocks = (pairs + cb - 1) / cb;
  pool.parallel_for(
      m_blocks * c_blocks,
      [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t cbi = t / m_blocks, mbi = t % m_blocks;
          const int64_t m0 = mbi * mb * 32, m1 = std::min(M, m0 + mb * 32);
          const int64_t c0 = cbi * cb, c1 = std::min(pairs, c0 + cb);
          block(g, m0, m1, c0, c1);
        }
      },
      2 * M * N * K);
}

void check(const GemmArgs& a, const PackedLinear& W) {
  if (W.dtype != WeightDtype::kInt8 || W.N != a.N || W.K != a.K)
    throw Error(codes::kInternal,
                "gemm int8: weight is not an int8 " + std::to_string(a.N) + "x" + std::to_string(a.K));
  if (a.K >= 66000) throw Error(codes::kInternal, "gemm int8: K too large for int32 sums");
}

// Also what asks the OS for the AMX tile state (cpu_features()), before any tile instruction runs.
void check_path(Int8Path p) {
  if (!int8_path_supported(p))
    throw Error(codes::kInternal, std::string("gemm int8: path ") + int8_path_name(p) + " not supported here");
}

}  // namespace

void gemm_int8(const GemmArgs& a, ThreadPool& pool, Int8Path p) {
  const auto& W = *static_cast<const PackedLinear*>(a.Wp);
  check(a, W);
  check_path(p);
  if (a.M == 0 || a.N == 0) return;
  run(a, W, nullptr, pool, p);
}

void gemm_int8_acc(const float* A, int64_t lda, int64_t M, const PackedLinear& W, int32_t* acc, ThreadPool& pool,
                   Int8Path p) {
  GemmArgs a;
  a.A = A, a.lda = lda, a.Wp = &W, a.M = M, a.N = W.N, a.K = W.K;
  check(a, W);
  check_path(p);
  if (M == 0 || W.N == 0) return;
  run(a, W, acc, pool, p);
}

}  // namespace cpu
}  // namespace vitmsn
