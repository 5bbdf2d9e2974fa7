#include "cuda/lt_gemm.h"

#include "cuda/cuda_check.h"

namespace vitmsn {
namespace cuda {

LtGemm::LtGemm(const lt::Api& api, int data_type, cudaStream_t stream) : api_(api), type_(data_type), stream_(stream) {
  check_lt(api_.Create(&handle_), "cublasLtCreate");
  cudaError_t e = cudaMalloc(&workspace_, workspace_bytes_);
  if (e != cudaSuccess) {
    api_.Destroy(handle_);
    check(e, "cudaMalloc(cuBLASLt workspace)");
  }
}

LtGemm::~LtGemm() {
  for (auto& [key, p] : plans_) {
    if (p.a) api_.MatrixLayoutDestroy(p.a);
    if (p.b) api_.MatrixLayoutDestroy(p.b);
    if (p.c) api_.MatrixLayoutDestroy(p.c);
    if (p.desc) api_.MatmulDescDestroy(p.desc);
  }
  cudaFree(workspace_);
  if (handle_) api_.Destroy(handle_);
}

LtGemm::Plan& LtGemm::plan(const Key& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  const auto [M, N, K, lda, has_bias, has_residual] = key;
  Plan p;
  // Registered before any call can fail, so the destructor frees whatever was created.
  Plan& slot = plans_.emplace(key, p).first->second;
  check_lt(api_.MatmulDescCreate(&slot.desc, lt::kCompute32F, lt::kR32F), "MatmulDescCreate");
  const int32_t opT = lt::kOpT, opN = lt::kOpN;
  check_lt(api_.MatmulDescSetAttribute(slot.desc, lt::kDescTransA, &opT, sizeof(opT)), "set TRANSA");
  check_lt(api_.MatmulDescSetAttribute(slot.desc, lt::kDescTransB, &opN, sizeof(opN)), "set TRANSB");
  const uint32_t epilogue = has_bias ? lt::kEpilogueBias : lt::kEpilogueDefault;
  check_lt(api_.MatmulDescSetAttribute(slot.desc, lt::kDescEpilogue, &epilogue, sizeof(epilogue)), "set EPILOGUE");
  if (has_bias) {
    const int32_t bias_type = type_;
    check_lt(api_.MatmulDescSetAttribute(slot.desc, lt::kDescBiasDataType, &bias_type, sizeof(bias_type)),
             "set BIAS_DATA_TYPE");
  }
  check_lt(api_.MatrixLayoutCreate(&slot.a, type_, K, N, K), "layout W");
  check_lt(api_.MatrixLayoutCreate(&slot.b, type_, K, M, lda), "layout A");
  check_lt(api_.MatrixLayoutCreate(&slot.c, type_, N, M, N), "layout C");
  lt::MatmulPreference pref = nullptr;
  check_lt(api_.MatmulPreferenceCreate(&pref), "MatmulPreferenceCreate");
  const uint64_t ws = workspace_bytes_;
  lt::Status st = api_.MatmulPreferenceSetAttribute(pref, lt::kPrefMaxWorkspaceBytes, &ws, sizeof(ws));
  lt::HeuristicResult result{};
  int returned = 0;
  if (st == lt::kSuccess) {
    st = api_.MatmulAlgoGetHeuristic(handle_, slot.desc, slot.a, slot.b, slot.c, slot.c, pref, 1, &result, &returned);
  }
  api_.MatmulPreferenceDestroy(pref);
  check_lt(st, "MatmulAlgoGetHeuristic");
  if (returned < 1) check_lt(lt::kNotSupported, "MatmulAlgoGetHeuristic (no algorithm for this shape)");
  slot.algo = result.algo;
  (void)has_residual;
  return slot;
}

void LtGemm::run(const void* A, int64_t lda, const void* W, const void* bias, const void* residual, void* C, int64_t M,
                 int64_t N, int64_t K) {
  if (M <= 0 || N <= 0) return;
  Plan& p = plan(Key{M, N, K, lda, bias != nullptr, residual != nullptr});
  if (bias) {
    check_lt(api_.MatmulDescSetAttribute(p.desc, lt::kDescBiasPointer, &bias, sizeof(bias)), "set BIAS_POINTER");
  }
  const float alpha = 1.0f, beta = residual ? 1.0f : 0.0f;
  check_lt(api_.Matmul(handle_, p.desc, &alpha, W, p.a, A, p.b, &beta, residual ? residual : C, p.c, C, p.c, &p.algo,
                       workspace_, workspace_bytes_, reinterpret_cast<lt::Stream>(stream_)),
           "cublasLtMatmul");
}

}  // namespace cuda
}  // namespace vitmsn
