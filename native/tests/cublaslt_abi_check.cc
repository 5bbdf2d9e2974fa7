// Compiles only where cuBLAS's headers exist (the GPU machine: scripts/gpu-check.sh runs
// `g++ -fsyntax-only` on it). It proves that the values and layouts declared in
// native/cuda/cublaslt_api.h, which the build machines must take on trust, match the real headers.
#include <cublasLt.h>

#include <cstddef>

#include "cuda/cublaslt_api.h"

namespace lt = vitmsn::lt;

static_assert(CUBLAS_STATUS_SUCCESS == lt::kSuccess);
static_assert(CUBLAS_STATUS_NOT_SUPPORTED == lt::kNotSupported);
static_assert(CUBLAS_OP_N == lt::kOpN && CUBLAS_OP_T == lt::kOpT);
static_assert(CUBLAS_COMPUTE_32F == lt::kCompute32F);
static_assert(CUDA_R_32F == lt::kR32F && CUDA_R_16F == lt::kR16F && CUDA_R_16BF == lt::kR16BF);
static_assert(CUBLASLT_MATMUL_DESC_COMPUTE_TYPE == lt::kDescComputeType);
static_assert(CUBLASLT_MATMUL_DESC_SCALE_TYPE == lt::kDescScaleType);
static_assert(CUBLASLT_MATMUL_DESC_TRANSA == lt::kDescTransA && CUBLASLT_MATMUL_DESC_TRANSB == lt::kDescTransB);
static_assert(CUBLASLT_MATMUL_DESC_EPILOGUE == lt::kDescEpilogue);
static_assert(CUBLASLT_MATMUL_DESC_BIAS_POINTER == lt::kDescBiasPointer);
static_assert(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE == lt::kDescBiasDataType);
static_assert(CUBLASLT_EPILOGUE_DEFAULT == lt::kEpilogueDefault && CUBLASLT_EPILOGUE_BIAS == lt::kEpilogueBias &&
              CUBLASLT_EPILOGUE_GELU_BIAS == lt::kEpilogueGeluBias);
static_assert(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES == lt::kPrefMaxWorkspaceBytes);
static_assert(sizeof(cublasLtMatmulAlgo_t) == sizeof(lt::MatmulAlgo));
static_assert(sizeof(cublasLtMatmulHeuristicResult_t) == sizeof(lt::HeuristicResult));
static_assert(offsetof(cublasLtMatmulHeuristicResult_t, workspaceSize) ==
              offsetof(lt::HeuristicResult, workspace_size));
static_assert(offsetof(cublasLtMatmulHeuristicResult_t, state) == offsetof(lt::HeuristicResult, state));
// Function signatures: our pointer types must accept the real functions once the opaque handle
// types are mapped (they are all pointers, passed the same way).
static_assert(sizeof(cublasLtHandle_t) == sizeof(lt::Handle));
static_assert(sizeof(cublasStatus_t) == sizeof(lt::Status));
