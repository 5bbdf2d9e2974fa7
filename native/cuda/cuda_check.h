// Every CUDA runtime and cuBLASLt status is checked; a failure becomes a vitmsn::Error (never an
// abort): out-of-memory → ERR_OUT_OF_MEMORY, anything else → ERR_INTERNAL naming the call.
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "common/error.h"
#include "cuda/cublaslt_api.h"

namespace vitmsn {
namespace cuda {

inline void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  const std::string msg = std::string(what) + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
  throw Error(e == cudaErrorMemoryAllocation ? codes::kOutOfMemory : codes::kInternal, "CUDA " + msg);
}

// After kernel launches: reports a bad launch configuration at the op that caused it.
inline void check_launch(const char* what) { check(cudaGetLastError(), what); }

inline void check_lt(lt::Status s, const char* what) {
  if (s != lt::kSuccess)
    throw Error(codes::kInternal, std::string("cuBLASLt ") + what + " failed with status " + std::to_string(s));
}

}  // namespace cuda
}  // namespace vitmsn
