// C[M, N] = A[M, K]·W[N, K]ᵀ + bias[N] (+ residual[M, N]) with cuBLASLt, for row-major operands.
//
// cuBLASLt is column-major, so the row-major product is computed transposed: Cᵀ (N×M, ld N) =
// op_T(W as K×N, ld K) · op_N(A as K×M, ld lda). The bias epilogue adds bias along Cᵀ's rows (the
// output features); the residual enters as cuBLASLt's C operand with beta = 1 (it may alias D).
// Compute type is always float32 (CUBLAS_COMPUTE_32F, no TF32: fp32 parity needs it); storage type
// is the backend's (fp32, fp16 or bf16). Plans (layouts + algo) are cached per shape; the algo is the
// fastest of cuBLASLt's first 8 heuristic candidates, timed once on the first call's real operands
// (into a scratch output, so an in-place residual is not touched). On an H200 this ran ViT-B/16 bf16
// batch 256 3% faster and batch 1 ~20% faster than the heuristic's first choice (bench/GPU-RESULTS.md);
// VITMSN_CUDA_GEMM_TUNE=0 keeps the first choice (no timing at the first call of a shape).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <tuple>

#include "cuda/cublaslt_api.h"

namespace vitmsn {
namespace cuda {

class LtGemm {
 public:
  LtGemm(const lt::Api& api, int data_type, cudaStream_t stream);  // data_type: lt::kR32F / kR16F / kR16BF
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // gelu: cuBLASLt's GELU_BIAS epilogue (tanh-form GELU after the bias; needs bias, no residual).
  void run(const void* A, int64_t lda, const void* W, const void* bias, const void* residual, void* C, int64_t M,
           int64_t N, int64_t K, bool gelu = false);

 private:
  struct Plan {
    lt::MatmulDesc desc = nullptr;
    lt::MatrixLayout a = nullptr, b = nullptr, c = nullptr;
    lt::MatmulAlgo algo{};
  };
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, bool, bool, bool>;  // M, N, K, lda, bias, residual, gelu
  Plan& plan(const Key& key, const void* A, const void* W, const void* bias, const void* residual);

  // Index of the fastest of n candidate algos on these operands (0 when it cannot time them).
  int fastest(lt::MatmulDesc desc, lt::MatrixLayout la, lt::MatrixLayout lb, lt::MatrixLayout lc,
              const lt::HeuristicResult* cand, int n, int64_t M, int64_t N, const void* A, const void* W,
              const void* bias, const void* residual);

  const lt::Api& api_;
  int type_;
  cudaStream_t stream_;
  lt::Handle handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 32u << 20;
  std::map<Key, Plan> plans_;
  bool tune_ = true;
};

}  // namespace cuda
}  // namespace vitmsn
