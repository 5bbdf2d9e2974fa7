// LayerNorm (math and shapes in layernorm.h).
//
// The statistics are accumulated in double and the variance is taken in a second pass around the
// mean: residual-stream rows of a ViT carry a few large outlier channels, and the one-pass
// E[x²] − E[x]² in float loses most of its digits to cancellation there. Centring and scaling are
// double too; only the affine gamma/beta step is float. Rows are independent: threads split rows.
#include "cpu/layernorm.h"

#include <cmath>

#include "common/error.h"
#include "cpu/gemm.h"

namespace vitmsn {
namespace cpu {
namespace {

// Sixteen double partial sums let the compiler vectorise the reductions (two 8-double vectors on
// AVX-512; a single accumulator would force strictly sequential adds); the order is fixed, so
// results are deterministic and the same on every path.
constexpr int kLanes = 16;

__attribute__((always_inline)) inline double tree_sum(const double (&v)[kLanes]) {
  double t[kLanes / 2];
  for (int u = 0; u < kLanes / 2; ++u) t[u] = v[u] + v[u + kLanes / 2];
  return ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
}

__attribute__((always_inline)) inline void norm_row_body(const float* x, const float* gamma, const float* beta,
                                                         float* y, int64_t D, float eps) {
  double s[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= D; i += kLanes)
    for (int u = 0; u < kLanes; ++u) s[u] += x[i + u];
  for (; i < D; ++i) s[0] += x[i];
  const double mean = tree_sum(s) / static_cast<double>(D);
  double q[kLanes] = {};
  i = 0;
  for (; i + kLanes <= D; i += kLanes)
    for (int u = 0; u < kLanes; ++u) {
      const double d = x[i + u] - mean;
      q[u] += d * d;
    }
  for (; i < D; ++i) {
    const double d = x[i] - mean;
    q[0] += d * d;
  }
  const double var = tree_sum(q) / static_cast<double>(D);
  const double rstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
  // x − mean in double too: when |mean| ≫ std, subtracting a float-rounded mean would leave an
  // error of ulp(mean) that is large next to std. Reads x[i] before writing y[i], so y == x is fine.
  for (i = 0; i < D; ++i) y[i] = static_cast<float>((x[i] - mean) * rstd) * gamma[i] + beta[i];
}

// The same loops compiled twice: for the baseline ISA, and for AVX-512 (eight doubles per vector),
// picked at run time like the other kernels; the arithmetic and its order are identical.
void norm_row(const float* x, const float* gamma, const float* beta, float* y, int64_t D, float eps) {
  norm_row_body(x, gamma, beta, y, D, eps);
}
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma,avx2"))) void norm_row_avx512(const float* x,
                                                                                            const float* gamma,
                                                                                            const float* beta, float* y,
                                                                                            int64_t D, float eps) {
  norm_row_body(x, gamma, beta, y, D, eps);
}
#else
void norm_row_avx512(const float* x, const float* gamma, const float* beta, float* y, int64_t D, float eps) {
  norm_row_body(x, gamma, beta, y, D, eps);
}
#endif

}  // namespace

void layernorm(const LayerNormArgs& a, ThreadPool& pool) { layernorm(a, pool, default_isa()); }

void layernorm_rows(const LayerNormArgs& a, Isa isa) {
  const auto row = isa == Isa::kAvx512 ? norm_row_avx512 : norm_row;
  for (int64_t r = 0; r < a.rows; ++r) row(a.x + r * a.D, a.gamma, a.beta, a.y + r * a.D, a.D, a.eps);
}

void layernorm(const LayerNormArgs& a, ThreadPool& pool, Isa isa) {
  if (a.rows < 0 || a.D < 0) throw Error(codes::kInternal, "layernorm: negative dimension");
  if (a.rows == 0 || a.D == 0) return;
  if (!a.x || !a.y || !a.gamma || !a.beta) throw Error(codes::kInternal, "layernorm: null operand");
  const int64_t D = a.D;
  const auto row = isa == Isa::kAvx512 ? norm_row_avx512 : norm_row;
  auto body = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) row(a.x + r * D, a.gamma, a.beta, a.y + r * D, D, a.eps);
  };
  // Three passes over a row: about 8 operations per element.
  pool.parallel_for(a.rows, body, 8 * a.rows * D);
}

}  // namespace cpu
}  // namespace vitmsn
