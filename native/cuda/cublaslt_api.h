// The slice of cuBLASLt's C API this project uses, declared without cuBLAS headers (the build
// machines have none; the library is opened with dlopen at run time). Values were read from the
// CUDA 13.0 toolkit's cublasLt.h / cublas_api.h / library_types.h (docs/cuda.md);
// native/tests/cublaslt_abi_check.cc static_asserts them against the real headers where they exist.
#pragma once
#include <cstddef>
#include <cstdint>

namespace vitmsn {
namespace lt {

using Status = int;  // cublasStatus_t
using Handle = struct HandleOpaque*;
using MatmulDesc = struct MatmulDescOpaque*;
using MatrixLayout = struct MatrixLayoutOpaque*;
using MatmulPreference = struct MatmulPreferenceOpaque*;
using Stream = struct CUstream_st*;

struct MatmulAlgo {  // cublasLtMatmulAlgo_t: 64 opaque bytes
  uint64_t data[8];
};
struct HeuristicResult {  // cublasLtMatmulHeuristicResult_t: 96 bytes
  MatmulAlgo algo;
  size_t workspace_size;
  Status state;
  float waves_count;
  int reserved[4];
};
static_assert(sizeof(MatmulAlgo) == 64, "cublasLtMatmulAlgo_t is 64 bytes");
static_assert(sizeof(HeuristicResult) == 96, "cublasLtMatmulHeuristicResult_t is 96 bytes");

inline constexpr Status kSuccess = 0;
inline constexpr Status kNotSupported = 15;
inline constexpr int kOpN = 0, kOpT = 1;
inline constexpr int kCompute32F = 68;
inline constexpr int kR32F = 0, kR16F = 2, kR16BF = 14;
inline constexpr int kDescComputeType = 0, kDescScaleType = 1, kDescTransA = 3, kDescTransB = 4, kDescEpilogue = 7,
                     kDescBiasPointer = 8, kDescBiasDataType = 26;
inline constexpr uint32_t kEpilogueDefault = 1, kEpilogueBias = 4, kEpilogueGeluBias = 36;
inline constexpr int kPrefMaxWorkspaceBytes = 1;

struct Api {
  size_t (*GetVersion)();
  Status (*Create)(Handle*);
  Status (*Destroy)(Handle);
  Status (*MatmulDescCreate)(MatmulDesc*, int compute_type, int scale_type);
  Status (*MatmulDescDestroy)(MatmulDesc);
  Status (*MatmulDescSetAttribute)(MatmulDesc, int attr, const void* buf, size_t size);
  Status (*MatrixLayoutCreate)(MatrixLayout*, int type, uint64_t rows, uint64_t cols, int64_t ld);
  Status (*MatrixLayoutDestroy)(MatrixLayout);
  Status (*MatmulPreferenceCreate)(MatmulPreference*);
  Status (*MatmulPreferenceDestroy)(MatmulPreference);
  Status (*MatmulPreferenceSetAttribute)(MatmulPreference, int attr, const void* buf, size_t size);
  Status (*MatmulAlgoGetHeuristic)(Handle, MatmulDesc, MatrixLayout a, MatrixLayout b, MatrixLayout c, MatrixLayout d,
                                   MatmulPreference, int requested, HeuristicResult* results, int* returned);
  Status (*Matmul)(Handle, MatmulDesc, const void* alpha, const void* A, MatrixLayout a, const void* B, MatrixLayout b,
                   const void* beta, const void* C, MatrixLayout c, void* D, MatrixLayout d, const MatmulAlgo* algo,
                   void* workspace, size_t workspace_size, Stream stream);
};

}  // namespace lt
}  // namespace vitmsn
