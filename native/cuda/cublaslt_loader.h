// Finds and opens libcublasLt at run time (cuda/library_search.h). Search order (docs/cuda.md): VITMSN_CUBLASLT_PATH
// (a file or a folder), the default loader path (LD_LIBRARY_PATH, ldconfig), $CUDA_PATH/lib64,
// /usr/local/cuda/lib64, /usr/local/cuda/targets/*/lib, and Python wheels' nvidia/cu13/lib and
// nvidia/cublas/lib under the site-packages folders of PYTHONPATH. Never the toolkit's stubs/.
#pragma once
#include <string>
#include <vector>

#include "cuda/cublaslt_api.h"
#include "cuda/library_search.h"

namespace vitmsn {

using CublasLtLibrary = LoadedLibrary<lt::Api>;

// Loads once per process (thread-safe); later calls return the same result.
const CublasLtLibrary& cublaslt();

// The candidate file paths in search order (exposed for tests and for the error message).
std::vector<std::string> cublaslt_candidates();

}  // namespace vitmsn
