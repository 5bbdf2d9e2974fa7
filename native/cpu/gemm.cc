// GEMM: C = epilogue(A·Wᵀ + bias) + residual (shapes in gemm.h).
//
// Plan (portable C++ written for the compiler's auto-vectoriser; ISA-specific kernels come later):
//  - The work is split into tasks of (M block) × (kNB columns). A task packs its kNB columns of W
//    into panels of kNR columns laid out [k][kNR], so the micro-kernel's inner loop reads kNR
//    contiguous floats per k and updates a kMR×kNR register tile with broadcast-multiply-adds.
//  - The micro-kernel runs over the whole K for one tile, so each C element is finished in
//    registers and written exactly once, epilogue included. That is what makes residual == C safe:
//    an element's residual is read right before the same element is written, by the same thread.
#include "cpu/gemm.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <new>
#include <string>

#include "cpu/scratch.h"
#include "engine/error.h"

namespace vitmsn {
namespace cpu {
namespace {

// Register tile: 6 rows × 8 columns = 12 SSE accumulators, + 2 for the W row + 1 broadcast fits
// the 16 vector registers of baseline x86-64; wider ISAs simply get more columns per instruction.
constexpr int kMR = 6;
constexpr int kNR = 8;
// Columns per task: 64 columns × K=1536 floats = 384 KiB of packed W, which stays in L2 while the
// task's rows stream past it.
constexpr int64_t kNB = 64;
static_assert(kNB % kNR == 0, "a column block is a whole number of panels");

// acc[i][j] = Σ_k A[i·lda + k] · Bp[k·kNR + j] for i < MR, j < kNR.
template <int MR>
inline void micro_kernel(const float* __restrict A, int64_t lda, const float* __restrict Bp, int64_t K,
                         float* __restrict out) {
  float acc[MR][kNR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < kNR; ++j) acc[i][j] = 0.0f;
  const float* a_rows[MR];
  for (int i = 0; i < MR; ++i) a_rows[i] = A + i * lda;
  for (int64_t k = 0; k < K; ++k) {
    const float* __restrict b = Bp + k * kNR;
    for (int i = 0; i < MR; ++i) {
      const float av = a_rows[i][k];
      for (int j = 0; j < kNR; ++j) acc[i][j] += av * b[j];
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < kNR; ++j) out[i * kNR + j] = acc[i][j];
}

void run_micro_kernel(int rows, const float* A, int64_t lda, const float* Bp, int64_t K, float* out) {
  switch (rows) {
    case 6: micro_kernel<6>(A, lda, Bp, K, out); break;
    case 5: micro_kernel<5>(A, lda, Bp, K, out); break;
    case 4: micro_kernel<4>(A, lda, Bp, K, out); break;
    case 3: micro_kernel<3>(A, lda, Bp, K, out); break;
    case 2: micro_kernel<2>(A, lda, Bp, K, out); break;
    default: micro_kernel<1>(A, lda, Bp, K, out); break;
  }
}

inline float gelu(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678f)); }

// Packs W rows [n0, n0 + nb) into ceil(nb / kNR) panels of [K][kNR], zero-padding past N so the
// micro-kernel never needs a column tail.
void pack_w(const float* W, int64_t K, int64_t N, int64_t n0, int64_t nb, float* dst) {
  const int64_t panels = (nb + kNR - 1) / kNR;
  for (int64_t p = 0; p < panels; ++p) {
    float* panel = dst + p * K * kNR;
    for (int j = 0; j < kNR; ++j) {
      const int64_t n = n0 + p * kNR + j;
      if (n < N && n < n0 + nb) {
        const float* w = W + n * K;
        for (int64_t k = 0; k < K; ++k) panel[k * kNR + j] = w[k];
      } else {
        for (int64_t k = 0; k < K; ++k) panel[k * kNR + j] = 0.0f;
      }
    }
  }
}

void check(const GemmArgs& a) {
  if (a.M < 0 || a.N < 0 || a.K < 0) throw Error(codes::kInternal, "gemm: negative dimension");
  if (a.M == 0 || a.N == 0) return;
  if (a.lda < a.K) throw Error(codes::kInternal, "gemm: lda " + std::to_string(a.lda) + " < K " + std::to_string(a.K));
  if (!a.C || (a.K > 0 && (!a.A || !a.W))) throw Error(codes::kInternal, "gemm: null operand");
}

}  // namespace

void gemm(const GemmArgs& a, ThreadPool& pool) {
  check(a);
  const int64_t M = a.M, N = a.N, K = a.K, lda = a.lda;
  if (M == 0 || N == 0) return;

  // Task grid: column blocks first (each packs its own W block); split M as well when there are
  // too few column blocks to give every thread a few tasks, keeping M blocks ≥ 4 tiles tall so
  // packing stays a small fraction of the work.
  const int64_t n_blocks = (N + kNB - 1) / kNB;
  const int64_t m_tiles = (M + kMR - 1) / kMR;
  const int64_t want_tasks = 3 * static_cast<int64_t>(pool.size());
  int64_t m_blocks = std::min<int64_t>((want_tasks + n_blocks - 1) / n_blocks, std::max<int64_t>(m_tiles / 4, 1));
  m_blocks = std::max<int64_t>(m_blocks, 1);
  const int64_t tiles_per_mb = (m_tiles + m_blocks - 1) / m_blocks;
  const int64_t mb_rows = tiles_per_mb * kMR;
  m_blocks = (M + mb_rows - 1) / mb_rows;
  const int64_t tasks = m_blocks * n_blocks;

  // A tiny product is not worth waking the workers for.
  const double flops =
      2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(std::max<int64_t>(K, 1));
  auto body = [&](int64_t t_begin, int64_t t_end) {
    std::unique_ptr<float[]> packed = alloc_scratch(static_cast<size_t>(kNB * std::max<int64_t>(K, 1)), "gemm");
    float tile[kMR * kNR];
    int64_t packed_nb = -1;  // which column block `packed` holds; tasks in a chunk share it
    for (int64_t t = t_begin; t < t_end; ++t) {
      // Column-block-major task order, so consecutive tasks in a chunk reuse the packed block.
      const int64_t nbi = t / m_blocks, mbi = t % m_blocks;
      const int64_t n0 = nbi * kNB, nb = std::min(kNB, N - n0);
      const int64_t m0 = mbi * mb_rows, m_end = std::min(M, m0 + mb_rows);
      if (packed_nb != nbi) {
        pack_w(a.W, K, N, n0, nb, packed.get());
        packed_nb = nbi;
      }
      for (int64_t m = m0; m < m_end; m += kMR) {
        const int rows = static_cast<int>(std::min<int64_t>(kMR, m_end - m));
        const float* a_tile = K > 0 ? a.A + m * lda : nullptr;  // A may be null when K == 0
        for (int64_t j0 = 0; j0 < nb; j0 += kNR) {
          run_micro_kernel(rows, a_tile, lda, packed.get() + (j0 / kNR) * K * kNR, K, tile);
          const int cols = static_cast<int>(std::min<int64_t>(kNR, nb - j0));
          const int64_t n = n0 + j0;
          for (int i = 0; i < rows; ++i) {
            float* c = a.C + (m + i) * N + n;
            const float* r = a.residual ? a.residual + (m + i) * N + n : nullptr;
            const float* t_row = tile + i * kNR;
            for (int j = 0; j < cols; ++j) {
              float v = t_row[j];
              if (a.bias) v += a.bias[n + j];
              if (a.epilogue == Epilogue::kGelu) v = gelu(v);
              if (r) v += r[j];
              c[j] = v;
            }
          }
        }
      }
    }
  };
  if (tasks == 1 || flops < 2e5) {
    body(0, tasks);
  } else {
    pool.parallel_for(tasks, body);
  }
}

}  // namespace cpu
}  // namespace vitmsn
